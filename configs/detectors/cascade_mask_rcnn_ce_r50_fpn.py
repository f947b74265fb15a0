"""Cascade Mask R-CNN + FPN with a CE-ResNet-50 backbone, MMDetection's 1x.

MMDetection's ``cascade-mask-rcnn_r50_fpn_1x_coco`` (box 41.2 / mask 35.9)
with the backbone of ``../mask_rcnn_ce_r50_fpn.py``.
"""
_base_ = [
    'mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py',
    '../_base_/exact_resume.py'
]

custom_imports = dict(imports=['ce_mmdet'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        # CE placement, BN freezing and CE batch statistics: see
        # faster_rcnn_ce_r50_fpn.py.
        type='CEResNet',
        ce_eval=False,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/ce_resnet50_mmdet.pth')))
