"""Which norm layers feed which activations, and where modules sit in a
backbone.

The analysis reads any backbone of the project (MMDetection's ResNet,
CE-ResNet, the peer blocks) from its ``nn.Module`` structure and one traced
forward pass, never from names hard-coded per architecture:

* **Norm layers**: instances of :data:`NORM_LAYER_TYPES` (every BN, SyncBN,
  ``BatchNormCE``, GN, LN, IN).
* **Activations**: instances of :data:`ACTIVATION_TYPES` (``nn.ReLU`` and the
  other element-wise activation modules). Activations computed with
  ``torch.nn.functional`` inside a ``forward`` are invisible to hooks.
* **Activation calls**: MMDetection's ResNet blocks call ONE ``relu`` module
  two (BasicBlock) or three (Bottleneck) times per forward, so an activation
  is identified by its module name AND the index of the call within one
  forward of the backbone: ``layer1.0.relu#0`` (after ``bn1``),
  ``layer1.0.relu#1`` (after ``bn2``, or the block output of a BasicBlock)...
* **Stages**: the backbone's ``res_layers`` (MMDetection's ResNet family) or
  else its top-level ``nn.Sequential`` children other than ``stem``;
  everything before them is the ``stem``.
* **Trunk activations**: activation modules held directly by the backbone,
  by its stem ``nn.Sequential`` or by a block (an element of a stage). Those
  nested deeper (inside an SE or Gather-Excite module, a ``ConvModule``...)
  act on gating signals, not on the feature maps, and are reported but left
  out of the overall inhibited-channel ratios.

**"Feeds an activation"** (the Table 4 subset): a norm layer feeds an
activation call when its output reaches that call's input through
element-wise or channel-wise operations only: residual additions, CE,
SE/GE gates, pooling, views. A convolution, a linear layer or another
activation in between breaks the link. Decided on the autograd graph of one
forward pass: from the activation's input we walk back and stop at those
operations. Consequences, on purpose:

* In CE-ResNet the BN before CE feeds the ReLU after CE (and after the
  residual addition): CE is the modulation between the two that the paper
  studies. CE folds a frozen BN into its own map and then never calls the
  BN module; the trace attributes CE's output to that BN.
* A block's last BN and the BN of its projection shortcut both feed the
  block's final ReLU (their sum is what the ReLU rectifies).
* A BN whose ReLU was removed (the proportional-ReLU peer) feeds nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Optional

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from ce_mmdet.layers import BatchNormFold, ChannelEquilibrium

NORM_LAYER_TYPES = (_BatchNorm, nn.GroupNorm, nn.LayerNorm, _InstanceNorm)
"""Module types counted as norm layers (``BatchNormCE`` is a
``_BatchNorm``)."""

ACTIVATION_TYPES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU,
                    nn.ELU, nn.CELU, nn.SELU, nn.GELU, nn.SiLU, nn.Mish,
                    nn.Hardswish, nn.Softplus)
"""Module types counted as activations."""

# Autograd nodes that end a "feeds" walk: channel-mixing operations.
_MIXING_NODE_PREFIXES = ('Convolution', 'MkldnnConvolution',
                         'CudnnConvolution', 'SlowConv', 'ThnnConv', 'Addmm',
                         'Mm', 'Linear')
# Autograd nodes that only re-view their single input.
_VIEW_NODE_PREFIXES = ('View', 'AsStrided', 'UnsafeView', 'Reshape', 'Alias')


class UnreadableModelError(ValueError):
    """The model lacks what the analysis measures (norm layers,
    activations)."""


@dataclass
class ActivationCall:
    """One call of an activation module during one forward of the backbone.

    Attributes:
        key: ``'<module name>#<call index>'``, e.g. ``'layer1.0.relu#2'``.
        module_name: the module's name relative to the backbone.
        call_index: how many calls of the same module came before it in the
            same forward of the backbone.
        stage: ``'stem'`` or the stage's name (``'layer1'``...).
        block: ``'stem'`` or the block's name (``'layer1.0'``...).
        trunk: whether it acts on the trunk's feature maps (see module doc).
        fed_by: names of the norm layers feeding this call.
    """
    key: str
    module_name: str
    call_index: int
    stage: str
    block: str
    trunk: bool
    fed_by: list[str] = field(default_factory=list)


def find_backbone(model: nn.Module) -> nn.Module:
    """``model.backbone`` for a detector, else the model itself."""
    backbone = getattr(model, 'backbone', None)
    return backbone if isinstance(backbone, nn.Module) else model


def stage_names(backbone: nn.Module) -> list[str]:
    """The backbone's stages: ``res_layers`` or its top-level Sequentials."""
    res_layers = getattr(backbone, 'res_layers', None)
    if res_layers:
        return list(res_layers)
    return [
        name for name, child in backbone.named_children()
        if isinstance(child, nn.Sequential) and name != 'stem'
    ]


