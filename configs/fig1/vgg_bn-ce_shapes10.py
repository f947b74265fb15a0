"""Fig. 1(a), BN+CE: CE after every BN, before the ReLU (``BNCE``)."""
_base_ = './_base_/slim_vgg_shapes10.py'

model = dict(backbone=dict(norm_cfg=dict(type='BNCE')))
