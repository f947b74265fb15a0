"""The tools of the paper's Fig. 1 on classifiers, on inputs with known
answers:

* the absolute inhibited criteria (dead: zero on every input; small: mean
  magnitude <= epsilon) beside the relative one, on constructed activations;
* cumulative ablation on a model with known dead and known redundant
  channels, scored by an evaluation whose answer is known per channel set;
* ``NormCE``: CE after any norm, against CE applied to the norm's output;
* ``SlimVGG``: MMPretrain's VGG at other widths, with CE through
  ``norm_cfg`` and the activation through ``act_cfg``;
* the CIFAR-scale shapes set: ten classes in MMPretrain's folder layout.
"""
from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.registry import DefaultScope
from torch import nn

import ce_mmdet  # noqa: F401  (registers CE, BNCE, NormCE)
from ce_mmdet.analysis import analyze_backbone
from ce_mmdet.analysis.activation_magnitudes import (
    ActivationMagnitudeRecorder,
    dead_mask,
    small_mask,
)
from ce_mmdet.analysis.channel_ablation import (
    ChannelAblation,
    cumulative_ablation,
    drop_masks,
    random_orders,
    select_layers,
    trunk_calls,
)
from ce_mmdet.layers import ChannelEquilibrium
from ce_mmdet.layers.norm_ce import NormCE


def build_in_scope(scope: str, cfg: dict) -> nn.Module:
    registry = importlib.import_module(f'{scope}.registry')
    with DefaultScope.overwrite_default_scope(scope):
        return registry.MODELS.build(cfg)


# ------------------------------------------------------- inhibited criteria
class Passthrough(nn.Module):
    """A backbone whose one ReLU sees the input itself: the activations are
    exactly the (non-negative) input."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(x)


def constructed_activations() -> list[torch.Tensor]:
    """Two images (1, 4, 4, 4): channel 0 zero everywhere (dead); channel 1
    0.005 everywhere (small, not dead); channel 2 zero but one position of
    one image at 0.1 (small: mean 0.1 / 32 = 0.003; not dead); channel 3 at
    1 (neither)."""
    first = torch.zeros(1, 4, 4, 4)
    first[0, 1] = 0.005
    first[0, 2, 3, 3] = 0.1
    first[0, 3] = 1.0
    second = first.clone()
    second[0, 2] = 0.0
    return [first, second]


def test_dead_and_small_criteria_on_constructed_activations():
    with ActivationMagnitudeRecorder(Passthrough()) as recorder:
        for image in constructed_activations():
            recorder.backbone(image)
    measured = recorder.magnitudes(tau=0.1, epsilon=0.01)['relu#0']
    assert measured.channel_mean_magnitude == pytest.approx(
        [0.0, 0.005, 0.1 / 32, 1.0])
    assert measured.channel_max_magnitude == pytest.approx(
        [0.0, 0.005, 0.1, 1.0])
    assert measured.dead == 1  # only the channel zero on every input
    assert measured.small == 3  # mean <= 0.01: channels 0, 1, 2
    # relative: m_c <= 0.1 * mean(m) = 0.1 * 0.2520 -> channels 0, 1, 2
    assert measured.inhibited == 3
    # a threshold below channel 1's mean: only the dead and channel 2
    assert recorder.magnitudes(0.1, epsilon=0.004)['relu#0'].small == 2

    assert dead_mask(torch.tensor([0.0, 1e-30, 2.0])).tolist() == [
        True, False, False]
    assert small_mask(torch.tensor([0.01, 0.0101]), 0.01).tolist() == [
        True, False]
    with pytest.raises(ValueError, match='epsilon must be >= 0'):
        small_mask(torch.ones(2), -1.0)


def test_analysis_pools_the_absolute_criteria():
    backbone = Passthrough().eval()
    analysis = analyze_backbone(backbone, constructed_activations(), tau=0.1,
                                epsilon=0.01)
    assert analysis.dead['overall'] == pytest.approx(1 / 4)
    assert analysis.small['overall'] == pytest.approx(3 / 4)
    assert analysis.inhibited['overall'] == pytest.approx(3 / 4)
    assert analysis.epsilon == 0.01
    with pytest.raises(ValueError, match='epsilon must be >= 0'):
        analyze_backbone(backbone, constructed_activations(), tau=0.1,
                         epsilon=-0.1)


# ------------------------------------------------------- cumulative ablation
class KnownChannels(nn.Module):
    """Eight channels after one ReLU, from a scalar input x = +-1 per image:
    channels 0-3 are dead (weight 0, bias -1), channels 4-7 are four
    redundant copies of ReLU(x). A classifier that predicts "x > 0" from the
    sum of the channels is right on every image while one copy survives,
    and right on half of them (the negatives) once all four are zeroed."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 1)
        self.norm = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.fill_(-1.0)
            self.conv.weight[4:] = 1.0
            self.conv.bias[4:] = 0.0

    def forward(self, x):
        return self.relu(self.conv(x))


