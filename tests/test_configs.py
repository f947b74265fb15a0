"""Every config under ``configs/`` parses, builds, trains and predicts.

Each config is loaded with ``Config.fromfile`` (so its ``_base_`` chain,
``custom_imports`` and registry types resolve) and run by MMEngine's
``Runner`` for one training epoch of a single iteration followed by its
validation (inference + the config's evaluator), on the tiny generated shapes
set. Only what cannot run offline on a CPU in seconds is changed, here and
never in the configs: the data (paths, 64 px images, 2 training images, 1
validation image, no workers), the length of the loop, the number of classes
(4), the proposal/sample counts, no pretrained backbone weights and no
checkpoint saving. Models, pipelines' transforms, optimizers, LR schedules
and evaluators are the configs' own.

Static tests pin what the configs are meant to reproduce (the paper's Table 3
settings and MMDetection's schedules) and the RNG-state hook of an exact
resume, and the missing-checkpoint error of CE-ResNet is checked.
"""
from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config, ConfigDict
from mmengine.hooks import Hook
from mmengine.runner import Runner
from torch.nn.modules.batchnorm import _BatchNorm

import ce_mmdet  # noqa: F401  (registers CEResNet, CE, SyncCE, BNCE)
from ce_mmdet.datasets import SHAPES_METAINFO
from ce_mmdet.layers import (
    BatchNormCE,
    ChannelEquilibrium,
    SyncChannelEquilibrium,
)

CONFIG_DIR = Path(__file__).resolve().parents[1] / 'configs'
ALL_CONFIGS = sorted(
    path for path in CONFIG_DIR.rglob('*.py')
    if '_base_' not in path.relative_to(CONFIG_DIR).parts)
CONFIGS = [
    path for path in ALL_CONFIGS
    if not {'pretrain', 'fig1'} & set(path.relative_to(CONFIG_DIR).parts)
]
"""The detection configs (the classifiers: ``configs/pretrain/`` in
test_pretraining.py, ``configs/fig1/`` in test_fig1_tools.py)."""
COCO_CONFIGS = [
    path for path in CONFIGS
    if 'shapes' not in path.relative_to(CONFIG_DIR).parts
]
"""The configs of COCO experiments (``configs/shapes/`` is the toy set)."""
TRAINED_CONFIGS = [
    path for path in CONFIGS if not path.stem.endswith('_pretrained')
]
"""The configs trained on the tiny set: the ``*_pretrained`` shapes configs
only add a checkpoint to their base (which this test drops; the real load is
in test_pretraining.py)."""

NUM_CLASSES = len(SHAPES_METAINFO['classes'])
TINY_SCALE = (96, 64)
"""Resize target (w, h) of every pipeline: the 96x96 images become 64x64."""

MAX_PROPOSALS = 16
"""Cap of ``max_per_img``/``nms_pre``/sampler sizes in train and test cfgs."""


@pytest.fixture(autouse=True, scope='module')
def _one_thread() -> Iterator[None]:
    """One intra-op thread: on a small, shared CPU, torch's thread pool
    spends more time waiting than computing (8x slower runs measured)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _config_id(path: Path) -> str:
    return str(path.relative_to(CONFIG_DIR))


def _load(name: str) -> Config:
    return Config.fromfile(str(CONFIG_DIR / name))


# --------------------------------------------------------------- overrides
def _walk(node: Any, visit: Callable[[dict], None]) -> None:
    """Call ``visit`` on every dict nested in ``node`` (dicts and lists)."""
    if isinstance(node, dict):
        visit(node)
        for value in node.values():
            _walk(value, visit)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _walk(value, visit)


def _shrink_model(model: ConfigDict) -> None:
    """4 classes (every head, e.g. each cascade stage), few proposals, no
    score threshold (an untrained detector still predicts boxes for the
    evaluator), no pretrained weights (offline)."""

    def visit(node: dict) -> None:
        if 'num_classes' in node:
            node['num_classes'] = NUM_CLASSES
        if 'score_thr' in node:
            node['score_thr'] = 0.0
        for key in ('max_per_img', 'nms_pre'):
            if isinstance(node.get(key), int):
                node[key] = min(node[key], MAX_PROPOSALS)
        if str(node.get('type', '')).endswith('Sampler') and 'num' in node:
            node['num'] = min(node['num'], MAX_PROPOSALS)

    _walk(model, visit)
    model.backbone.init_cfg = None


def _shrink_pipeline(pipeline: list) -> None:
    """Every resize of the config's own pipeline goes to ``TINY_SCALE``."""

    def visit(node: dict) -> None:
        if isinstance(node.get('scale'), (tuple, list)):
            node['scale'] = TINY_SCALE
        if isinstance(node.get('scales'), (tuple, list)):
            node['scales'] = [TINY_SCALE]

    _walk(pipeline, visit)


