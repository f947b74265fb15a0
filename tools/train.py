#!/usr/bin/env python
"""Train a detector: MMDetection 3.x's ``tools/train.py`` with ce_mmdet.

Runs the ``tools/train.py`` of the installed MMDetection (shipped as
``mmdet/.mim/tools/train.py``) after ``import ce_mmdet``, which registers the
CE layers and backbones and lets ``torch.load`` read MMEngine checkpoints
with PyTorch >= 2.6's ``weights_only=True`` default (``--resume``,
``load_from``) as data: a resume never executes the config text a
checkpoint carries (see docs/en/advanced_guides/trust_model.md).
Arguments and behaviour are MMDetection's::

    python tools/train.py CONFIG [--work-dir WORK_DIR] [--amp]
        [--auto-scale-lr] [--resume [CHECKPOINT]]
        [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm,mpi}]
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
    setup_cpu_distributed('train.py')
    run_openmmlab_tool('train.py')