LIVE = {4, 5, 6, 7}
INPUTS = torch.tensor([1.0, -1.0, 1.0, -1.0]).view(4, 1, 1, 1)
LABELS = INPUTS.view(-1) > 0


def accuracy_of(model: KnownChannels) -> float:
    features = model(INPUTS)
    predicted = features.sum(dim=(1, 2, 3)) > 0
    return float((predicted == LABELS).float().mean())


def test_ablation_hook_zeroes_exactly_the_chosen_channels():
    model = KnownChannels()
    x = torch.randn(2, 1, 3, 3)
    reference = model(x)
    mask = torch.tensor([False, True, False, False, True, False, True, False])
    with ChannelAblation(model) as ablation:
        ablation.dropped = {'relu#0': mask}
        ablated = model(x)
    assert torch.equal(ablated[:, mask], torch.zeros_like(ablated[:, mask]))
    assert torch.equal(ablated[:, ~mask], reference[:, ~mask])
    assert torch.equal(model(x), reference)  # hooks removed on exit
    with ChannelAblation(model) as ablation:
        ablation.dropped = {'relu#0': torch.zeros(3, dtype=torch.bool)}
        with pytest.raises(ValueError, match='a mask of 3 channels'):
            model(x)


def test_drop_masks_count_round_fraction_times_channels():
    order = {'a': torch.tensor([3, 1, 0, 2, 4, 5, 6, 7, 8, 9])}
    assert drop_masks(order, 0.0)['a'].sum() == 0
    assert drop_masks(order, 0.25)['a'].nonzero().view(-1).tolist() == [
        1, 3]  # round(2.5) = 2: the first two of the order
    assert drop_masks(order, 0.9)['a'].sum() == 9
    with pytest.raises(ValueError, match='fraction must be in'):
        drop_masks(order, 1.5)


def test_cumulative_ablation_known_dead_and_redundant_channels():
    model = KnownChannels().eval()
    fractions = [0.0, 0.25, 0.5, 0.75, 0.875]
    seeds = [0, 1, 2, 3, 4, 5]
    curves = cumulative_ablation(model, lambda: accuracy_of(model),
                                 ['relu#0'], fractions, seeds,
                                 name='known', metric='accuracy')
    # Smallest magnitude first drops the four dead channels, then copies:
    # one copy survives up to 7 of 8 dropped, so the score never moves.
    assert curves['magnitude'].values == [[1.0] * len(fractions)]
    # Random order: right on every image while a live channel survives.
    for seed, row in zip(seeds, curves['random'].values):
        order = random_orders({'relu#0': 8}, seed)['relu#0']
        expected = [1.0 if LIVE - set(order[:round(f * 8)].tolist())
                    else 0.5 for f in fractions]
        assert row == expected
    assert curves['random'].seeds == seeds
    assert min(curves['random'].lowest) == 0.5  # some seed lost all copies
    assert curves['random'].mean[0] == 1.0
    # the evaluation with nothing dropped is unchanged afterwards
    assert accuracy_of(model) == 1.0