def _point_at_tiny_set(loader: ConfigDict, data: dict[str, str],
                       split: str, num_images: int) -> None:
    loader.update(batch_size=num_images, num_workers=0,
                  persistent_workers=False)
    dataset = loader.dataset
    while 'dataset' in dataset:  # RepeatDataset, ClassBalancedDataset...
        dataset = dataset.dataset
    data_root = Path(data[f'{split}_img_dir']).parent
    dataset.update(
        data_root=str(data_root),
        ann_file=str(Path(data[f'{split}_ann_file']).relative_to(data_root)),
        data_prefix=dict(img=Path(data[f'{split}_img_dir']).name + '/'),
        metainfo=dict(classes=SHAPES_METAINFO['classes'],
                      palette=SHAPES_METAINFO['palette']),
        indices=num_images)
    _shrink_pipeline(dataset.pipeline)


def tiny_run_config(path: Path, data: dict[str, str],
                    work_dir: Path) -> Config:
    """The config at ``path``, made to run one iteration on the tiny set."""
    cfg = Config.fromfile(str(path))
    _shrink_model(cfg.model)
    _point_at_tiny_set(cfg.train_dataloader, data, 'train', num_images=2)
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        _point_at_tiny_set(loader, data, 'val', num_images=1)
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        for metric in (evaluator if isinstance(evaluator, list)
                       else [evaluator]):
            metric.ann_file = data['val_ann_file']
    # one epoch of one iteration (2 images), then one validation
    for key in ('max_epochs', 'max_iters'):
        if key in cfg.train_cfg:
            cfg.train_cfg[key] = 1
    cfg.train_cfg.val_interval = 1
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = str(work_dir)
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=0)
    cfg.env_cfg.cudnn_benchmark = False
    return cfg


# ------------------------------------------------------------------ probe
class _Probe(Hook):
    """Records what the config's training and validation really did."""

    priority = 'LOWEST'

    def __init__(self) -> None:
        self.train_outputs: list[dict] = []
        self.val_outputs: list = []
        self.bn_training: dict[str, bool] = {}
        self.ce_training: dict[str, bool] = {}

    def before_train_iter(self, runner: Runner, batch_idx: int,
                          data_batch: Any = None) -> None:
        for name, module in runner.model.backbone.named_modules():
            if isinstance(module, _BatchNorm):
                self.bn_training[name] = module.training
            elif isinstance(module, ChannelEquilibrium):
                self.ce_training[name] = module.training

    def after_train_iter(self, runner: Runner, batch_idx: int,
                         data_batch: Any = None, outputs: Any = None) -> None:
        self.train_outputs.append(dict(outputs))

    def after_val_iter(self, runner: Runner, batch_idx: int,
                       data_batch: Any = None, outputs: Any = None) -> None:
        self.val_outputs.extend(outputs)


def _evaluator_metrics(cfg: Config) -> set[str]:
    metrics: set[str] = set()
    evaluators = cfg.val_evaluator
    for evaluator in (evaluators if isinstance(evaluators, list)
                      else [evaluators]):
        metric = evaluator.get('metric', 'bbox')
        metrics.update([metric] if isinstance(metric, str) else metric)
    return metrics


RUN_KEYS = ('model', 'train_dataloader', 'val_dataloader', 'test_dataloader',
            'val_evaluator', 'test_evaluator')
"""What a tiny run exercises, besides the schedule."""


def _same_run_as_1x(path: Path, cfg: Config, data: dict[str, str],
                    work_dir: Path) -> Path | None:
    """The 1x config whose tiny run is this (2x) config's, if any.

    A ``*_2x.py`` config whose model, data and evaluators equal those of its
    1x counterpart would repeat that run exactly (one iteration of a 24-epoch
    schedule is one of a 12-epoch one); its schedule is built instead.
    """
    if not path.stem.endswith('_2x'):
        return None
    parent = path.with_name(path.stem[:-len('_2x')] + '.py')
    if not parent.is_file():
        return None
    parent_cfg = tiny_run_config(parent, data, work_dir)
    if any(cfg.get(key) != parent_cfg.get(key) for key in RUN_KEYS):
        return None
    return parent


