"""CE-ResNet: MMDetection's ResNet with Channel Equilibrium blocks."""
from typing import Any, Callable, Dict, List, Optional, Sequence

from mmdet.models.backbones.resnet import BasicBlock, Bottleneck
from mmdet.registry import MODELS
from mmengine.logging import MMLogger
from torch import Tensor, nn
from torch.nn.modules import module as module_hooks

from ce_mmdet.layers import BatchNormFold, ChannelEquilibrium
from ce_mmdet.layers.grouped_map import graph_capture_in_progress

from .plugin_resnet import PluginBasicBlock, PluginResNet
from .pretrained_checks import (
    check_ce_backbone_checkpoint,
    check_local_checkpoint_exists,
    pretrained_checkpoint,
    pretrained_prefix,
)
from .residual_steps import StepsBottleneck


def conv_norm_ce(conv: nn.Module, norm: nn.Module,
                 ce: Optional[ChannelEquilibrium], x: Tensor) -> Tensor:
    """``ce(norm(conv(x)))``, or ``norm(conv(x))`` when ``ce`` is None.

    A plain BN (frozen or training) is folded into CE's map (one pass for
    both, and no BN backward of its own). CE's float32 statistics then need
    the convolution's output shifted by the BN's running mean (see
    :mod:`ce_mmdet.layers.batch_norm_folding`); a plain bias-free
    convolution subtracts it as its bias, at no cost. (Otherwise CE shifts
    in a pass of its own: convolutions of other types, convolutions with
    hooks, which must see the module called, and graph capture, where the
    module structure must stay visible.)
    """
    if ce is None:
        return norm(conv(x))
    fold = ce.fold_for(norm)
    if fold is None:
        return ce(norm(conv(x)))
    if _can_shift_as_bias(conv):
        shift = norm.running_mean.to(conv.weight.dtype)
        shifted = conv._conv_forward(x, conv.weight, -shift)
        return ce(shifted,
                  preceding_norm=BatchNormFold(norm, input_is_shifted=True))
    return ce(conv(x), preceding_norm=fold)


def _can_shift_as_bias(conv: nn.Module) -> bool:
    """Whether ``conv`` may run as ``F.conv2d`` with a bias of our own."""
    hooks = (conv._forward_hooks, conv._forward_pre_hooks,
             module_hooks._global_forward_hooks,
             module_hooks._global_forward_pre_hooks)
    return (type(conv) is nn.Conv2d and conv.bias is None
            and not any(hooks) and not graph_capture_in_progress())


def _build_ce(ce_cfg: Optional[dict], channels: int) -> Optional[nn.Module]:
    if ce_cfg is None:
        return None
    return MODELS.build({**ce_cfg, 'in_channels': channels})


class _CEAfterLastNorm:
    """Mixin for a :class:`~ce_mmdet.backbones.residual_steps.
    ResidualSteps` block: ``self.ce`` (None: no CE) after the last norm,
    fused with it and its convolution (see :func:`conv_norm_ce`)."""

    ce: Optional[nn.Module]

    def last_conv_norm(self, x: Tensor) -> Tensor:
        conv, norm = self.conv_and_norm(self.num_convs)
        return conv_norm_ce(conv, norm, self.ce, x)


