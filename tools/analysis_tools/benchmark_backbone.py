"""Time ResNet variants against MMDetection's ResNet of the same depth, side
by side.

Variants (``--variants``, default ``ce``): ``ce`` (CE-ResNet), ``se``
(SE-ResNet), ``ge-minus`` (GE-theta-minus, global), ``ge-plus``
(GE-theta-plus), ``deconv`` (Network Deconvolution ResNet) and ``proprelu``
(proportional ReLU, 3:2 / 2:1). SE and GE sit after the last BN of every
block of every stage, as in their papers (GE-theta-plus gather sizes
56/28/14/7, the paper's at 224).

Eval: forward of 1x3x800x1216 (a COCO test image). Train: forward + backward
of 2x3x512x768, in the detection setting of the configs (BN frozen by
``norm_eval``, ``frozen_stages=1``, CE on batch statistics; for the
deconvolution network ``norm_eval`` freezes its statistics too) and with
every layer training (``--full-train`` adds that row). All backbones of a
case are timed interleaved: every round runs each backbone once, back to
back. The table gives each variant's median time next to ResNet's and their
ratio: the median over rounds of the round's variant / ResNet time, with the
lowest and highest round (the machine's noise), against CE's targets for CE;
then the extra peak memory, the parameters and the FLOPs from MMEngine's
complexity counter (CE's matmuls counted) at the eval input.

``--compile`` adds rows for ``torch.compile``d CE-ResNet against
``torch.compile``d ResNet (default backend, eval and detection training),
timed the same way once both are compiled and warmed up (compilation is not
timed; no peak memory). Under compile, CE's small statistics graph runs
eagerly in training (see ``ce_mmdet.layers.grouped_map``), so training has a
graph break per CE layer.

    python tools/analysis_tools/benchmark_backbone.py [--depth 50]
        [--repeats 9] [--variants ce se ge-minus ge-plus deconv proprelu]
        [--compile]
    python tools/analysis_tools/benchmark_backbone.py --quick  # a smoke run

``--device cuda`` times on the GPU (CUDA synchronised around every timed
call, peak memory from the caching allocator); default: the CPU.
"""
import argparse
import functools
import statistics

import torch
from mmdet.registry import MODELS
from mmengine.analysis import FlopAnalyzer

import ce_mmdet  # noqa: F401  (registers CEResNet and the comparison ResNets)
from ce_mmdet.utils.benchmark import (
    describe_machine,
    format_table,
    interleaved_times,
    paired_ratios,
    peak_memory_mib,
    synchronizer,
)

EVAL_SHAPE, TRAIN_SHAPE = (1, 3, 800, 1216), (2, 3, 512, 768)
QUICK_EVAL_SHAPE, QUICK_TRAIN_SHAPE = (1, 3, 64, 96), (2, 3, 64, 64)
# CE-ResNet / ResNet targets per (mode, setting)
CE_TARGETS = {('eval', 'detection'): 1.10, ('train', 'detection'): 1.20,
              ('train', 'full-train'): 1.30}
SETTINGS = {
    'detection': dict(norm_eval=True, frozen_stages=1),
    'full-train': dict(norm_eval=False, frozen_stages=-1),
}
VARIANT_NAMES = {
    'plain': 'ResNet', 'ce': 'CE-ResNet', 'se': 'SE-ResNet',
    'ge-minus': 'GE-theta-minus-ResNet', 'ge-plus': 'GE-theta-plus-ResNet',
    'deconv': 'Deconv-ResNet', 'proprelu': 'PropReLU-ResNet',
}
GE_PLUS_GATHER_SIZES = (56, 28, 14, 7)
COMPILE_WARMUP = 2  # calls: the first compiles (forward and backward)


def _after_last_bn(cfg: dict, depth: int, stage: int = None) -> dict:
    """A plugin after the last BN of every block (of one stage if given)."""
    plugin = dict(cfg=cfg,
                  position='after_conv3' if depth >= 50 else 'after_conv2')
    if stage is not None:
        plugin['stages'] = tuple(i == stage for i in range(4))
    return plugin


