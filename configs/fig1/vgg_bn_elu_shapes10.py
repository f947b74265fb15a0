"""Fig. 1(b), ELU: BN followed by ELU."""
_base_ = './_base_/slim_vgg_shapes10.py'

model = dict(backbone=dict(act_cfg=dict(type='ELU')))
