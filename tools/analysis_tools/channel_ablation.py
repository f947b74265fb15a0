#!/usr/bin/env python
"""Cumulative channel ablation of trained models (the paper's Fig. 1(c)).

For each model (a config and its checkpoint: a detector, or a classifier of
``configs/pretrain/`` or ``configs/fig1/``), zeroes a growing fraction of the
channels (0 to 0.9) at the outputs of its backbone's trunk activations, in a
random order (several seeds) and smallest mean magnitude first, and records
the config's test score at each fraction (top-1, or bbox AP; MMEngine's test
loop and the config's evaluator, as ``tools/test.py``)::

    python tools/analysis_tools/channel_ablation.py \\
        configs/fig1/vgg_bn-ce_shapes10.py \\
        work_dirs/fig1/vgg_bn-ce_shapes10_seed0/epoch_10.pth \\
        --compare configs/fig1/vgg_bn_shapes10.py \\
        work_dirs/fig1/vgg_bn_shapes10_seed0/epoch_10.pth \\
        --names BN+CE BN --num-images 1000 --out-dir work_dirs/ablation

Writes ``ablation.md`` (the table printed), ``ablation.json`` and
``ablation.png`` (one curve per model and order) into --out-dir.
"""
import argparse
import os.path as osp
import sys

try:
    import ce_mmdet  # noqa: F401
except ImportError:  # not installed: use the checkout this script is in
    sys.path.insert(
        0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    import ce_mmdet  # noqa: F401

from mmengine.config import DictAction  # noqa: E402

from ce_mmdet.analysis.channel_ablation import (  # noqa: E402
    DEFAULT_FRACTIONS,
    DEFAULT_SEEDS,
    ORDERS,
)
from ce_mmdet.analysis.checkpoint_analysis import (  # noqa: E402
    CheckpointMismatchError,
    ablate_checkpoint,
    ablation_table,
    write_ablation_report,
)
from ce_mmdet.analysis.command_line import (  # noqa: E402
    add_model_arguments,
    labelled_models,
)
from ce_mmdet.analysis.model_structure import (
    UnreadableModelError,  # noqa: E402
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser, verb='ablate')
    parser.add_argument(
        '--fractions', nargs='+', type=float, default=list(DEFAULT_FRACTIONS),
        help='fractions of channels zeroed per layer (default: 0 0.1 ... 0.9)')
    parser.add_argument(
        '--seeds', nargs='+', type=int, default=list(DEFAULT_SEEDS),
        help='seeds of the random order (default: %(default)s)')
    parser.add_argument(
        '--orders', nargs='+', choices=ORDERS, default=list(ORDERS),
        help='random and/or smallest magnitude first (default: both)')
    parser.add_argument(
        '--layers', default=None,
        help='regular expression on the activation calls to ablate, e.g. '
        '"layer[34]" (default: every trunk activation of the backbone)')
    parser.add_argument(
        '--num-images', type=int, default=None,
        help='test images per evaluation (default: the whole test split)')
    parser.add_argument(
        '--metric', default=None,
        help='the evaluator\'s key to record (default: accuracy/top1, else '
        'coco/bbox_mAP)')
    parser.add_argument(
        '--out-dir', default='work_dirs/channel_ablation',
        help='where to write the report (default: %(default)s)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, default=None,
        help='overrides applied to every config, as in tools/train.py')
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    try:
        models = labelled_models(args)
    except ValueError as error:
        parser.error(str(error))
    if any(not 0.0 <= f <= 1.0 for f in args.fractions):
        parser.error(f'--fractions must be in [0, 1], got {args.fractions}')
    if args.num_images is not None and args.num_images < 1:
        parser.error(f'--num-images must be >= 1, got {args.num_images}')
    curves = []
    for name, config, checkpoint in models:
        try:
            curves += ablate_checkpoint(
                config, checkpoint,
                work_dir=osp.join(args.out_dir, 'runs',
                                  name.replace('/', '_')),
                num_images=args.num_images, fractions=args.fractions,
                seeds=args.seeds, orders=args.orders, layers=args.layers,
                metric=args.metric, cfg_options=args.cfg_options,
                name=name).values()
        except (FileNotFoundError, CheckpointMismatchError,
                UnreadableModelError, ValueError) as error:
            sys.exit(f'channel_ablation.py: {name}: {error}')
    print(ablation_table(curves))
    paths = write_ablation_report(curves, args.out_dir)
    print()
    for what, path in paths.items():
        print(f'{what:10s} {path}')


if __name__ == '__main__':
    main()
