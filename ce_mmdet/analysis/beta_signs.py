"""The paper's Table 4 measure: the share of norm channels with beta_c <= 0.

``beta_c = 0`` counts (``<=``), so BN layers that never trained (biases
initialised at 0, e.g. in ``frozen_stages`` without pretrained weights) read
100%: :attr:`NormLayerBeta.trainable` tells them apart.

After BN, channel ``c`` is ``gamma_c * x_hat + beta_c`` with ``x_hat``
standardised; a ReLU after it passes less than half of the positions when
``beta_c <= 0`` (``gamma_c > 0``), and almost none when ``beta_c`` is far
below zero: the paper reads a high share of ``beta_c <= 0`` as a sign of
inhibited channels, and CE as lowering it.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .model_structure import norm_layers, stage_names, stage_of


@dataclass
class NormLayerBeta:
    """beta signs of one norm layer.

    Attributes:
        name: relative to the backbone, e.g. ``'layer1.0.bn2'``.
        type: the module's class name (``'BatchNorm2d'``, ``'BatchNormCE'``).
        stage: ``'stem'`` or ``'layer1'``...
        channels: C.
        nonpositive: how many of the C channels have ``beta_c <= 0``.
        share: ``nonpositive / channels``.
        feeds_activation: whether it feeds an activation (see
            :mod:`ce_mmdet.analysis.model_structure`).
        trainable: whether beta trains (False in a frozen stage: an
            untrained beta of exactly 0 counts as <= 0).
    """
    name: str
    type: str
    stage: str
    channels: int
    nonpositive: int
    share: float
    feeds_activation: bool
    trainable: bool = True


def norm_layer_betas(backbone: nn.Module,
                     feeding: set[str]) -> list[NormLayerBeta]:
    """beta signs of every norm layer with an affine bias, in module order.

    Args:
        backbone: the network to read.
        feeding: names of the norm layers that feed an activation.
    """
    stages = stage_names(backbone)
    layers = []
    for name, module in norm_layers(backbone):
        bias = getattr(module, 'bias', None)
        if bias is None:
            continue  # affine=False: no beta
        beta = bias.detach().flatten()
        nonpositive = int((beta <= 0).sum())
        layers.append(
            NormLayerBeta(name=name, type=type(module).__name__,
                          stage=stage_of(name, stages),
                          channels=beta.numel(), nonpositive=nonpositive,
                          share=nonpositive / max(beta.numel(), 1),
                          feeds_activation=name in feeding,
                          trainable=bool(bias.requires_grad)))
    return layers


def pooled_share(layers: list[NormLayerBeta]) -> dict:
    """Channel-weighted shares of ``beta <= 0``: overall and per stage.

    Returns:
        A dict with ``'overall'`` (the share, or None where no layer is
        given), ``'by_stage'`` (``{stage: share}``) and ``'channels'``
        (the total C).
    """
    by_stage: dict[str, list[int]] = {}
    for layer in layers:
        counts = by_stage.setdefault(layer.stage, [0, 0])
        counts[0] += layer.nonpositive
        counts[1] += layer.channels
    total = sum(c[1] for c in by_stage.values())
    return dict(
        overall=(sum(c[0] for c in by_stage.values()) / total
                 if total else None),
        by_stage={stage: n / c for stage, (n, c) in by_stage.items()},
        channels=total)
