"""Faster R-CNN + FPN with a CE-ResNet-50 backbone, MMDetection's 1x.

MMDetection's ``faster-rcnn_r50_fpn_1x_coco`` (box 37.4) with the backbone
of ``../mask_rcnn_ce_r50_fpn.py``: the authors' ImageNet CE-ResNet-50,
converted by ``tools/model_converters/cenet2mmdet.py``.
"""
_base_ = [
    'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
    '../_base_/exact_resume.py',
    '../_base_/ce_r50_backbone.py'
]

model = dict(backbone=_base_.pop('ce_r50_backbone'))
