"""A hook that saves each rank's CE buffers, for the distributed test.

Imported by the configs of ``test_distributed_training.py`` through
``custom_imports`` (``tests/`` on ``PYTHONPATH``). MMEngine saves checkpoints
on rank 0 only, so each rank writes its own ``rank{R}.pth`` instead.
"""
from __future__ import annotations

import os.path as osp
from typing import Any, Optional

import torch
from mmdet.registry import HOOKS
from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch import nn


def ce_buffers(backbone: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the CE buffers (``stem_ce.*``, ``layerS.B.ce.*``)."""
    return {
        name: buffer.detach().clone()
        for name, buffer in backbone.named_buffers()
        if name.startswith('stem_ce.') or '.ce.' in name
    }


def bn_buffers(backbone: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the running mean and variance of the backbone's BN layers.

    Plain BN (not SyncBN) under DDP with ``broadcast_buffers=False``: these
    stay per-rank, so they tell whether the ranks saw different data.
    """
    return {
        name: buffer.detach().clone()
        for name, buffer in backbone.named_buffers()
        if name.endswith(('running_mean', 'running_var')) and (
            'bn' in name or 'downsample' in name)
    }


@HOOKS.register_module(force=True)
class DumpCEStatsHook(Hook):
    """Write the backbone's CE and BN buffers and the images seen, per rank.

    ``<out_dir>/rank{R}.pth`` holds ``initial_ce`` (before the first
    iteration), ``final_ce`` and ``final_bn`` (after training), ``img_paths``
    (the training images of this rank, in order), ``rank`` and
    ``world_size``.

    Args:
        out_dir: an existing directory shared by the ranks.
    """

    priority = 'VERY_LOW'

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir
        self.initial_ce: dict[str, torch.Tensor] = {}
        self.img_paths: list[str] = []

    @staticmethod
    def _backbone(runner: Any) -> nn.Module:
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        return model.backbone

    def before_train(self, runner: Any) -> None:
        """Record the CE buffers before the first iteration."""
        self.initial_ce = ce_buffers(self._backbone(runner))

    def before_train_iter(self,
                          runner: Any,
                          batch_idx: int,
                          data_batch: Optional[dict] = None) -> None:
        """Record the images of this rank's batch."""
        if data_batch is not None:
            self.img_paths += [
                osp.basename(sample.img_path)
                for sample in data_batch['data_samples']
            ]

    def after_train(self, runner: Any) -> None:
        """Write ``rank{R}.pth``."""
        backbone = self._backbone(runner)
        rank = get_rank()
        torch.save(
            dict(
                rank=rank,
                world_size=get_world_size(),
                initial_ce=self.initial_ce,
                final_ce=ce_buffers(backbone),
                final_bn=bn_buffers(backbone),
                img_paths=self.img_paths),
            osp.join(self.out_dir, f'rank{rank}.pth'))
