"""CE backbones, registered in MMDetection's MODELS registry."""
from .ce_resnet import CEBasicBlock, CEBottleneck, CEResNet

__all__ = ['CEBasicBlock', 'CEBottleneck', 'CEResNet']
