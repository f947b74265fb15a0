"""Time CE against nn.BatchNorm2d on the same tensors, side by side.

Prints, per shape, the median eval-forward and training forward+backward
times, the ratios CE/BN (median of the per-round ratios of back-to-back
calls) with the targets, and the extra peak memory of a training step.
Usage: python tools/analysis_tools/benchmark_ce.py [--repeats 9]
    [--device cuda] [--quick]  (--quick: small shapes, 1 repeat; a smoke run)
"""
import argparse
import functools
import statistics

import torch
from torch import nn

from ce_mmdet.layers import ChannelEquilibrium
from ce_mmdet.utils.benchmark import (
    describe_machine,
    format_table,
    interleaved_times,
    paired_ratios,
    peak_memory_mib,
    synchronizer,
)

# (shape, CE group size): a stage-1 block output, a stage-3 block output and
# the stem of a 2x3x512x768 training batch.
CASES = [((2, 256, 200, 336), 16), ((2, 1024, 50, 84), 16),
         ((2, 64, 256, 384), 64)]
QUICK_CASES = [((2, 64, 12, 20), 16), ((2, 64, 16, 24), 64)]
EVAL_TARGET, TRAIN_TARGET = 2.5, 3.0


def build_layer(kind: str, channels: int, group_size: int) -> nn.Module:
    if kind == 'bn':
        return nn.BatchNorm2d(channels)
    return ChannelEquilibrium(channels, group_size=group_size)


def eval_step(layer: nn.Module, x: torch.Tensor):
    with torch.no_grad():
        return layer(x)


def train_step(layer: nn.Module, x: torch.Tensor, grad: torch.Tensor):
    layer(x).backward(grad)
    x.grad = None


def build_train_step(kind: str, shape: tuple, group_size: int,
                     device: str = 'cpu'):
    """Picklable factory for the peak-memory worker."""
    torch.manual_seed(0)
    layer = build_layer(kind, shape[1], group_size).to(device).train()
    x = torch.randn(shape, device=device, requires_grad=True)
    grad = torch.randn(shape, device=device)
    return functools.partial(train_step, layer, x, grad)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--repeats', type=int, default=9)
    parser.add_argument('--no-memory', action='store_true',
                        help='skip the peak-memory measurement')
    parser.add_argument('--device', default='cpu',
                        help='torch device to time on (default %(default)s)')
    parser.add_argument('--quick', action='store_true',
                        help=f'smoke run: shapes {[c[0] for c in QUICK_CASES]}'
                        ', 1 repeat')
    args = parser.parse_args()
    if args.quick:
        args.repeats = 1
    device = torch.device(args.device)
    sync = synchronizer(device)
    rows = []
    for shape, group_size in QUICK_CASES if args.quick else CASES:
        torch.manual_seed(0)
        x = torch.randn(shape, device=device)
        bn = build_layer('bn', shape[1], group_size).to(device)
        ce = build_layer('ce', shape[1], group_size).to(device)
        for layer in (bn, ce):  # realistic running statistics for eval
            layer.train()
            eval_step(layer, x)
            layer.eval()
        bn_eval, ce_eval = interleaved_times(
            [functools.partial(eval_step, bn, x),
             functools.partial(eval_step, ce, x)], args.repeats,
            synchronize=sync)
        bn.train()
        ce.train()
        xr = x.clone().requires_grad_()
        grad = torch.randn(shape, device=device)
        bn_train, ce_train = interleaved_times(
            [functools.partial(train_step, bn, xr, grad),
             functools.partial(train_step, ce, xr, grad)], args.repeats,
            synchronize=sync)
        del x, xr, grad, bn, ce  # (on a GPU: not part of the memory cases)
        row = ['x'.join(map(str, shape)), group_size]
        for bn_times, ce_times in ((bn_eval, ce_eval), (bn_train, ce_train)):
            row += [statistics.median(bn_times) * 1e3,
                    statistics.median(ce_times) * 1e3,
                    paired_ratios(bn_times, ce_times)[0]]
        if not args.no_memory:
            bn_mem, ce_mem = (peak_memory_mib(
                functools.partial(build_train_step, kind, shape, group_size,
                                  str(device)), device)
                for kind in ('bn', 'ce'))
            row += [bn_mem, ce_mem]
        rows.append(row)
    header = ['shape', 'g', 'BN eval ms', 'CE eval ms',
              f'eval CE/BN (<= {EVAL_TARGET})', 'BN train ms', 'CE train ms',
              f'train CE/BN (<= {TRAIN_TARGET})']
    if not args.no_memory:
        header += ['BN train peak MiB', 'CE train peak MiB']
    print(f'CE vs BatchNorm2d, medians of {args.repeats} interleaved rounds, '
          'ratio = median of the per-round ratios '
          f'({describe_machine(device)}); train = forward + backward')
    print(format_table(header, rows))
    worst_eval = max(row[4] for row in rows)
    worst_train = max(row[7] for row in rows)
    print(f'worst eval ratio {worst_eval:.2f} (target {EVAL_TARGET}: '
          f'{"met" if worst_eval <= EVAL_TARGET else "MISSED"}), worst train '
          f'ratio {worst_train:.2f} (target {TRAIN_TARGET}: '
          f'{"met" if worst_train <= TRAIN_TARGET else "MISSED"})')


if __name__ == '__main__':
    main()
