"""Side-by-side timing and peak-memory measurement for the benchmark tools.

The machine is shared and noisy, so candidates are timed interleaved (A, B,
A, B, ...) in one process and compared by the ratio of their medians. Peak
memory on CPU is measured in a fresh spawned process per case as the growth
of the peak resident set size (``ru_maxrss``) during one call over its
high-water mark once the inputs exist: the same number ``torch.cuda.max_memory_allocated`` gives on
GPU, for allocations torch returns to the OS (large tensors).
"""
import gc
import multiprocessing
import resource
import statistics
import time
from typing import Callable, Sequence

import torch


def interleaved_medians(candidates: Sequence[Callable[[], object]],
                        repeats: int = 9, warmup: int = 2) -> list[float]:
    """Median wall time (seconds) of each candidate, run interleaved."""
    for _ in range(warmup):
        for fn in candidates:
            fn()
    times: list[list[float]] = [[] for _ in candidates]
    for _ in range(repeats):
        for fn, record in zip(candidates, times):
            start = time.perf_counter()
            fn()
            record.append(time.perf_counter() - start)
    return [statistics.median(record) for record in times]


def _peak_memory_worker(build: Callable[[], Callable[[], object]],
                        queue: multiprocessing.Queue) -> None:
    fn = build()
    gc.collect()
    # ru_maxrss is a high-water mark: read it before the first call.
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put((peak - baseline) / 1024.0)


def peak_memory_mib(build: Callable[[], Callable[[], object]]) -> float:
    """Extra peak memory (MiB) of one call of ``build()``'s function.

    ``build`` must be picklable (a module-level function or a
    ``functools.partial`` of one); it creates the inputs and returns the
    function to measure. On CUDA use ``torch.cuda.max_memory_allocated``.
    """
    context = multiprocessing.get_context('spawn')
    queue = context.Queue()
    process = context.Process(target=_peak_memory_worker, args=(build, queue))
    process.start()
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(f'peak-memory worker failed (exit {process.exitcode})')
    return queue.get(timeout=10)


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (what the closing notes and the README quote)."""
    def cell(value: object) -> str:
        return f'{value:.2f}' if isinstance(value, float) else str(value)

    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '|'.join('---' for _ in header) + '|']
    lines += ['| ' + ' | '.join(cell(v) for v in row) + ' |' for row in rows]
    return '\n'.join(lines)


def describe_machine() -> str:
    return (f'torch {torch.__version__}, {torch.get_num_threads()} threads, '
            f'{multiprocessing.cpu_count()} CPUs')
