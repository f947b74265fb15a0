"""A tiny Mask R-CNN config on the synthetic shapes set, for smoke tests.

The config inherits MMDetection's own
``mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py`` and shrinks it until a
training iteration takes well under a second on a CPU: ResNet-18 without
pretrained weights, 32-channel FPN and heads, 64x64 inputs, a few hundred
proposals, an iteration-based loop and the 4 shape classes. It imports
``ce_mmdet`` through ``custom_imports``, like every config of the project.

Typical use, with the ``tiny_shapes_dataset`` fixture of ``conftest.py``::

    config = write_tiny_mask_rcnn_config(tmp_path / 'tiny.py',
                                         tiny_shapes_dataset, max_iters=2)
    subprocess.run([sys.executable, 'tools/train.py', str(config),
                    '--work-dir', str(tmp_path / 'work')], check=True)

``tiny_mask_rcnn_overrides`` returns the overrides as a plain dict, to be
merged into another config (e.g. a CE config under test) with
``Config.merge_from_dict`` or written next to another ``_base_``.
"""
from __future__ import annotations

import pprint
from pathlib import Path
from typing import Any

from ce_mmdet.datasets import SHAPES_METAINFO

TINY_MASK_RCNN_BASE = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
"""The MMDetection config the tiny detector inherits from."""

TINY_IMAGE_SCALE = (64, 64)
"""Resize target (width, height) of the tiny pipelines."""

TINY_CHANNELS = 32
"""Width of the FPN outputs and of the RPN / RoI heads."""

RESNET18_CHANNELS = [64, 128, 256, 512]
"""Output channels of the four ResNet-18 stages (the FPN inputs)."""


def tiny_train_pipeline() -> list[dict]:
    """Training pipeline: load, annotate (boxes and masks), resize, pack."""
    return [
        dict(type='LoadImageFromFile', backend_args=None),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='Resize', scale=TINY_IMAGE_SCALE, keep_ratio=True),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackDetInputs'),
    ]


def tiny_test_pipeline() -> list[dict]:
    """Test pipeline: load, resize, load annotations (for eval), pack."""
    return [
        dict(type='LoadImageFromFile', backend_args=None),
        dict(type='Resize', scale=TINY_IMAGE_SCALE, keep_ratio=True),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(
            type='PackDetInputs',
            meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                       'scale_factor')),
    ]


def tiny_mask_rcnn_model() -> dict:
    """Model overrides of the base Mask R-CNN: ResNet-18, 32 channels.

    Merged into the base ``model`` (dicts merge key by key), so only the
    sizes change; ``init_cfg=None`` keeps the backbone from downloading the
    ImageNet weights.
    """
    num_classes = len(SHAPES_METAINFO['classes'])
    return dict(
        backbone=dict(depth=18, init_cfg=None),
        neck=dict(in_channels=RESNET18_CHANNELS, out_channels=TINY_CHANNELS),
        rpn_head=dict(in_channels=TINY_CHANNELS, feat_channels=TINY_CHANNELS),
        roi_head=dict(
            bbox_roi_extractor=dict(out_channels=TINY_CHANNELS),
            bbox_head=dict(
                in_channels=TINY_CHANNELS,
                fc_out_channels=64,
                num_classes=num_classes),
            mask_roi_extractor=dict(out_channels=TINY_CHANNELS),
            mask_head=dict(
                in_channels=TINY_CHANNELS,
                conv_out_channels=TINY_CHANNELS,
                num_classes=num_classes)),
        train_cfg=dict(
            rpn=dict(sampler=dict(num=64)),
            rpn_proposal=dict(nms_pre=200, max_per_img=100),
            rcnn=dict(sampler=dict(num=64))),
        test_cfg=dict(
            rpn=dict(nms_pre=200, max_per_img=100),
            rcnn=dict(max_per_img=20)))


def tiny_ce_backbone(ce_type: str = 'CE') -> dict:
    """A CE-ResNet-18 backbone for the tiny detector, every layer training.

    Replaces the base's ResNet-18 (``model=dict(backbone=...)`` merges into
    it): CE after the stem and in the blocks of stages 1-3 as in the
    paper's release, with ``norm_eval=False`` and no frozen stage, so that a
    training iteration moves the CE running statistics and the BN ones.

    Args:
        ce_type: ``'CE'`` or ``'SyncCE'``.
    """
    return dict(
        type='CEResNet',
        depth=18,
        init_cfg=None,
        ce_cfg=dict(type=ce_type, group_size=16),
        stem_ce_cfg=dict(type=ce_type, group_size=64),
        norm_eval=False,
        frozen_stages=-1)


def _dataloader(data_root: str, ann_file: str, img_dir: str,
                pipeline: list[dict], train: bool) -> dict:
    dataloader = dict(
        batch_size=2 if train else 1,
        num_workers=0,
        persistent_workers=False,
        dataset=dict(
            data_root=data_root,
            ann_file=ann_file,
            data_prefix=dict(img=img_dir),
            metainfo=dict(
                classes=tuple(SHAPES_METAINFO['classes']),
                palette=list(SHAPES_METAINFO['palette'])),
            pipeline=pipeline))
    if train:
        # keep the base's filter_cfg (drop images without instances)
        dataloader['dataset']['filter_cfg'] = dict(
            filter_empty_gt=True, min_size=0)
    return dataloader