def _build_schedule(runner: Runner) -> list:
    """What ``Runner.train`` builds before the first iteration."""
    runner._train_loop = runner.build_train_loop(runner._train_loop)
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    runner.scale_lr(runner.optim_wrapper, runner.auto_scale_lr)
    return runner.build_param_scheduler(runner.param_schedulers)


@pytest.mark.parametrize('path', TRAINED_CONFIGS, ids=_config_id)
def test_config_trains_and_predicts(path: Path, tiny_shapes_dataset: dict,
                                    tmp_path: Path) -> None:
    cfg = tiny_run_config(path, tiny_shapes_dataset, tmp_path)
    runner = Runner.from_cfg(cfg)
    if _same_run_as_1x(path, cfg, tiny_shapes_dataset, tmp_path):
        schedulers = _build_schedule(runner)
        assert [type(s).__name__ for s in schedulers] == [
            scheduler.type for scheduler in cfg.param_scheduler]
        assert runner.train_loop.max_epochs == cfg.train_cfg.max_epochs
        return
    probe = _Probe()
    runner.register_hook(probe)
    model = runner.model

    # The model is what the config says: CE layers of the configured kind.
    backbone_cfg = cfg.model.backbone
    ce_layers = [m for m in model.modules()
                 if isinstance(m, ChannelEquilibrium)]
    if backbone_cfg.type == 'CEResNet':
        sync = backbone_cfg.get('ce_cfg', {}).get('type') == 'SyncCE'
        assert ce_layers
        assert all(isinstance(m, SyncChannelEquilibrium) == sync
                   for m in model.backbone.modules()
                   if isinstance(m, ChannelEquilibrium))
    uses_bnce = 'BNCE' in str(cfg.model)
    assert any(isinstance(m, BatchNormCE) for m in model.modules()) \
        == uses_bnce
    if backbone_cfg.type == 'ResNet' and not uses_bnce:
        assert not ce_layers

    runner.train()

    # One training iteration with finite losses; the optimizer stepped
    # every trainable parameter of the backbone (CE's too) and the neck, and
    # none of the frozen ones.
    assert len(probe.train_outputs) == 1
    losses = probe.train_outputs[0]
    assert 'loss' in losses and len(losses) > 1
    for name, value in losses.items():
        assert math.isfinite(float(value)), (name, value)
    optimizer_state = runner.optim_wrapper.optimizer.state
    for part in ('backbone', 'neck'):
        for name, param in getattr(model, part).named_parameters():
            stepped = bool(optimizer_state.get(param))
            assert stepped == param.requires_grad, f'{part}.{name}'
    # BN frozen as configured (MMDetection's norm_eval); CE on batch
    # statistics unless ce_eval=True or in a frozen stage (0 = the stem).
    assert probe.bn_training
    assert any(probe.bn_training.values()) != backbone_cfg.get(
        'norm_eval', True)
    if backbone_cfg.type == 'CEResNet':
        assert probe.ce_training
        frozen_stages = backbone_cfg.get('frozen_stages', -1)
        for name, training in probe.ce_training.items():
            stage = 0 if name == 'stem_ce' else int(name[len('layer')])
            assert training == (stage > frozen_stages
                                and not backbone_cfg.get('ce_eval')), name

    # One validation image: predictions with the evaluator's fields.
    assert len(probe.val_outputs) == 1
    pred = probe.val_outputs[0].pred_instances
    assert {'bboxes', 'scores', 'labels'} <= set(pred.keys())
    assert pred.bboxes.shape[1:] == (4,)
    assert len(pred.scores) == len(pred.labels) == len(pred.bboxes)
    assert len(pred.bboxes) > 0  # no score threshold: see _shrink_model
    assert torch.isfinite(pred.bboxes).all()
    assert 0 <= int(pred.labels.min()) <= int(pred.labels.max()) \
        < NUM_CLASSES
    if 'segm' in _evaluator_metrics(cfg):
        assert 'masks' in pred and len(pred.masks) == len(pred.bboxes)
    metric_keys = runner.message_hub.log_scalars.keys()
    for metric in _evaluator_metrics(cfg):
        assert f'val/coco/{metric}_mAP' in metric_keys, metric

    # The test split builds too (dataloader, pipeline, evaluator).
    sample = runner.test_loop.dataloader.dataset[0]
    assert max(sample['inputs'].shape[1:]) <= max(TINY_SCALE)


