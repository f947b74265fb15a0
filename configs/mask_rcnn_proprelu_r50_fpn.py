"""Mask R-CNN + FPN with a proportional-ReLU ResNet-50, 1x.

"Rethink ReLU": fewer ReLUs than convolutions. Our design (the paper's
details are not published with it): every Bottleneck drops the ReLU after
bn1 and keeps the one after bn2 and after the addition, 3 convolutions : 2
ReLUs (``kept_relus='proportional'``). Everything else is
``mask_rcnn_r50_fpn.py``.

ImageNet weights: removing ReLUs changes the function every weight was
trained for, so torchvision's ResNet-50 (same tensor names and shapes!)
does not fit; the network needs its own ImageNet training. Train
ProportionalReLUResNet-50 on ImageNet and save its backbone weights
(MMDetection names, with the ``kept_relus_record`` buffer) to
``checkpoints/proprelu_resnet50_imagenet.pth``. Training stops at weight
initialisation with an error naming this fix when the file is missing, when
``init_cfg`` points to plain ResNet weights, or to another ReLU pattern.
"""
_base_ = './mask_rcnn_r50_fpn.py'

model = dict(
    backbone=dict(
        type='ProportionalReLUResNet',
        kept_relus='proportional',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/proprelu_resnet50_imagenet.pth')))