def test_cumulative_ablation_rejects_bad_arguments():
    model = KnownChannels().eval()

    def evaluate() -> float:
        return accuracy_of(model)

    with pytest.raises(ValueError, match='never called'):
        cumulative_ablation(model, evaluate, ['relu#1'])
    with pytest.raises(ValueError, match='orders must be among'):
        cumulative_ablation(model, evaluate, ['relu#0'], orders=['largest'])
    with pytest.raises(ValueError, match='fractions must be in'):
        cumulative_ablation(model, evaluate, ['relu#0'], fractions=[0, 2])
    with pytest.raises(ValueError, match='no layer'):
        cumulative_ablation(model, evaluate, [])
    with pytest.raises(ValueError, match='matches none'):
        select_layers(['layer1.0.relu#0'], 'layer4')
    assert select_layers(['layer1.0.relu#0', 'layer4.1.relu#1'],
                         'layer4') == ['layer4.1.relu#1']


def test_retained_share_is_the_normalised_area_above_the_floor():
    """The area under (score - floor) / (score at 0 - floor), trapezoids
    over the fractions, divided by their span; None at the floor."""
    from ce_mmdet.analysis.channel_ablation import AblationCurve

    def curve(values, fractions=(0.0, 0.5, 1.0)):
        return AblationCurve('m', 'random', 'accuracy/top1',
                             list(fractions), values, seeds=[0, 1])

    # mean curve 80, 55, 10 above a floor of 10: kept 1, 45/70, 0
    two_seeds = curve([[80.0, 45.0, 10.0], [80.0, 65.0, 10.0]])
    assert two_seeds.retained(10.0) == pytest.approx(
        0.5 * (1 + 45 / 70) / 2 + 0.5 * (45 / 70) / 2)
    # the span, not the number of fractions, normalises: uneven steps
    uneven = curve([[100.0, 100.0, 0.0]], fractions=(0.0, 0.8, 0.9))
    assert uneven.retained() == pytest.approx((0.8 + 0.1 * 0.5) / 0.9)
    assert curve([[10.0, 10.0, 10.0]]).retained(10.0) is None
    with pytest.raises(ValueError, match='start at 0'):
        curve([[50.0, 40.0]], fractions=(0.1, 0.5)).retained(10.0)


def fig1_measurement(name: str, seed: int, random_rows, smallest_first,
                     chance: float = 10.0):
    from ce_mmdet.analysis.channel_ablation import AblationCurve
    from ce_mmdet.analysis.fig1 import Fig1Measurement
    fractions = [0.0, 0.5, 1.0]
    curves = dict(
        random=AblationCurve(name, 'random', 'accuracy/top1', fractions,
                             random_rows, seeds=list(range(len(random_rows)))),
        magnitude=AblationCurve(name, 'magnitude', 'accuracy/top1',
                                fractions, [smallest_first]))
    return Fig1Measurement(
        name=name, seed=seed, config=str(REPO_ROOT / 'configs' / 'fig1' /
                                         'vgg_bn_shapes10.py'),
        checkpoint='epoch_6.pth', top1=random_rows[0][0], inhibited=0.25,
        dead=0.0625, small=0.125, tau=0.1, epsilon=0.01, chance=chance,
        curves=curves)


def test_ablation_table_and_json_round_trip(tmp_path):
    """The table averages the retained shares over a model's seeds, shows
    '-' for a model at chance; a fig1.json entry reads back equal, and one
    written without ``chance`` takes it from its config (10 classes)."""
    import json

    from ce_mmdet.analysis.fig1 import Fig1Measurement, ablation_table
    results = [
        fig1_measurement('BN', 0, [[90.0, 50.0, 10.0]], [90.0, 90.0, 10.0]),
        fig1_measurement('BN', 1, [[90.0, 30.0, 10.0]], [90.0, 70.0, 10.0]),
        fig1_measurement('LN', 0, [[10.0, 10.0, 10.0]], [10.0, 10.0, 10.0])]
    rows = {line.split('|')[1].strip(): line.split('|')[2:-1]
            for line in ablation_table(results).splitlines()[2:]}
    # BN: random kept 0.5 and 0.375, smallest first 0.75 and 0.625
    assert [cell.strip() for cell in rows['BN']] == ['0, 1', '0.438', '0.688']
    assert [cell.strip() for cell in rows['LN']] == ['0', '-', '-']

    entry = json.loads(json.dumps(results[1].to_dict()))
    assert Fig1Measurement.from_dict(entry) == results[1]
    del entry['chance']
    assert Fig1Measurement.from_dict(entry).chance == 10.0