# ---------------------------------------------------------- static checks
TABLE3 = {
    # config: (backbone type, depth, CE type, pretrained checkpoint)
    'mask_rcnn_ce_r50_fpn.py':
    ('CEResNet', 50, 'CE', 'checkpoints/ce_resnet50_mmdet.pth'),
    'mask_rcnn_ce_r101_fpn.py':
    ('CEResNet', 101, 'CE', 'checkpoints/ce_resnet101_mmdet.pth'),
    'mask_rcnn_syncce_r50_fpn.py':
    ('CEResNet', 50, 'SyncCE', 'checkpoints/ce_resnet50_mmdet.pth'),
    'mask_rcnn_syncce_r101_fpn.py':
    ('CEResNet', 101, 'SyncCE', 'checkpoints/ce_resnet101_mmdet.pth'),
    'mask_rcnn_r50_fpn.py': ('ResNet', 50, None, 'torchvision://resnet50'),
    'mask_rcnn_r101_fpn.py': ('ResNet', 101, None, 'torchvision://resnet101'),
}


@pytest.mark.parametrize('schedule', ['', '_2x'])
@pytest.mark.parametrize('name', sorted(TABLE3))
def test_mask_rcnn_configs_match_table3_settings(name: str,
                                                 schedule: str) -> None:
    backbone_type, depth, ce_type, checkpoint = TABLE3[name]
    cfg = _load(name.replace('.py', f'{schedule}.py'))
    backbone = cfg.model.backbone
    assert cfg.model.type == 'MaskRCNN'
    assert (backbone.type, backbone.depth) == (backbone_type, depth)
    assert backbone.init_cfg == dict(type='Pretrained', checkpoint=checkpoint)
    # BN as in MMDetection
    assert backbone.frozen_stages == 1 and backbone.norm_eval is True
    assert backbone.norm_cfg == dict(type='BN', requires_grad=True)
    assert backbone.style == 'pytorch'
    if ce_type is not None:
        assert backbone.ce_eval is False
        assert backbone.stage_with_ce == (True, True, True, False)
        assert backbone.ce_cfg == dict(type=ce_type, group_size=16)
        assert backbone.stem_ce_cfg == dict(type=ce_type, group_size=64)
    assert _evaluator_metrics(cfg) == {'bbox', 'segm'}


TORCHVISION_INPUT = dict(
    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True)
"""The input normalisation of torchvision's (and the CENet release's)
ImageNet training."""


def _with_defaults(backbone: ConfigDict) -> ConfigDict:
    """``backbone`` with the arguments it leaves out at their defaults."""
    cls = MODELS.get(backbone.type)
    defaults = {}
    for klass in reversed(cls.__mro__):  # CEResNet's over ResNet's
        if klass.__init__ is not object.__init__:
            defaults.update({
                name: parameter.default
                for name, parameter in inspect.signature(
                    klass.__init__).parameters.items()
                if parameter.default is not inspect.Parameter.empty
            })
    return ConfigDict({**defaults, **backbone})


IMAGENET_CHECKPOINTS = {
    'ResNet': 'torchvision://resnet{depth}',
    'CEResNet': 'checkpoints/ce_resnet{depth}_mmdet.pth',
    # networks that need their own ImageNet training (no published weights)
    'DeconvResNet': 'checkpoints/deconv_resnet{depth}_imagenet.pth',
    'ProportionalReLUResNet':
        'checkpoints/proprelu_resnet{depth}_imagenet.pth',
}
"""The ImageNet weights each COCO backbone type starts from."""

PARAMETER_FREE_PLUGINS = {'GEThetaMinus'}


