"""BN ResNet-34 on ImageNet with the CENet release's recipe (8 GPUs x 32).

Should reach: no reference number (the paper and the release report
ResNet-50 and -101 only).
CE counterpart with the very same recipe: ``ce-resnet34_8xb32_in1k.py``.
"""
_base_ = './_base_/cenet_imagenet_recipe.py'

model = dict(
    backbone=dict(depth=34),
    head=dict(in_channels=512))
