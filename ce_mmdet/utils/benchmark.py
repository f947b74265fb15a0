"""Side-by-side timing and peak-memory measurement for the benchmark tools.

The machine is shared and noisy, so candidates are timed interleaved (A, B,
A, B, ...) in one process and compared by the median of the per-round
ratios (:func:`paired_ratios`). Peak memory on CPU is measured in a fresh
spawned process per case as the growth of the process's peak resident set
size (Linux ``VmHWM``, reset through ``/proc/self/clear_refs`` once the
inputs exist) during one call: the number ``torch.cuda.max_memory_allocated``
gives on GPU, for allocations that torch returns to the OS (large tensors
are). On CUDA the same number comes from the caching allocator's own peak,
in-process, and every timed call is bracketed by ``torch.cuda.synchronize``
(kernels are asynchronous: without it the clock stops at the launch).
"""
import functools
import gc
import multiprocessing
import statistics
import time
from typing import Callable, Optional, Sequence, Union

import torch

Device = Union[str, torch.device]


def synchronizer(device: Device) -> Optional[Callable[[], None]]:
    """What waits for ``device``'s queued work: ``torch.cuda.synchronize``
    bound to it for CUDA, None for the CPU (its calls are synchronous)."""
    device = torch.device(device)
    if device.type != 'cuda':
        return None
    return functools.partial(torch.cuda.synchronize, device)


def interleaved_times(candidates: Sequence[Callable[[], object]],
                      repeats: int = 9, warmup: int = 2,
                      synchronize: Optional[Callable[[], None]] = None
                      ) -> list[list[float]]:
    """Wall times (seconds) of each candidate over ``repeats`` rounds, run
    interleaved: round ``i`` runs every candidate once, one after another.

    ``synchronize`` (see :func:`synchronizer`), if given, runs before the
    clock starts and before it stops, so that a call's time is that of its
    device work, not of its kernel launches (nor of the previous call's
    queued kernels).
    """
    def wait() -> None:
        if synchronize is not None:
            synchronize()

    for _ in range(warmup):
        for fn in candidates:
            fn()
    times: list[list[float]] = [[] for _ in candidates]
    for _ in range(repeats):
        for fn, record in zip(candidates, times):
            wait()
            start = time.perf_counter()
            fn()
            wait()
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


def cuda_peak_memory_mib(build: Callable[[], Callable[[], object]],
                         device: Device) -> float:
    """Extra peak CUDA memory (MiB) of one call of ``build()``'s function:
    the caching allocator's peak during the call minus what was allocated
    before it (the model and the inputs ``build`` put on ``device``)."""
    fn = build()
    gc.collect()
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    baseline = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - baseline
    del fn  # the next case measures from an empty cache, not this one's
    gc.collect()
    torch.cuda.empty_cache()
    return peak / 2**20


def peak_memory_mib(build: Callable[[], Callable[[], object]],
                    device: Device = 'cpu') -> float:
    """Extra peak memory (MiB) of one call of ``build()``'s function.

    ``build`` creates the model and inputs (on ``device``) and returns the
    function to measure. On the CPU it runs in a fresh spawned process, so
    it must be picklable (a module-level function or a ``functools.partial``
    of one); on CUDA in this process (:func:`cuda_peak_memory_mib`).
    """
    if torch.device(device).type == 'cuda':
        return cuda_peak_memory_mib(build, device)
    context = multiprocessing.get_context('spawn')
    queue = context.Queue()
    process = context.Process(target=_peak_memory_worker, args=(build, queue))
    process.start()
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(
            f'peak-memory worker failed (exit {process.exitcode})')
    return queue.get(timeout=10)


def format_table(header: Sequence[str],
                 rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (what docs/en/benchmarks.md quotes)."""
    def cell(value: object) -> str:
        return f'{value:.2f}' if isinstance(value, float) else str(value)

    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '|'.join('---' for _ in header) + '|']
    lines += ['| ' + ' | '.join(cell(v) for v in row) + ' |' for row in rows]
    return '\n'.join(lines)


def describe_machine(device: Device = 'cpu') -> str:
    """torch and the hardware the numbers come from (the GPU's name and the
    CUDA version when ``device`` is CUDA)."""
    device = torch.device(device)
    if device.type == 'cuda':
        return (f'torch {torch.__version__}, CUDA {torch.version.cuda}, '
                f'{torch.cuda.get_device_name(device)}')
    return (f'torch {torch.__version__}, {torch.get_num_threads()} threads, '
            f'{multiprocessing.cpu_count()} CPUs ({cpu_model()})')


def cpu_model() -> str:
    """The CPU's model name (Linux's ``/proc/cpuinfo``; else the
    platform's processor string, or ``'CPU model unknown'``)."""
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as info:
            for line in info:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or 'CPU model unknown'

