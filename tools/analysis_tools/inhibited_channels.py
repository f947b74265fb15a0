#!/usr/bin/env python
"""Inhibited channels of trained models: the paper's evidence on demand.

For each model (a config and its checkpoint: a detector's, a classifier's
trained with ``configs/pretrain/`` or ``configs/fig1/``, or a backbone's
alone such as a converted CENet checkpoint), measures on its backbone:

* per norm layer, the share of channels with beta_c <= 0 (the paper's
  Table 4), overall and per stage, for the norm layers feeding an activation
  and for all of them;
* per activation call (one ReLU module called several times per block is
  told apart by call index: ``layer1.0.relu#0``, ``#1``...), each channel's
  mean magnitude after the activation on N images, and the share of
  channels at most tau times the layer's mean (inhibited channels), beside
  two absolute criteria: channels exactly zero on every input (dead) and
  channels of mean magnitude at most epsilon (small);
* per CE layer, the gate lambda = sigmoid(w) and the spread of IR's weights.

Prints the summary table and writes ``summary.md``,
``inhibited_channels.json``, ``beta_nonpositive.png``,
``inhibited_channels.png`` (and ``ce_layers.png``) into --out-dir::

    python tools/analysis_tools/inhibited_channels.py \\
        configs/shapes/mask_rcnn_ce_r18_fpn_shapes.py \\
        work_dirs/mask_rcnn_ce_r18_fpn_shapes/iter_1000.pth \\
        --compare configs/shapes/mask_rcnn_r18_fpn_shapes.py \\
        work_dirs/mask_rcnn_r18_fpn_shapes/iter_1000.pth \\
        --num-images 20 --out-dir work_dirs/inhibited_channels

Images come from the config's val split, or from --image-dir.
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

from ce_mmdet.analysis import (  # noqa: E402
    DEFAULT_EPSILON,
    DEFAULT_TAU,
    summary_table,
)
from ce_mmdet.analysis.checkpoint_analysis import (  # noqa: E402
    DEFAULT_NUM_IMAGES,
    CheckpointMismatchError,
    analyze_checkpoint,
    write_report,
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
    add_model_arguments(parser, verb='analyse')
    parser.add_argument(
        '--num-images', type=int, default=DEFAULT_NUM_IMAGES,
        help='images per model (default: %(default)s)')
    parser.add_argument(
        '--image-dir', default=None,
        help='read images from this folder instead of the config\'s val '
        'split (e.g. for a backbone-only checkpoint)')
    parser.add_argument(
        '--tau', type=float, default=DEFAULT_TAU,
        help='a channel is inhibited when its mean magnitude after the '
        'activation is at most tau times the layer\'s mean (default: '
        '%(default)s; see ce_mmdet/analysis/activation_magnitudes.py)')
    parser.add_argument(
        '--epsilon', type=float, default=DEFAULT_EPSILON,
        help='a channel is small when its mean magnitude after the '
        'activation is at most epsilon (default: %(default)s)')
    parser.add_argument(
        '--out-dir', default='work_dirs/inhibited_channels',
        help='where to write the report (default: %(default)s)')
    parser.add_argument('--device', default='cpu', help='default: cpu')
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
    if args.tau < 0:
        parser.error(f'--tau must be >= 0, got {args.tau}')
    if args.epsilon < 0:
        parser.error(f'--epsilon must be >= 0, got {args.epsilon}')
    if args.num_images < 1:
        parser.error(f'--num-images must be >= 1, got {args.num_images}')
    analyses = []
    for name, config, checkpoint in models:
        try:
            analyses.append(analyze_checkpoint(
                config, checkpoint, args.tau, num_images=args.num_images,
                image_dir=args.image_dir, cfg_options=args.cfg_options,
                device=args.device, name=name, epsilon=args.epsilon))
        except (FileNotFoundError, CheckpointMismatchError,
                UnreadableModelError) as error:
            sys.exit(f'inhibited_channels.py: {name}: {error}')
    print(summary_table(analyses))
    paths = write_report(analyses, args.out_dir)
    print()
    for what, path in paths.items():
        print(f'{what:15s} {path}')


if __name__ == '__main__':
    main()
