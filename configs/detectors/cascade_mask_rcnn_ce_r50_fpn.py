"""Cascade Mask R-CNN + FPN with a CE-ResNet-50 backbone, MMDetection's 1x.

MMDetection's ``cascade-mask-rcnn_r50_fpn_1x_coco`` (box 41.2 / mask 35.9)
with the backbone of ``../mask_rcnn_ce_r50_fpn.py``.
"""
_base_ = [
    'mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py',
    '../_base_/exact_resume.py',
    '../_base_/ce_r50_backbone.py'
]

model = dict(backbone=_base_.pop('ce_r50_backbone'))