def stage_of(module_name: str, stages: list[str]) -> str:
    """``'layer2'`` for ``'layer2.0.bn1'``; ``'stem'`` outside the stages."""
    first = module_name.split('.')[0]
    return first if first in stages else 'stem'


def block_of(module_name: str, stages: list[str]) -> tuple[str, bool]:
    """The block that holds a module, and whether the module is held directly.

    Returns:
        ``(block name, trunk)``: for ``'layer1.0.relu'`` ``('layer1.0',
        True)``; for ``'layer1.0.se.relu'`` ``('layer1.0', False)``; for the
        stem's ``'relu'`` or ``'stem.2'`` ``('stem', True)``.
    """
    parts = module_name.split('.')
    if parts[0] in stages:
        block = '.'.join(parts[:2])
        return block, len(parts) == 3
    return 'stem', len(parts) == 1 or (len(parts) == 2 and parts[0] == 'stem')


def norm_layers(backbone: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """``(name, module)`` of every norm layer, the CE part of BNCE excluded."""
    yield from _modules_outside_ce(backbone, NORM_LAYER_TYPES)


def activation_modules(backbone: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """``(name, module)`` of every activation module."""
    yield from _modules_outside_ce(backbone, ACTIVATION_TYPES)


def check_readable(backbone: nn.Module) -> None:
    """Raise :class:`UnreadableModelError` unless the backbone has norm
    layers and activation modules."""
    kind = type(backbone).__name__
    if not any(True for _ in norm_layers(backbone)):
        raise UnreadableModelError(
            f'{kind} has no norm layer ('
            f'{", ".join(t.__name__ for t in NORM_LAYER_TYPES)}): '
            'the beta <= 0 measure needs BN-like layers with an affine bias. '
            'Is this the right config (a ResNet-like backbone)?')
    if not any(True for _ in activation_modules(backbone)):
        raise UnreadableModelError(
            f'{kind} has no activation module (nn.ReLU, ...): the inhibited-'
            'channel measure hooks activation modules, and activations '
            'computed with torch.nn.functional inside forward() cannot be '
            'hooked. Build the activations as modules (e.g. nn.ReLU).')


class ActivationCallCounter:
    """Numbers the calls of each activation module within one forward.

    Install with :meth:`attach`; the counters reset whenever the backbone's
    own forward starts, so call ``k`` of a module always means the same
    position in the network, however many images are run.
    """

    def __init__(self, backbone: nn.Module) -> None:
        self.backbone = backbone
        self.counts: dict[str, int] = {}

    def attach(self) -> torch.utils.hooks.RemovableHandle:
        return self.backbone.register_forward_pre_hook(
            lambda module, args: self.counts.clear())

    def next_index(self, module_name: str) -> int:
        index = self.counts.get(module_name, 0)
        self.counts[module_name] = index + 1
        return index


def trace_activation_calls(backbone: nn.Module,
                           example_input: Tensor) -> list[ActivationCall]:
    """Run the backbone once and describe every activation call.

    Args:
        backbone: in the mode to analyse (``eval()``); its parameters are not
            changed, and no gradient is computed (the autograd graph is only
            read).
        example_input: (1, 3, H, W), already preprocessed.

    Returns:
        The calls in execution order, with the norm layers feeding each.
    """
    stages = stage_names(backbone)
    output_owner: dict[object, str] = {}  # autograd node -> norm layer name
    stops: set[object] = set()  # nodes of activation outputs
    names = {module: name for name, module in backbone.named_modules()}
    calls: list[ActivationCall] = []
    counter = ActivationCallCounter(backbone)
    handles = [counter.attach()]

    def norm_output(module, args, output, name):
        for node in _nodes_of_output(output):
            output_owner[node] = name

    def ce_output(module, args, kwargs, output):
        # CE may fold the BN before it into its own map (BN never runs):
        # CE's output is then the BN's.
        preceding = kwargs.get('preceding_norm',
                               args[1] if len(args) > 1 else None)
        if isinstance(preceding, BatchNormFold):
            preceding = preceding.norm
        if preceding is not None and preceding in names:
            for node in _nodes_of_output(output):
                output_owner[node] = names[preceding]

    def activation_input(module, args, name):
        index = counter.next_index(name)
        block, trunk = block_of(name, stages)
        fed_by = _feeding_norms(args[0], output_owner, stops) if args else []
        calls.append(
            ActivationCall(key=f'{name}#{index}', module_name=name,
                           call_index=index, stage=stage_of(name, stages),
                           block=block, trunk=trunk, fed_by=fed_by))

    def activation_output(module, args, output):
        stops.update(_nodes_of_output(output))

    try:
        for name, module in norm_layers(backbone):
            handles.append(module.register_forward_hook(
                lambda m, a, o, name=name: norm_output(m, a, o, name)))
        for module in backbone.modules():
            if isinstance(module, ChannelEquilibrium):
                handles.append(module.register_forward_hook(
                    ce_output, with_kwargs=True))
        for name, module in activation_modules(backbone):
            handles.append(module.register_forward_pre_hook(
                lambda m, a, name=name: activation_input(m, a, name)))
            handles.append(module.register_forward_hook(activation_output))
        with torch.enable_grad():
            backbone(example_input.detach().clone().requires_grad_(True))
    finally:
        for handle in handles:
            handle.remove()
    return calls


def _modules_outside_ce(backbone: nn.Module,
                        types: tuple) -> Iterator[tuple[str, nn.Module]]:
    """Modules of ``types``, those inside a CE layer excluded (CE's IR MLP
    has a LayerNorm: an internal of CE, not a layer of the network)."""
    ce_prefixes = tuple(
        f'{name}.' for name, module in backbone.named_modules()
        if isinstance(module, ChannelEquilibrium))
    for name, module in backbone.named_modules():
        if isinstance(module, types) and not (ce_prefixes and
                                              name.startswith(ce_prefixes)):
            yield name, module


def _nodes_of_output(output) -> list[object]:
    """The autograd node of a module's output and, below it, the chain of
    view nodes down to the first node that computes something: an in-place
    operation on a view later replaces the view's node but keeps those."""
    if not isinstance(output, Tensor) or output.grad_fn is None:
        return []
    nodes = [output.grad_fn]
    node = output.grad_fn
    while type(node).__name__.startswith(_VIEW_NODE_PREFIXES):
        inputs = [n for n, _ in node.next_functions if n is not None]
        if len(inputs) != 1:
            break
        node = inputs[0]
        nodes.append(node)
    return nodes


def _feeding_norms(tensor, output_owner: dict, stops: set) -> list[str]:
    """Norm layers whose outputs reach ``tensor`` without a mixing layer."""
    if not isinstance(tensor, Tensor) or tensor.grad_fn is None:
        return []
    found: list[str] = []
    seen: set[object] = set()
    pending: list[Optional[object]] = [tensor.grad_fn]
    while pending:
        node = pending.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        owner = output_owner.get(node)
        if owner is not None:
            if owner not in found:
                found.append(owner)
            continue
        if node in stops or type(node).__name__.startswith(
                _MIXING_NODE_PREFIXES):
            continue
        pending.extend(n for n, _ in node.next_functions)
    return sorted(found)