def test_fig1_report_redraws_from_json_and_refuses_other_files(tmp_path):
    import json
    import subprocess
    import sys
    tool = str(REPO_ROOT / 'tools' / 'analysis_tools' / 'fig1_report.py')
    results = [
        fig1_measurement('BN', 0, [[90.0, 50.0, 10.0]], [90.0, 90.0, 10.0]),
        fig1_measurement('BN+CE', 0, [[92.0, 60.0, 10.0]], [92.0, 80.0, 10.0])]
    source = tmp_path / 'old' / 'fig1.json'
    source.parent.mkdir()
    source.write_text(json.dumps(dict(models=[r.to_dict() for r in results])))
    done = subprocess.run(
        [sys.executable, tool, '--from-json', str(source), '--out-dir',
         str(tmp_path / 'new')], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    table = (tmp_path / 'new' / 'fig1.md').read_text()
    assert '| BN+CE | 0 | 8.0 | 25.0% | 6.2% | 12.5% |' in table
    # kept: random 1, 50/82, 0 and smallest first 1, 70/82, 0
    assert '| BN+CE | 0 | 0.555 | 0.677 |' in table
    assert json.loads((tmp_path / 'new' / 'fig1.json').read_text()) == \
        json.loads(source.read_text())
    assert (tmp_path / 'new' / 'fig1.png').stat().st_size > 10_000

    source.write_text('{"rows": []}')
    done = subprocess.run(
        [sys.executable, tool, '--from-json', str(source), '--out-dir',
         str(tmp_path / 'bad')], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert 'not a fig1.json written by fig1_report.py' in done.stderr
    assert not (tmp_path / 'bad').exists()


def test_kept_measurement_reused_only_for_same_checkpoint_and_settings(
        tmp_path, monkeypatch):
    """``measure_work_dir`` keeps a model's measurement in its work dir and
    reuses it while the checkpoint and every setting are unchanged; a new
    checkpoint, other settings or an unreadable file are measured anew."""
    from ce_mmdet.analysis import fig1
    calls = []

    def fake_measure_model(name, seed, config, checkpoint, work_dir, tau,
                           *args, **kwargs):
        calls.append((checkpoint, tau))
        return fig1_measurement(name, seed, [[90.0, 50.0, float(len(calls))]],
                                [90.0, 70.0, 10.0])

    monkeypatch.setattr(fig1, 'measure_model', fake_measure_model)
    work_dir = tmp_path / 'vgg_bn_shapes10_seed0'
    work_dir.mkdir()
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'epoch_6.pth'))
    options = dict(tau=0.1, epsilon=0.01, analysis_images=20,
                   ablation_images=20, fractions=(0.0, 0.5, 1.0),
                   ablation_seeds=(0,), cfg_options={'a.b': (1, 2)})

    def measure(**changes):
        return fig1.measure_work_dir('BN', 0, 'vgg.py', str(work_dir),
                                     **{**options, **changes})

    first, reused = measure()
    assert not reused and len(calls) == 1
    again, reused = measure()  # tuples read back from JSON as lists
    assert reused and again == first and len(calls) == 1
    _, reused = measure(tau=0.2)
    assert not reused and calls[-1][1] == 0.2
    _, reused = measure()  # the file now holds tau 0.2's
    assert not reused and len(calls) == 3
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'epoch_7.pth'))
    _, reused = measure()
    assert not reused and calls[-1][0].endswith('epoch_7.pth')
    (work_dir / fig1.MEASUREMENT_FILE).write_text('{not json')
    _, reused = measure()
    assert not reused and len(calls) == 5
    assert measure()[1]


