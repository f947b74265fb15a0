"""CE-ResNet-101 on ImageNet with the CENet release's recipe (8 GPUs x 32).

Should reach: the paper's 79.0 top-1 (no released checkpoint).
CE as in the release (``mmdet.CEResNet`` defaults): after the stem BN
(one group of 64 channels) and the last BN of every block of stages 1-3
(groups of 16). The checkpoint initialises the CE-ResNet-101 of a detector
(``docs/en/user_guides/pretraining.md``).
"""
_base_ = './resnet101_8xb32_in1k.py'

model = dict(backbone=dict(type='mmdet.CEResNet'))
