#!/usr/bin/env python
"""Table 3 of the CE paper in one resumable command.

Pretrain (MMPretrain), detect (MMDetection, from the pretrained
checkpoint), evaluate (COCO box and mask AP), collect; the plan with its
estimate first, every finished step reused on a rerun::

    python tools/reproduce_table3.py --preset coco --dry-run
    python tools/reproduce_table3.py --preset coco --engine slurm \\
        --partition PARTITION --gpus 8
    python tools/reproduce_table3.py --preset shapes     # the embedded default

See ``docs/en/user_guides/table3.md`` and ``--help``; the library is
:mod:`ce_mmdet.experiments`.
"""
import os.path as osp
import sys

try:
    import ce_mmdet  # noqa: F401
except ImportError:  # not installed: use the checkout this script is in
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from ce_mmdet.experiments import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
