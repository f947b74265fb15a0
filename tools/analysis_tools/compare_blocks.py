#!/usr/bin/env python
"""Compare blocks on the shapes set: train, evaluate and analyse each variant.

    python tools/analysis_tools/compare_blocks.py [VARIANT ...]
        [--out-dir work_dirs/compare] [--max-iters N] [--num-images N]
        [--tau T] [--config-dir configs/shapes] [--cfg-options K=V ...]
    bash tools/run_demo.sh compare [VARIANT ...] [options as above]

A variant names a config of configs/shapes/: ``plain`` is
mask_rcnn_r18_fpn_shapes.py, ``X`` is mask_rcnn_X_r18_fpn_shapes.py (ce, se,
ge-minus, ge-plus, deconv, proprelu...; --list shows those present). Default:
ce plain. Each variant is trained (tools/train.py), evaluated (tools/test.py)
and analysed (inhibited channels, beta <= 0, parameters, FLOPs, seconds per
iteration) one after another, each taking about as long as the demo's job
(tools/run_demo.sh) for that model; then <out-dir>/summary.md, summary.json,
summary.png and inhibited_channels/ hold the comparison. The shapes set is
generated into the configs' data_root (data/shapes/) when missing.
"""
import argparse
import os
import os.path as osp
import sys
import time

try:
    import ce_mmdet  # noqa: F401
except ImportError:  # not installed: use the checkout this script is in
    sys.path.insert(
        0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    import ce_mmdet  # noqa: F401

from mmengine.config import DictAction  # noqa: E402

from ce_mmdet.analysis import DEFAULT_TAU  # noqa: E402
from ce_mmdet.analysis.compare import (  # noqa: E402
    DEFAULT_VARIANTS,
    CompareSettings,
    UnknownVariantError,
    available_variants,
    compare_variants,
    ensure_shapes_data,
    resolve_variants,
    shapes_config_dir,
)

CHECKOUT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# In a checkout, work there as run_demo.sh does (data/, work_dirs/);
# installed (ce_mmdet/.mim/tools/), in the current directory.
WORK_ROOT = CHECKOUT if osp.isfile(osp.join(CHECKOUT, 'setup.py')) \
    else os.getcwd()


def say(message: str) -> None:
    print(f'[compare {time.strftime("%H:%M:%S")}] {message}', flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('variants', nargs='*', metavar='VARIANT',
                        help=f'default: {" ".join(DEFAULT_VARIANTS)}')
    parser.add_argument('--out-dir', default='work_dirs/compare',
                        help='default: %(default)s (relative to the checkout, '
                        'or to the current directory when installed)')
    parser.add_argument('--max-iters', type=int, default=None,
                        help='train this many iterations instead of the '
                        'configs\' own (e.g. for a quick check)')
    parser.add_argument('--num-images', type=int, default=20,
                        help='val images of the inhibited-channel analysis '
                        '(default: %(default)s)')
    parser.add_argument('--tau', type=float, default=DEFAULT_TAU,
                        help='inhibited-channel threshold (default: '
                        '%(default)s)')
    parser.add_argument('--config-dir', default=None,
                        help='where the variants\' configs are (default: '
                        'ce_mmdet\'s configs/shapes)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        default={}, help='overrides for every variant')
    parser.add_argument('--list', action='store_true',
                        help='list the available variants and exit')
    args = parser.parse_args()
    config_dir = osp.abspath(args.config_dir or shapes_config_dir())
    if args.list:
        print(' '.join(available_variants(config_dir)))
        return
    if args.max_iters is not None and args.max_iters < 1:
        parser.error(f'--max-iters must be >= 1, got {args.max_iters}')
    if args.num_images < 1:
        parser.error(f'--num-images must be >= 1, got {args.num_images}')
    try:
        configs = resolve_variants(args.variants or list(DEFAULT_VARIANTS),
                                   config_dir)
    except UnknownVariantError as error:
        parser.error(str(error))
    out_dir = osp.join(WORK_ROOT, args.out_dir)
    os.chdir(WORK_ROOT)  # the configs' data_root (data/shapes/) is relative
    settings = CompareSettings(out_dir=out_dir, max_iters=args.max_iters,
                               cfg_options=dict(args.cfg_options or {}),
                               num_images=args.num_images, tau=args.tau,
                               work_root=WORK_ROOT)
    ensure_shapes_data(configs, say, settings.options(), WORK_ROOT)
    try:
        paths = compare_variants(configs, settings, say)
    except (RuntimeError, FileNotFoundError, ValueError) as error:
        sys.exit(f'compare_blocks.py: {error}')
    with open(paths['summary'], encoding='utf-8') as f:
        print(f.read())
    for what, path in paths.items():
        print(f'{what:15s} {path}')


if __name__ == '__main__':
    main()
