#!/usr/bin/env python
"""Collect COCO results of runs into the paper's Table 3 layout, as Markdown.

For each work dir (``--work-dir`` of tools/train.py or tools/test.py), reads
the newest run's COCO metrics (MMEngine's ``<timestamp>/<timestamp>.json``,
``<timestamp>/vis_data/scalars.json`` or the log) and prints box AP, AP50,
AP75, mask AP, AP50, AP75 beside MMDetection's BN baseline of that config
(read from configs/published_results.yml) and the difference::

    python tools/analysis_tools/collect_results.py \\
        work_dirs/mask_rcnn_r50_fpn work_dirs/mask_rcnn_ce_r50_fpn

A work dir is matched to its config by the config file MMEngine dumps into
it (``<config name>.py``); --names overrides that.
"""
import argparse
import os.path as osp
import sys

try:
    import ce_mmdet  # noqa: F401
except ImportError:  # not installed: use the checkout this script is in
    sys.path.insert(
        0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from ce_mmdet.analysis.baselines import (  # noqa: E402
    PUBLISHED_RESULTS,
    load_baselines,
)
from ce_mmdet.analysis.output_files import write_text  # noqa: E402
from ce_mmdet.analysis.results_collector import (  # noqa: E402
    NoResultsError,
    collect_run,
    table3_markdown,
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('work_dirs', nargs='+', metavar='WORK_DIR')
    parser.add_argument(
        '--names', nargs='+', default=None,
        help='config names of the work dirs, in order (default: the config '
        'dumped into each)')
    parser.add_argument(
        '--baselines', default=None, metavar='YAML',
        help='where the baselines are read from (default: ce_mmdet\'s '
        f'{PUBLISHED_RESULTS})')
    parser.add_argument('--out', default=None,
                        help='also write the table to this Markdown file')
    args = parser.parse_args()
    if args.names and len(args.names) != len(args.work_dirs):
        parser.error(f'--names gives {len(args.names)} names for '
                     f'{len(args.work_dirs)} work dirs')
    names = args.names or [None] * len(args.work_dirs)
    try:
        results = [collect_run(w, n) for w, n in zip(args.work_dirs, names)]
        baselines = load_baselines(args.baselines)
    except (FileNotFoundError, NoResultsError, ValueError) as error:
        sys.exit(f'collect_results.py: {error}')
    table = table3_markdown(results, baselines)
    print(table)
    for result in results:
        print(f'<!-- {result.name}: {result.source} -->')
    if args.out:
        write_text(args.out, table + '\n')


if __name__ == '__main__':
    main()
