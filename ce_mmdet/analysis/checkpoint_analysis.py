"""Analyse a trained checkpoint: the model a config and a checkpoint make,
the images it is fed, what is measured on it and the reports written.

This is the side of the analysis that reads files (a config, a checkpoint,
images) and writes them; the other modules of ``ce_mmdet.analysis`` work on
a model in memory. The library side of
``tools/analysis_tools/inhibited_channels.py`` (:func:`analyze_checkpoint`),
``tools/analysis_tools/channel_ablation.py`` (:func:`ablate_checkpoint`), of
the block comparison (:func:`detector_cost`, :func:`write_report`) and of
``tools/deployment/export_onnx.py`` (:func:`build_detector`,
:func:`load_checked_checkpoint`).

**The model.** An MMDetection detector, or any model of another OpenMMLab
scope (e.g. an MMPretrain ``ImageClassifier`` of ``configs/pretrain/``):
:func:`build_model` reads the config's ``default_scope``.

MMDetection's ``init_detector`` loads checkpoints with ``strict=False``: a
checkpoint of another architecture (a plain ResNet's into a CE-ResNet
config, or the reverse) loads silently with random layers left over, and an
analysis of that model would measure nothing real. Here the backbone's keys
must match exactly, and a mismatch is an error that names the keys
(:func:`load_checked_checkpoint`). Two kinds of checkpoint are accepted:

* a whole model's (MMEngine's ``state_dict`` with ``backbone.``,
  ``neck.``... keys: a detector's or a classifier's): loaded into the whole
  model;
* a backbone's alone (e.g. a CENet checkpoint converted by
  ``tools/model_converters/cenet2mmdet.py``: ``conv1.weight``,
  ``stem_ce.*``...): loaded into ``model.backbone``.

**The images.** The config's val split (:func:`val_split_images`), or
image files from a folder (:func:`folder_images`, for a backbone-only
checkpoint). Both go through the config's own test pipeline (resize, pack)
and the model's ``data_preprocessor`` (normalise, pad), one image per
batch, so the backbone sees exactly what it sees in evaluation.

**The measurements.** Inhibited channels (:func:`analyze_checkpoint`),
cumulative ablation (:func:`ablate_checkpoint`) and cost
(:func:`detector_cost`: parameters of a config's detector and FLOPs of its
backbone), then the reports: tables, JSON, PNGs (:func:`write_report`,
:func:`write_ablation_report`).
"""
from __future__ import annotations

import copy
import os
import os.path as osp
import warnings
from typing import Iterator, Optional, Sequence

import torch
from mmengine.config import Config, ConfigDict
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import CheckpointLoader
from torch import Tensor, nn

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
from .inhibited_channels import (
    ModelAnalysis,
    analyze_backbone,
    layer_table,
    summary_table,
)
from .model_structure import find_backbone
from .output_files import write_json, write_text
from .plots import (
    plot_ablation_curves,
    plot_beta_shares,
    plot_ce_layers,
    plot_inhibited_shares,
)

MAX_KEYS_SHOWN = 6


class CheckpointMismatchError(ValueError):
    """The checkpoint does not fit the config's model."""


def load_config(config: str, cfg_options: Optional[dict] = None) -> Config:
    """Read a config file and apply ``--cfg-options``-style overrides."""
    if not osp.isfile(config):
        raise FileNotFoundError(
            f'config {config!r} not found (resolved to '
            f'{osp.abspath(config)!r})')
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def drop_backbone_init_cfg(model_cfg: ConfigDict) -> None:
    """Set the backbone's ``init_cfg`` of a model config to None, in place:
    the weights come from the checkpoint analysed, not from pretraining."""
    backbone_cfg = model_cfg.get('backbone')
    if backbone_cfg is not None and 'init_cfg' in backbone_cfg:
        backbone_cfg.init_cfg = None


def build_model(cfg: Config, device: str = 'cpu') -> nn.Module:
    """The config's model, in eval mode, without pretrained weights: a
    detector (:func:`build_detector`) when the config's ``default_scope`` is
    ``mmdet`` or unset, else the model of that scope (e.g. ``mmpretrain``),
    built as MMEngine's Runner builds it (``custom_imports`` imported)."""
    scope = cfg.get('default_scope') or 'mmdet'
    if scope == 'mmdet':
        return build_detector(cfg, device=device)
    import importlib

    from mmengine.registry import DefaultScope
    from mmengine.utils import import_modules_from_strings
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    model_cfg = cfg.model.copy()
    drop_backbone_init_cfg(model_cfg)
    registry = importlib.import_module(f'{scope}.registry')
    with DefaultScope.overwrite_default_scope(scope):
        model = registry.MODELS.build(model_cfg)
    return model.to(device).eval()


