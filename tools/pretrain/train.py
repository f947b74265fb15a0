#!/usr/bin/env python
"""Pretrain a backbone as an image classifier: MMPretrain's ``tools/train.py``
with ce_mmdet.

Runs the ``tools/train.py`` of the installed MMPretrain (shipped as
``mmpretrain/.mim/tools/train.py``) after ``import ce_mmdet``, which
registers the CE-ResNets (``type='mmdet.CEResNet'`` in a classifier) and
lets ``torch.load`` read MMEngine checkpoints as data (``--resume``).
Arguments and behaviour are MMPretrain's::

    python tools/pretrain/train.py CONFIG [--work-dir WORK_DIR] [--resume
        [CHECKPOINT]] [--amp] [--no-validate] [--auto-scale-lr]
        [--no-pin-memory] [--no-persistent-workers]
        [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm,mpi}]

``bash tools/pretrain/dist_train.sh CONFIG GPUS`` runs it under torchrun;
``configs/pretrain/`` holds the recipes.
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
    # torchrun + --launcher pytorch without a GPU: gloo, DDP without devices
    setup_cpu_distributed('train.py', package='mmpretrain')
    run_openmmlab_tool('train.py', package='mmpretrain')