# ------------------------------------------------------------------ NormCE
@pytest.mark.parametrize('norm_cfg', [
    dict(type='GN', num_groups=1),
    dict(type='IN', affine=True),
    dict(type='BN'),
])
def test_norm_ce_equals_ce_after_the_norm(norm_cfg):
    torch.manual_seed(0)
    layer = build_in_scope('mmdet', dict(
        type='NormCE', num_features=32, norm_cfg=norm_cfg,
        ce_cfg=dict(type='CE', group_size=16))).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.1 * torch.randn_like(p))
    reference_norm = type(layer.norm)(**_norm_kwargs(layer.norm)).double()
    reference_norm.load_state_dict(layer.norm.state_dict())
    reference_ce = ChannelEquilibrium(32, group_size=16).double()
    reference_ce.load_state_dict(layer.ce.state_dict())
    x = 3.0 + 2.0 * torch.randn(4, 32, 6, 6, dtype=torch.float64)
    for training in (True, False):
        layer.train(training)
        reference_norm.train(training)
        reference_ce.train(training)
        out = layer(x)
        expected = reference_ce(reference_norm(x))
        torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(layer.ce.running_whitening,
                               reference_ce.running_whitening)
    assert set(layer.state_dict()) == (
        {f'norm.{k}' for k in reference_norm.state_dict()}
        | {f'ce.{k}' for k in reference_ce.state_dict()})


def _norm_kwargs(norm: nn.Module) -> dict:
    if isinstance(norm, nn.GroupNorm):
        return dict(num_groups=norm.num_groups, num_channels=norm.num_channels,
                    eps=norm.eps)
    return dict(num_features=norm.num_features, eps=norm.eps,
                affine=norm.affine)


def test_norm_ce_as_norm_cfg_from_every_scope_and_its_errors():
    from mmcv.cnn import build_norm_layer
    for scope in ('mmdet', 'mmpretrain'):
        with DefaultScope.overwrite_default_scope(scope):
            name, layer = build_norm_layer(
                dict(type='NormCE', norm_cfg=dict(type='GN', num_groups=1),
                     eps=1e-3), 16, postfix=1)
        assert name == 'norm_ce1' and isinstance(layer, NormCE)
        assert isinstance(layer.norm, nn.GroupNorm)
        assert layer.norm.eps == 1e-3  # the norm_cfg-level eps reaches GN
        assert layer.ce.in_channels == 16
    with pytest.raises(ValueError, match='already ends with CE'):
        NormCE(16, norm_cfg=dict(type='BNCE'))


# ----------------------------------------------------------------- SlimVGG
@pytest.mark.parametrize('norm_cfg, act_cfg, norm_type', [
    (dict(type='BN'), dict(type='ReLU'), nn.BatchNorm2d),
    (dict(type='BNCE'), dict(type='ELU'), nn.BatchNorm2d),
    (dict(type='NormCE', norm_cfg=dict(type='GN', num_groups=1)),
     dict(type='LeakyReLU'), NormCE),
])
def test_slim_vgg_widths_norms_and_activations(norm_cfg, act_cfg, norm_type):
    model = build_in_scope('mmpretrain', dict(
        type='ImageClassifier',
        backbone=dict(type='SlimVGG', depth=11, widths=(8, 16, 16, 32, 32),
                      out_indices=(4, ), norm_cfg=norm_cfg, act_cfg=act_cfg),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=32)))
    model.init_weights()
    convs = [m for m in model.backbone.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16, 16, 16, 32, 32, 32, 32]
    norms = [m.norm for m in model.backbone.features
             if hasattr(m, 'norm')]
    assert len(norms) == 8 and all(isinstance(n, norm_type) for n in norms)
    activation = type(model.backbone.features[0].activate).__name__
    assert activation == act_cfg['type']
    features = model.backbone(torch.randn(2, 3, 32, 32))
    assert [tuple(f.shape) for f in features] == [(2, 32, 1, 1)]
    # every conv output feeds a trunk activation the ablation can reach
    model.eval()  # (VGG.train returns None: no chaining)
    assert len(trunk_calls(model.backbone, torch.randn(1, 3, 32, 32))) == 8
    with pytest.raises(ValueError, match='5 positive stage widths'):
        build_in_scope('mmpretrain', dict(type='SlimVGG', depth=11,
                                          widths=(8, 16)))


