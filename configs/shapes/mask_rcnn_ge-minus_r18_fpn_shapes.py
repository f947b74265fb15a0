# Mask R-CNN + FPN with GE-theta-minus (global, no parameters) ResNet-18 on
# the synthetic shapes set: x * sigmoid(mean_{H,W} x) after bn2 of every
# BasicBlock, before the addition, in every stage. Only the backbone differs
# from the plain ResNet-18 config.
_base_ = './mask_rcnn_r18_fpn_shapes.py'

model = dict(
    backbone=dict(
        type='PluginResNet',
        plugins=[dict(cfg=dict(type='GEThetaMinus', extent=None),
                      position='after_conv2')]))
