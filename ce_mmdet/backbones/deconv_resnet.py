"""ResNet with Network Deconvolution, arranged as the authors' ImageNet one."""
from typing import Optional

from mmcv.cnn import build_conv_layer
from mmdet.models.backbones.resnet import BasicBlock, Bottleneck
from mmdet.registry import MODELS
from torch import nn

from ce_mmdet.layers import FastDeconv

from .plugin_resnet import PluginBasicBlock, PluginResNet
from .pretrained_checks import (
    check_pretrained_source,
    pretrained_checkpoint,
    require_loaded,
)

WEIGHTS_FIX = (
    'A Network Deconvolution ResNet has no block BNs and needs its own '
    'ImageNet training (none is published for ResNet-50): train DeconvResNet '
    'on ImageNet and point init_cfg.checkpoint at that checkpoint (its '
    'backbone keys, e.g. conv1.running_deconv), or set '
    'model.backbone.init_cfg=None to train from scratch.')


def _drop_norms_after_deconv(module: nn.Module, conv_norm_names) -> None:
    """Replace the norm after every FastDeconv by an identity: the
    deconvolution normalises its input and its bias takes the BN's shift."""
    for conv_name, norm_name in conv_norm_names:
        if isinstance(getattr(module, conv_name), FastDeconv):
            module.add_module(norm_name, nn.Identity())


