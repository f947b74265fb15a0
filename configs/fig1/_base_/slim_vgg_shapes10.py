"""The Fig. 1 classifiers: a slim VGG-11 with BN and ReLU on the CIFAR-scale
shapes set (10 classes, 32x32; ``tools/generate_shapes_classification_set.py
--set cifar``), in MMPretrain. The configs of ``configs/fig1/`` change only
the norm (``BNCE``: BN+CE, ``GN`` with one group: LayerNorm over C, H, W,
``NormCE``: LN+CE) and the activation (ELU, LeakyReLU).

The schedule: Adam with L2 weight decay (coupled, on every parameter, BN's
included), the setting Mehta et al. (CVPR 2019) found to drive BN+ReLU
filters to zero, at a learning rate high enough for it to happen within 6
epochs of 313 iterations (64 images each), low enough for every network to
train. Found by measurement (docs/en/user_guides/paper_evidence.md, "Fig. 1 on
classifiers").
"""
_base_ = ['mmpretrain::_base_/default_runtime.py']

custom_imports = dict(imports=['ce_mmdet'], allow_failed_imports=False)

# ----------------------------------------------------------------- data
data_root = 'data/shapes10/'
image_size = 32
classes = ('circle', 'cross', 'four_point_star', 'hexagon', 'pentagon',
           'semicircle', 'six_point_star', 'square', 'star', 'triangle')
data_preprocessor = dict(
    num_classes=len(classes),
    mean=[127.5, 127.5, 127.5],
    std=[64.0, 64.0, 64.0],
    to_rgb=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    # CIFAR's augmentation: pad-and-crop, and flips (shapes have no
    # canonical orientation: both directions).
    dict(type='RandomCrop', crop_size=image_size, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=64,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='ImageNet', data_root=data_root, split='train',
                 metainfo=dict(classes=classes), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=250,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ImageNet', data_root=data_root, split='val',
                 metainfo=dict(classes=classes), pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

# ---------------------------------------------------------------- model
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='SlimVGG',
        depth=11,
        widths=(32, 64, 128, 128, 128),
        out_indices=(4, ),
        norm_cfg=dict(type='BN'),
        act_cfg=dict(type='ReLU')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=len(classes),
        in_channels=128,
        loss=dict(type='CrossEntropyLoss'),
        topk=(1, )))

# ------------------------------------------------------------- schedule
# Adam + coupled L2 at a high learning rate: BN+ReLU channels die (the
# settings tried and what each did: README, "Fig. 1 on classifiers").
max_epochs = 6
optim_wrapper = dict(
    optimizer=dict(type='Adam', lr=3e-3, weight_decay=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=max_epochs,
         milestones=[5], gamma=0.1),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=64)

# -------------------------------------------------------------- runtime
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=max_epochs,
                    max_keep_ckpts=1))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
custom_hooks = [dict(type='mmdet.TrainingDurationHook')]
