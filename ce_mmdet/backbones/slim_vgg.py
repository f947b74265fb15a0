"""MMPretrain's VGG with stage widths of choice: the Fig. 1 classifiers."""
from typing import Optional, Sequence

from mmpretrain.models.backbones import VGG
from mmpretrain.models.backbones.vgg import make_vgg_layer
from mmpretrain.registry import MODELS
from torch import nn


@MODELS.register_module()
class SlimVGG(VGG):
    """MMPretrain's ``VGG`` (conv 3x3 -> norm -> activation, max pooling per
    stage; ``norm_cfg``, ``act_cfg``, ``norm_eval``, ``frozen_stages`` and
    ``out_indices`` as there) with the stage widths given by ``widths``
    instead of VGG's fixed 64, 128, 256, 512, 512.

    The paper's Fig. 1 measures inhibited channels on VGG networks on a
    CIFAR-scale task; VGG's own widths cost about 150 MMACs per 32x32 image
    (VGG-11), too much to train several networks on 2 CPU cores. Every
    layer here is a ``ConvModule``, so CE goes in through ``norm_cfg``
    (``'BNCE'`` after BN, ``'NormCE'`` after any other norm) and the
    activation through ``act_cfg``. Registered in MMPretrain's registry
    (``type='SlimVGG'`` in an ``mmpretrain`` scope config with
    ``custom_imports=dict(imports=['ce_mmdet'])``).

    Input (N, 3, H, W); outputs: the feature maps of the stages in
    ``out_indices`` (N, widths[i], H / 2**(i+1), W / 2**(i+1)). Classifier
    layers (``num_classes > 0``) are not supported: use a neck and a head.

    Args:
        depth: 11, 13, 16 or 19 (convolutions per stage as VGG's).
        widths: output channels of each stage (one per stage).
        num_stages: as MMPretrain's ``VGG``, and so are ``out_indices``,
            ``conv_cfg``, ``norm_cfg``, ``act_cfg``, ``dilations``,
            ``ceil_mode``, ``with_last_pool`` and ``**kwargs``.
    """

    def __init__(self,
                 depth: int,
                 widths: Sequence[int] = (32, 64, 128, 128, 128),
                 num_stages: int = 5,
                 dilations: Sequence[int] = (1, 1, 1, 1, 1),
                 out_indices: Optional[Sequence[int]] = None,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = None,
                 act_cfg: dict = dict(type='ReLU'),
                 ceil_mode: bool = False,
                 with_last_pool: bool = True,
                 **kwargs) -> None:
        if kwargs.get('num_classes', -1) > 0:
            raise ValueError(
                'SlimVGG has no classifier layers (num_classes > 0): use '
                'neck=dict(type="GlobalAveragePooling") and a LinearClsHead')
        if len(widths) != num_stages or min(widths) < 1:
            raise ValueError(f'widths must give {num_stages} positive stage '
                             f'widths (num_stages), got {tuple(widths)}')
        dilations = tuple(dilations)[:num_stages]
        super().__init__(depth, num_stages=num_stages, dilations=dilations,
                         out_indices=out_indices, conv_cfg=conv_cfg,
                         norm_cfg=norm_cfg, act_cfg=act_cfg,
                         ceil_mode=ceil_mode, with_last_pool=with_last_pool,
                         **kwargs)
        # The same layers and module indices as VGG's, at other widths.
        # VGG's __init__ has built its own widths first (about 0.2 s on a
        # CPU, freed here): the price of reusing its argument handling.
        layers: list[nn.Module] = []
        in_channels = 3
        for num_blocks, width, dilation in zip(self.stage_blocks, widths,
                                               dilations):
            layers += make_vgg_layer(
                in_channels, width, num_blocks, conv_cfg=conv_cfg,
                norm_cfg=norm_cfg, act_cfg=act_cfg, dilation=dilation,
                with_norm=norm_cfg is not None, ceil_mode=ceil_mode)
            in_channels = width
        if not with_last_pool:
            layers.pop(-1)
        self.features = nn.Sequential(*layers)
        self.widths = tuple(widths)
