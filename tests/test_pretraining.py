"""Tests of pretraining with MMPretrain and of pretrained CE backbones in
detectors.

The generated classification set (layout, balance, determinism, atomic
replacement); a few MMPretrain iterations of a CE-ResNet-18 classifier with
``tools/pretrain/train.py`` and its top-1 with ``tools/pretrain/test.py``;
its checkpoint initialising the detection CE-ResNet-18 of
``configs/shapes/mask_rcnn_ce_r18_fpn_shapes_pretrained.py`` with features
identical to the classifier's; the checkpoints a CE detection backbone
refuses (another depth, a plain classifier, an incomplete or mis-shaped CE
checkpoint, a classifier without ``prefix``), leaving its weights as they
were; MMPretrain classifiers with every CE-ResNet depth and the comparison
backbones; the ImageNet recipes of ``configs/pretrain/``; and a quick run of
``tools/run_demo.sh pretrain``.
"""
import importlib
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from ce_mmdet.datasets import (
    SHAPES_CLASSIFICATION_CLASSES,
    generate_shapes_classification_set,
)
from tool_runs import run_tool

pytestmark = pytest.mark.usefixtures('single_thread')

REPO_ROOT = Path(__file__).resolve().parents[1]
TOOLS = REPO_ROOT / 'tools'
CONFIG_DIR = REPO_ROOT / 'configs'
PRETRAIN_CONFIGS = sorted((CONFIG_DIR / 'pretrain').glob('*.py'))
CE_CLASSIFIER = (CONFIG_DIR / 'pretrain' / 'shapes'
                 / 'ce-resnet18_shapes-cls.py')
CE_DETECTOR = (CONFIG_DIR / 'shapes'
               / 'mask_rcnn_ce_r18_fpn_shapes_pretrained.py')


def build_in_scope(scope: str, cfg: dict) -> torch.nn.Module:
    """Build a model as a Runner with ``default_scope=scope`` does, whatever
    scope earlier tests of the session left current."""
    import ce_mmdet  # noqa: F401
    registry = importlib.import_module(f'{scope}.registry')
    with DefaultScope.overwrite_default_scope(scope):
        return registry.MODELS.build(cfg)


def build_classifier(backbone: dict, in_channels: int = 512,
                     num_classes: int = 4):
    return build_in_scope('mmpretrain', dict(
        type='ImageClassifier',
        backbone=dict(out_indices=(3, ), **backbone),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=num_classes,
                  in_channels=in_channels,
                  loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1,
                            mode='original'))))


def build_detection_backbone(depth: int = 18, checkpoint: str | None = None,
                             prefix: str | None = 'backbone.', **kwargs):
    init_cfg = None if checkpoint is None else dict(
        type='Pretrained', checkpoint=checkpoint,
        **({} if prefix is None else dict(prefix=prefix)))
    return build_in_scope('mmdet', dict(type='CEResNet', depth=depth,
                                        init_cfg=init_cfg, **kwargs))


def save_classifier(classifier, path: Path) -> str:
    torch.manual_seed(1)
    with torch.no_grad():  # values a fresh backbone cannot have
        for tensor in classifier.state_dict().values():
            if tensor.is_floating_point():
                tensor.uniform_(0.5, 1.5)
    torch.save(dict(meta=dict(epoch=1), state_dict=classifier.state_dict()),
               path)
    return str(path)


# ------------------------------------------------------- the generated set
def test_classification_set_layout_balance_and_determinism(
        tmp_path: Path) -> None:
    paths = generate_shapes_classification_set(
        tmp_path / 'cls', num_train=12, num_val=8, image_size=32,
        show_progress=False)
    train = Path(paths['train_dir'])
    assert sorted(p.name for p in train.iterdir()) == list(
        SHAPES_CLASSIFICATION_CLASSES)
    assert [len(list((train / c).iterdir()))
            for c in SHAPES_CLASSIFICATION_CLASSES] == [3, 3, 3, 3]
    again = generate_shapes_classification_set(
        tmp_path / 'again', num_train=12, num_val=8, image_size=32,
        show_progress=False)
    for image in sorted(train.rglob('*.png')):
        twin = Path(again['train_dir']) / image.relative_to(train)
        assert image.read_bytes() == twin.read_bytes()
    other_seed = generate_shapes_classification_set(
        tmp_path / 'seed1', num_train=12, num_val=8, image_size=32, seed=1,
        show_progress=False)
    first = sorted(train.rglob('*.png'))[0]
    assert first.read_bytes() != (Path(other_seed['train_dir']) /
                                  first.relative_to(train)).read_bytes()


