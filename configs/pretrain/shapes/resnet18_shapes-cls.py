"""Pretrain a plain ResNet-18 on the synthetic shapes classification set
(``tools/generate_shapes_classification_set.py``): the first step of
``tools/run_demo.sh pretrain plain``, sized for 2 CPU cores.

The ImageNet recipe of ``configs/pretrain/`` (MMPretrain's ``ImageNet``
dataset and pipeline, ``ImageClassifier``, label smoothing 0.1, linear
warm-up, then a step) scaled down to 64x64 images of 4 classes and 8 epochs,
with AdamW instead of SGD (see the schedule). The backbone is the detection
demo's (``configs/shapes/mask_rcnn_r18_fpn_shapes.py``: BN with batch
statistics, nothing frozen), so its checkpoint initialises that detector
with ``prefix='backbone.'``. ``ce-resnet18_shapes-cls.py`` only swaps in
CE-ResNet-18.
"""
_base_ = '../_base_/cenet_imagenet_recipe.py'

# ----------------------------------------------------------------- data
data_root = 'data/shapes_cls/'
image_size = 64
classes = ('circle', 'square', 'star', 'triangle')  # sorted folder names
data_preprocessor = dict(num_classes=len(classes))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    # Crops keep most of the one object of an image.
    dict(type='RandomResizedCrop', scale=image_size,
         crop_ratio_range=(0.5, 1.0)),
    # Shapes have no canonical orientation: both flips are free.
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    num_workers=2,
    dataset=dict(
        data_root=data_root,
        metainfo=dict(classes=classes),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=50,
    num_workers=2,
    dataset=dict(
        data_root=data_root,
        metainfo=dict(classes=classes),
        pipeline=test_pipeline))
val_evaluator = dict(topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

# ---------------------------------------------------------------- model
# The detection demo's backbone: BN with batch statistics, nothing frozen.
model = dict(
    backbone=dict(
        depth=18,
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False),
    head=dict(num_classes=len(classes), in_channels=512, topk=(1, )))

# ------------------------------------------------------------- schedule
# AdamW, as the shapes detector. Telling shapes apart on these textures is
# slow to learn from scratch: SGD lr 0.1 (the ImageNet recipe's) stayed at
# chance (loss ln 4) for 375 iterations, AdamW lr 1e-3 for 200; lr 3e-4-5e-4
# left it after about 180 iterations. CE-ResNet-18, seed 0, with this
# schedule: val top-1 30.0 / 33.8 / 49.8 / 62.5 after epochs 2 / 4 / 6 / 8.
max_epochs = 8  # 125 iterations of 32 images each
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=5e-4, weight_decay=0.05),
    clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=max_epochs,
         milestones=[6], gamma=0.1),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=2)
auto_scale_lr = dict(base_batch_size=32)

# -------------------------------------------------------------- runtime
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=25),
    checkpoint=dict(type='CheckpointHook', interval=max_epochs,
                    max_keep_ckpts=1))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
custom_hooks = [dict(type='mmdet.TrainingDurationHook')]
