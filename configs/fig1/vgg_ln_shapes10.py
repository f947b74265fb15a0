"""Fig. 1(a), LN: LayerNorm over (C, H, W), i.e. GN with one group."""
_base_ = './_base_/slim_vgg_shapes10.py'

model = dict(backbone=dict(norm_cfg=dict(type='GN', num_groups=1)))
