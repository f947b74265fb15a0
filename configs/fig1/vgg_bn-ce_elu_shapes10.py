"""Fig. 1(b), CE+ELU: BN, CE, then ELU."""
_base_ = './_base_/slim_vgg_shapes10.py'

model = dict(
    backbone=dict(norm_cfg=dict(type='BNCE'), act_cfg=dict(type='ELU')))
