# Mask R-CNN + FPN with a Network Deconvolution ResNet-18 on the synthetic
# shapes set, from scratch: every block convolution a FastDeconv with bias,
# no block BNs, a deconvolution stem with statistics frozen after 100
# iterations, shortcut BNs kept (the authors' ImageNet arrangement). The base
# config's norm_eval=False also leaves the deconvolutions on batch
# statistics. Only the backbone differs from the plain ResNet-18 config.
_base_ = './mask_rcnn_r18_fpn_shapes.py'

model = dict(backbone=dict(type='DeconvResNet'))
