"""Fig. 1(a), LN+CE: CE after every LayerNorm (``NormCE``)."""
_base_ = './_base_/slim_vgg_shapes10.py'

model = dict(
    backbone=dict(
        norm_cfg=dict(type='NormCE', norm_cfg=dict(type='GN', num_groups=1))))
