"""Fig. 1(b), CE+LeakyReLU: BN, CE, then LeakyReLU (slope 0.01)."""
_base_ = './_base_/slim_vgg_shapes10.py'

model = dict(
    backbone=dict(
        norm_cfg=dict(type='BNCE'), act_cfg=dict(type='LeakyReLU')))
