"""Mask R-CNN + FPN with a CE-ResNet-50 backbone, MMDetection's 1x schedule.

Paper, Table 3 (ICML 2020): the backbone is the authors' ImageNet CE-ResNet-50
(top-1 78.2), everything else is MMDetection's
``mask-rcnn_r50_fpn_1x_coco`` (box 38.2 / mask 34.7), whose BN baseline with
the very same settings is ``mask_rcnn_r50_fpn.py``.

Inherited from MMDetection: COCO instance segmentation, (1333, 800) keep-ratio
resize, flip 0.5; SGD lr 0.02 for 16 images (8 GPUs x 2), momentum 0.9,
weight decay 1e-4, 500 iterations of linear warm-up, 12 epochs with steps at
8 and 11; CocoMetric bbox + segm. ``auto_scale_lr`` stays
``dict(enable=False, base_batch_size=16)``: pass ``--auto-scale-lr`` to
``tools/train.py`` when training with another total batch size.

The backbone weights are the authors' checkpoint converted once with::

    python tools/model_converters/cenet2mmdet.py \
        <CENet checkpoint .pth.tar> checkpoints/ce_resnet50_mmdet.pth

Elsewhere: ``--cfg-options model.backbone.init_cfg.checkpoint=<path>``.
"""
_base_ = [
    'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
    './_base_/exact_resume.py'
]

custom_imports = dict(imports=['ce_mmdet'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='CEResNet',
        depth=50,
        # BN as in MMDetection's baseline: stem + stage 1 frozen, BN
        # statistics frozen (norm_eval) but its affine parameters trained.
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        # CE as in the release: after the stem BN (one group of 64) and the
        # last BN of every block of stages 1-3 (groups of 16).
        stage_with_ce=(True, True, True, False),
        ce_cfg=dict(type='CE', group_size=16),
        stem_ce_cfg=dict(type='CE', group_size=64),
        # CE whitens with batch statistics while training, unlike the
        # frozen BN: batch decorrelation is what CE brings.
        ce_eval=False,
        # Output of tools/model_converters/cenet2mmdet.py, relative to the
        # working directory; a missing file raises FileNotFoundError saying
        # how to make it.
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/ce_resnet50_mmdet.pth')))
