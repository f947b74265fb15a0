"""TrainingDurationHook: one early, measured estimate of the training time."""
from types import SimpleNamespace

import pytest

import ce_mmdet.engine.training_duration_hook as module
from ce_mmdet.engine import TrainingDurationHook


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def run_iterations(hook, runner, clock, seconds_per_iter, count):
    for _ in range(count):
        clock.now += seconds_per_iter
        hook.after_train_iter(runner, 0)
        runner.iter += 1


@pytest.mark.parametrize('start_iter', [0, 100])  # fresh, and after a resume
def test_estimate_from_measured_iterations(monkeypatch, start_iter):
    clock = FakeClock()
    monkeypatch.setattr(module.time, 'perf_counter', clock)
    messages = []
    runner = SimpleNamespace(iter=start_iter, max_iters=start_iter + 600,
                             logger=SimpleNamespace(info=messages.append))
    hook = TrainingDurationHook(skip_iters=5, measure_iters=10,
                                extra_seconds=60)
    hook.before_train(runner)
    run_iterations(hook, runner, clock, 3.0, 5)   # slow start, not measured
    run_iterations(hook, runner, clock, 0.5, 40)  # steady: 0.5 s / iteration
    assert len(messages) == 1
    # 15 s + 5 s measured, then 585 more iterations at 0.5 s: 312.5 s
    assert '0.50 s per iteration' in messages[0]
    assert f'iterations {start_iter + 6}-{start_iter + 15}' in messages[0]
    assert 'about 5 min 12 s (' in messages[0]
    assert 'about 6 min 12 s in all' in messages[0]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match='measure_iters >= 1'):
        TrainingDurationHook(measure_iters=0)
