"""Time CE-ResNet against MMDetection's ResNet of the same depth, side by side.

Eval: forward of 1x3x800x1216 (a COCO test image). Train: forward + backward
of 2x3x512x768, in the detection setting of the configs (BN frozen by
``norm_eval``, ``frozen_stages=1``, CE on batch statistics) and with every
layer training (``--full-train`` adds that row). Prints medians, the ratio
CE-ResNet / ResNet against the targets, the extra peak memory, and FLOPs from
MMEngine's complexity counter (CE's matmuls counted).

    python tools/analysis_tools/benchmark_backbone.py [--depth 50] [--repeats 5]
"""
import argparse
import functools

import torch
from mmdet.registry import MODELS
from mmengine.analysis import FlopAnalyzer

import ce_mmdet  # noqa: F401  (registers CEResNet)
from ce_mmdet.utils.benchmark import (describe_machine, format_table,
                                      interleaved_medians, peak_memory_mib)

EVAL_SHAPE, TRAIN_SHAPE = (1, 3, 800, 1216), (2, 3, 512, 768)
EVAL_TARGET, TRAIN_TARGET = 1.10, 1.30
SETTINGS = {
    'detection': dict(norm_eval=True, frozen_stages=1),
    'full-train': dict(norm_eval=False, frozen_stages=-1),
}


def build_backbone(kind: str, depth: int, setting: str = 'detection'):
    torch.manual_seed(0)
    cfg = dict(type='CEResNet' if kind == 'ce' else 'ResNet', depth=depth,
               init_cfg=None, **SETTINGS[setting])
    return MODELS.build(cfg)


def eval_forward(model, x):
    with torch.no_grad():
        return model(x)


def train_step(model, x):
    sum(out.float().mean() for out in model(x)).backward()
    model.zero_grad(set_to_none=True)


def build_case(kind: str, depth: int, mode: str, setting: str = 'detection'):
    """Picklable factory for the peak-memory worker."""
    model = build_backbone(kind, depth, setting)
    model.train(mode == 'train')  # (MMDetection's ResNet.train returns None)
    if mode == 'eval':
        return functools.partial(eval_forward, model, torch.randn(EVAL_SHAPE))
    return functools.partial(train_step, model, torch.randn(TRAIN_SHAPE))


def flops(kind: str, depth: int) -> float:
    model = build_backbone(kind, depth)
    model.eval()
    analyzer = FlopAnalyzer(model, torch.randn(EVAL_SHAPE))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    # Inference path: CE runs as plain matmuls the tracer counts (a custom
    # autograd Function would be an opaque, uncounted node).
    with torch.no_grad():
        return analyzer.total() / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--depth', type=int, default=50)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--full-train', action='store_true',
                        help='also time training with every layer training')
    parser.add_argument('--no-memory', action='store_true')
    args = parser.parse_args()

    cases = [('eval', 'detection'), ('train', 'detection')]
    if args.full_train:
        cases.append(('train', 'full-train'))
    rows = []
    for mode, setting in cases:
        plain = build_case('plain', args.depth, mode, setting)
        ce = build_case('ce', args.depth, mode, setting)
        plain_time, ce_time = interleaved_medians([plain, ce], args.repeats,
                                                  warmup=1)
        del plain, ce
        target = EVAL_TARGET if mode == 'eval' else TRAIN_TARGET
        shape = EVAL_SHAPE if mode == 'eval' else TRAIN_SHAPE
        row = [f'{mode} ({setting})', 'x'.join(map(str, shape)),
               plain_time * 1e3, ce_time * 1e3, ce_time / plain_time,
               target, 'met' if ce_time / plain_time <= target else 'MISSED']
        if not args.no_memory:
            row += [peak_memory_mib(functools.partial(
                build_case, kind, args.depth, mode, setting))
                for kind in ('plain', 'ce')]
        rows.append(row)
    header = ['case', 'input', 'ResNet ms', 'CE-ResNet ms', 'ratio',
              'target', 'status']
    if not args.no_memory:
        header += ['ResNet peak MiB', 'CE-ResNet peak MiB']
    print(f'CE-ResNet-{args.depth} vs ResNet-{args.depth} (MMDetection), '
          f'medians of {args.repeats} interleaved runs ({describe_machine()})')
    print(format_table(header, rows))
    plain_flops, ce_flops = flops('plain', args.depth), flops('ce', args.depth)
    print(f'FLOPs at {"x".join(map(str, EVAL_SHAPE))} (MMEngine FlopAnalyzer, '
          f'one multiply-add = 1): ResNet-{args.depth} {plain_flops:.1f} G, '
          f'CE-ResNet-{args.depth} {ce_flops:.1f} G '
          f'(+{100 * (ce_flops / plain_flops - 1):.1f}%)')


if __name__ == '__main__':
    main()
