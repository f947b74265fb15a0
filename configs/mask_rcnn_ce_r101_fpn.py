"""Mask R-CNN + FPN with a CE-ResNet-101 backbone, 1x schedule (Table 3).

The paper's CE-ResNet-101 has ImageNet top-1 79.0, but the authors published
only the CE-ResNet-50 checkpoint: this config needs an ImageNet CE-ResNet-101
of your own (e.g. trained with the authors' CENet code), converted with
``tools/model_converters/cenet2mmdet.py SRC checkpoints/ce_resnet101_mmdet.pth
--depth 101``. BN baseline with the same settings: ``mask_rcnn_r101_fpn.py``
(MMDetection's ``mask-rcnn_r101_fpn_1x_coco``).
"""
_base_ = './mask_rcnn_ce_r50_fpn.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/ce_resnet101_mmdet.pth')))
