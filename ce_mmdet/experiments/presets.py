"""The experiments of Table 3 as plans of steps: ``coco`` and ``shapes``.

``coco``: the paper's experiment. For each backbone (CE-ResNet-50,
CE-ResNet-101 and their BN baselines): pretrain on ImageNet with MMPretrain
(``configs/pretrain/``), measure its top-1, train Mask R-CNN + FPN on COCO
initialised from that checkpoint (``configs/mask_rcnn_*``, 1x and
optionally 2x), evaluate box and mask AP on val2017; then collect the table.
The backbone weights may come from elsewhere instead: the authors' released
CE-ResNet-50 (``--ce-weights release``: ``checkpoints/ce_resnet50_mmdet.pth``,
converted by ``tools/model_converters/cenet2mmdet.py``) or torchvision's BN
ResNets (``--bn-weights torchvision``, as MMDetection's baselines); the
table says where each row's weights came from.

``shapes``: the same chain on the embedded default, on a CPU: CE-ResNet-18
and ResNet-18 pretrained on the shapes classification set, Mask R-CNN on
the shapes detection set from that checkpoint and from scratch. The
from-scratch training is ``tools/run_demo.sh``'s own (same config, options
and work directory), so a demo run already made is reused.
"""
from __future__ import annotations

import os.path as osp
from dataclasses import dataclass
from typing import Optional

from .steps import Step

__all__ = ['PRESETS', 'PlanOptions', 'build_plan']

PRESETS = ('coco', 'shapes')


@dataclass(frozen=True)
class PlanOptions:
    """What a user chooses about an experiment.

    Attributes:
        preset: ``'coco'`` or ``'shapes'``.
        work_dirs: root of the work directories (``work_dirs``).
        models: ``'ce'`` and/or ``'bn'`` rows (shapes: ``'ce'``,
            ``'plain'``; ``'bn'`` is accepted for ``'plain'``).
        depths: coco: ResNet depths (50, 101).
        schedules: coco: ``'1x'`` and/or ``'2x'``.
        ce_weights: coco: ``'pretrain'`` or ``'release'`` (R-50 only).
        bn_weights: coco: ``'pretrain'`` or ``'torchvision'``.
        gpus: processes per training (coco: the total batch is 2 images
            per GPU for detection, 32 for pretraining; the learning rate is
            scaled by MMEngine's ``auto_scale_lr`` when it is not 8).
        seed: the runs' seed.
        quick: shapes: a few iterations per step (checks the chain; the
            numbers mean nothing), in ``<work_dirs>/table3_shapes_quick``.
    """
    preset: str
    work_dirs: str = 'work_dirs'
    models: tuple[str, ...] = ('ce', 'bn')
    depths: tuple[int, ...] = (50, 101)
    schedules: tuple[str, ...] = ('1x', )
    ce_weights: str = 'pretrain'
    bn_weights: str = 'pretrain'
    gpus: int = 8
    seed: int = 0
    quick: bool = False


CHECKPOINT_KEY = 'model.backbone.init_cfg.checkpoint'
PREFIX_OPTION = 'model.backbone.init_cfg.prefix=backbone.'
NO_VALIDATION = 'train_cfg.val_begin=1000000'  # evaluation is its own step

# shapes: the embedded default's data, as tools/run_demo.sh generates them
SHAPES_DATA = 'data/shapes'
SHAPES_CLS_DATA = 'data/shapes_cls'
SHAPES_ANNOTATIONS = (f'{SHAPES_DATA}/annotations/instances_train.json',
                      f'{SHAPES_DATA}/annotations/instances_val.json')
# a few iterations per step (--quick): the chain, not the method
# (no data-loading workers: tiny sets restart them every iteration)
QUICK_LOADING = tuple(f'{loader}_dataloader.{key}'
                      for loader in ('train', 'val', 'test')
                      for key in ('num_workers=0', 'persistent_workers=False'))
QUICK_PRETRAIN = ('train_cfg.max_epochs=1',
                  'train_dataloader.dataset.indices=64',
                  'default_hooks.logger.interval=1', *QUICK_LOADING)