def build_detector(cfg: Config, device: str = 'cpu') -> nn.Module:
    """The config's detector, in eval mode, without pretrained weights.

    Uses ``mmdet.apis.init_detector``; the backbone's ``init_cfg`` is
    dropped (the weights come from the checkpoint).
    """
    from mmdet.apis import init_detector

    cfg = cfg.copy()
    drop_backbone_init_cfg(cfg.model)
    # record=True swallows init_detector's own "checkpoint is None, use COCO
    # classes by default" (it resets the filters itself): we load it below.
    with warnings.catch_warnings(record=True):
        model = init_detector(cfg, checkpoint=None, device=device)
    return model


def read_state_dict(checkpoint: str) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file (``state_dict`` entry or bare dict),
    ``module.`` prefixes stripped."""
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(
            f'checkpoint {checkpoint!r} not found (resolved to '
            f'{osp.abspath(checkpoint)!r})')
    try:
        loaded = CheckpointLoader.load_checkpoint(checkpoint,
                                                  map_location='cpu')
    except Exception as error:  # torch/pickle raise many kinds
        raise CheckpointMismatchError(
            f'{checkpoint}: not a readable PyTorch checkpoint '
            f'({type(error).__name__}: {error})') from error
    state = loaded.get('state_dict', loaded) if isinstance(loaded,
                                                           dict) else None
    if not isinstance(state, dict) or not state or not all(
            isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointMismatchError(
            f'{checkpoint}: expected a dict of tensors or a dict with a '
            '"state_dict" entry (an MMEngine or PyTorch checkpoint)')
    return {
        (key[len('module.'):] if key.startswith('module.') else key): value
        for key, value in state.items()
    }


def load_checked_checkpoint(model: nn.Module, checkpoint: str,
                            config_name: str = 'the config') -> str:
    """Load ``checkpoint`` into ``model`` (a detector or a classifier); the
    backbone's keys and shapes must match exactly.

    Returns:
        ``'whole model'`` or ``'backbone'``: what the checkpoint held.

    Raises:
        FileNotFoundError, CheckpointMismatchError: with the keys at fault.
    """
    state = read_state_dict(checkpoint)
    backbone = getattr(model, 'backbone', None)
    whole = any(key.startswith('backbone.') for key in state)
    if whole or backbone is None:
        target, kind, prefix = model, 'whole model', 'backbone.'
    else:
        target, kind, prefix = backbone, 'backbone', ''
    expected = target.state_dict()
    if backbone is None:
        prefix = ''
    missing = [k for k in expected if k.startswith(prefix) and k not in state]
    unexpected = [k for k in state
                  if k.startswith(prefix) and k not in expected]
    wrong_shape = [
        f'{k} {tuple(state[k].shape)} vs {tuple(v.shape)}'
        for k, v in expected.items()
        if k in state and k.startswith(prefix) and state[k].shape != v.shape
    ]
    if missing or unexpected or wrong_shape:
        problems = []
        for label, keys in (('missing from the checkpoint', missing),
                            ('not in the model', unexpected),
                            ('with other shapes', wrong_shape)):
            if keys:
                shown = ', '.join(keys[:MAX_KEYS_SHOWN])
                more = (f' and {len(keys) - MAX_KEYS_SHOWN} more'
                        if len(keys) > MAX_KEYS_SHOWN else '')
                problems.append(f'{len(keys)} keys {label} ({shown}{more})')
        raise CheckpointMismatchError(
            f'{checkpoint} does not fit the backbone of {config_name}: '
            + '; '.join(problems) + '. Pass the config the checkpoint was '
            'trained with (e.g. a CE-ResNet checkpoint needs a CEResNet '
            'config, a plain ResNet checkpoint a ResNet one).')
    others = [k for k in expected if not k.startswith(prefix)
              and k not in state]
    if others and kind == 'whole model':
        warnings.warn(
            f'{checkpoint}: {len(others)} weights outside the backbone are '
            'not in the checkpoint (only the backbone is analysed).')
    target.load_state_dict(
        {k: v for k, v in state.items() if k in expected}, strict=False)
    return kind


IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def val_split_images(cfg: Config, model: nn.Module, num_images: int,
                     evenly_spaced: bool = False) -> Iterator[Tensor]:
    """The first ``num_images`` images of the config's ``val_dataloader``
    (``test_dataloader`` if it has none), preprocessed: (1, 3, H, W) each.
    ``evenly_spaced``: ``num_images`` images evenly spaced over the split
    instead (a classification split is listed class by class).

    Raises:
        FileNotFoundError: if the split's annotation file is missing.
    """
    from mmengine.runner import Runner

    loader_cfg = cfg.get('val_dataloader') or cfg.get('test_dataloader')
    if not loader_cfg:
        raise ValueError('the config has no val_dataloader/test_dataloader; '
                         'pass an image folder instead')
    loader_cfg = copy.deepcopy(loader_cfg)
    dataset_cfg = loader_cfg['dataset']
    ann_file = dataset_cfg.get('ann_file')
    if ann_file:
        path = ann_file if osp.isabs(ann_file) else osp.join(
            dataset_cfg.get('data_root') or '', ann_file)
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'the val split\'s annotations {path!r} are missing: '
                'generate the data set (for the shapes configs: '
                'tools/generate_shapes_dataset.py or tools/run_demo.sh), '
                'or pass a folder of images instead (--image-dir)')
    dataset_cfg['indices'] = subset_indices(dataset_cfg, num_images,
                                            evenly_spaced)
    loader_cfg.update(batch_size=1, num_workers=0, persistent_workers=False)
    loader_cfg.pop('batch_sampler', None)
    loader_cfg['sampler'] = dict(type='DefaultSampler', shuffle=False)
    loader = Runner.build_dataloader(loader_cfg)
    for batch in loader:
        yield model.data_preprocessor(batch, False)['inputs']


def subset_indices(dataset_cfg: dict, num_images: int,
                   evenly_spaced: bool) -> int | list[int]:
    """The ``indices`` of a dataset config that keep ``num_images`` images:
    the first ones, or ``evenly_spaced`` over the split (then the dataset is
    built once to learn its length; its scope must be current)."""
    if not evenly_spaced:
        return num_images
    from mmengine.registry import DATASETS
    length = len(DATASETS.build(copy.deepcopy(dataset_cfg)))
    count = min(num_images, length)
    return sorted({round(i * (length - 1) / max(count - 1, 1))
                   for i in range(count)})


def folder_images(cfg: Config, model: nn.Module, image_dir: str,
                  num_images: int) -> Iterator[Tensor]:
    """The first ``num_images`` image files of ``image_dir`` (sorted by
    name), through the config's test pipeline: (1, 3, H, W) each."""
    from mmcv.transforms import Compose
    from mmdet.utils import get_test_pipeline_cfg

    if not osp.isdir(image_dir):
        raise FileNotFoundError(f'image folder {image_dir!r} not found')
    files = sorted(
        f for f in os.listdir(image_dir)
        if f.lower().endswith(IMAGE_EXTENSIONS))[:num_images]
    if not files:
        raise FileNotFoundError(
            f'no image files ({", ".join(IMAGE_EXTENSIONS)}) in {image_dir!r}')
    steps = [
        step for step in get_test_pipeline_cfg(cfg)
        if 'LoadAnnotations' not in str(step.get('type', ''))
    ]
    pipeline = Compose(steps)
    for index, name in enumerate(files):
        data = pipeline(dict(img_path=osp.join(image_dir, name), img_id=index))
        batch = dict(inputs=[data['inputs']],
                     data_samples=[data['data_samples']])
        yield model.data_preprocessor(batch, False)['inputs']


