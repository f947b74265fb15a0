"""CE-ResNet-18 on ImageNet with the CENet release's recipe (8 GPUs x 32).

Should reach: no reference number (the paper and the release report
ResNet-50 and -101 only).
CE as in the release (``mmdet.CEResNet`` defaults): after the stem BN
(one group of 64 channels) and the last BN of every block of stages 1-3
(groups of 16). The checkpoint initialises the CE-ResNet-18 of a detector
(``docs/en/user_guides/pretraining.md``).
"""
_base_ = './resnet18_8xb32_in1k.py'

model = dict(backbone=dict(type='mmdet.CEResNet'))
