"""Fig. 1(b), LeakyReLU: BN followed by LeakyReLU (slope 0.01)."""
_base_ = './_base_/slim_vgg_shapes10.py'

model = dict(backbone=dict(act_cfg=dict(type='LeakyReLU')))
