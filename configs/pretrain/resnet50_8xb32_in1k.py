"""BN ResNet-50 on ImageNet with the CENet release's recipe (8 GPUs x 32).

Should reach: BN ResNet-50 in the release's code: 76.6 top-1 (93.0 top-5).
CE counterpart with the very same recipe: ``ce-resnet50_8xb32_in1k.py``.
"""
_base_ = './_base_/cenet_imagenet_recipe.py'

model = dict(
    backbone=dict(depth=50),)