def build_backbone(kind: str, depth: int, setting: str = 'detection'):
    """ResNet-``depth`` with variant ``kind`` ('plain' = MMDetection's)."""
    torch.manual_seed(0)
    variant = {
        'plain': dict(type='ResNet'),
        'ce': dict(type='CEResNet'),
        'se': dict(type='PluginResNet', plugins=[
            _after_last_bn(dict(type='SE', ratio=16), depth)]),
        'ge-minus': dict(type='PluginResNet', plugins=[
            _after_last_bn(dict(type='GEThetaMinus'), depth)]),
        'ge-plus': dict(type='PluginResNet', plugins=[
            _after_last_bn(dict(type='GEThetaPlus', gather_size=size), depth,
                           stage)
            for stage, size in enumerate(GE_PLUS_GATHER_SIZES)]),
        'deconv': dict(type='DeconvResNet'),
        'proprelu': dict(type='ProportionalReLUResNet'),
    }[kind]
    return MODELS.build(dict(variant, depth=depth, init_cfg=None,
                             **SETTINGS[setting]))


def eval_forward(model, x):
    with torch.no_grad():
        return model(x)


def train_step(model, x):
    sum(out.float().mean() for out in model(x)).backward()
    model.zero_grad(set_to_none=True)


def build_case(kind: str, depth: int, mode: str, setting: str = 'detection',
               shape: tuple = None, compiled: bool = False,
               device: str = 'cpu'):
    """Picklable factory for the peak-memory worker.

    ``compiled``: the backbone wrapped in ``torch.compile`` and run
    ``COMPILE_WARMUP`` times here, so that compilation (and any
    recompilation) is neither timed nor counted as peak memory. Model and
    input are on ``device``.
    """
    model = build_backbone(kind, depth, setting).to(device)
    model.train(mode == 'train')  # (MMDetection's ResNet.train returns None)
    if compiled:
        model = torch.compile(model)
    if mode == 'eval':
        fn = functools.partial(eval_forward, model,
                               torch.randn(shape or EVAL_SHAPE, device=device))
    else:
        fn = functools.partial(train_step, model,
                               torch.randn(shape or TRAIN_SHAPE,
                                           device=device))
    for _ in range(COMPILE_WARMUP if compiled else 0):
        fn()
    return fn


def flops(kind: str, depth: int, shape: tuple = EVAL_SHAPE,
          device: str = 'cpu') -> float:
    model = build_backbone(kind, depth).to(device)
    model.eval()
    analyzer = FlopAnalyzer(model, torch.randn(shape, device=device))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    # Inference path: CE runs as plain matmuls the tracer counts (a custom
    # autograd Function would be an opaque, uncounted node).
    with torch.no_grad():
        return analyzer.total() / 1e9


def parameters_m(kind: str, depth: int) -> float:
    return sum(p.numel()
               for p in build_backbone(kind, depth).parameters()) / 1e6