def detector_cost(cfg: Config, device: str = 'cpu') -> dict:
    """Parameters of a config's detector and FLOPs of its backbone:
    ``{'params': detector parameters, 'backbone_params': int,
    'backbone_flops': int, 'input_shape': [H, W]}``.

    Counted with MMEngine's ``FlopAnalyzer`` and ``parameter_count`` (what
    MMDetection's ``tools/analysis_tools/get_flops.py`` runs through
    ``get_model_complexity_info``), in eval mode and without gradients (so
    CE runs as plain matrix products the counter sees). One multiply-add
    counts as one FLOP, as in MMEngine.

    FLOPs are the backbone's, on the first preprocessed image of the val
    split: the blocks under comparison live there, and a whole detector's
    count depends on how many proposals its RoI heads process, which
    changes with the weights (two untrained Mask R-CNNs of the same config
    differed by 25% on a 64x64 image), so it would blur the comparison.
    """
    from mmengine.analysis import FlopAnalyzer, parameter_count

    model = build_detector(cfg, device=device)
    model.eval()
    inputs = next(val_split_images(cfg, model, 1))
    backbone = find_backbone(model)
    analyzer = FlopAnalyzer(backbone, inputs=inputs)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    with torch.no_grad():
        flops = analyzer.total()
    return dict(params=int(parameter_count(model)['']),
                backbone_params=int(parameter_count(backbone)['']),
                backbone_flops=int(flops),
                input_shape=list(inputs.shape[-2:]))


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


def write_report(analyses: list[ModelAnalysis],
                 out_dir: str) -> dict[str, str]:
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
