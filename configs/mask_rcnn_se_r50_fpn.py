"""Mask R-CNN + FPN with SE-ResNet-50 (Squeeze-and-Excitation), 1x.

The CE paper's own comparison (its Tables 1-2): SE after the last BN of every
Bottleneck, before the residual addition (``after_conv3``), ratio 16.
Everything else is ``mask_rcnn_r50_fpn.py`` (MMDetection's
``mask-rcnn_r50_fpn_1x_coco``, box 38.2 / mask 34.7), so the two configs
differ by the SE modules only.

ImageNet weights: torchvision's ResNet-50 (``torchvision://resnet50``) loads
every tensor but the SE modules (MMEngine lists them as missing keys), which
start from their initialisation and are learnt on COCO. An ImageNet-trained
SE-ResNet-50 (paper: top-1 error 23.29 vs 24.80) is not downloadable in
MMDetection's naming; with one, set ``model.backbone.init_cfg.checkpoint``.

Placement: stages 2-4 only. MMDetection's fine-tuning freezes stage 1
(``frozen_stages=1``), which would keep a new SE there at its random initial
value; ``norm_eval=True`` is harmless here (SE has no BN).
"""
_base_ = './mask_rcnn_r50_fpn.py'

model = dict(
    backbone=dict(plugins=[
        dict(
            cfg=dict(type='SE', ratio=16),
            position='after_conv3',
            stages=(False, True, True, True))
    ]))
