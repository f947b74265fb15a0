"""Running this checkout's tools/ scripts in tests."""
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
TOOLS = REPO_ROOT / 'tools'


def run_tool(args: list, cwd: Path, timeout: float = 300,
             expect_failure: bool = False) -> str:
    """Run ``args`` with this python, return its output, fail with its tail.

    One OpenMP thread: the runs are tiny, and on a busy machine OpenMP's
    spinning threads slow them down by an order of magnitude. With
    ``expect_failure``, the run must end with an error (an exit status > 0,
    not a signal).
    """
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}
    result = subprocess.run([sys.executable, *map(str, args)],
                            cwd=cwd,
                            env=env,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT,
                            text=True,
                            timeout=timeout)
    succeeded = result.returncode == 0
    assert (result.returncode > 0 if expect_failure else succeeded), (
        f'{args} exited with {result.returncode}:\n{result.stdout[-4000:]}')
    return result.stdout
