# Mask R-CNN + FPN with GE-theta-plus ResNet-18 on the synthetic shapes set:
# global depthwise gather -> BN -> ReLU -> 1x1 conv C -> C/16 -> ReLU -> 1x1
# conv -> sigmoid after bn2 of every BasicBlock, before the addition, in
# every stage. The 160x160 images give stage maps of 40/20/10/5: with those
# gather sizes the adaptive pooling is the identity and the gather is the
# paper's whole-map depthwise kernel. Only the backbone differs from the
# plain ResNet-18 config (BN in training mode, batches of 8).
_base_ = './mask_rcnn_r18_fpn_shapes.py'

model = dict(
    backbone=dict(
        type='PluginResNet',
        plugins=[
            dict(
                cfg=dict(type='GEThetaPlus', gather_size=size, ratio=16),
                position='after_conv2',
                stages=tuple(stage == i for i in range(4)))
            for stage, size in enumerate((40, 20, 10, 5))
        ]))
