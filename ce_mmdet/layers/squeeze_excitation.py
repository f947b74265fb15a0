"""Squeeze-and-Excitation (Hu, Shen, Sun, CVPR 2018) as a ResNet plugin."""
from typing import Optional, Sequence

from mmdet.models.layers import SELayer
from mmengine.registry import MODELS


class SqueezeExcitation(SELayer):
    """SE block usable as an MMDetection ResNet plugin (``type='SE'``).

    ``f(x) = x * s``, ``s = sigmoid(W2 ReLU(W1 z) + b2)``, ``z = mean_{H,W} x``
    with ``W1: C -> C/r`` and ``W2: C/r -> C`` 1x1 convolutions with bias.
    Input and output: (N, C, H, W), any H x W.

    MMDetection's :class:`~mmdet.models.layers.SELayer` computes exactly this
    but takes ``channels``, while ResNet's plugin builder passes
    ``in_channels``: this subclass only renames the argument (and registers
    the block), so the weights are MMDetection's layout
    (``se.conv1.conv.weight``...). In SE-ResNet the block sits after the last
    BN of every residual block, before the addition: ``position=
    'after_conv3'`` for a Bottleneck; for BasicBlocks use
    :class:`~ce_mmdet.backbones.PluginResNet` with ``'after_conv2'``.

    Args:
        in_channels: C.
        ratio: reduction r (16 in the paper); ``C // r`` must be >= 1.
        conv_cfg: config of the two 1x1 convolutions.
        act_cfg: activations after W1 and W2 (ReLU and Sigmoid).
        init_cfg: MMEngine initialisation config.
    """

    _abbr_ = 'se'  # module name inside a block: ``layerS.B.se``

    def __init__(self,
                 in_channels: int,
                 ratio: int = 16,
                 conv_cfg: Optional[dict] = None,
                 act_cfg: Sequence[dict] = (dict(type='ReLU'),
                                            dict(type='Sigmoid')),
                 init_cfg: Optional[dict] = None) -> None:
        if ratio < 1 or in_channels // ratio < 1:
            raise ValueError(
                f'SE: ratio {ratio} leaves no hidden channel for '
                f'{in_channels} input channels; use 1 <= ratio <= '
                f'{in_channels}.')
        super().__init__(
            channels=in_channels,
            ratio=ratio,
            conv_cfg=conv_cfg,
            act_cfg=act_cfg,
            init_cfg=init_cfg)
        self.in_channels = in_channels
        self.ratio = ratio


MODELS.register_module('SE', module=SqueezeExcitation)
