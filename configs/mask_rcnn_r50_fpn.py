"""BN baseline: MMDetection's Mask R-CNN R-50-FPN 1x, unchanged.

The control for ``mask_rcnn_ce_r50_fpn.py``: torchvision's ImageNet ResNet-50
(top-1 76.1), BN frozen as in MMDetection (frozen_stages=1, norm_eval=True,
BN affine parameters trained), same data, schedule and evaluation.
MMDetection reports box 38.2 / mask 34.7 for it.
"""
_base_ = [
    'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
    './_base_/exact_resume.py'
]

custom_imports = dict(imports=['ce_mmdet'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='ResNet',
        depth=50,
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        init_cfg=dict(type='Pretrained',
                      checkpoint='torchvision://resnet50')))
