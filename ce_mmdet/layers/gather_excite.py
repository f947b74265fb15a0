"""Gather-Excite (Hu, Shen, Albanie, Sun, Vedaldi, NeurIPS 2018) plugins.

All variants compute ``f(x) = x * sigmoid(interp_{H x W}(excite(gather(x))))``
on an (N, C, H, W) input: ``gather`` summarises each channel over a spatial
extent, ``excite`` (identity, or an SE-like MLP for theta-plus) turns the
summary into gate logits, which are resized to the input's exact (H, W) with
nearest-neighbour interpolation (never by a scale factor: detection maps have
odd sizes).

Size-agnostic global gather (our choice; the paper's needs a fixed size):
the paper's parametric global gather is one depthwise convolution whose
kernel covers the whole map (56/28/14/7 at a 224 input), i.e. a learned
spatial weighting ``z_c = sum_{h,w} k_c[h, w] x_c[h, w]``, defined for one
input size only. Here the map is first average-pooled adaptively to a fixed
``gather_size`` x ``gather_size`` grid and the depthwise kernel covers that
grid. At the input size where the stage's map is ``gather_size`` wide the
pooling is the identity and the gather is exactly the paper's (same
parameters); on other sizes each kernel weight covers a cell of about
(H / S) x (W / S) positions (averaged) instead of one position, so the
kernel stretches with the image (relative, not absolute, positions; a
non-square map gives non-square cells). Maps smaller than the grid are
repeated into it. The depthwise kernel starts as a uniform average (global
average pooling), also our choice.

BN on a gathered map with one value per channel (a 1x1 map of one image,
e.g. one image per GPU) has no batch statistics: in training such a call
normalises with the running statistics and leaves them unchanged, instead of
PyTorch's error. With several values per channel but few images (2 per GPU
in detection) batch statistics of a global summary are noise: MMDetection's
``norm_eval=True`` (the COCO configs) freezes them, which makes the BN a
learned per-channel affine map.
"""
import math
from typing import Optional

import torch
import torch.nn.functional as F
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


def resize_gate(gate: Tensor, size: torch.Size) -> Tensor:
    """Nearest-neighbour resize of gate logits (N, C, h, w) to ``size``.

    A 1x1 gate is returned as is: broadcasting in the product is the same
    nearest-neighbour interpolation, without materialising it.
    """
    if gate.shape[-2:] == size or gate.shape[-2:] == (1, 1):
        return gate
    return F.interpolate(gate, size=tuple(size), mode='nearest')


def apply_norm(norm: nn.Module, x: Tensor) -> Tensor:
    """``norm(x)``, except for a training plain BN that sees one value per
    channel: that call uses the running statistics and updates nothing."""
    single_value = x.numel() == x.shape[1]
    if (single_value and norm.training and isinstance(norm, _BatchNorm)
            and not isinstance(norm, nn.SyncBatchNorm)
            and norm.running_mean is not None):
        return F.batch_norm(x, norm.running_mean, norm.running_var,
                            norm.weight, norm.bias, False, 0.0, norm.eps)
    return norm(x)


def _extent_steps(extent: Optional[int]) -> int:
    """log2(extent) for extent 2, 4, 8...; 0 for the global extent (None)."""
    if extent is None:
        return 0
    steps = int(round(math.log2(extent))) if extent > 1 else 0
    if extent < 2 or 2**steps != extent:
        raise ValueError(f'GE: extent must be a power of 2 (2, 4, 8...) or '
                         f'None for the global extent, got {extent!r}')
    return steps


