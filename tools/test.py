#!/usr/bin/env python
"""Test (and evaluate) a detector: MMDetection 3.x's ``tools/test.py``.

Runs the ``tools/test.py`` of the installed MMDetection (shipped as
``mmdet/.mim/tools/test.py``) after ``import ce_mmdet``, which registers the
CE layers and backbones and lets ``torch.load`` read MMEngine checkpoints
with PyTorch >= 2.6's ``weights_only=True`` default. Arguments and behaviour
are MMDetection's::

    python tools/test.py CONFIG CHECKPOINT [--work-dir WORK_DIR]
        [--out OUT.pkl] [--show] [--show-dir SHOW_DIR]
        [--wait-time WAIT_TIME] [--cfg-options KEY=VALUE ...]
        [--launcher {none,pytorch,slurm,mpi}] [--tta]
        [--local_rank LOCAL_RANK]

Under torchrun with ``--launcher pytorch`` (``tools/dist_train.sh``,
``tools/dist_test.sh``) on a machine without GPUs, the processes
communicate over gloo on the CPU; see :mod:`ce_mmdet.utils.cpu_distributed`.
"""
import os.path as osp
import sys

try:
    import ce_mmdet  # noqa: F401
except ImportError:  # not installed: use the checkout this script is in
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from ce_mmdet.utils import run_openmmlab_tool  # noqa: E402
from ce_mmdet.utils.cpu_distributed import setup_cpu_distributed  # noqa: E402

if __name__ == '__main__':
    # torchrun + --launcher pytorch without a GPU: gloo, DDP without devices
    setup_cpu_distributed('test.py')
    run_openmmlab_tool('test.py')