QUICK_PRETRAIN_TEST = ('test_dataloader.dataset.indices=20', *QUICK_LOADING)
QUICK_DETECT = ('train_cfg.max_iters=4', 'train_cfg.val_interval=4',
                'default_hooks.checkpoint.interval=2',
                'default_hooks.logger.interval=1', *QUICK_LOADING)
QUICK_DETECT_TEST = ('test_dataloader.dataset.indices=4', *QUICK_LOADING)
# checkpoints often enough that an interrupted run loses little
SHAPES_PRETRAIN_CHECKPOINTS = ('default_hooks.checkpoint.interval=1', )
SHAPES_DETECT_CHECKPOINTS = ('default_hooks.checkpoint.interval=120', )

# coco: where the data and the alternative weights are
COCO_ANNOTATIONS = ('data/coco/annotations/instances_train2017.json',
                    'data/coco/annotations/instances_val2017.json')
IMAGENET_META = ('data/imagenet/meta/train.txt', 'data/imagenet/meta/val.txt')
RELEASED_CE_R50 = 'checkpoints/ce_resnet50_mmdet.pth'
DETECTION_IMAGES_PER_GPU = 2  # MMDetection's 1x/2x: 8 GPUs x 2
PRETRAIN_IMAGES_PER_GPU = 32  # the pretraining recipes: 8 GPUs x 32


def _shapes_models(models: tuple[str, ...]) -> list[str]:
    names = ['plain' if model == 'bn' else model for model in models]
    for name in names:
        if name not in ('ce', 'plain'):
            raise ValueError(f'shapes preset: model {name!r} is not one of '
                             "'ce', 'plain' ('bn' means 'plain')")
    return list(dict.fromkeys(names))


def shapes_plan(options: PlanOptions) -> list[Step]:
    """The ``shapes`` preset (see the module docstring)."""
    suffix = '_quick' if options.quick else ''
    root = osp.join(options.work_dirs, f'table3_shapes{suffix}')
    seed = f'randomness.seed={options.seed}'
    pretrain_extra = QUICK_PRETRAIN if options.quick else ()
    pretrain_test_extra = QUICK_PRETRAIN_TEST if options.quick else ()
    detect_extra = QUICK_DETECT if options.quick else SHAPES_DETECT_CHECKPOINTS
    detect_test_extra = QUICK_DETECT_TEST if options.quick else ()
    steps = [
        Step(name='data-shapes', kind='generate', work_dir=root,
             label='generate the shapes detection set',
             extra=(('generator', 'detection'), ('out_dir', SHAPES_DATA))),
        Step(name='data-shapes-cls', kind='generate', work_dir=root,
             label='generate the shapes classification set',
             extra=(('generator', 'classification'),
                    ('out_dir', SHAPES_CLS_DATA))),
    ]
    tests = []
    for model in _shapes_models(options.models):
        prefix = 'ce-' if model == 'ce' else ''
        detector = ('mask_rcnn_ce_r18_fpn_shapes' if model == 'ce' else
                    'mask_rcnn_r18_fpn_shapes')
        backbone = 'CE-ResNet-18' if model == 'ce' else 'ResNet-18'
        classifier = f'configs/pretrain/shapes/{prefix}resnet18_shapes-cls.py'
        pretrain = f'pretrain-{model}'
        # run_demo.sh's run (not --quick): work_dirs/<detector>
        scratch_dir = (osp.join(root, f'detect-{model}-scratch')
                       if options.quick else
                       osp.join(options.work_dirs, detector))
        steps += [
            Step(name=pretrain, kind='train', toolbox='mmpretrain',
                 config=classifier, work_dir=osp.join(root, pretrain),
                 cfg_options=(seed, *SHAPES_PRETRAIN_CHECKPOINTS,
                              *pretrain_extra),
                 needs=('data-shapes-cls', ), inputs=(SHAPES_CLS_DATA, ),
                 row=f'{model}-pretrained',
                 label=f'pretrain {backbone} on shapes-cls (MMPretrain)'),
            Step(name=f'top1-{model}', kind='test', toolbox='mmpretrain',
                 config=classifier, work_dir=osp.join(root, f'top1-{model}'),
                 cfg_options=(seed, *pretrain_test_extra),
                 needs=(pretrain, ), checkpoint_from=pretrain,
                 inputs=(SHAPES_CLS_DATA, ), row=f'{model}-pretrained',
                 label=f'top-1 of {backbone} on shapes-cls val'),
        ]
        for start in ('pretrained', 'scratch'):
            detect = f'detect-{model}-{start}'
            pretrained = start == 'pretrained'
            origin = ('from the pretrained backbone' if pretrained else
                      'from scratch')
            work_dir = (osp.join(root, detect) if pretrained else scratch_dir)
            config = (f'configs/shapes/{detector}_pretrained.py'
                      if pretrained else f'configs/shapes/{detector}.py')
            steps += [
                Step(name=detect, kind='train', toolbox='mmdet',
                     config=config, work_dir=work_dir,
                     cfg_options=(NO_VALIDATION, seed, *detect_extra),
                     needs=('data-shapes', *((pretrain, ) if pretrained
                                             else ())),
                     checkpoint_from=pretrain if pretrained else '',
                     checkpoint_key=CHECKPOINT_KEY if pretrained else '',
                     inputs=SHAPES_ANNOTATIONS, row=f'{model}-{start}',
                     label=f'Mask R-CNN, {backbone} {origin}'),
                Step(name=f'eval-{model}-{start}', kind='test',
                     toolbox='mmdet', config=config,
                     work_dir=osp.join(work_dir, 'test'),
                     cfg_options=detect_test_extra,
                     needs=(detect, ), checkpoint_from=detect,
                     inputs=SHAPES_ANNOTATIONS, row=f'{model}-{start}',
                     label='box and mask AP on shapes val'),
            ]
            tests.append(f'eval-{model}-{start}')
        tests.append(f'top1-{model}')
    steps.append(_collect(root, tests))
    return steps


