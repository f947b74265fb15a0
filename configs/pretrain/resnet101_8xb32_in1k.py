"""BN ResNet-101 on ImageNet with the CENet release's recipe (8 GPUs x 32).

Should reach: no BN ResNet-101 number in the paper or the release.
CE counterpart with the very same recipe: ``ce-resnet101_8xb32_in1k.py``.
"""
_base_ = './_base_/cenet_imagenet_recipe.py'

model = dict(
    backbone=dict(depth=101),)
