"""Tell early how long training will take, from the iterations measured."""
import time
from typing import Optional

from mmdet.registry import HOOKS
from mmengine.hooks import Hook


@HOOKS.register_module()
class TrainingDurationHook(Hook):
    """Log the expected training time once, after ``measure_iters`` iterations.

    MMEngine's logger prints a running ETA at every logging interval; this
    prints one line early in the run that a user can plan with: the speed
    measured over iterations ``skip_iters`` .. ``skip_iters + measure_iters``
    (the first ones are slower: worker start-up, allocator warm-up; on the
    shapes demo iterations 6-10 still ran at 2.5x the steady time), the
    expected remaining and total training time, and the wall-clock time
    training should end. ``extra_seconds`` adds the work after training
    (evaluation, drawing), e.g. for a whole demo job.

    Args:
        skip_iters: iterations not measured.
        measure_iters: iterations measured.
        extra_seconds: expected time of the steps after training.
    """

    priority = 'VERY_LOW'

    def __init__(self, skip_iters: int = 10, measure_iters: int = 20,
                 extra_seconds: float = 0.0) -> None:
        if skip_iters < 0 or measure_iters < 1:
            raise ValueError('TrainingDurationHook needs skip_iters >= 0 and '
                             f'measure_iters >= 1, got {skip_iters} and '
                             f'{measure_iters}')
        self.skip_iters = skip_iters
        self.measure_iters = measure_iters
        self.extra_seconds = extra_seconds
        self._train_start: Optional[float] = None
        self._measure_start: Optional[float] = None
        self._first_iter: Optional[int] = None

    def before_train(self, runner) -> None:
        self._train_start = time.perf_counter()
        self._first_iter = runner.iter  # > 0 after a resume

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        done = runner.iter + 1 - self._first_iter
        if done == self.skip_iters:
            self._measure_start = time.perf_counter()
        if done != self.skip_iters + self.measure_iters:
            return
        if self._measure_start is None:  # skip_iters == 0
            self._measure_start = self._train_start
        per_iter = ((time.perf_counter() - self._measure_start)
                    / self.measure_iters)
        remaining = (runner.max_iters - runner.iter - 1) * per_iter
        total = time.perf_counter() - self._train_start + remaining
        end = time.strftime('%H:%M', time.localtime(time.time() + remaining))
        extra = (f'; with the {_minutes(self.extra_seconds)} after training, '
                 f'about {_minutes(total + self.extra_seconds)} in all'
                 if self.extra_seconds else '')
        runner.logger.info(
            f'Expected duration: {per_iter:.2f} s per iteration measured over '
            f'iterations {self._first_iter + self.skip_iters + 1}-'
            f'{runner.iter + 1}, so training takes about {_minutes(total)} '
            f'({runner.max_iters} iterations) and ends around {end}{extra}.')


def _minutes(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f'{minutes} min {seconds:02d} s'