# ------------------------------------------------------ the CIFAR-scale set
def test_cifar_scale_set_has_ten_balanced_classes(tmp_path):
    from ce_mmdet.datasets import (
        CIFAR_SCALE_SET,
        SHAPE_NAMES,
        generate_shapes_classification_set,
    )
    from ce_mmdet.datasets.shapes_classification import (
        draw_classification_image,
    )
    assert len(SHAPE_NAMES) == 10 and list(SHAPE_NAMES) == sorted(SHAPE_NAMES)
    assert CIFAR_SCALE_SET['image_size'] == 32
    paths = generate_shapes_classification_set(
        tmp_path / 'shapes10', num_train=20, num_val=10, image_size=32,
        classes=SHAPE_NAMES, show_progress=False)
    for split, count in (('train', 2), ('val', 1)):
        folders = sorted(p.name for p in (tmp_path / 'shapes10' /
                                          split).iterdir())
        assert folders == list(SHAPE_NAMES)
        assert all(len(list((tmp_path / 'shapes10' / split / f).iterdir()))
                   == count for f in folders)
    assert paths['data_root'] == str(tmp_path / 'shapes10')
    # each class draws its own shape: the ten images of one seed differ in
    # their object masks even on the same background draws
    image, label = draw_classification_image(0, 'train', 13, 32, SHAPE_NAMES)
    assert label == 3 and image.shape == (32, 32, 3)
    with pytest.raises(ValueError, match='sorted order'):
        generate_shapes_classification_set(
            tmp_path / 'x', num_train=20, num_val=10,
            classes=('square', 'circle'))
    with pytest.raises(ValueError, match="unknown: \\['blob'\\]"):
        generate_shapes_classification_set(
            tmp_path / 'x', num_train=20, num_val=10,
            classes=('blob', 'circle'))
    assert not (tmp_path / 'x').exists()


def test_new_shapes_are_the_polygons_they_are_named():
    from ce_mmdet.datasets.synthetic_shapes import _shape_vertices
    rng = np.random.default_rng(0)
    for name, count in (('pentagon', 5), ('hexagon', 6), ('cross', 12),
                        ('four_point_star', 8), ('six_point_star', 12),
                        ('semicircle', 25)):
        vertices = _shape_vertices(name, 10.0, 10.0, 5.0, 0.3, rng)
        assert vertices.shape == (count, 2)
        radii = np.hypot(vertices[:, 0] - 10.0, vertices[:, 1] - 10.0)
        assert radii.max() == pytest.approx(5.0)  # circumradius
    with pytest.raises(ValueError, match='unknown shape'):
        _shape_vertices('blob', 0.0, 0.0, 1.0, 0.0, rng)


# ------------------------------------------------- the configs and the demo
REPO_ROOT = Path(__file__).resolve().parents[1]
FIG1_CONFIGS = sorted((REPO_ROOT / 'configs' / 'fig1').glob('*.py'))


def test_fig1_configs_are_the_labelled_pairs():
    """Every config of configs/fig1/ is a labelled model, and each builds
    the norm and activation its label says, the rest identical."""
    from mmengine.config import Config

    from ce_mmdet.analysis.fig1 import FIG1_MODELS
    assert sorted(stem for stem, _, _ in FIG1_MODELS.values()) == [
        p.stem for p in FIG1_CONFIGS]
    expected = {
        'BN': ('BatchNorm2d', 'ReLU'), 'BN+CE': ('BatchNormCE', 'ReLU'),
        'LN': ('GroupNorm', 'ReLU'), 'LN+CE': ('NormCE', 'ReLU'),
        'ELU': ('BatchNorm2d', 'ELU'), 'CE+ELU': ('BatchNormCE', 'ELU'),
        'LeakyReLU': ('BatchNorm2d', 'LeakyReLU'),
        'CE+LeakyReLU': ('BatchNormCE', 'LeakyReLU'),
    }
    reference = None
    for label, (stem, _, _) in FIG1_MODELS.items():
        cfg = Config.fromfile(str(REPO_ROOT / 'configs' / 'fig1' /
                                  f'{stem}.py'))
        assert cfg.default_scope == 'mmpretrain'
        model = build_in_scope('mmpretrain', cfg.model)
        layers = [m for m in model.backbone.features if hasattr(m, 'norm')]
        assert {type(m.norm).__name__ for m in layers} == {expected[label][0]}
        assert {type(m.activate).__name__ for m in layers} == {
            expected[label][1]}
        if label == 'LN+CE':
            assert all(m.norm.norm.num_groups == 1 for m in layers)
        rest = cfg.to_dict()
        rest['model']['backbone'].pop('norm_cfg')
        rest['model']['backbone'].pop('act_cfg')
        rest = {k: v for k, v in rest.items() if k != 'filename'}
        if reference is None:
            reference = rest
        assert rest == reference, label


