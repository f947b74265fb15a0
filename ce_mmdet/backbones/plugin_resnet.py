"""ResNet whose BasicBlocks accept plugins (MMDetection's refuse them), and
the base of this package's ResNets: block classes and per-stage block
arguments chosen by subclasses."""
from typing import Any, Dict, List, Optional

from mmdet.models.backbones.resnet import BasicBlock, Bottleneck, ResNet
from mmdet.registry import MODELS
from torch import Tensor, nn

from .residual_steps import ResidualSteps

BASIC_BLOCK_POSITIONS = ('after_conv1', 'after_conv2')


class PluginBasicBlock(ResidualSteps, BasicBlock):
    """MMDetection's BasicBlock with Bottleneck-style plugins.

    Positions: ``'after_conv1'`` (after conv1 -> bn1 -> ReLU, like a
    Bottleneck's) and ``'after_conv2'`` (after bn2, before the residual
    addition: the SE/GE slot of SE-ResNet-18/34, the counterpart of a
    Bottleneck's ``'after_conv3'``). Plugins get ``in_channels = planes``
    and are named as in a Bottleneck (``layerS.B.se``...). Without plugins
    the block is MMDetection's BasicBlock (its forward is the shared one
    of :class:`~ce_mmdet.backbones.residual_steps.ResidualSteps`).
    """

    num_convs = 2

    def __init__(self, *args, plugins: Optional[List[dict]] = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        plugins = plugins or []
        wrong = [p.get('position') for p in plugins
                 if p.get('position') not in BASIC_BLOCK_POSITIONS]
        if wrong:
            raise ValueError(
                f'BasicBlock plugin positions must be in '
                f'{BASIC_BLOCK_POSITIONS} (after_conv2 = after bn2, before '
                f'the addition; a Bottleneck\'s after_conv3), got {wrong}')
        self.with_plugins = bool(plugins)
        channels = self.norm2.num_features
        self.after_conv1_plugin_names = self._make_plugins(
            channels, plugins, 'after_conv1')
        self.after_conv2_plugin_names = self._make_plugins(
            channels, plugins, 'after_conv2')

    def _make_plugins(self, channels: int, plugins: List[dict],
                      position: str) -> List[str]:
        cfgs = [p['cfg'] for p in plugins if p['position'] == position]
        return Bottleneck.make_block_plugins(self, channels, cfgs)

    def forward_plugin(self, x: Tensor, plugin_names: List[str]) -> Tensor:
        for name in plugin_names:
            x = getattr(self, name)(x)
        return x


@MODELS.register_module()
class PluginResNet(ResNet):
    """MMDetection's ResNet whose BasicBlocks (ResNet-18/34) accept plugins.

    Same arguments and weights as :class:`~mmdet.models.backbones.ResNet`;
    ``plugins`` work for every depth. For ResNet-18/34 the positions are
    ``'after_conv1'`` and ``'after_conv2'`` (see :class:`PluginBasicBlock`);
    Bottleneck depths are MMDetection's ResNet unchanged. E.g. SE-ResNet-18::

        backbone=dict(type='PluginResNet', depth=18, plugins=[
            dict(cfg=dict(type='SE', ratio=16), position='after_conv2')])

    Subclasses swap block classes through :attr:`block_classes` and give
    the blocks of stage i arguments of their own through
    :meth:`stage_block_args`.
    """

    block_classes = {BasicBlock: PluginBasicBlock}

    def stage_block_args(self, stage: int) -> Dict[str, Any]:
        """Extra arguments of the blocks of stage ``stage`` (0-based)."""
        return {}

    def make_res_layer(self, **kwargs) -> nn.Module:
        # MMDetection's ResNet.__init__ calls make_res_layer once per stage,
        # in order and without the index, and appends the stage's name to
        # res_layers after each call: the index of the stage being built is
        # the number of stages built. (Passing it otherwise would mean
        # copying that __init__.) The planes check fails loudly should that
        # loop change.
        stage = len(self.res_layers)
        if kwargs['planes'] != self.base_channels * 2**stage:
            raise RuntimeError(
                f'{type(self).__name__}: stage {stage} built with '
                f'{kwargs["planes"]} planes, not base_channels * 2**{stage}: '
                'ResNet.__init__ no longer builds the stages in order.')
        kwargs['block'] = self.block_classes.get(kwargs['block'],
                                                 kwargs['block'])
        return super().make_res_layer(**kwargs, **self.stage_block_args(stage))

    def train(self, mode: bool = True) -> 'PluginResNet':
        super().train(mode)  # (MMDetection's ResNet.train returns None)
        return self
