# Mask R-CNN + FPN with a plain ResNet-18, trained from scratch on the
# synthetic shapes set (tools/generate_shapes_dataset.py), sized so that
# training and evaluation fit in about 15 minutes on 2 CPU cores.
# mask_rcnn_ce_r18_fpn_shapes.py inherits everything and only swaps in
# CE-ResNet-18, so the two configs are a like-for-like comparison.
_base_ = [
    'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
    '../_base_/exact_resume.py'
]

custom_imports = dict(imports=['ce_mmdet'], allow_failed_imports=False)

# ----------------------------------------------------------------- data
# The set as tools/run_demo.sh generates it: 160x160 images (a multiple of
# 32, so there is no padding), objects 15-77 px across.
data_root = 'data/shapes/'
image_size = (160, 160)  # (w, h); images of another size are resized to it
classes = ('circle', 'square', 'triangle', 'star')  # = SHAPES_CLASSES
metainfo = dict(
    classes=classes,
    palette=[(220, 20, 60), (0, 128, 255), (0, 200, 80), (255, 190, 0)])
num_classes = len(classes)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    # Shapes have no canonical orientation: both flips are free augmentation.
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

# ---------------------------------------------------------------- model
fpn_channels = 64  # 256 in the COCO config; plenty for 4 classes of shapes
model = dict(
    backbone=dict(
        depth=18,
        # From scratch (no pretrained weights offline): every stage and every
        # BN trains, and BN uses batch statistics.
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=fpn_channels),
    rpn_head=dict(in_channels=fpn_channels, feat_channels=fpn_channels),
    roi_head=dict(
        # One sample per bin: RoIAlign is single-threaded on a CPU.
        bbox_roi_extractor=dict(
            roi_layer=dict(sampling_ratio=1), out_channels=fpn_channels),
        bbox_head=dict(
            in_channels=fpn_channels,
            fc_out_channels=256,
            num_classes=num_classes),
        mask_roi_extractor=dict(out_channels=fpn_channels),
        mask_head=dict(
            in_channels=fpn_channels,
            conv_out_channels=fpn_channels,
            num_classes=num_classes)),
    # At most 6 objects per image: far fewer samples than COCO's suffice.
    train_cfg=dict(
        rpn=dict(sampler=dict(num=64)),
        rpn_proposal=dict(nms_pre=500, max_per_img=100),
        rcnn=dict(sampler=dict(num=32))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=200),
        rcnn=dict(max_per_img=50)))

# ------------------------------------------------------------- schedule
# Iteration-based: the run's time does not depend on the set's size; 840
# iterations fit the demo's time budget (how it was chosen:
# docs/en/user_guides/embedded_default.md).
max_iters = 840
train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=max_iters)  # evaluate once, at the end
# AdamW: learns much faster from scratch than mmdet's SGD
# (docs/en/user_guides/embedded_default.md).
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-3, weight_decay=0.05),
    clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=50),
    dict(
        type='MultiStepLR',
        by_epoch=False,
        begin=0,
        end=max_iters,
        milestones=[670, 780],
        gamma=0.1)
]

# -------------------------------------------------------------- runtime
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(
        type='CheckpointHook',
        by_epoch=False,
        interval=max_iters,
        max_keep_ckpts=1))
log_processor = dict(window_size=10, by_epoch=False)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
# One line early in the log with the measured speed and the expected end
# (data generation, evaluation and drawing take about 25 s more in
# tools/run_demo.sh), after the base's RNGStateHook (exact resume).
custom_hooks = [
    *_base_.custom_hooks,
    dict(type='TrainingDurationHook', extra_seconds=25)
]
# tools/test.py --show-dir (the demo's vis/ pictures): 160 px images and
# their instances upscaled 3x, a caption above each panel, labels outside
# the boxes. Drawing only: the evaluation still sees the 160 px images.
visualizer = dict(type='UpscaledDetVisualizer', scale=3)