@pytest.mark.parametrize('path', COCO_CONFIGS, ids=_config_id)
def test_coco_backbones_are_fine_tuned_alike(path: Path) -> None:
    """Every COCO detector fine-tunes an ImageNet ResNet as MMDetection
    does; the CE ones are the release's CE-ResNet, CE on batch statistics;
    plugins with parameters (SE, GE) are not put in frozen stages, where
    they would keep their random initial values."""
    cfg = Config.fromfile(str(path))
    backbone = _with_defaults(cfg.model.backbone)
    assert backbone.type in IMAGENET_CHECKPOINTS
    # BN frozen as in MMDetection, pytorch-style ImageNet weights and input
    assert (backbone.frozen_stages, backbone.norm_eval) == (1, True)
    assert backbone.norm_cfg == dict(type='BN', requires_grad=True)
    assert backbone.style == 'pytorch'
    preprocessor = cfg.model.data_preprocessor
    assert {key: preprocessor[key] for key in TORCHVISION_INPUT} \
        == TORCHVISION_INPUT
    assert backbone.init_cfg == dict(
        type='Pretrained',
        checkpoint=IMAGENET_CHECKPOINTS[backbone.type].format(
            depth=backbone.depth))
    for plugin in backbone.plugins or []:
        if plugin.cfg.type in PARAMETER_FREE_PLUGINS:
            continue
        stages = plugin.get('stages') or (True, ) * 4
        assert not any(stages[:backbone.frozen_stages]), plugin
    if backbone.type != 'CEResNet':
        return
    # CE as in the release, on batch statistics during training
    assert tuple(backbone.stage_with_ce) == (True, True, True, False)
    assert backbone.ce_cfg.get('group_size', 16) == 16
    assert backbone.stem_ce_cfg.get('group_size', 64) == 64
    assert backbone.ce_cfg.type == backbone.stem_ce_cfg.type
    assert backbone.ce_eval is False


@pytest.mark.parametrize('path', CONFIGS, ids=_config_id)
def test_config_imports_ce_mmdet_and_scales_lr_from_16_images(
        path: Path) -> None:
    cfg = Config.fromfile(str(path))
    assert 'ce_mmdet' in cfg.custom_imports.imports
    assert cfg.custom_imports.allow_failed_imports is False
    # --auto-scale-lr rescales from MMDetection's 16 images per iteration
    assert cfg.auto_scale_lr == dict(enable=False, base_batch_size=16)


@pytest.mark.parametrize('path', CONFIGS, ids=_config_id)
def test_config_keeps_rng_states_for_an_exact_resume(path: Path) -> None:
    # configs/_base_/exact_resume.py, once (configs/shapes/ add their own)
    cfg = Config.fromfile(str(path))
    assert [hook for hook in cfg.custom_hooks
            if hook.type == 'RNGStateHook'] == [dict(type='RNGStateHook')]


@pytest.mark.parametrize('path', COCO_CONFIGS, ids=_config_id)
def test_coco_schedule_is_mmdetections(path: Path) -> None:
    cfg = Config.fromfile(str(path))
    assert cfg.train_dataloader.dataset.data_root == 'data/coco/'
    assert cfg.train_cfg.type == 'EpochBasedTrainLoop'
    epochs, milestones = ((24, [16, 22]) if path.stem.endswith('_2x') else
                          (12, [8, 11]))
    assert cfg.train_cfg.max_epochs == epochs
    warmup, steps = cfg.param_scheduler
    assert warmup.by_epoch is False and warmup.end == 500
    assert steps.type == 'MultiStepLR' and steps.by_epoch is True
    assert (steps.end, steps.milestones, steps.gamma) == (epochs, milestones,
                                                          0.1)
    # MMDetection's values for 16 images per iteration (the paper's 1x):
    # one-stage detectors at lr 0.01, FCOS with its constant warm-up.
    optimizer = cfg.optim_wrapper.optimizer
    one_stage = path.stem.startswith(('retinanet', 'fcos'))
    assert (optimizer.type, optimizer.lr, optimizer.momentum,
            optimizer.weight_decay) == ('SGD', 0.01 if one_stage else 0.02,
                                        0.9, 1e-4)
    if path.stem.startswith('fcos'):
        assert (warmup.type, warmup.factor) == ('ConstantLR', 1.0 / 3)
    else:
        assert (warmup.type, warmup.start_factor) == ('LinearLR', 0.001)


# ---------------------------------------------------- missing checkpoint
def test_missing_ce_checkpoint_says_how_to_make_it(tmp_path: Path) -> None:
    backbone_cfg = _load('mask_rcnn_ce_r50_fpn.py').model.backbone
    missing = tmp_path / 'ce_resnet50_mmdet.pth'
    backbone_cfg.init_cfg.checkpoint = str(missing)
    backbone = MODELS.build(backbone_cfg)
    with pytest.raises(FileNotFoundError) as error:
        backbone.init_weights()
    message = str(error.value)
    assert str(missing) in message
    assert 'tools/model_converters/cenet2mmdet.py' in message
    assert 'model.backbone.init_cfg.checkpoint' in message


