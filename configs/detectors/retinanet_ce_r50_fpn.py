"""RetinaNet + FPN with a CE-ResNet-50 backbone, MMDetection's 1x.

MMDetection's ``retinanet_r50_fpn_1x_coco`` (box 36.5; lr 0.01 for 16
images) with the backbone of ``../mask_rcnn_ce_r50_fpn.py``.
"""
_base_ = [
    'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
    '../_base_/exact_resume.py',
    '../_base_/ce_r50_backbone.py'
]

model = dict(backbone=_base_.pop('ce_r50_backbone'))