def test_classification_set_is_read_by_mmpretrains_imagenet(
        tmp_path: Path) -> None:
    from mmpretrain.datasets import ImageNet

    generate_shapes_classification_set(tmp_path, num_train=8, num_val=4,
                                       image_size=32, show_progress=False)
    dataset = ImageNet(data_root=str(tmp_path), split='train',
                       metainfo=dict(classes=SHAPES_CLASSIFICATION_CLASSES))
    assert len(dataset) == 8
    for index in range(len(dataset)):
        info = dataset.get_data_info(index)
        label = SHAPES_CLASSIFICATION_CLASSES[info['gt_label']]
        assert Path(info['img_path']).parent.name == label


def test_interrupted_generation_keeps_the_old_set(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ce_mmdet.datasets.shapes_classification as module

    out = tmp_path / 'cls'
    generate_shapes_classification_set(out, num_train=4, num_val=4,
                                       image_size=32, show_progress=False)
    before = {p: p.read_bytes() for p in out.rglob('*.png')}
    written = []

    def failing_imwrite(path, image, options):
        if len(written) == 5:
            raise KeyboardInterrupt
        written.append(path)
        return True

    monkeypatch.setattr(module.cv2, 'imwrite', failing_imwrite)
    with pytest.raises(KeyboardInterrupt):
        generate_shapes_classification_set(out, num_train=8, num_val=4,
                                           image_size=32, seed=3,
                                           show_progress=False)
    assert {p: p.read_bytes() for p in out.rglob('*.png')} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ['cls']


@pytest.mark.parametrize('kwargs, names', [
    (dict(num_train=3), 'num_train'),
    (dict(num_val=True), 'num_val'),
    (dict(image_size=16), 'image_size'),
    (dict(seed=-1), 'seed'),
])
def test_classification_set_rejects_bad_arguments(tmp_path: Path, kwargs,
                                                  names: str) -> None:
    with pytest.raises(ValueError, match=names):
        generate_shapes_classification_set(tmp_path / 'x', **kwargs)
    assert not (tmp_path / 'x').exists()


# ------------------------------------------- MMPretrain classifier -> detector
@pytest.fixture(scope='module')
def pretrained_classifier(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A CE-ResNet-18 classifier trained 2 iterations by MMPretrain's
    training script on a tiny generated set, then evaluated by its test
    script."""
    root = tmp_path_factory.mktemp('pretrain')
    data = generate_shapes_classification_set(
        root / 'data', num_train=8, num_val=4, image_size=32,
        show_progress=False)['data_root']
    work_dir = root / 'work'
    options = [
        f'train_dataloader.dataset.data_root={data}',
        f'val_dataloader.dataset.data_root={data}',
        f'test_dataloader.dataset.data_root={data}',
        'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
        'val_dataloader.num_workers=0', 'test_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.persistent_workers=False',
        'test_dataloader.persistent_workers=False',
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
        'default_hooks.logger.interval=1'
    ]
    run_tool([TOOLS / 'pretrain' / 'train.py', CE_CLASSIFIER, '--work-dir',
              work_dir, '--cfg-options', *options], cwd=root)
    checkpoint = (work_dir / 'last_checkpoint').read_text().strip()
    output = run_tool([TOOLS / 'pretrain' / 'test.py', CE_CLASSIFIER,
                       checkpoint, '--work-dir', root / 'test',
                       '--cfg-options', *options], cwd=root)
    return dict(checkpoint=checkpoint, test_output=output)


def test_mmpretrain_trains_and_evaluates_a_ce_classifier(
        pretrained_classifier: dict) -> None:
    checkpoint = torch.load(pretrained_classifier['checkpoint'])
    assert checkpoint['meta']['epoch'] == 1
    assert checkpoint['meta']['iter'] == 2
    state = checkpoint['state_dict']
    assert 'backbone.layer3.1.ce.running_whitening' in state
    assert 'backbone.stem_ce.gate_logit' in state
    assert state['head.fc.weight'].shape == (4, 512)
    # trained: CE's running statistics moved from their initial values
    assert not torch.equal(state['backbone.layer1.0.ce.running_mean'],
                           torch.zeros_like(
                               state['backbone.layer1.0.ce.running_mean']))
    assert 'accuracy/top1:' in pretrained_classifier['test_output']


def test_classifier_checkpoint_initialises_the_detection_backbone(
        pretrained_classifier: dict) -> None:
    """The detection config's CE-ResNet-18 gets exactly the classifier's
    backbone: equal tensors and equal eval features."""
    from mmengine.runner import load_checkpoint

    checkpoint = pretrained_classifier['checkpoint']
    cls_cfg = Config.fromfile(str(CE_CLASSIFIER))
    classifier = build_in_scope('mmpretrain', cls_cfg.model)
    load_checkpoint(classifier, checkpoint, map_location='cpu', strict=True)
    det_cfg = Config.fromfile(str(CE_DETECTOR))
    assert det_cfg.model.backbone.init_cfg.prefix == 'backbone.'
    det_cfg.model.backbone.init_cfg.checkpoint = checkpoint
    backbone = build_in_scope('mmdet', det_cfg.model.backbone)
    backbone.init_weights()
    cls_state = classifier.backbone.state_dict()
    det_state = backbone.state_dict()
    assert cls_state.keys() == det_state.keys()
    for key, value in cls_state.items():
        assert torch.equal(det_state[key], value), key
    classifier.eval()
    backbone.eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = classifier.backbone(x)[-1]
        features = backbone(x)
    assert len(features) == 4
    assert torch.equal(features[3], expected)


@pytest.fixture(scope='module')
def ce18_classifier_checkpoint(tmp_path_factory) -> str:
    classifier = build_classifier(dict(type='mmdet.CEResNet', depth=18))
    return save_classifier(
        classifier, tmp_path_factory.mktemp('ce18') / 'ce18_cls.pth')


@pytest.mark.parametrize('depth, expected', [
    (34, r'lacks \d+ tensors of this network: layer1\.2\.'),
    (50, r'tensors of other shapes|does not have'),
    (101, r'tensors of other shapes|does not have'),
])
def test_classifier_of_another_depth_is_refused(
        ce18_classifier_checkpoint: str, depth: int, expected: str) -> None:
    backbone = build_detection_backbone(depth, ce18_classifier_checkpoint)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    with pytest.raises(ValueError, match=expected) as error:
        backbone.init_weights()
    assert f'CEResNet-{depth}' in str(error.value)
    assert ce18_classifier_checkpoint in str(error.value)
    assert 'Nothing was loaded' in str(error.value)
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_plain_classifier_is_refused_by_a_ce_backbone(tmp_path: Path) -> None:
    plain = build_classifier(dict(type='mmdet.ResNet', depth=18))
    checkpoint = save_classifier(plain, tmp_path / 'plain18.pth')
    backbone = build_detection_backbone(18, checkpoint)
    with pytest.raises(ValueError,
                       match='backbone of a plain ResNet.*configs/pretrain'):
        backbone.init_weights()


def test_incomplete_or_misshaped_ce_checkpoints_are_refused(
        ce18_classifier_checkpoint: str, tmp_path: Path) -> None:
    state = torch.load(ce18_classifier_checkpoint)['state_dict']
    incomplete = {k: v for k, v in state.items()
                  if not k.startswith('backbone.layer3.1.ce.')}
    path = tmp_path / 'incomplete.pth'
    torch.save(dict(state_dict=incomplete), path)
    removed = len(state) - len(incomplete)
    assert removed == 8  # gate, mean, whitening, scale, the MLP's 4
    with pytest.raises(ValueError,
                       match=rf'lacks {removed} of the 56 CE tensors.*'
                       r'layer3\.1\.ce'):
        build_detection_backbone(18, str(path)).init_weights()

    # a CE-ResNet-18 with groups of 8: other whitening shapes
    with pytest.raises(ValueError, match='other shapes: layer1.0.ce'):
        build_detection_backbone(
            18, ce18_classifier_checkpoint,
            ce_cfg=dict(type='CE', group_size=8)).init_weights()


def test_classifier_checkpoint_without_prefix_names_the_fix(
        ce18_classifier_checkpoint: str) -> None:
    backbone = build_detection_backbone(18, ce18_classifier_checkpoint,
                                        prefix=None)
    with pytest.raises(ValueError, match="prefix='backbone.'"):
        backbone.init_weights()


@pytest.mark.parametrize('depth', [18, 34, 50, 101, 152])
def test_imagenet_classifier_with_every_ce_resnet_depth(depth: int) -> None:
    classifier = build_classifier(
        dict(type='mmdet.CEResNet', depth=depth),
        in_channels=512 if depth < 50 else 2048, num_classes=10)
    classifier.init_weights()
    scores = classifier(torch.randn(2, 3, 32, 32), mode='tensor')
    assert scores.shape == (2, 10)


@pytest.mark.parametrize('backbone', [
    dict(type='mmdet.PluginResNet', plugins=[dict(
        cfg=dict(type='SE', ratio=16), position='after_conv2')]),
    dict(type='mmdet.PluginResNet', plugins=[dict(
        cfg=dict(type='GEThetaMinus'), position='after_conv2')]),
    dict(type='mmdet.DeconvResNet'),
    dict(type='mmdet.ProportionalReLUResNet'),
], ids=['se', 'ge-minus', 'deconv', 'proprelu'])
def test_comparison_backbones_in_an_mmpretrain_classifier(
        backbone: dict) -> None:
    classifier = build_classifier(dict(depth=18, **backbone))
    classifier.train()
    inputs = torch.randn(4, 3, 32, 32)
    from mmpretrain.structures import DataSample
    samples = [DataSample().set_gt_label(i % 4) for i in range(4)]
    losses = classifier(inputs, samples, mode='loss')
    losses['loss'].backward()
    assert torch.isfinite(losses['loss'])


# ------------------------------------------------------- ImageNet recipes
@pytest.mark.parametrize('path', PRETRAIN_CONFIGS, ids=lambda p: p.name)
def test_imagenet_recipe_is_the_releases(path: Path) -> None:
    """The CENet release's recipe, on MMPretrain's ImageNet pipeline."""
    cfg = Config.fromfile(str(path))
    assert 'ce_mmdet' in cfg.custom_imports.imports
    depth = int(path.name.split('_')[0].split('resnet')[1])
    backbone = cfg.model.backbone
    assert backbone.type == ('mmdet.CEResNet' if path.name.startswith('ce-')
                             else 'mmdet.ResNet')
    assert backbone.depth == depth
    assert cfg.model.head.in_channels == (512 if depth < 50 else 2048)
    assert cfg.model.head.num_classes == 1000
    assert cfg.model.head.loss == dict(type='LabelSmoothLoss',
                                       label_smooth_val=0.1, mode='original')
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.momentum,
            optimizer.weight_decay) == ('SGD', 0.1, 0.9, 1e-4)
    assert 'paramwise_cfg' not in cfg.optim_wrapper  # decay on everything
    warmup, steps = cfg.param_scheduler
    assert (warmup.type, warmup.end, warmup.by_epoch,
            warmup.convert_to_iter_based) == ('LinearLR', 5, True, True)
    assert warmup.start_factor <= 1e-3
    assert (steps.type, steps.milestones, steps.gamma) == (
        'MultiStepLR', [30, 60, 90], 0.1)
    assert cfg.train_cfg.max_epochs == 100
    assert cfg.train_dataloader.batch_size == 32  # x 8 GPUs = 256
    assert cfg.auto_scale_lr.base_batch_size == 256
    assert cfg.train_dataloader.dataset.type == 'ImageNet'
    train_steps = [(t.type, t.get('scale')) for t in
                   cfg.train_dataloader.dataset.pipeline]
    assert ('RandomResizedCrop', 224) in train_steps
    assert ('RandomFlip', None) in train_steps
    test_steps = [(t.type, t.get('scale', t.get('crop_size'))) for t in
                  cfg.val_dataloader.dataset.pipeline]
    assert ('ResizeEdge', 256) in test_steps
    assert ('CenterCrop', 224) in test_steps
    classifier = build_in_scope('mmpretrain', cfg.model)
    assert type(classifier.backbone).__name__ == backbone.type.split('.')[1]


def test_plugins_of_the_detector_may_be_new(
        ce18_classifier_checkpoint: str) -> None:
    """A detection CE-ResNet with an SE plugin starts from a CE classifier
    without one: the SE tensors are new by design, the rest is loaded."""
    backbone = build_detection_backbone(
        18, ce18_classifier_checkpoint,
        plugins=[dict(cfg=dict(type='SE', ratio=16),
                      position='after_conv2')])
    backbone.init_weights()
    state = torch.load(ce18_classifier_checkpoint)['state_dict']
    loaded = backbone.state_dict()
    assert any('.se' in key for key in loaded)
    for key, value in loaded.items():
        if f'backbone.{key}' in state:
            assert torch.equal(value, state[f'backbone.{key}']), key
        else:
            assert '.se' in key, key
