"""``mask_rcnn_ce_r101_fpn.py`` with MMDetection's 2x schedule.

The 2x schedule comes from ``mask_rcnn_ce_r50_fpn_2x.py``; the backbone is
CE-ResNet-101 as in the 1x config (the authors released no ImageNet
CE-ResNet-101: see ``mask_rcnn_ce_r101_fpn.py``).
"""
_base_ = './mask_rcnn_ce_r50_fpn_2x.py'

model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(checkpoint='checkpoints/ce_resnet101_mmdet.pth')))
