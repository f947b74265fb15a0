"""Pretrain CE-ResNet-18 on the synthetic shapes classification set: the
first step of ``tools/run_demo.sh pretrain``. Everything but the backbone
type comes from ``resnet18_shapes-cls.py``; CE is placed as in the release
and in ``configs/shapes/mask_rcnn_ce_r18_fpn_shapes.py``, which the
checkpoint initialises (``prefix='backbone.'``).
"""
_base_ = './resnet18_shapes-cls.py'

model = dict(
    backbone=dict(
        type='mmdet.CEResNet',
        stage_with_ce=(True, True, True, False),
        ce_cfg=dict(type='CE', group_size=16),
        stem_ce_cfg=dict(type='CE', group_size=64),
        ce_eval=False))
