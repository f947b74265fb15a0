"""Mask R-CNN + FPN with a CE-ResNet-101 backbone, 1x schedule (Table 3).

The paper's CE-ResNet-101 has ImageNet top-1 79.0, but the authors published
only the CE-ResNet-50 checkpoint: pretrain one with MMPretrain, then start
from its checkpoint (``docs/en/user_guides/pretraining.md``)::

    bash tools/pretrain/dist_train.sh \\
        configs/pretrain/ce-resnet101_8xb32_in1k.py 8
    bash tools/dist_train.sh configs/mask_rcnn_ce_r101_fpn.py 8 \\
        --cfg-options model.backbone.init_cfg.prefix=backbone. \\
        model.backbone.init_cfg.checkpoint=work_dirs/ce-resnet101_8xb32_in1k/epoch_100.pth

(A CE-ResNet-101 trained with the authors' CENet code instead: convert it
with ``tools/model_converters/cenet2mmdet.py SRC
checkpoints/ce_resnet101_mmdet.pth --depth 101``.) BN baseline with the same
settings: ``mask_rcnn_r101_fpn.py`` (MMDetection's
``mask-rcnn_r101_fpn_1x_coco``).
"""
_base_ = './mask_rcnn_ce_r50_fpn.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/ce_resnet101_mmdet.pth')))
