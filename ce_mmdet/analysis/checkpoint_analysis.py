"""Analyse trained checkpoints and write the reports (tables, JSON, PNGs):
inhibited channels (:func:`analyze_checkpoint`, the library side of
``tools/analysis_tools/inhibited_channels.py``) and cumulative ablation
(:func:`ablate_checkpoint`, of ``tools/analysis_tools/channel_ablation.py``).
"""
from __future__ import annotations

import os.path as osp
from typing import Optional, Sequence

from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope

from .activation_magnitudes import DEFAULT_EPSILON
from .channel_ablation import (
    DEFAULT_FRACTIONS,
    DEFAULT_SEEDS,
    ORDERS,
    AblationCurve,
    cumulative_ablation,
    select_layers,
    trunk_calls,
)
from .image_batches import folder_images, subset_indices, val_split_images
from .inhibited_channels import (
    ModelAnalysis,
    analyze_backbone,
    layer_table,
    summary_table,
)
from .model_loading import (
    build_model,
    drop_backbone_init_cfg,
    load_checked_checkpoint,
    load_config,
)
from .model_structure import find_backbone
from .output_files import write_json, write_text
from .plots import (
    plot_ablation_curves,
    plot_beta_shares,
    plot_ce_layers,
    plot_inhibited_shares,
)

DEFAULT_NUM_IMAGES = 20
"""Images per model: enough for stable per-channel means on the shapes set
(the per-channel means average H*W positions of every image) and a minute
or less per model on a CPU."""


def analyze_checkpoint(config: str,
                       checkpoint: str,
                       tau: float,
                       num_images: int = DEFAULT_NUM_IMAGES,
                       image_dir: Optional[str] = None,
                       cfg_options: Optional[dict] = None,
                       device: str = 'cpu',
                       name: Optional[str] = None,
                       epsilon: float = DEFAULT_EPSILON) -> ModelAnalysis:
    """Build ``config``'s model (a detector, or a classifier of
    ``configs/pretrain/``), load ``checkpoint`` (the whole model's or the
    backbone's) and analyse its backbone on ``num_images`` images of the
    config's val split, or of ``image_dir`` when given. A classifier's split
    lists its images class by class: the images are taken evenly spaced
    over it, so that every class is seen.

    Raises:
        FileNotFoundError: config, checkpoint, data or image folder missing.
        CheckpointMismatchError: the checkpoint does not fit the backbone.
        UnreadableModelError: the backbone has no norm layer or activation.
    """
    if num_images < 1:
        raise ValueError(f'num_images must be >= 1, got {num_images}')
    name = name or osp.splitext(osp.basename(config))[0]
    cfg = load_config(config, cfg_options)
    scope = cfg.get('default_scope') or 'mmdet'
    # The scope stays current while the images are read: a classifier's
    # dataset and transforms are MMPretrain's.
    with DefaultScope.overwrite_default_scope(scope):
        model = build_model(cfg, device=device)
        kind = load_checked_checkpoint(model, checkpoint, config_name=config)
        model.eval()
        if image_dir is not None:
            images = folder_images(cfg, model, image_dir, num_images)
            source = image_dir
        else:
            images = val_split_images(cfg, model, num_images,
                                      evenly_spaced=scope != 'mmdet')
            source = 'val split'
        MMLogger.get_current_instance().info(
            f'{name}: analysing the backbone of {checkpoint} ({kind} '
            f'checkpoint) on {num_images} images of the {source}')
        return analyze_backbone(
            find_backbone(model), images, tau, name=name,
            meta=dict(config=config, checkpoint=checkpoint,
                      checkpoint_kind=kind, images_from=source),
            epsilon=epsilon)


METRIC_KEYS = ('accuracy/top1', 'coco/bbox_mAP', 'coco/segm_mAP')
"""The score an ablation records by default: the first of these the
evaluator reports (a classifier's top-1, else a detector's bbox AP)."""


