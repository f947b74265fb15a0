"""Side-by-side timing and peak-memory measurement for the benchmark tools.

The machine is shared and noisy, so candidates are timed interleaved (A, B,
A, B, ...) in one process and compared by the median of the per-round
ratios (:func:`paired_ratios`). Peak memory on CPU is measured in a fresh
spawned process per case as the growth of the process's peak resident set
size (Linux ``VmHWM``, reset through ``/proc/self/clear_refs`` once the
inputs exist) during one call: the number ``torch.cuda.max_memory_allocated``
gives on GPU, for allocations that torch returns to the OS (large tensors
are).
"""
import gc
import multiprocessing
import statistics
import time
from typing import Callable, Sequence

import torch


def interleaved_times(candidates: Sequence[Callable[[], object]],
                      repeats: int = 9, warmup: int = 2) -> list[list[float]]:
    """Wall times (seconds) of each candidate over ``repeats`` rounds, run
    interleaved: round ``i`` runs every candidate once, one after another."""
    for _ in range(warmup):
        for fn in candidates:
            fn()
    times: list[list[float]] = [[] for _ in candidates]
    for _ in range(repeats):
        for fn, record in zip(candidates, times):
            start = time.perf_counter()
            fn()
            record.append(time.perf_counter() - start)
    return times


def paired_ratios(base: Sequence[float],
                  other: Sequence[float]) -> tuple[float, float, float]:
    """Median, lowest and highest of the per-round ratios ``other / base``.

    Each round's two calls ran back to back, so their ratio cancels the
    machine's slow drifts (on a shared CPU the same forward pass takes
    0.5 s or 1.5 s depending on its memory state and its neighbours),
    which a ratio of two medians taken over different rounds does not.
    """
    ratios = [b / a for a, b in zip(base, other)]
    return statistics.median(ratios), min(ratios), max(ratios)


def _resident_kib(field: str) -> int:
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'no {field} in /proc/self/status')


def _peak_memory_worker(build: Callable[[], Callable[[], object]],
                        queue: multiprocessing.Queue) -> None:
    fn = build()
    gc.collect()
    # Reset the high-water mark to the current RSS (Linux >= 4.0). Not
    # ru_maxrss: that one keeps the spawning parent's peak across exec.
    with open('/proc/self/clear_refs', 'w') as clear_refs:
        clear_refs.write('5')
    baseline = _resident_kib('VmRSS')
    fn()
    queue.put((_resident_kib('VmHWM') - baseline) / 1024.0)


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
