# Mask R-CNN + FPN with SE-ResNet-18 on the synthetic shapes set. Everything
# (data, heads, schedule, from scratch) comes from the plain ResNet-18
# config; only the backbone changes: SE (ratio 16) after bn2 of every
# BasicBlock, before the addition, in every stage. MMDetection's BasicBlock
# takes no plugins: PluginResNet is its ResNet with BasicBlock plugins.
_base_ = './mask_rcnn_r18_fpn_shapes.py'

model = dict(
    backbone=dict(
        type='PluginResNet',
        plugins=[dict(cfg=dict(type='SE', ratio=16),
                      position='after_conv2')]))