class CEBasicBlock(_CEAfterLastNorm, PluginBasicBlock):
    """MMDetection's BasicBlock with CE after ``bn2``, before any
    ``after_conv2`` plugin (e.g. SE) and the residual addition."""

    def __init__(self, *args, ce_cfg: Optional[dict] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.ce = _build_ce(ce_cfg, self.norm2.num_features)


class CEBottleneck(_CEAfterLastNorm, StepsBottleneck):
    """MMDetection's Bottleneck with CE after ``bn3`` (= ``after_conv3``),
    before any other ``after_conv3`` plugin and the residual addition."""

    def __init__(self, *args, ce_cfg: Optional[dict] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.ce = _build_ce(ce_cfg, self.planes * self.expansion)


@MODELS.register_module()
class CEResNet(PluginResNet):
    """ResNet with Channel Equilibrium, as in the authors' release.

    Every option of MMDetection's :class:`~mmdet.models.backbones.ResNet`
    works unchanged (``out_indices``, ``frozen_stages``, ``norm_eval``,
    ``style``, ``dcn``/``stage_with_dcn``, ``plugins``, ``with_cp``,
    ``deep_stem``, ``avg_down``, ``init_cfg``, ``zero_init_residual``;
    ``plugins`` also for BasicBlocks, as in :class:`PluginResNet`). CE is
    placed as in the release: after the stem BN (one group of 64 channels),
    and after the last BN of every block (``bn3`` of a Bottleneck, ``bn2`` of
    a BasicBlock, i.e. before the residual addition) in the stages selected
    by ``stage_with_ce`` (stages 1-3 by default, none in stage 4). Weight
    names: ``stem_ce.*`` and ``layerS.B.ce.*``.

    Train/eval semantics, after ``model.train()``:

    * ``norm_eval=True`` puts the BN layers in eval mode, as in MMDetection
      (their affine parameters still train unless frozen); CE is unaffected.
    * ``ce_eval=False`` (default): CE layers use batch statistics in training
      and update their running statistics (what the paper's detection
      experiments need); ``ce_eval=True`` makes them use the running
      statistics (their gate and MLP still train).
    * ``frozen_stages=k`` (k >= 0) freezes the stem with its CE and stages
      1..k completely: parameters, BN and CE statistics.

    A BN in eval mode followed by CE is computed as one fused map (see
    :meth:`ChannelEquilibrium.forward`).

    Args:
        depth: 18, 34, 50, 101 or 152.
        stage_with_ce: per stage, whether its blocks get CE.
        ce_cfg: config of the block CE layers (``in_channels`` is filled in);
            ``dict(type='SyncCE', ...)`` synchronises them across GPUs.
        stem_ce_cfg: config of the stem CE layer, None for no stem CE.
        ce_eval: see above.
        **kwargs: MMDetection ResNet's arguments.
    """

    block_classes = {BasicBlock: CEBasicBlock, Bottleneck: CEBottleneck}

    def __init__(self,
                 depth: int,
                 stage_with_ce: Sequence[bool] = (True, True, True, False),
                 ce_cfg: Optional[dict] = dict(type='CE', group_size=16),
                 stem_ce_cfg: Optional[dict] = dict(type='CE', group_size=64),
                 ce_eval: bool = False,
                 **kwargs) -> None:
        num_stages = kwargs.get('num_stages', 4)
        if len(stage_with_ce) != num_stages:
            raise ValueError(
                f'stage_with_ce needs one flag per stage ({num_stages}), got '
                f'{tuple(stage_with_ce)}')
        self.stage_with_ce = tuple(stage_with_ce)
        self.ce_cfg = ce_cfg
        self.stem_ce_cfg = stem_ce_cfg
        self.ce_eval = ce_eval
        super().__init__(depth, **kwargs)
        for name, module in self.named_modules():
            if isinstance(module, ChannelEquilibrium):
                module.layer_name = f'{type(self).__name__}.{name}'

    # ------------------------------------------------------- construction
    def _make_stem_layer(self, in_channels: int, stem_channels: int) -> None:
        super()._make_stem_layer(in_channels, stem_channels)
        self.stem_ce = _build_ce(self.stem_ce_cfg, stem_channels)

    def stage_block_args(self, stage: int) -> Dict[str, Any]:
        return {'ce_cfg': self.ce_cfg if self.stage_with_ce[stage] else None}

    # ------------------------------------------------------------ forward
    def _stem_forward(self, x: Tensor) -> Tensor:
        if self.deep_stem:
            *convs, norm, relu = self.stem
        else:
            convs, norm, relu = [self.conv1], self.norm1, self.relu
        *first_convs, last_conv = convs
        for layer in first_convs:
            x = layer(x)
        return relu(conv_norm_ce(last_conv, norm, self.stem_ce, x))

    def forward(self, x: Tensor) -> tuple:
        x = self.maxpool(self._stem_forward(x))
        outs = []
        for i, layer_name in enumerate(self.res_layers):
            x = getattr(self, layer_name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    # ------------------------------------------------------- train / eval
    def _freeze_stages(self) -> None:
        super()._freeze_stages()
        if self.frozen_stages >= 0 and self.stem_ce is not None:
            self.stem_ce.eval()
            for param in self.stem_ce.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'CEResNet':
        super().train(mode)
        if mode and self.ce_eval:
            for module in self.modules():
                if isinstance(module, ChannelEquilibrium):
                    module.eval()
        return self

    # ----------------------------------------------------------- weights
    def init_weights(self) -> None:
        """Initialise as MMDetection's ResNet, after checking that a
        ``Pretrained`` checkpoint fits this network.

        A CE-ResNet checkpoint of this depth and configuration loads
        completely; an MMPretrain classifier's needs
        ``prefix='backbone.'``. A plain ResNet's without ``prefix`` (e.g.
        ``torchvision://resnet50``) initialises everything but CE, whose
        tensors are then listed in one log line. Anything else is refused
        (see :func:`~ce_mmdet.backbones.pretrained_checks.
        check_ce_backbone_checkpoint`).

        Raises:
            FileNotFoundError: a ``Pretrained`` local checkpoint that does
                not exist (the message says how to make the CE-ResNet one).
            ValueError: a checkpoint of another depth or architecture, an
                incomplete CE checkpoint, or a plain ResNet classifier's or
                detector's backbone; nothing is loaded.
        """
        new_ce: List[str] = []
        checkpoint = pretrained_checkpoint(self.init_cfg)
        if not self.is_init and isinstance(checkpoint, str):
            network = f'{type(self).__name__}-{self.depth}'
            check_local_checkpoint_exists(self.init_cfg, network,
                                          _how_to_make(checkpoint))
            new_ce = check_ce_backbone_checkpoint(
                self, checkpoint, pretrained_prefix(self.init_cfg),
                is_ce_key=_is_ce_key, new_by_design=self._new_by_design(),
                network=network)
        super().init_weights()
        if new_ce:
            MMLogger.get_current_instance().info(
                f'{type(self).__name__}: {checkpoint} is a plain ResNet; '
                f'this network\'s {len(new_ce)} CE tensors keep their initial '
                f'values (intentionally new): {", ".join(new_ce)}')

    def _new_by_design(self) -> Callable[[str], bool]:
        """Whether a tensor may be missing from a ResNet checkpoint: those of
        block plugins (e.g. SE) and DCN offsets, which MMDetection
        initialises itself."""
        plugin_prefixes = tuple(
            f'{name}.{plugin}.' for name, module in self.named_modules()
            for position in ('after_conv1', 'after_conv2', 'after_conv3')
            for plugin in getattr(module, f'{position}_plugin_names', ()))
        return lambda key: ('.conv_offset.' in key
                            or key.startswith(plugin_prefixes))


def _how_to_make(checkpoint: str) -> str:
    """The fix named when a CE-ResNet's local checkpoint is missing."""
    return ('For a CE-ResNet, download the authors\' ImageNet CE-ResNet-50 '
            '(their CENet repository\'s model zoo; see '
            'docs/en/user_guides/coco.md) and convert it '
            'with `python tools/model_converters/cenet2mmdet.py '
            f'<CENet .pth or .pth.tar> {checkpoint}` (the release holds '
            'CE-ResNet-50 only; other depths need an ImageNet CE-ResNet of '
            'your own), or point the config at the converted file with '
            '`--cfg-options model.backbone.init_cfg.checkpoint=<path>` (or '
            '`model.backbone.init_cfg=None` to start from random weights, '
            'e.g. when the whole detector is loaded afterwards with '
            '`load_from`/`--resume`).')


def _is_ce_key(key: str) -> bool:
    return key.startswith('stem_ce.') or '.ce.' in key
