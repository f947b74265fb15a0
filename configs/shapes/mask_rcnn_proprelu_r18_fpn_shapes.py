# Mask R-CNN + FPN with a proportional-ReLU ResNet-18 on the synthetic shapes
# set, from scratch: every BasicBlock drops the ReLU after bn1 (2
# convolutions : 1 ReLU, our design for "Rethink ReLU"). Only the backbone
# differs from the plain ResNet-18 config.
_base_ = './mask_rcnn_r18_fpn_shapes.py'

model = dict(
    backbone=dict(type='ProportionalReLUResNet', kept_relus='proportional'))