def test_fig1_demo_quick(tmp_path: Path, run_quick_demo) -> None:
    """``run_demo.sh fig1`` with QUICK=1 in a stand-in checkout with a tiny
    generated set: trains BN and BN+CE, measures each after its training,
    writes the table, the figure and the ablation curves."""
    import json

    from ce_mmdet.datasets import (
        SHAPE_NAMES,
        generate_shapes_classification_set,
    )
    generate_shapes_classification_set(
        tmp_path / 'data' / 'shapes10_quick', num_train=20, num_val=10,
        image_size=32, classes=SHAPE_NAMES, show_progress=False)
    output = run_quick_demo('fig1')
    # each model measured as soon as it was trained, the report reading them
    assert output.count('measured already') == 2, output[-3000:]
    report = tmp_path / 'work_dirs' / 'fig1_quick' / 'report'
    criteria, ablation = (report / 'fig1.md').read_text().split('\n\n')[1:3]
    rows = [line for line in criteria.splitlines() if line.startswith('| BN')]
    assert [row.split('|')[1].strip() for row in rows] == ['BN', 'BN+CE']
    assert 'smallest first' in ablation.splitlines()[0]
    assert [row.split('|')[1].strip()
            for row in ablation.splitlines()[2:]] == ['BN', 'BN+CE']
    assert (report / 'fig1.png').stat().st_size > 10_000
    models = json.loads((report / 'fig1.json').read_text())['models']
    for model in models:
        random_curve = model['curves']['random']
        assert random_curve['fractions'] == [0.0, 0.5, 0.9]  # QUICK's
        assert random_curve['metric'] == 'accuracy/top1'
        assert random_curve['values'][0][0] == model['top1']
        assert len(random_curve['layers']) == 8  # every trunk activation
        # a dead channel (zero everywhere) has mean 0 <= epsilon: small
        assert 0.0 <= model['dead'] <= model['small'] <= 1.0
        assert 0.0 <= model['inhibited'] <= 1.0
        assert model['chance'] == 100.0 / len(SHAPE_NAMES)


def test_generator_command_writes_the_named_cifar_set(
        tmp_path: Path, monkeypatch, capsys) -> None:
    """``--set cifar`` gives the ten classes at 32x32; options override the
    set's counts; a bad option value is a usage error that writes nothing."""
    import subprocess
    import sys

    import cv2
    command = [sys.executable, str(REPO_ROOT / 'tools' /
                                   'generate_shapes_classification_set.py'),
               '--set', 'cifar', '--num-train', '20', '--num-val', '10',
               '--no-progress']
    done = subprocess.run(command + ['--out-dir', str(tmp_path / 'ok')],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    folders = sorted(p.name for p in (tmp_path / 'ok' / 'val').iterdir())
    assert len(folders) == 10 and 'semicircle' in folders
    image = cv2.imread(str(next((tmp_path / 'ok' / 'train' /
                                 'cross').iterdir())))
    assert image.shape == (32, 32, 3)
    # the same command line in-process: a bad count is a usage error (exit
    # 2) naming the fix, and nothing is written
    spec = importlib.util.spec_from_file_location(
        'generate_cli', command[1])
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    monkeypatch.setattr(sys, 'argv', command[1:4] + [
        '--num-train', '5', '--out-dir', str(tmp_path / 'bad')])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 2
    assert 'num_train must be an integer >= 10' in capsys.readouterr().err
    assert not (tmp_path / 'bad').exists()
