"""Pretrain CE-ResNet-18 on the synthetic shapes classification set: the
first step of ``tools/run_demo.sh pretrain``. Everything but the backbone
type comes from ``resnet18_shapes-cls.py``; CE is placed as in the release
and in ``configs/shapes/mask_rcnn_ce_r18_fpn_shapes.py``, which the
checkpoint initialises (``prefix='backbone.'``).
"""
_base_ = './resnet18_shapes-cls.py'

# CE's defaults are the release's placement, as in the detection config.
model = dict(backbone=dict(type='mmdet.CEResNet'))
