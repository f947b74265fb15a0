"""BN baseline: MMDetection's Mask R-CNN R-101-FPN 1x (box 40.0 / mask 36.1).

The control for ``mask_rcnn_ce_r101_fpn.py``: torchvision's ResNet-101, the
settings of ``mask_rcnn_r50_fpn.py``.
"""
_base_ = './mask_rcnn_r50_fpn.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(type='Pretrained',
                      checkpoint='torchvision://resnet101')))
