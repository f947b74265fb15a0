"""ResNet whose BasicBlocks accept plugins (MMDetection's refuse them)."""
from typing import Callable, List, Optional

from mmdet.models.backbones.resnet import BasicBlock, Bottleneck, ResNet
from mmdet.registry import MODELS
from torch import Tensor, nn
from torch.utils import checkpoint as cp

BASIC_BLOCK_POSITIONS = ('after_conv1', 'after_conv2')


def residual_forward(block: nn.Module, inner_forward: Callable[[Tensor],
                                                               Tensor],
                     x: Tensor) -> Tensor:
    """``block.relu(inner_forward(x))``, checkpointed when ``block.with_cp``
    (the tail of MMDetection's block forwards)."""
    if block.with_cp and x.requires_grad:
        out = cp.checkpoint(inner_forward, x, use_reentrant=False)
    else:
        out = inner_forward(x)
    return block.relu(out)


class PluginBasicBlock(BasicBlock):
    """MMDetection's BasicBlock with Bottleneck-style plugins.

    Positions: ``'after_conv1'`` (after conv1 -> bn1 -> ReLU, like a
    Bottleneck's) and ``'after_conv2'`` (after bn2, before the residual
    addition: the SE/GE slot of SE-ResNet-18/34, the counterpart of a
    Bottleneck's ``'after_conv3'``). Plugins get ``in_channels = planes``
    and are named as in a Bottleneck (``layerS.B.se``...). Without plugins
    the block is MMDetection's BasicBlock.
    """

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

    def forward(self, x: Tensor) -> Tensor:

        def _inner_forward(x):
            out = self.relu(self.norm1(self.conv1(x)))
            out = self.forward_plugin(out, self.after_conv1_plugin_names)
            out = self.norm2(self.conv2(out))
            out = self.forward_plugin(out, self.after_conv2_plugin_names)
            identity = x if self.downsample is None else self.downsample(x)
            out += identity  # in place, as MMDetection's blocks
            return out

        return residual_forward(self, _inner_forward, x)


@MODELS.register_module()
class PluginResNet(ResNet):
    """MMDetection's ResNet whose BasicBlocks (ResNet-18/34) accept plugins.

    Same arguments and weights as :class:`~mmdet.models.backbones.ResNet`;
    ``plugins`` work for every depth. For ResNet-18/34 the positions are
    ``'after_conv1'`` and ``'after_conv2'`` (see :class:`PluginBasicBlock`);
    Bottleneck depths are MMDetection's ResNet unchanged. E.g. SE-ResNet-18::

        backbone=dict(type='PluginResNet', depth=18, plugins=[
            dict(cfg=dict(type='SE', ratio=16), position='after_conv2')])

    Subclasses swap block classes through :attr:`block_classes`.
    """

    block_classes = {BasicBlock: PluginBasicBlock}

    def make_res_layer(self, **kwargs) -> nn.Module:
        kwargs['block'] = self.block_classes.get(kwargs['block'],
                                                 kwargs['block'])
        return super().make_res_layer(**kwargs)

    def train(self, mode: bool = True) -> 'PluginResNet':
        super().train(mode)  # (MMDetection's ResNet.train returns None)
        return self
