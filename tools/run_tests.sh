#!/usr/bin/env bash
# The README's test command: set up the environment (idempotent), lint, and
# run the test suite on the CPU. Extra arguments go to pytest.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
bash tools/setup_env.sh
py=${CE_MMDET_VENV:-$repo/.venv}/bin/python
# The tests run tiny tensors: one intra-op thread avoids thread-pool stalls
# when the machine is shared (subprocesses inherit it).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
"$py" -m ruff check ce_mmdet tools tests configs
status=0
# One worker per core (pytest-xdist), each test file on one worker so that
# a module's fixtures (trained checkpoints) are built once; -n 0 turns it off.
"$py" -m pytest tests -q -p no:cacheprovider -n "${CE_MMDET_TEST_WORKERS:-auto}" \
  --dist loadfile --durations=15 "$@" || status=$?
if [[ $status -eq 5 ]]; then
  echo "run_tests: pytest collected no tests" >&2
  exit 0
fi
exit $status