class DeconvBasicBlock(PluginBasicBlock):
    """BasicBlock with FastDeconv convolutions and no BNs after them."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _drop_norms_after_deconv(self, [('conv1', self.norm1_name),
                                        ('conv2', self.norm2_name)])


class DeconvBottleneck(Bottleneck):
    """Bottleneck with FastDeconv convolutions and no BNs after them.

    (It keeps MMDetection's forward, not ``ResidualSteps``': with
    ``with_cp`` that one checkpoints reentrantly, and the recomputation
    updates FastDeconv's running statistics otherwise, so switching would
    change trained numbers.)

    With ``dcn`` the deformable conv2 cannot be whitened (its sampling
    positions are learned): it keeps its BN, conv1 and conv3 are FastDeconv.
    """

    def __init__(self, *args, conv_cfg: Optional[dict] = None,
                 dcn: Optional[dict] = None, **kwargs) -> None:
        # MMDetection's Bottleneck accepts a DCN only with conv_cfg=None.
        super().__init__(*args, conv_cfg=None if dcn else conv_cfg, dcn=dcn,
                         **kwargs)
        if dcn is not None:
            self.conv_cfg = conv_cfg
            self.conv1 = build_conv_layer(conv_cfg, self.inplanes, self.planes,
                                          1, stride=self.conv1_stride,
                                          bias=False)
            self.conv3 = build_conv_layer(conv_cfg, self.planes,
                                          self.planes * self.expansion, 1,
                                          bias=False)
        _drop_norms_after_deconv(self, [('conv1', self.norm1_name),
                                        ('conv2', self.norm2_name),
                                        ('conv3', self.norm3_name)])


@MODELS.register_module()
class DeconvResNet(PluginResNet):
    """ResNet with Network Deconvolution (Ye et al., ICLR 2020).

    Arranged as the authors' ImageNet ResNet: every block convolution is a
    :class:`~ce_mmdet.layers.FastDeconv` with a learned bias and the block
    BNs are removed; the stem is a 7x7 stride-2 FastDeconv (``n_iter=15``,
    statistics frozen after ``freeze_after`` training iterations) without
    BN; the projection shortcut is a 1x1 FastDeconv followed by its BN (kept,
    as the authors'). The authors' classifier-input whitening has no
    counterpart in a detection backbone. Weight names are ResNet's
    (``layerS.B.convK.weight`` plus ``.bias``, ``.running_mean``,
    ``.running_deconv``, ``.num_batches_tracked``; no ``bnK``).

    Every option of MMDetection's ResNet works except ``conv_cfg`` (the
    convolutions come from ``deconv_cfg``) and ``deep_stem``; ``plugins``
    work for every depth (BasicBlocks as in :class:`PluginResNet`); with
    ``dcn`` the deformable conv2 keeps its BN. Train/eval semantics, after
    ``model.train()``:

    * ``deconv_eval`` (default: same as ``norm_eval``): every FastDeconv uses
      and keeps its running statistics (no statistics move); its weights and
      biases still train. ``norm_eval=True`` therefore freezes all
      statistics of the network, as it does for a BN ResNet;
      ``deconv_eval=False`` with ``norm_eval=True`` whitens with batch
      statistics while the remaining BNs stay frozen.
    * ``frozen_stages=k`` (k >= 0): the stem and stages 1..k are frozen
      completely: parameters, BN and deconvolution statistics.

    Args:
        depth: 18, 34, 50, 101 or 152.
        deconv_cfg: conv config of the block and shortcut convolutions.
        stem_deconv_cfg: conv config of the stem convolution.
        deconv_eval: see above; None follows ``norm_eval``.
        **kwargs: MMDetection ResNet's arguments.
    """

    block_classes = {BasicBlock: DeconvBasicBlock,
                     Bottleneck: DeconvBottleneck}

    def __init__(self,
                 depth: int,
                 deconv_cfg: dict = dict(
                     type='FastDeconv', block=64, n_iter=5,
                     sampling_stride=3),
                 stem_deconv_cfg: dict = dict(
                     type='FastDeconv', n_iter=15, sampling_stride=3,
                     freeze_after=100),
                 deconv_eval: Optional[bool] = None,
                 **kwargs) -> None:
        if kwargs.get('conv_cfg') is not None:
            raise ValueError(
                'DeconvResNet builds its convolutions from deconv_cfg and '
                'stem_deconv_cfg; leave conv_cfg unset.')
        if kwargs.get('deep_stem'):
            raise ValueError('DeconvResNet: deep_stem is not supported (the '
                             'authors\' stem is one 7x7 deconvolution).')
        self.deconv_cfg = {**deconv_cfg, 'learnable_bias': True}
        self.stem_deconv_cfg = {**stem_deconv_cfg, 'learnable_bias': True}
        self.deconv_eval = (kwargs.get('norm_eval', True)
                            if deconv_eval is None else deconv_eval)
        super().__init__(depth, conv_cfg=self.deconv_cfg, **kwargs)

    # ------------------------------------------------------- construction
    def _make_stem_layer(self, in_channels: int, stem_channels: int) -> None:
        super()._make_stem_layer(in_channels, stem_channels)
        self.conv1 = build_conv_layer(self.stem_deconv_cfg, in_channels,
                                      stem_channels, kernel_size=7, stride=2,
                                      padding=3, bias=False)
        self.add_module(self.norm1_name, nn.Identity())

    def make_res_layer(self, **kwargs) -> nn.Module:
        # zero_init_residual: no last BN to zero; zero the last conv instead
        # (W' = W D = 0, b' = 0: the block starts as an identity).
        init_cfg = kwargs.get('init_cfg')
        if init_cfg and init_cfg.get('override', {}).get('name') in (
                'norm2', 'norm3'):
            last = init_cfg['override']['name'].replace('norm', 'conv')
            kwargs['init_cfg'] = {**init_cfg, 'override': dict(name=last)}
        return super().make_res_layer(**kwargs)

    # ------------------------------------------------------- train / eval
    def _freeze_stages(self) -> None:
        super()._freeze_stages()
        if self.frozen_stages >= 0:
            self.conv1.eval()  # ResNet only sets the stem's norm to eval

    def train(self, mode: bool = True) -> 'DeconvResNet':
        super().train(mode)
        if mode and self.deconv_eval:
            for module in self.modules():
                if isinstance(module, FastDeconv):
                    module.eval()
        return self

    # ----------------------------------------------------------- weights
    def init_weights(self) -> None:
        """Initialise as MMDetection's ResNet; a ``Pretrained`` checkpoint
        must be one of this network (with deconvolution statistics).

        Raises:
            ValueError: a model-zoo (plain ResNet) checkpoint, or one
                without the FastDeconv statistics.
            FileNotFoundError: a missing local checkpoint.
        """
        checkpoint = pretrained_checkpoint(self.init_cfg)
        if self.is_init or checkpoint is None:
            return super().init_weights()
        check_pretrained_source(self.init_cfg, type(self).__name__,
                                WEIGHTS_FIX)
        markers = {f'{name}.running_deconv': module.running_deconv
                   for name, module in self.named_modules()
                   if isinstance(module, FastDeconv)}
        with require_loaded(markers, checkpoint, type(self).__name__,
                            WEIGHTS_FIX):
            super().init_weights()
