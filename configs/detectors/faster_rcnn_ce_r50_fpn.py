"""Faster R-CNN + FPN with a CE-ResNet-50 backbone, MMDetection's 1x.

MMDetection's ``faster-rcnn_r50_fpn_1x_coco`` (box 37.4) with the backbone
of ``../mask_rcnn_ce_r50_fpn.py``: the authors' ImageNet CE-ResNet-50,
converted by ``tools/model_converters/cenet2mmdet.py``.
"""
_base_ = [
    'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
    '../_base_/exact_resume.py'
]

custom_imports = dict(imports=['ce_mmdet'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        # CEResNet's defaults place CE as in the release (stem + stages
        # 1-3); BN stays frozen as in the base (frozen_stages=1,
        # norm_eval=True), CE uses batch statistics (ce_eval=False).
        type='CEResNet',
        ce_eval=False,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/ce_resnet50_mmdet.pth')))
