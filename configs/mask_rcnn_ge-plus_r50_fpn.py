"""Mask R-CNN + FPN with GE-theta-plus ResNet-50, 1x.

Gather-Excite's best variant (ImageNet top-1 78.12 vs 76.70 for ResNet-50):
global depthwise gather -> BN -> ReLU -> 1x1 conv C -> C/16 -> ReLU -> 1x1
conv -> sigmoid, after the last BN of every Bottleneck, before the addition
(``after_conv3``). Everything else is ``mask_rcnn_r50_fpn.py``.

Size-agnostic gather: the map is average-pooled to ``gather_size`` squared
before the depthwise kernel (see ``ce_mmdet/layers/gather_excite.py``);
the sizes are the paper's stage sizes at 224 (28/14/7 for stages 2-4), so
the kernels have the paper's shapes.

ImageNet weights: torchvision's ResNet-50 (``torchvision://resnet50``) loads
every tensor but the GE modules, which start from their initialisation
(depthwise kernel = average pooling) and are learnt on COCO.

Frozen parts, accounted for: stage 1 is frozen (``frozen_stages=1``), so GE
sits in stages 2-4 only (a new module in stage 1 would stay random); with
``norm_eval=True`` the BN after each gather keeps its initial statistics
(mean 0, variance 1) and acts as a learnt per-channel affine map, which also
avoids batch statistics of one global value per image (2 images per GPU).
"""
_base_ = './mask_rcnn_r50_fpn.py'

model = dict(
    backbone=dict(plugins=[
        dict(
            cfg=dict(type='GEThetaPlus', gather_size=size, ratio=16),
            position='after_conv3',
            stages=stages) for size, stages in (
                (28, (False, True, False, False)),
                (14, (False, False, True, False)),
                (7, (False, False, False, True)))
    ]))
