#!/usr/bin/env python
"""Render the model-zoo tables of configs/**/README.md from the metafiles
(model-index.yml) and configs/published_results.yml.

    python tools/misc/render_model_zoo.py          # rewrite stale tables
    python tools/misc/render_model_zoo.py --check  # exit 1 if any is stale

Edit the metafiles or published_results.yml, never the tables: the test
suite runs ``--check``.
"""
import argparse
import os.path as osp
import sys

try:
    import ce_mmdet  # noqa: F401
except ImportError:  # not installed: use the checkout this script is in
    sys.path.insert(
        0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from ce_mmdet.analysis.model_zoo import stale_readmes  # noqa: E402

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--check', action='store_true',
                        help='write nothing; exit 1 when a README is stale')
    parser.add_argument('--root', default=REPO_ROOT,
                        help='the checkout (default: the one this script is '
                        'in)')
    args = parser.parse_args()
    stale = stale_readmes(args.root, write=not args.check)
    for path in stale:
        print(f'{"stale" if args.check else "rendered"}: '
              f'{osp.relpath(path, args.root)}')
    return 1 if stale and args.check else 0


if __name__ == '__main__':
    sys.exit(main())