def ablate_checkpoint(config: str,
                      checkpoint: str,
                      work_dir: str,
                      num_images: Optional[int] = None,
                      fractions: Sequence[float] = DEFAULT_FRACTIONS,
                      seeds: Sequence[int] = DEFAULT_SEEDS,
                      orders: Sequence[str] = ORDERS,
                      layers: Optional[str] = None,
                      metric: Optional[str] = None,
                      cfg_options: Optional[dict] = None,
                      name: Optional[str] = None) -> dict[str, AblationCurve]:
    """Cumulative ablation of ``config``'s model with ``checkpoint``,
    scored by the config's own test loop and evaluator (MMEngine's Runner:
    ``tools/test.py``'s top-1 or AP).

    Args:
        config, checkpoint: the model (a detector or a classifier); the
            checkpoint is checked as in :func:`analyze_checkpoint`.
        work_dir: the Runner's (its logs).
        num_images: test images (None: the whole test split); a
            classifier's are evenly spaced over its split.
        fractions, seeds, orders: see :func:`cumulative_ablation`.
        layers: regular expression on the activation-call keys (e.g.
            ``'layer[34]'``); None: every trunk activation.
        metric: the evaluator's key to record; None: the first of
            :data:`METRIC_KEYS` it reports.
        cfg_options: overrides applied to the config.
        name: the model's label.

    Raises:
        FileNotFoundError, CheckpointMismatchError: as analyze_checkpoint.
        ValueError: a bad argument, or ``metric`` not reported.
    """
    from mmengine.runner import Runner

    name = name or osp.splitext(osp.basename(config))[0]
    cfg = load_config(config, cfg_options)
    scope = cfg.get('default_scope') or 'mmdet'
    cfg.work_dir = work_dir
    cfg.load_from, cfg.resume = None, False
    drop_backbone_init_cfg(cfg.model)
    with DefaultScope.overwrite_default_scope(scope):
        if num_images is not None:
            if num_images < 1:
                raise ValueError(f'num_images must be >= 1, got {num_images}')
            cfg.test_dataloader.dataset.indices = subset_indices(
                cfg.test_dataloader.dataset, num_images,
                evenly_spaced=scope != 'mmdet')
        runner = Runner.from_cfg(cfg)
        model = getattr(runner.model, 'module', runner.model)
        load_checked_checkpoint(model, checkpoint, config_name=config)
        model.eval()
        backbone = find_backbone(model)
        batch = next(iter(runner.test_dataloader))
        example = model.data_preprocessor(batch, False)['inputs'][:1]
        chosen = select_layers(trunk_calls(backbone, example), layers)

        reported: dict = {}

        def evaluate() -> float:
            metrics = runner.test()
            if not metrics and 'metric' in reported:
                # MMDetection's CocoMetric reports nothing when no image has
                # a detection left: AP 0.
                return 0.0
            key = metric or next((k for k in METRIC_KEYS if k in metrics),
                                 None)
            if key is None or key not in metrics:
                raise ValueError(
                    f'{name}: the evaluator reports {sorted(metrics)}, not '
                    f'{metric or " or ".join(METRIC_KEYS)}: pass --metric')
            reported['metric'] = key
            return float(metrics[key])

        MMLogger.get_current_instance().info(
            f'{name}: cumulative ablation of {len(chosen)} activation calls '
            f'at fractions {list(fractions)}, orders {list(orders)}')
        curves = cumulative_ablation(backbone, evaluate, chosen, fractions,
                                     seeds, orders, name=name)
    for curve in curves.values():
        curve.metric = reported['metric']
    return curves


def ablation_table(curves: list[AblationCurve]) -> str:
    """Markdown: per model and order, the score at each fraction (the mean
    over seeds for the random order)."""
    if not curves:
        return ''
    fractions = curves[0].fractions
    lines = ['| model | order | ' + ' | '.join(f'{f:g}' for f in fractions)
             + ' |', '|---|---|' + '---|' * len(fractions)]
    for curve in curves:
        order = (f'random (mean of {len(curve.seeds)})'
                 if curve.order == 'random' else 'smallest first')
        lines.append(f'| {curve.name} | {order} | '
                     + ' | '.join(f'{v:.3f}' for v in curve.mean) + ' |')
    return '\n'.join(lines)


def write_ablation_report(curves: list[AblationCurve],
                          out_dir: str) -> dict[str, str]:
    """Write ``ablation.md``, ``ablation.json`` and ``ablation.png``.

    Returns:
        ``{what: path}`` of the files written.
    """
    return dict(
        markdown=write_text(osp.join(out_dir, 'ablation.md'),
                            '## Cumulative ablation\n\n'
                            + ablation_table(curves) + '\n'),
        json=write_json(osp.join(out_dir, 'ablation.json'),
                        dict(curves=[c.to_dict() for c in curves])),
        plot=plot_ablation_curves(curves, osp.join(out_dir, 'ablation.png')),
    )


def write_report(analyses: list[ModelAnalysis], out_dir: str) -> dict[str, str]:
    """Write ``summary.md`` (summary and per-layer tables),
    ``inhibited_channels.json``, ``beta_nonpositive.png``,
    ``inhibited_channels.png`` and, with CE layers, ``ce_layers.png``.

    Returns:
        ``{what: path}`` of the files written.
    """
    paths = dict(
        markdown=write_text(
            osp.join(out_dir, 'summary.md'),
            '\n\n'.join(['## Inhibited channels', summary_table(analyses)]
                        + [layer_table(a) for a in analyses]) + '\n'),
        json=write_json(osp.join(out_dir, 'inhibited_channels.json'),
                        dict(models=[a.to_dict() for a in analyses])),
        beta_plot=plot_beta_shares(
            analyses, osp.join(out_dir, 'beta_nonpositive.png')),
        inhibited_plot=plot_inhibited_shares(
            analyses, osp.join(out_dir, 'inhibited_channels.png')),
    )
    ce_plot = plot_ce_layers(analyses, osp.join(out_dir, 'ce_layers.png'))
    if ce_plot:
        paths['ce_plot'] = ce_plot
    return paths
