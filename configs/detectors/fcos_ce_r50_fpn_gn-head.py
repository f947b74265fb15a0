"""FCOS (GN head) + FPN with a CE-ResNet-50 backbone, MMDetection's 1x.

MMDetection's only FCOS R-50 1x config, ``fcos_r50-caffe_fpn_gn-head_1x_coco``
(box 36.6), uses a caffe-style ResNet-50 (Detectron weights, BGR input, mean
subtraction only, BN affine frozen). The CE-ResNet-50 is a pytorch-style
network trained on torchvision-normalised RGB images, so its input
normalisation, style and BN settings are those of MMDetection's pytorch-style
detectors (e.g. ``retinanet_r50_fpn_1x_coco``). Head, losses and schedule
(lr 0.01, constant warm-up, gradient clipping) are FCOS's. Because of this
backbone switch the caffe baseline is only indicative: a BN control needs
the same changes with ``type='ResNet'`` and ``torchvision://resnet50``.
"""
_base_ = [
    'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py',
    '../_base_/exact_resume.py'
]

custom_imports = dict(imports=['ce_mmdet'], allow_failed_imports=False)

model = dict(
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(
        # CE placement and CE batch statistics: see
        # ../_base_/ce_r50_backbone.py.
        type='CEResNet',
        style='pytorch',
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        ce_eval=False,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/ce_resnet50_mmdet.pth')))