class GatherExcite(BaseModule):
    """Common part: ``x * sigmoid(resize(excite(gather(x))))``.

    Subclasses define :meth:`gather_excite` returning the gate logits
    (N, C, h, w) for an input (N, C, H, W).
    """

    _abbr_ = 'ge'  # module name inside a block: ``layerS.B.ge``

    def gather_excite(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        gate = resize_gate(self.gather_excite(x), x.shape[-2:])
        return x * gate.sigmoid()


class GEThetaMinus(GatherExcite):
    """GE-theta-minus: parameter-free gather (``type='GEThetaMinus'``).

    ``gather`` = average pooling over the whole map (``extent=None``, the
    paper's best) or over ``extent`` x ``extent`` cells (stride ``extent``;
    output ceil(H / e) x ceil(W / e), border cells averaged over the
    positions they hold); ``excite`` = identity.

    Args:
        in_channels: C (passed by ResNet's plugin builder; not used).
        extent: 2, 4, 8... or None for global.
    """

    def __init__(self, in_channels: int, extent: Optional[int] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        _extent_steps(extent)  # validates
        self.in_channels = in_channels
        self.extent = extent

    def gather_excite(self, x: Tensor) -> Tensor:
        if self.extent is None:
            return x.mean((2, 3), keepdim=True)
        return F.avg_pool2d(x, self.extent, self.extent, ceil_mode=True)

    def extra_repr(self) -> str:
        return f'extent={self.extent}'


class DepthwiseGather(BaseModule):
    """Parametric gather of GE-theta (without its last BN).

    * global (``extent=None``): adaptive average pooling to ``gather_size``
      x ``gather_size``, then one depthwise ``gather_size`` x ``gather_size``
      convolution without bias -> (N, C, 1, 1) (see the module docstring).
    * ``extent = 2**k``: k depthwise 3x3 stride-2 convolutions (padding 1, no
      bias), each followed by a norm layer, ReLU between them but not after
      the last -> (N, C, ceil(H / 2**k), ceil(W / 2**k)); the last norm is
      left to the caller (:class:`GETheta` applies it).
    """

    def __init__(self, channels: int, extent: Optional[int], gather_size: int,
                 conv_cfg: Optional[dict], norm_cfg: dict,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        steps = _extent_steps(extent)
        if extent is None and gather_size < 1:
            raise ValueError(
                f'GE: gather_size must be >= 1, got {gather_size}')
        self.extent = extent
        self.gather_size = gather_size
        if extent is None:
            self.convs = nn.ModuleList([
                build_conv_layer(conv_cfg, channels, channels, gather_size,
                                 groups=channels, bias=False)])
        else:
            self.convs = nn.ModuleList([
                build_conv_layer(conv_cfg, channels, channels, 3, stride=2,
                                 padding=1, groups=channels, bias=False)
                for _ in range(steps)])
        # norms between the convolutions (the last one is the caller's)
        self.norms = nn.ModuleList([
            build_norm_layer(norm_cfg, channels)[1]
            for _ in range(len(self.convs) - 1)])

    def init_weights(self) -> None:
        super().init_weights()
        if self.extent is None:  # start as a global average pooling
            nn.init.constant_(self.convs[0].weight, 1 / self.gather_size**2)

    def forward(self, x: Tensor) -> Tensor:
        if self.extent is None:
            x = F.adaptive_avg_pool2d(x, self.gather_size)
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i < len(self.norms):
                x = F.relu(apply_norm(self.norms[i], x))
        return x


class GETheta(GatherExcite):
    """GE-theta: depthwise-convolution gather, then BN (``type='GETheta'``).

    ``excite`` = identity: the gate is ``sigmoid(BN(gather(x)))``, resized.

    Args:
        in_channels: C.
        extent: 2, 4, 8... or None for global.
        gather_size: side of the adaptive-pooling grid of the global gather
            (the stage's map side at the training size makes it the paper's
            gather: 56/28/14/7 for stages 1-4 at 224).
        conv_cfg: config of the depthwise convolutions.
        norm_cfg: config of the norm layers (BN).
    """

    def __init__(self,
                 in_channels: int,
                 extent: Optional[int] = None,
                 gather_size: int = 7,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        self.in_channels = in_channels
        self.gather = DepthwiseGather(in_channels, extent, gather_size,
                                      conv_cfg, norm_cfg)
        self.norm = build_norm_layer(norm_cfg, in_channels)[1]

    def gather_excite(self, x: Tensor) -> Tensor:
        return apply_norm(self.norm, self.gather(x))


class GEThetaPlus(GatherExcite):
    """GE-theta-plus (``type='GEThetaPlus'``): global depthwise gather -> BN
    -> ReLU -> 1x1 conv C -> C/r (bias) -> ReLU -> 1x1 conv C/r -> C (bias)
    -> sigmoid. The gathered map is 1x1, so the gate broadcasts.

    Args:
        in_channels: C.
        gather_size: see :class:`GETheta`.
        ratio: r of the excite MLP (16 in the paper).
        conv_cfg: config of the convolutions.
        norm_cfg: config of the BN after the gather.
    """

    def __init__(self,
                 in_channels: int,
                 gather_size: int = 7,
                 ratio: int = 16,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        if ratio < 1 or in_channels // ratio < 1:
            raise ValueError(
                f'GEThetaPlus: ratio {ratio} leaves no hidden channel for '
                f'{in_channels} input channels; use 1 <= ratio <= '
                f'{in_channels}.')
        self.in_channels = in_channels
        hidden = in_channels // ratio
        self.gather = DepthwiseGather(in_channels, None, gather_size,
                                      conv_cfg, norm_cfg)
        self.norm = build_norm_layer(norm_cfg, in_channels)[1]
        self.fc1 = build_conv_layer(conv_cfg, in_channels, hidden, 1)
        self.fc2 = build_conv_layer(conv_cfg, hidden, in_channels, 1)

    def gather_excite(self, x: Tensor) -> Tensor:
        z = F.relu(apply_norm(self.norm, self.gather(x)))
        return self.fc2(F.relu(self.fc1(z)))


for _cls in (GEThetaMinus, GETheta, GEThetaPlus):
    MODELS.register_module(module=_cls)