def _shape(text: str) -> tuple:
    return tuple(int(v) for v in text.lower().split('x'))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--depth', type=int, default=50)
    parser.add_argument('--repeats', type=int, default=9)
    parser.add_argument('--variants', nargs='+', default=['ce'],
                        choices=[k for k in VARIANT_NAMES if k != 'plain'],
                        help='backbones compared with ResNet (default: ce)')
    parser.add_argument('--full-train', action='store_true',
                        help='also time training with every layer training')
    parser.add_argument('--no-memory', action='store_true')
    parser.add_argument('--compile', action='store_true',
                        help='also time torch.compile\'d CE-ResNet vs '
                        'torch.compile\'d ResNet (eval, detection training)')
    parser.add_argument('--eval-shape', type=_shape, default=EVAL_SHAPE,
                        help='NxCxHxW of the eval input (default %(default)s)')
    parser.add_argument('--train-shape', type=_shape, default=TRAIN_SHAPE,
                        help='NxCxHxW of the train input '
                        '(default %(default)s)')
    parser.add_argument('--quick', action='store_true',
                        help=f'smoke run: {QUICK_EVAL_SHAPE} / '
                        f'{QUICK_TRAIN_SHAPE} inputs, 1 repeat')
    parser.add_argument('--device', default='cpu',
                        help='torch device to time on (default %(default)s)')
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.quick:
        args.eval_shape, args.train_shape = QUICK_EVAL_SHAPE, QUICK_TRAIN_SHAPE
        args.repeats = 1
    variants = list(dict.fromkeys(args.variants))
    shapes = {'eval': args.eval_shape, 'train': args.train_shape}

    # (mode, setting, compiled, the variants timed against ResNet)
    cases = [('eval', 'detection', False, variants),
             ('train', 'detection', False, variants)]
    if args.full_train:
        cases.append(('train', 'full-train', False, variants))
    if args.compile:
        cases += [('eval', 'detection', True, ['ce']),
                  ('train', 'detection', True, ['ce'])]
    params = {k: parameters_m(k, args.depth) for k in ['plain', *variants]}
    gflops = {k: flops(k, args.depth, args.eval_shape, str(device))
              for k in ['plain', *variants]}
    rows = []
    for mode, setting, compiled, timed in cases:
        shape = shapes[mode]
        kinds = ['plain', *timed]
        fns = [build_case(k, args.depth, mode, setting, shape, compiled,
                          str(device)) for k in kinds]
        rounds = dict(zip(kinds, interleaved_times(
            fns, args.repeats, warmup=1, synchronize=synchronizer(device))))
        times = {k: statistics.median(t) for k, t in rounds.items()}
        del fns
        # (not for compiled cases: a compiled call after warm-up reuses the
        # memory its warm-up allocated, an eager first call does not)
        memory = {} if args.no_memory or compiled else {
            k: peak_memory_mib(functools.partial(
                build_case, k, args.depth, mode, setting, shape,
                device=str(device)), device)
            for k in kinds}
        for kind in timed:
            ratio, lowest, highest = paired_ratios(rounds['plain'],
                                                   rounds[kind])
            if kind == 'ce' and not compiled:
                target = CE_TARGETS[mode, setting]
                status = 'met' if ratio <= target else 'MISSED'
            else:
                target, status = '-', '-'
            suffix = ', compiled' if compiled else ''
            row = [f'{mode} ({setting}{suffix})', 'x'.join(map(str, shape)),
                   VARIANT_NAMES[kind], times['plain'] * 1e3,
                   times[kind] * 1e3, ratio, f'{lowest:.2f}-{highest:.2f}',
                   target, status]
            if not args.no_memory:
                row += [memory.get('plain', '-'), memory.get(kind, '-')]
            row += [f'{params["plain"]:.2f} / {params[kind]:.2f}',
                    f'{gflops["plain"]:.2f} / {gflops[kind]:.2f}']
            rows.append(row)
    header = ['case', 'input', 'backbone', 'ResNet ms', 'backbone ms',
              'ratio', 'rounds', 'target', 'status']
    if not args.no_memory:
        header += ['ResNet peak MiB', 'backbone peak MiB']
    header += ['params M ResNet / backbone',
               f'GFLOPs at {"x".join(map(str, args.eval_shape))} '
               'ResNet / backbone']
    print(f'ResNet-{args.depth} variants vs ResNet-{args.depth} '
          f'(MMDetection), {args.repeats} interleaved rounds, ratio = '
          'median of the per-round ratios '
          f'{"(compiled: both backbones compiled) " if args.compile else ""}'
          f'({describe_machine(device)}); FLOPs: MMEngine FlopAnalyzer, one '
          'multiply-add = 1')
    print(format_table(header, rows))


if __name__ == '__main__':
    main()
