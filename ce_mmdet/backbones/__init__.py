"""Backbones, registered in MMDetection's MODELS registry: CE-ResNet and the
ResNets of the comparison blocks; and, in MMPretrain's, the slim VGG of the
Fig. 1 classifiers."""
from .ce_resnet import CEBasicBlock, CEBottleneck, CEResNet
from .deconv_resnet import DeconvBasicBlock, DeconvBottleneck, DeconvResNet
from .plugin_resnet import PluginBasicBlock, PluginResNet
from .proportional_relu_resnet import (
    ProportionalReLUBasicBlock,
    ProportionalReLUBottleneck,
    ProportionalReLUResNet,
)
from .slim_vgg import SlimVGG

__all__ = [
    'CEBasicBlock', 'CEBottleneck', 'CEResNet', 'DeconvBasicBlock',
    'DeconvBottleneck', 'DeconvResNet', 'PluginBasicBlock', 'PluginResNet',
    'ProportionalReLUBasicBlock', 'ProportionalReLUBottleneck',
    'ProportionalReLUResNet', 'SlimVGG'
]