def _collect(root: str, tests: list[str]) -> Step:
    return Step(name='collect', kind='collect', work_dir=osp.join(root,
                                                                  'table3'),
                needs=tuple(tests), label='the table, its JSON and chart')


def _coco_row_steps(options: PlanOptions, model: str, depth: int,
                    root: str) -> tuple[list[Step], Optional[str]]:
    """The pretraining steps of one backbone; the checkpoint source."""
    name = f'{model}-r{depth}'
    weights = options.ce_weights if model == 'ce' else options.bn_weights
    if weights in ('release', 'torchvision'):
        return [], weights
    if weights != 'pretrain':
        raise ValueError(f'coco preset: {model} weights {weights!r}: use '
                         "'pretrain', or 'release' (CE) / 'torchvision' (BN)")
    prefix = 'ce-' if model == 'ce' else ''
    config = f'configs/pretrain/{prefix}resnet{depth}_8xb32_in1k.py'
    scale = (() if options.gpus * PRETRAIN_IMAGES_PER_GPU == 256 else
             ('auto_scale_lr.enable=True', ))
    pretrain = f'pretrain-{name}'
    inputs = IMAGENET_META
    label = f'{"CE-" if model == "ce" else ""}ResNet-{depth}'
    return [
        Step(name=pretrain, kind='train', toolbox='mmpretrain',
             config=config, work_dir=osp.join(root, pretrain),
             cfg_options=(f'randomness.seed={options.seed}', *scale),
             inputs=inputs, gpus=options.gpus, row=name,
             label=f'pretrain {label} on ImageNet (MMPretrain, 100 epochs)'),
        Step(name=f'top1-{name}', kind='test', toolbox='mmpretrain',
             config=config, work_dir=osp.join(root, f'top1-{name}'),
             needs=(pretrain, ), checkpoint_from=pretrain, inputs=inputs,
             gpus=options.gpus, row=name,
             label=f'top-1 of {label} on ImageNet val'),
    ], pretrain


