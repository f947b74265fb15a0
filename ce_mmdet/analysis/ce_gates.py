"""CE's gate and the spread of its instance-reweighting (IR) weights.

For every :class:`~ce_mmdet.layers.ChannelEquilibrium` layer:

* the gate ``lam = sigmoid(gate_logit)``: the weight of batch decorrelation
  (BD) against IR in ``CE(X) = lam * BD(X) + (1 - lam) * IR(X)``;
* IR's weights ``a = sigmoid(FC2(ReLU(LayerNorm(FC1(v)))))`` (N, C), ``v`` the
  unbiased per-image variance of CE's input over H*W (0 where H*W = 1, as
  in CE): their mean, their spread across channels (standard deviation over
  C, averaged over the images), minimum and maximum. Weights all alike mean
  IR rescales every channel equally; a wide spread means it equalises them.

CE computes ``a`` inside its fused map (from the variances of the folded
BN's output when it folds one), so the recorder recomputes
``a = ce.reweighting(v)`` from CE's input with the same module: the
documented formula, with the layer's own weights. CE's input is rebuilt
from what CE receives: ``x`` itself, or ``preceding_norm(x)`` when CE folds
a BN into its map (a ``BatchNormFold``: its BN, its input unshifted); for
``BatchNormCE`` in eval mode (which calls its CE part's ``forward_folded``
directly), the BN part applied to the layer's input.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ce_mmdet.layers import BatchNormCE, BatchNormFold, ChannelEquilibrium


@dataclass
class CELayerStatistics:
    """Gate and IR weights of one CE layer.

    Attributes:
        name: the CE module's name relative to the backbone.
        channels: C.
        gate: ``lam = sigmoid(gate_logit)``.
        images: images the IR statistics are over (0: the layer never ran).
        ir_weight_mean: mean of ``a`` over images and channels.
        ir_weight_spread: std of ``a`` over the C channels, mean over images.
        ir_weight_min, ir_weight_max: extremes of ``a``.
    """
    name: str
    channels: int
    gate: float
    images: int = 0
    ir_weight_mean: float = float('nan')
    ir_weight_spread: float = float('nan')
    ir_weight_min: float = float('nan')
    ir_weight_max: float = float('nan')


def ce_gate(ce: ChannelEquilibrium) -> float:
    """``lam = sigmoid(gate_logit)``."""
    return float(torch.sigmoid(ce.gate_logit.detach()).reshape(-1)[0])


@torch.no_grad()
def instance_reweighting_weights(ce: ChannelEquilibrium,
                                 ce_input: Tensor) -> Tensor:
    """IR's weights ``a`` (N, C) for CE's input ``ce_input`` (N, C, H, W)."""
    n, c = ce_input.shape[:2]
    flat = ce_input.float().reshape(n, c, -1)
    if flat.shape[-1] > 1:
        variance = flat.var(-1, unbiased=True)
    else:
        variance = flat.new_zeros(n, c)
    weight = ce.reweighting.squeeze.weight
    return ce.reweighting(variance.to(weight.dtype))


class CEStatisticsRecorder:
    """Collects IR's weights of every CE layer over forward passes.

    Use as a context manager around forward passes of the backbone, then
    call :meth:`statistics`.
    """

    def __init__(self, backbone: nn.Module) -> None:
        self.backbone = backbone
        self.layers = {
            name: module for name, module in backbone.named_modules()
            if isinstance(module, ChannelEquilibrium)
        }
        self._weights: dict[str, list[Tensor]] = {n: [] for n in self.layers}
        self._pending: set[str] = set()
        self._handles: list = []

    def __enter__(self) -> 'CEStatisticsRecorder':
        for name, ce in self.layers.items():
            self._handles.append(ce.register_forward_hook(
                lambda m, a, kw, out, name=name: self._on_ce(name, m, a, kw),
                with_kwargs=True))
        for name, module in self.backbone.named_modules():
            if isinstance(module, BatchNormCE):
                ce_name = f'{name}.ce' if name else 'ce'
                self._handles.append(module.register_forward_pre_hook(
                    lambda m, a, ce_name=ce_name: self._pending.add(ce_name)))
                self._handles.append(module.register_forward_hook(
                    lambda m, a, out, ce_name=ce_name: self._on_bnce(
                        ce_name, m, a)))
        return self

    def __exit__(self, *exc_info) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _on_ce(self, name: str, ce: ChannelEquilibrium, args: tuple,
               kwargs: dict) -> None:
        x = args[0] if args else kwargs['x']
        preceding = kwargs.get('preceding_norm',
                               args[1] if len(args) > 1 else None)
        with torch.no_grad():
            if isinstance(preceding, BatchNormFold):
                # e.g. CE-ResNet subtracts the BN's running mean in the conv
                x = preceding.norm_input(x)
                preceding = preceding.norm
            if preceding is not None:
                # forward(), not __call__: no hooks fire for this recomputation
                x = preceding.forward(x)
            self._weights[name].append(instance_reweighting_weights(ce, x))
        self._pending.discard(name)

    def _on_bnce(self, ce_name: str, bnce: BatchNormCE, args: tuple) -> None:
        if ce_name not in self._pending:
            return  # CE ran through its own __call__: already recorded
        self._pending.discard(ce_name)
        with torch.no_grad():
            bn_output = nn.BatchNorm2d.forward(bnce, args[0])
            self._weights[ce_name].append(
                instance_reweighting_weights(bnce.ce, bn_output))

    def statistics(self) -> list[CELayerStatistics]:
        """One entry per CE layer, in module order."""
        results = []
        for name, ce in self.layers.items():
            entry = CELayerStatistics(name=name, channels=ce.in_channels,
                                      gate=ce_gate(ce))
            if self._weights[name]:
                a = torch.cat(self._weights[name])
                entry.images = a.shape[0]
                entry.ir_weight_mean = float(a.mean())
                spread = a.std(1, unbiased=False) if a.shape[1] > 1 else \
                    a.new_zeros(a.shape[0])
                entry.ir_weight_spread = float(spread.mean())
                entry.ir_weight_min = float(a.min())
                entry.ir_weight_max = float(a.max())
            results.append(entry)
        return results