def test_default_ce_checkpoint_path_is_named_in_the_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no checkpoints/ here
    model = MODELS.build(_load('mask_rcnn_ce_r50_fpn.py').model)
    with pytest.raises(FileNotFoundError,
                       match='checkpoints/ce_resnet50_mmdet.pth'):
        model.init_weights()  # the detector initialises its backbone


@pytest.mark.parametrize('checkpoint', [
    'torchvision://resnet50', 'open-mmlab://resnet50_v1c',
    'https://example.com/ce_resnet50.pth', 's3://bucket/ce_resnet50.pth'
])
def test_remote_checkpoints_are_left_to_mmengine(
        checkpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """No existence check for URLs and model-zoo names; MMEngine's loader is
    called with them unchanged (stubbed here: no network, a plain
    ResNet-18's tensors), by the CE-ResNet's check of what the checkpoint
    holds and by MMEngine's initialisation."""
    from mmdet.models.backbones import ResNet
    from mmengine.runner import checkpoint as mmengine_checkpoint

    loaded: list[str] = []
    plain = ResNet(depth=18).state_dict()

    def fake_load_checkpoint(cls, filename: str, *args: Any,
                             **kwargs: Any) -> dict:
        loaded.append(filename)
        return {'state_dict': plain}

    monkeypatch.setattr(mmengine_checkpoint.CheckpointLoader,
                        'load_checkpoint', classmethod(fake_load_checkpoint))
    backbone_cfg = _load('mask_rcnn_ce_r50_fpn.py').model.backbone
    backbone_cfg.depth = 18  # the check does not depend on the depth
    backbone_cfg.init_cfg.checkpoint = checkpoint
    MODELS.build(backbone_cfg).init_weights()
    assert loaded == [checkpoint, checkpoint]


# ------------------------------------------------------ comparison blocks
SHAPES_VARIANTS = {
    # variant name (the compare command's): (backbone type, plugin types)
    'se': ('PluginResNet', {'SE'}),
    'ge-minus': ('PluginResNet', {'GEThetaMinus'}),
    'ge-plus': ('PluginResNet', {'GEThetaPlus'}),
    'deconv': ('DeconvResNet', set()),
    'proprelu': ('ProportionalReLUResNet', set()),
}


def _without_backbone(cfg: Config) -> dict:
    text = cfg.to_dict()
    text['model'] = {k: v for k, v in text['model'].items()
                     if k != 'backbone'}
    return text


@pytest.mark.parametrize('variant', sorted(SHAPES_VARIANTS))
def test_shapes_variants_change_only_the_backbone(variant: str) -> None:
    cfg = _load(f'shapes/mask_rcnn_{variant}_r18_fpn_shapes.py')
    base = _load('shapes/mask_rcnn_r18_fpn_shapes.py')
    assert _without_backbone(cfg) == _without_backbone(base)
    backbone_type, plugin_types = SHAPES_VARIANTS[variant]
    backbone = cfg.model.backbone
    assert backbone.type == backbone_type
    assert {p.cfg.type for p in backbone.get('plugins') or []} \
        == plugin_types
    # the rest of the backbone settings are the base's
    for key, value in base.model.backbone.items():
        if key != 'type':
            assert backbone[key] == value, key


@pytest.mark.parametrize('name,network', [
    ('mask_rcnn_deconv_r50_fpn.py', 'DeconvResNet'),
    ('mask_rcnn_proprelu_r50_fpn.py', 'ProportionalReLUResNet'),
])
def test_changed_networks_refuse_to_start_without_their_imagenet_weights(
        name: str, network: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no checkpoints/ here
    model = MODELS.build(_load(name).model)
    with pytest.raises(FileNotFoundError,
                       match=f'{network}.*own ImageNet training'):
        model.init_weights()
    cfg = _load(name)
    cfg.model.backbone.init_cfg.checkpoint = 'torchvision://resnet50'
    with pytest.raises(ValueError, match='plain ResNet'):
        MODELS.build(cfg.model.backbone).init_weights()