def coco_plan(options: PlanOptions) -> list[Step]:
    """The ``coco`` preset (see the module docstring)."""
    root = osp.join(options.work_dirs, 'table3_coco')
    steps: list[Step] = []
    tests = []
    scale = (() if options.gpus * DETECTION_IMAGES_PER_GPU == 16 else
             ('auto_scale_lr.enable=True', ))
    for model in options.models:
        if model not in ('ce', 'bn'):
            raise ValueError(f'coco preset: model {model!r} is not one of '
                             "'ce', 'bn'")
        for depth in options.depths:
            if depth not in (50, 101):
                raise ValueError(f'coco preset: depth {depth} is not 50 or '
                                 '101 (Table 3)')
            if (model == 'ce' and depth != 50
                    and options.ce_weights == 'release'):
                raise ValueError(
                    '--ce-weights release: the authors released CE-ResNet-50 '
                    f'only; for CE-ResNet-{depth} use --ce-weights pretrain '
                    '(or --depths 50)')
            pretrain_steps, source = _coco_row_steps(options, model, depth,
                                                     root)
            steps += pretrain_steps
            if pretrain_steps:
                tests.append(f'top1-{model}-r{depth}')
            for schedule in options.schedules:
                if schedule not in ('1x', '2x'):
                    raise ValueError(f'coco preset: schedule {schedule!r} is '
                                     "not '1x' or '2x'")
                tail = '' if schedule == '1x' else '_2x'
                ce = 'ce_' if model == 'ce' else ''
                config = f'configs/mask_rcnn_{ce}r{depth}_fpn{tail}.py'
                name = f'{model}-r{depth}-{schedule}'
                detect = f'detect-{name}'
                weights: tuple[str, ...] = ()
                checkpoint_from, checkpoint_key = '', ''
                inputs = COCO_ANNOTATIONS
                if source == 'release':
                    inputs = (*inputs, RELEASED_CE_R50)
                elif source != 'torchvision':
                    weights = (PREFIX_OPTION, )
                    checkpoint_from, checkpoint_key = source, CHECKPOINT_KEY
                steps += [
                    Step(name=detect, kind='train', toolbox='mmdet',
                         config=config, work_dir=osp.join(root, detect),
                         cfg_options=(NO_VALIDATION,
                                      f'randomness.seed={options.seed}',
                                      *weights, *scale),
                         needs=(checkpoint_from, ) if checkpoint_from else (),
                         checkpoint_from=checkpoint_from,
                         checkpoint_key=checkpoint_key, inputs=inputs,
                         gpus=options.gpus, row=name,
                         label=f'Mask R-CNN {schedule} on COCO, weights: '
                         f'{_weights_label(source)}'),
                    Step(name=f'eval-{name}', kind='test', toolbox='mmdet',
                         config=config,
                         work_dir=osp.join(root, detect, 'test'),
                         needs=(detect, ),
                         checkpoint_from=detect, inputs=COCO_ANNOTATIONS,
                         gpus=options.gpus, row=name,
                         label='box and mask AP on COCO val2017'),
                ]
                tests.append(f'eval-{name}')
    steps.append(_collect(root, tests))
    return steps


def _weights_label(source: Optional[str]) -> str:
    if source == 'release':
        return f'the authors\' released CE-ResNet-50 ({RELEASED_CE_R50})'
    if source == 'torchvision':
        return 'torchvision\'s ImageNet ResNet'
    return f'step {source}'


def weights_source(steps: list[Step], row: str) -> str:
    """Where the backbone weights of a table row come from, in words."""
    for step in steps:
        if (step.row == row and step.kind == 'train'
                and step.toolbox == 'mmdet'):
            if step.checkpoint_from:
                return f'pretrained here ({step.checkpoint_from})'
            if RELEASED_CE_R50 in step.inputs:
                return 'authors\' release'
            if 'scratch' in row:
                return 'from scratch'
            return 'torchvision'
    return '–'


def build_plan(options: PlanOptions) -> list[Step]:
    """The steps of ``options.preset``, in an order that runs them.

    Raises:
        ValueError: an unknown preset or choice; the message names it.
    """
    if options.preset == 'coco':
        steps = coco_plan(options)
    elif options.preset == 'shapes':
        steps = shapes_plan(options)
    else:
        raise ValueError(f'unknown preset {options.preset!r}: use one of '
                         f'{PRESETS}')
    if options.gpus < 1:
        raise ValueError(f'--gpus {options.gpus}: needs at least 1')
    names = [step.name for step in steps]
    assert len(set(names)) == len(names), names
    return steps
