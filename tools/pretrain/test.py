#!/usr/bin/env python
"""Evaluate a pretrained classifier (top-1/top-5): MMPretrain's
``tools/test.py`` with ce_mmdet.

Runs the ``tools/test.py`` of the installed MMPretrain (shipped as
``mmpretrain/.mim/tools/test.py``) after ``import ce_mmdet``. Arguments and
behaviour are MMPretrain's::

    python tools/pretrain/test.py CONFIG CHECKPOINT [--work-dir WORK_DIR]
        [--out OUT] [--out-item {metrics,pred}] [--show-dir SHOW_DIR]
        [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm,mpi}]
"""
import os.path as osp
import sys

try:
    import ce_mmdet  # noqa: F401
except ImportError:  # not installed: use the checkout this script is in
    sys.path.insert(
        0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from ce_mmdet.utils import run_openmmlab_tool  # noqa: E402
from ce_mmdet.utils.cpu_distributed import setup_cpu_distributed  # noqa: E402

if __name__ == '__main__':
    setup_cpu_distributed('test.py', package='mmpretrain')
    run_openmmlab_tool('test.py', package='mmpretrain')