def tiny_mask_rcnn_overrides(data_paths: dict[str, str],
                             max_iters: int = 2,
                             val_interval: int | None = None,
                             checkpoint_interval: int | None = None,
                             seed: int = 0) -> dict[str, Any]:
    """Overrides that turn the base Mask R-CNN config into the tiny detector.

    Args:
        data_paths: the dict returned by the ``tiny_shapes_dataset``
            fixture (``data_root``, ``train_img_dir``, ``val_img_dir``,
            ``train_ann_file``, ``val_ann_file``).
        max_iters: length of the ``IterBasedTrainLoop``; resume a run for
            more iterations with ``--cfg-options train_cfg.max_iters=N``.
        val_interval: validate every that many iterations; defaults to
            ``max_iters`` (one validation, at the end).
        checkpoint_interval: save a checkpoint every that many iterations;
            defaults to ``max_iters``.
        seed: ``randomness.seed``.

    Returns:
        dict of top-level config keys. Dicts merge into the base config,
        lists (pipelines, schedulers) replace the base's.
    """
    val_interval = max_iters if val_interval is None else val_interval
    checkpoint_interval = (
        max_iters if checkpoint_interval is None else checkpoint_interval)
    data_root = str(Path(data_paths['data_root']))
    train_ann = str(
        Path(data_paths['train_ann_file']).relative_to(data_root))
    val_ann = str(Path(data_paths['val_ann_file']).relative_to(data_root))
    train_img = Path(data_paths['train_img_dir']).name + '/'
    val_img = Path(data_paths['val_img_dir']).name + '/'
    evaluator = dict(
        type='CocoMetric',
        ann_file=data_paths['val_ann_file'],
        metric=['bbox', 'segm'],
        format_only=False,
        backend_args=None)
    return dict(
        custom_imports=dict(imports=['ce_mmdet'], allow_failed_imports=False),
        model=tiny_mask_rcnn_model(),
        train_dataloader=_dataloader(data_root, train_ann, train_img,
                                     tiny_train_pipeline(), train=True),
        val_dataloader=_dataloader(data_root, val_ann, val_img,
                                   tiny_test_pipeline(), train=False),
        test_dataloader=_dataloader(data_root, val_ann, val_img,
                                    tiny_test_pipeline(), train=False),
        val_evaluator=evaluator,
        test_evaluator=evaluator,
        train_cfg=dict(
            _delete_=True,
            type='IterBasedTrainLoop',
            max_iters=max_iters,
            val_interval=val_interval),
        # the base's schedule, iteration-based and compressed: a linear
        # warm-up, then a step decay (its milestones pickle as a Counter)
        param_scheduler=[
            dict(
                type='LinearLR',
                start_factor=0.1,
                by_epoch=False,
                begin=0,
                end=4),
            dict(
                type='MultiStepLR',
                by_epoch=False,
                begin=0,
                end=100,
                milestones=[3],
                gamma=0.1),
        ],
        optim_wrapper=dict(optimizer=dict(lr=0.01)),
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=1),
            checkpoint=dict(
                type='CheckpointHook',
                interval=checkpoint_interval,
                by_epoch=False,
                max_keep_ckpts=-1)),
        log_processor=dict(by_epoch=False, window_size=1),
        randomness=dict(seed=seed),
    )


def tiny_mask_rcnn_config_text(data_paths: dict[str, str],
                               base: str = TINY_MASK_RCNN_BASE,
                               **overrides_kwargs: Any) -> str:
    """Source of a tiny detector config inheriting ``base``.

    ``overrides_kwargs`` are passed to :func:`tiny_mask_rcnn_overrides`.
    """
    lines = [
        '"""Tiny Mask R-CNN on the synthetic shapes set (generated by '
        'tests/tiny_detector.py)."""',
        f'_base_ = {base!r}',
    ]
    overrides = tiny_mask_rcnn_overrides(data_paths, **overrides_kwargs)
    for key, value in overrides.items():
        lines.append(f'{key} = {pprint.pformat(value, sort_dicts=False)}')
    return '\n'.join(lines) + '\n'


def write_tiny_mask_rcnn_config(path: str | Path,
                                data_paths: dict[str, str],
                                base: str = TINY_MASK_RCNN_BASE,
                                **overrides_kwargs: Any) -> Path:
    """Write the tiny detector config to ``path`` (a ``.py``) and return it.

    Args:
        path: where to write the config; its parent must exist.
        data_paths: the dict returned by the ``tiny_shapes_dataset`` fixture.
        base: the config to inherit (``mmdet::...`` or a file path).
        **overrides_kwargs: passed to :func:`tiny_mask_rcnn_overrides`
            (``max_iters``, ``val_interval``, ``checkpoint_interval``,
            ``seed``).
    """
    path = Path(path)
    path.write_text(
        tiny_mask_rcnn_config_text(data_paths, base=base, **overrides_kwargs),
        encoding='utf-8')
    return path
