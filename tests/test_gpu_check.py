"""tools/gpu_check.sh: its CPU self-test writes the report, and without CUDA
it refuses (exit 3) instead of checking nothing quietly."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / 'tools' / 'gpu_check.sh'
# Two quick tests of tests/test_gpu.py: the script's logic, not the tests'
# (tests/test_gpu.py itself runs in the CPU suite with
# CE_MMDET_TEST_DEVICE=cpu).
SELF_TEST_TESTS = ('tests/test_gpu.py::test_ce_float32_on_device_matches_'
                   'float64_reference '
                   'tests/test_gpu.py::test_sync_ce_one_process_equals_ce')


def run_gpu_check(out_dir: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith('GPU_CHECK_')}
    environment.update(PYTHON=sys.executable, OUT_DIR=str(out_dir),
                       OMP_NUM_THREADS='1')
    environment.update(env)
    return subprocess.run(['bash', str(SCRIPT)], env=environment,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=600)


def test_cpu_self_test_prints_the_report(tmp_path):
    result = run_gpu_check(tmp_path, GPU_CHECK_DEVICE='cpu',
                           GPU_CHECK_TESTS=SELF_TEST_TESTS)
    report = result.stdout
    assert result.returncode == 0, (report, result.stderr[-3000:])
    assert (tmp_path / 'report.md').read_text() == report
    for step in ('tests', 'benchmark_ce', 'benchmark_backbone'):
        assert (tmp_path / f'{step}.log').is_file()
        assert any(line.startswith(f'| {step} | `')
                   and '| 0 (passed) |' in line
                   for line in report.splitlines()), step
    for section in ('# ce_mmdet GPU check', 'Mode: CPU self-test',
                    '## Machine', '- GPU: none used (CPU self-test)',
                    f'- torch {torch.__version__}', '## Steps',
                    'Result: PASSED.', '## Tests', 'Failures: none.',
                    '## benchmark_ce', '## benchmark_backbone'):
        assert section in report, section
    assert '\nSummary: 4 passed' in report
    # the benchmark tables, from the CPU
    assert '| 2x64x12x20 | 16 |' in report
    assert '| train (detection) | 2x3x64x64 | CE-ResNet |' in report
    assert report.count('--device cpu') == 2


def test_failed_steps_are_reported_and_fail_the_check(tmp_path):
    """Failing steps: their exit status in the table, the end of their log
    in their section, ``Result: FAILED`` and exit status 1. A stand-in
    Python fails both benchmarks at once (the real one runs the rest)."""
    python = tmp_path / 'python'
    python.write_text(
        '#!/usr/bin/env bash\n'
        'case "$*" in *benchmark_*.py*) echo "boom: $1" >&2; exit 7 ;; esac\n'
        f'exec {sys.executable} "$@"\n')
    python.chmod(0o755)
    result = run_gpu_check(tmp_path / 'out', GPU_CHECK_DEVICE='cpu',
                           GPU_CHECK_TESTS='tests/test_gpu.py::no_such_test',
                           PYTHON=str(python))
    report = result.stdout
    assert result.returncode == 1, (report, result.stderr[-3000:])
    lines = report.splitlines()
    for step, status in [('tests', '4 (failed)'),
                         ('benchmark_ce', '7 (failed)'),
                         ('benchmark_backbone', '7 (failed)')]:
        assert any(line.startswith(f'| {step} | `') and f'| {status} |' in line
                   for line in lines), step
    assert 'Result: FAILED (3 of 3 steps).' in report
    assert 'not found' in report  # the end of the tests' log
    for tool in ('benchmark_ce.py', 'benchmark_backbone.py'):
        assert f'boom: tools/analysis_tools/{tool}' in report


@pytest.mark.skipif(torch.cuda.is_available(), reason='CUDA is available')
def test_without_cuda_it_exits_3_and_says_why(tmp_path):
    result = run_gpu_check(tmp_path)
    assert result.returncode == 3
    assert 'torch.cuda.is_available() is false' in result.stderr
    assert 'nothing checked' in result.stderr
    assert result.stdout == ''


# ------------------------------------- the benchmarks' CUDA paths, on the CPU
def test_interleaved_times_synchronizes_around_each_timed_call():
    from ce_mmdet.utils.benchmark import interleaved_times, synchronizer

    events = []
    interleaved_times([lambda: events.append('a'), lambda: events.append('b')],
                      repeats=2, warmup=1,
                      synchronize=lambda: events.append('sync'))
    timed = ['sync', 'a', 'sync', 'sync', 'b', 'sync']
    assert events == ['a', 'b'] + timed * 2  # (warm-up calls untimed)
    assert synchronizer('cpu') is None
    sync = synchronizer('cuda:1')
    assert sync.func is torch.cuda.synchronize
    assert sync.args == (torch.device('cuda:1'),)


def test_cuda_peak_memory_is_the_allocator_peak_of_the_call(monkeypatch):
    """In-process on CUDA: the allocator's peak during the call, less what
    ``build`` left allocated (model, inputs); a fake allocator stands in."""
    from ce_mmdet.utils.benchmark import peak_memory_mib

    mib = 2**20
    state = dict(allocated=0, peak=0)
    events = []

    def allocate(amount):
        state['allocated'] += amount
        state['peak'] = max(state['peak'], state['allocated'])

    def build():
        allocate(500 * mib)  # the model and its input
        events.append('build')
        return lambda: (allocate(300 * mib), allocate(-200 * mib),
                        events.append('call'))

    def reset(device):
        events.append('reset')
        state['peak'] = state['allocated']

    for name, fake in [
            ('synchronize', lambda device: events.append('sync')),
            ('reset_peak_memory_stats', reset),
            ('memory_allocated', lambda device: state['allocated']),
            ('max_memory_allocated', lambda device: state['peak']),
            ('empty_cache', lambda: None)]:
        monkeypatch.setattr(torch.cuda, name, fake)
    assert peak_memory_mib(build, 'cuda') == 300.0
    assert events == ['build', 'sync', 'reset', 'call', 'sync']


def test_describe_machine_names_the_gpu_on_cuda(monkeypatch):
    from ce_mmdet.utils.benchmark import describe_machine

    monkeypatch.setattr(torch.cuda, 'get_device_name',
                        lambda device=None: 'Fake GPU 80GB')
    text = describe_machine('cuda')
    assert 'Fake GPU 80GB' in text and f'CUDA {torch.version.cuda}' in text
    assert describe_machine() == describe_machine('cpu')
    assert ('CPUs' in describe_machine()
            and 'Fake GPU' not in describe_machine())
