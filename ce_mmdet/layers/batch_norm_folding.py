"""A BatchNorm2d folded into the per-channel linear map that follows it.

For an input ``x`` (N, C, H, W) shifted by the BN's running mean,
``y = x - running_mean``, every BN this module knows is a per-channel
affine map of ``y``::

    BN(x) = scale * y + shift

* frozen (eval mode, running statistics): ``scale = weight /
  sqrt(running_var + eps)``, ``shift = bias``;
* training (a ``BatchNorm2d`` in training mode): ``m = mean(y)``,
  ``v = mean(y^2) - m^2`` over the batch's N*H*W positions,
  ``scale = weight / sqrt(v + eps)``, ``shift = bias - m * scale``; the
  running averages are updated as ``BatchNorm2d`` updates them.

A layer whose map is linear in its input (Channel Equilibrium's
``M (scale * y + shift) = (M scale) y + M shift``) absorbs the BN: the BN
makes no pass over the tensor, and its statistics come from the sums the
layer takes of ``y`` anyway. Why ``y`` and not ``x``: second moments from
uncentred float32 sums cancel when a channel's mean is large against its
spread (a convolution's raw output often is); the running mean is the
estimate of that mean the BN already holds, and a bias-free convolution
can subtract it as its bias, at no cost
(:func:`ce_mmdet.backbones.ce_resnet.conv_norm_ce`).
"""
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

# Exact types: a subclass (e.g. BN+CE) may do more than an affine map.
_FOLDABLE_NORMS = (nn.BatchNorm2d, nn.SyncBatchNorm)


def is_frozen_batch_norm(norm: nn.Module) -> bool:
    """Whether ``norm`` is a plain BN applying a fixed affine map (eval mode
    with running statistics)."""
    return (type(norm) in _FOLDABLE_NORMS and not norm.training
            and norm.running_var is not None)


def is_foldable_batch_norm(norm: nn.Module) -> bool:
    """Whether ``norm`` can be folded into the next layer's map: a frozen BN
    (:func:`is_frozen_batch_norm`), or a plain ``BatchNorm2d`` in training
    mode that tracks running statistics (its batch statistics are the next
    layer's sums; a ``SyncBatchNorm``'s would need a sync of their own)."""
    return is_frozen_batch_norm(norm) or (
        type(norm) is nn.BatchNorm2d and norm.training
        and norm.track_running_stats and norm.running_mean is not None)


@dataclass(frozen=True)
class BatchNormFold:
    """A BN to fold into the next layer's map, and the form its input has.

    Attributes:
        norm: a BN with running statistics: in eval mode (frozen), or a
            plain ``BatchNorm2d`` in training mode. A subclass in eval mode
            is accepted (``BatchNormCE`` folds its own BN part).
        input_is_shifted: the layer receives ``y = x - running_mean``
            already (e.g. from the convolution's bias), not the BN's input
            ``x``.
    """

    norm: _BatchNorm
    input_is_shifted: bool = False

    def __post_init__(self) -> None:
        norm = self.norm
        known = isinstance(norm, _BatchNorm) and norm.running_var is not None
        if not known or (norm.training and type(norm) is not nn.BatchNorm2d):
            raise ValueError(
                f'Only a BatchNorm2d with running statistics (eval mode, or '
                f'training mode for a plain nn.BatchNorm2d) folds into the '
                f'next layer; got {norm!r} in '
                f'{"training" if norm.training else "eval"} mode. Apply the '
                'norm first instead: layer(norm(x)).')

    @property
    def uses_batch_statistics(self) -> bool:
        """Whether the BN normalises with the batch's statistics (training)."""
        return self.norm.training

    def shifted_input(self, x: Tensor) -> Tensor:
        """``y = x - running_mean`` from what the layer receives."""
        if self.input_is_shifted:
            return x
        return x - self.norm.running_mean.to(x.dtype).view(1, -1, 1, 1)

    def norm_input(self, received: Tensor) -> Tensor:
        """The BN's input ``x`` from what the layer receives (for analysis
        tools that recompute the BN's output)."""
        if not self.input_is_shifted:
            return received
        mean = self.norm.running_mean.to(received.dtype)
        return received + mean.view(1, -1, 1, 1)

    def affine_parameters(self, like: Tensor) -> dict[str, Tensor]:
        """The BN's ``weight`` and ``bias`` (ones and zeros when it has no
        affine parameters), as tensors a fused map may differentiate."""
        channels = self.norm.num_features
        weight, bias = self.norm.weight, self.norm.bias
        return {
            'weight': like.new_ones(channels) if weight is None else weight,
            'bias': like.new_zeros(channels) if bias is None else bias,
        }

    def affine_map(self, weight: Tensor, bias: Tensor, shape: tuple[int, ...],
                   batch_sums: Optional[tuple[Tensor, Tensor]] = None,
                   count: int = 0) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """``BN(x) = scale * y + shift`` per channel.

        Args:
            weight, bias: the BN's affine parameters, (C,).
            shape: of ``scale`` and ``shift``, C elements (e.g. (G, g)).
            batch_sums: in training mode, the per-channel sums of ``y`` and
                of ``y^2`` over the batch, each of ``shape``.
            count: positions per channel in those sums (N*H*W).

        Returns:
            ``(scale, shift, batch_statistics)``; in training mode
            ``batch_statistics`` holds the detached ``mean`` of ``y`` and
            the biased ``variance`` (arguments of
            :meth:`update_running_statistics`), else it is empty.
        """
        if not self.uses_batch_statistics:
            inv_std = torch.rsqrt(
                self.norm.running_var.to(weight.dtype) + self.norm.eps)
            return (weight * inv_std).view(shape), bias.view(shape), {}
        if batch_sums is None:
            raise ValueError('A BatchNorm2d in training mode folds with the '
                             "batch's sums: pass batch_sums")
        sum_y, sum_y_squared = batch_sums
        mean = sum_y / count
        variance = (sum_y_squared / count - mean.square()).clamp_min(0)
        scale = weight.view(shape) * torch.rsqrt(variance + self.norm.eps)
        shift = bias.view(shape) - mean * scale
        return scale, shift, dict(mean=mean.detach(),
                                  variance=variance.detach())

    @torch.no_grad()
    def update_running_statistics(self, mean: Tensor, variance: Tensor,
                                  count: int) -> None:
        """The running averages a ``BatchNorm2d`` in training mode keeps.

        ``mean`` is the batch mean of ``y``, i.e. minus the running mean:
        ``running_mean <- running_mean + factor * mean``; the variance
        enters unbiased, as in ``F.batch_norm``.
        """
        norm = self.norm
        norm.num_batches_tracked.add_(1)
        factor = (1.0 / float(norm.num_batches_tracked)
                  if norm.momentum is None else norm.momentum)
        unbiased = variance * (count / (count - 1))
        norm.running_mean.add_(mean.flatten().to(norm.running_mean),
                               alpha=factor)
        norm.running_var.lerp_(unbiased.flatten().to(norm.running_var),
                               factor)
