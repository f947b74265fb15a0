"""SyncCE: Channel Equilibrium with batch statistics shared across GPUs."""
from typing import Optional

import torch
import torch.distributed as dist
from mmengine.registry import MODELS
from torch import Tensor, nn
from torch.distributed.nn.functional import all_reduce

from .channel_equilibrium import ChannelEquilibrium


class SyncChannelEquilibrium(ChannelEquilibrium):
    """CE whose batch decorrelation sees the whole distributed batch.

    Registered as ``'SyncCE'``. In training, the sums behind BD's mean and
    covariance, IR's variance scale ``s`` and the element counts are summed
    over ``process_group`` with one differentiable all-reduce (its backward
    all-reduces the gradients of those sums), so the result is that of plain
    CE on the concatenated batch, also when ranks hold different batch
    sizes. IR's per-image variances stay local (they are per image anyway).
    Without an initialised process group (or with one process) it is plain CE.

    Args:
        process_group: the group to synchronise over (default: the world).
        **kwargs: as :class:`ChannelEquilibrium`.
    """

    def __init__(self, in_channels: int, *, process_group: Optional[
            dist.ProcessGroup] = None, **kwargs) -> None:
        super().__init__(in_channels, **kwargs)
        self.process_group = process_group

    def _synchronizes_statistics(self) -> bool:
        if not (dist.is_available() and dist.is_initialized()):
            return False
        group = self.process_group or dist.group.WORLD
        return dist.get_world_size(group) > 1

    def _reduce_batch_statistics(self, sums: list[Tensor]) -> list[Tensor]:
        if not self._synchronizes_statistics():
            return sums
        group = self.process_group or dist.group.WORLD
        # One differentiable all-reduce for all of them.
        flat = all_reduce(torch.cat([t.flatten() for t in sums]), group=group)
        return [part.view_as(t) for part, t in zip(
            flat.split([t.numel() for t in sums]), sums)]


def convert_sync_channel_equilibrium(
        module: nn.Module,
        process_group: Optional[dist.ProcessGroup] = None) -> nn.Module:
    """Replace every (non-synced) CE layer in ``module`` by SyncCE.

    The counterpart of ``nn.SyncBatchNorm.convert_sync_batchnorm`` for CE
    (which that function does not know). Parameters, buffers, training mode
    and ``requires_grad`` are carried over; returns the converted module
    (the same object unless ``module`` itself is a CE layer).
    """
    if isinstance(module, ChannelEquilibrium) and not isinstance(
            module, SyncChannelEquilibrium):
        converted = SyncChannelEquilibrium(
            module.in_channels, process_group=process_group,
            **module.hyperparameters())
        converted.to(module.gate_logit).load_state_dict(module.state_dict())
        for target, source in zip(converted.parameters(), module.parameters()):
            target.requires_grad_(source.requires_grad)
        converted.layer_name = module.layer_name
        return converted.train(module.training)
    for name, child in module.named_children():
        new_child = convert_sync_channel_equilibrium(child, process_group)
        if new_child is not child:
            setattr(module, name, new_child)
    return module


MODELS.register_module('SyncCE', module=SyncChannelEquilibrium)
