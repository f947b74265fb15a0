"""Mask R-CNN + FPN with GE-theta-minus (global) ResNet-50, 1x.

Gather-Excite without parameters: ``x * sigmoid(mean_{H,W} x)`` after the
last BN of every Bottleneck, before the addition (``after_conv3``), in every
stage (no parameters to freeze: stage 1 may stay frozen). The paper's best
parameter-free variant (ImageNet top-1 77.86 vs 76.70 for ResNet-50).
Everything else is ``mask_rcnn_r50_fpn.py``.

ImageNet weights: torchvision's ResNet-50 (``torchvision://resnet50``) holds
every tensor of this network (GE-theta-minus has none), but it was trained
without the gates; an ImageNet-trained GE-theta-minus ResNet-50 would match
the paper's setting (set ``model.backbone.init_cfg.checkpoint``).
"""
_base_ = './mask_rcnn_r50_fpn.py'

model = dict(
    backbone=dict(plugins=[
        dict(cfg=dict(type='GEThetaMinus', extent=None),
             position='after_conv3')
    ]))
