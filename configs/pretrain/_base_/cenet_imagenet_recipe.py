"""The CENet release's ImageNet recipe in MMPretrain, for MMDetection ResNets.

From the release's ``config_resnetv1ce50_step_moving_average.yaml`` and
``train_imagenet.py``: 100 epochs, SGD (momentum 0.9, weight decay 1e-4 on
every parameter), learning rate 0.1 for 256 images per iteration (8 GPUs x
32), x0.1 at epochs 30, 60 and 90 after 5 epochs of per-iteration linear
warm-up, label smoothing 0.1; RandomResizedCrop 224 + flip for training,
resize 256 + center crop 224 for validation. Data: MMPretrain's ImageNet
layout under ``data/imagenet`` (``train/<class>/...``, ``val/...`` with
``meta/val.txt``, see MMPretrain's dataset docs).

The backbone is MMDetection's ResNet (``mmdet.`` types, built from
MMDetection's registry; ``import ce_mmdet`` adds the CE-ResNets there), so a
checkpoint of this classifier initialises the detection backbone of the same
type and depth with ``init_cfg=dict(type='Pretrained', checkpoint=...,
prefix='backbone.')``. Other total batch sizes: ``--auto-scale-lr``.
"""
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs32.py',
    'mmpretrain::_base_/schedules/imagenet_bs256.py',
    'mmpretrain::_base_/default_runtime.py',
]

custom_imports = dict(imports=['ce_mmdet'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='mmdet.ResNet',
        depth=50,
        out_indices=(3, ),
        style='pytorch'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=2048,
        # 'original': target 0.9 + 0.1 / 1000, others 0.1 / 1000; the
        # release's 0.9 / (0.1 / 999) is the same to 4 decimals.
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1,
                  mode='original'),
        topk=(1, 5)))

# Warm-up from (almost) 0: MMEngine's LinearLR needs start_factor > 0.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=100,
         milestones=[30, 60, 90], gamma=0.1),
]
