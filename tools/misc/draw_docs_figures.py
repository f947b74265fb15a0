#!/usr/bin/env python
"""Draw the documentation's pictures into docs/en/_static/images/.

    python tools/misc/draw_docs_figures.py
    python tools/misc/draw_docs_figures.py \\
        --demo-work-dir work_dirs/mask_rcnn_ce_r18_fpn_shapes

The CE block, Fig. 1's bars and Table 3's chart are drawn from
configs/**/metafile.yml and configs/published_results.yml. With
--demo-work-dir (a finished ``bash tools/run_demo.sh``), the demo's loss
curve and its first drawn val image are copied in too, shrunk to at most
--max-kb each.
"""
import argparse
import glob
import os.path as osp
import sys

try:
    import ce_mmdet  # noqa: F401
except ImportError:  # not installed: use the checkout this script is in
    sys.path.insert(
        0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from ce_mmdet.analysis.docs_figures import (  # noqa: E402
    draw_ce_block,
    draw_fig1_bars,
    draw_table3_layout,
    shrink_png,
)
from ce_mmdet.analysis.model_zoo import load_metafile  # noqa: E402

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out-dir',
                        default=osp.join(REPO_ROOT, 'docs/en/_static/images'))
    parser.add_argument('--demo-work-dir', default=None,
                        help='work dir of a finished tools/run_demo.sh run')
    parser.add_argument('--max-kb', type=int, default=190)
    args = parser.parse_args()
    out = args.out_dir
    written = [
        draw_ce_block(osp.join(out, 'ce_block.png')),
        draw_fig1_bars(load_metafile(osp.join(
            REPO_ROOT, 'configs/fig1/metafile.yml')),
            osp.join(out, 'fig1_bars.png')),
        draw_table3_layout(load_metafile(osp.join(
            REPO_ROOT, 'configs/metafile.yml')),
            osp.join(out, 'table3_layout.png')),
    ]
    if args.demo_work_dir:
        drawn = sorted(glob.glob(osp.join(args.demo_work_dir, 'vis', '*.png')))
        if not drawn:
            raise SystemExit(f'draw_docs_figures.py: no vis/*.png in '
                             f'{args.demo_work_dir}')
        written.append(shrink_png(
            osp.join(args.demo_work_dir, 'loss_curve.png'),
            osp.join(out, 'demo_loss_curve.png'), args.max_kb))
        written.append(shrink_png(drawn[0],
                                  osp.join(out, 'demo_predictions.png'),
                                  args.max_kb))
    for path in written:
        print(f'wrote {osp.relpath(path, REPO_ROOT)}')


if __name__ == '__main__':
    main()
