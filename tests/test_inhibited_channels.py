"""Tests of the inhibited-channel analysis on small models with known answers.

* beta signs: norm layers whose biases are set to chosen signs;
* activation magnitudes: channels forced to zero after a ReLU module that a
  block calls twice per forward, so a wrong attribution of the calls
  changes the counts;
* which norm layers feed an activation: plain ResNet, CE-ResNet (BN folded
  into CE), a block whose first ReLU was removed;
* CE gates and IR weights against what CE itself applies;
* clear errors on models without norm layers or activation modules and on
  checkpoints of another architecture.
"""
from __future__ import annotations

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.registry import init_default_scope
from torch import nn

import ce_mmdet  # noqa: F401  (registers CEResNet, CE, BNCE)
from ce_mmdet.analysis import (
    CEStatisticsRecorder,
    UnreadableModelError,
    analyze_backbone,
    inhibited_share,
    instance_reweighting_weights,
    trace_activation_calls,
)
from ce_mmdet.analysis.checkpoint_analysis import (
    CheckpointMismatchError,
    load_checked_checkpoint,
)
from ce_mmdet.layers import BatchNormFold, ChannelEquilibrium

C = 8  # channels of the toy backbone


class ToyBlock(nn.Module):
    """BasicBlock-like: conv-norm1-relu-conv-norm2, + x, relu. ONE relu
    module, called twice per forward (as MMDetection's blocks do); with
    ``relu_after_norm1=False`` the first call is dropped."""

    def __init__(self, relu_after_norm1: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(C, C, 3, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(C)
        self.conv2 = nn.Conv2d(C, C, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(C)
        self.relu = nn.ReLU(inplace=True)
        self.relu_after_norm1 = relu_after_norm1

    def forward(self, x):
        out = self.norm1(self.conv1(x))
        if self.relu_after_norm1:
            out = self.relu(out)
        out = self.norm2(self.conv2(out))
        out += x
        return self.relu(out)


class ToyBackbone(nn.Module):
    """Stem (conv, bn1, relu) and one stage of two ToyBlocks."""

    def __init__(self, second_block_relu_after_norm1: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, C, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(C)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(
            ToyBlock(), ToyBlock(second_block_relu_after_norm1))
        self.res_layers = ['layer1']

    def forward(self, x):
        return self.layer1(self.relu(self.bn1(self.conv1(x))))


def set_affine(norm: nn.BatchNorm2d, weight, bias) -> None:
    with torch.no_grad():
        norm.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        norm.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))


def images(count: int = 2, size: int = 16) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(1, 3, size, size, generator=generator)
            for _ in range(count)]


def build_resnet(kind: str, **kwargs) -> nn.Module:
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(dict(type=kind, depth=18, init_cfg=None, **kwargs))
    model.eval()  # (MMDetection's ResNet.train returns None: no chaining)
    return model


# ------------------------------------------------------------- beta signs
def test_beta_shares_count_chosen_signs_and_only_norms_feeding_a_relu():
    backbone = ToyBackbone(second_block_relu_after_norm1=False)
    backbone.eval()
    # beta <= 0 (0 included) in 3, 0, 8, 5 and 2 of the 8 channels
    chosen = {
        'bn1': [-1, 0, -2, 1, 1, 1, 1, 1],
        'layer1.0.norm1': [1] * 8,
        'layer1.0.norm2': [-1] * 8,
        'layer1.1.norm1': [-1, -1, -1, -1, -1, 1, 1, 1],  # feeds no ReLU
        'layer1.1.norm2': [0, -3, 1, 1, 1, 1, 1, 1],
    }
    modules = dict(backbone.named_modules())
    for name, bias in chosen.items():
        set_affine(modules[name], torch.ones(C), bias)

    analysis = analyze_backbone(backbone, images(1), tau=0.1)

    shares = {n.name: n.share for n in analysis.norm_layers}
    assert shares == {'bn1': 3 / 8, 'layer1.0.norm1': 0.0,
                      'layer1.0.norm2': 1.0, 'layer1.1.norm1': 5 / 8,
                      'layer1.1.norm2': 2 / 8}
    feeding = {n.name for n in analysis.norm_layers if n.feeds_activation}
    assert feeding == {'bn1', 'layer1.0.norm1', 'layer1.0.norm2',
                       'layer1.1.norm2'}
    assert analysis.beta_nonpositive['overall'] == pytest.approx(18 / 40)
    assert analysis.beta_nonpositive_feeding['overall'] == pytest.approx(
        13 / 32)
    assert analysis.beta_nonpositive['by_stage'] == pytest.approx(
        {'stem': 3 / 8, 'layer1': 15 / 32})
    # compare_blocks.py's summary reports the share among feeding norms
    from ce_mmdet.analysis.compare import analysis_summary
    assert analysis_summary(analysis) == dict(
        inhibited=analysis.inhibited['overall'],
        beta_nonpositive_feeding=pytest.approx(13 / 32),
        beta_nonpositive=pytest.approx(18 / 40))


# --------------------------------------------------- activation magnitudes
def test_shared_relu_calls_are_measured_separately():
    """Block 0 calls its relu twice: call #0 after norm1 has channels 0 and
    1 forced to zero (2 of 8 inhibited), call #1 after the addition has
    none. Pooling the calls would give 1 of 8 for each."""
    backbone = ToyBackbone()
    backbone.eval()
    modules = dict(backbone.named_modules())
    set_affine(modules['layer1.0.norm1'], torch.zeros(C),
               [-1, -1, 1, 1, 1, 1, 1, 1])  # relu: 0, 0, 1, 1, ...
    set_affine(modules['layer1.0.norm2'], torch.zeros(C), torch.ones(C))

    analysis = analyze_backbone(backbone, images(3), tau=0.1)

    results = {r.key: r for r in analysis.activations}
    assert list(results) == ['relu#0', 'layer1.0.relu#0', 'layer1.0.relu#1',
                             'layer1.1.relu#0', 'layer1.1.relu#1']
    first, second = results['layer1.0.relu#0'], results['layer1.0.relu#1']
    assert first.fed_by == ['layer1.0.norm1']
    assert second.fed_by == ['layer1.0.norm2']
    assert first.channel_mean_magnitude == pytest.approx([0, 0] + [1] * 6)
    assert (first.inhibited, first.share) == (2, 0.25)
    assert second.inhibited == 0
    assert min(second.channel_mean_magnitude) >= 1  # 1 + a ReLU output
    assert first.block == second.block == 'layer1.0'
    assert analysis.images == 3


def test_inhibited_share_threshold_is_relative_to_the_layer_mean():
    magnitude = torch.tensor([0.0, 0.05, 0.1, 1.0, 2.0, 2.85])  # mean 1.0
    assert inhibited_share(magnitude, tau=0.1) == pytest.approx(3 / 6)
    assert inhibited_share(magnitude * 1000, tau=0.1) == pytest.approx(3 / 6)
    assert inhibited_share(magnitude, tau=0.01) == pytest.approx(1 / 6)
    assert inhibited_share(torch.zeros(4), tau=0.1) == 1.0  # all dead
    with pytest.raises(ValueError, match='tau'):
        inhibited_share(magnitude, tau=-1)


# ----------------------------------------------------- ResNet structure
def test_resnet_calls_and_feeding_norms():
    analysis = analyze_backbone(build_resnet('ResNet', frozen_stages=1),
                                images(1, 32), 0.1)
    results = {r.key: r for r in analysis.activations}
    norms = {n.name: n for n in analysis.norm_layers}
    assert not norms['bn1'].trainable and not norms['layer1.1.bn2'].trainable
    assert norms['layer2.0.bn1'].trainable
    # stem + 8 BasicBlocks x 2 calls of their one relu
    assert len(results) == 17
    assert results['layer2.0.relu#1'].fed_by == [
        'layer2.0.bn2', 'layer2.0.downsample.1']
    assert results['layer2.1.relu#1'].fed_by == ['layer2.1.bn2']
    assert results['layer4.1.relu#0'].stage == 'layer4'
    assert all(n.feeds_activation for n in analysis.norm_layers)
    assert set(analysis.inhibited['by_stage']) == {
        'stem', 'layer1', 'layer2', 'layer3', 'layer4'}


def test_ce_resnet_bn_feeds_the_relu_through_ce():
    """In eval CE folds the BN before it into its map (the BN module never
    runs): the trace still attributes the ReLU's input to that BN."""
    analysis = analyze_backbone(build_resnet('CEResNet'), images(2, 32), 0.1)
    results = {r.key: r for r in analysis.activations}
    assert results['relu#0'].fed_by == ['bn1']
    assert results['layer1.0.relu#1'].fed_by == ['layer1.0.bn2']
    assert results['layer2.0.relu#1'].fed_by == [
        'layer2.0.bn2', 'layer2.0.downsample.1']
    assert all(n.feeds_activation for n in analysis.norm_layers)
    # CE's own LayerNorm (IR's MLP) is no norm layer of the network
    assert not any('.ce.' in n.name or n.name.startswith('stem_ce')
                   for n in analysis.norm_layers)
    ce_layers = {c.name: c for c in analysis.ce_layers}
    assert list(ce_layers) == ['stem_ce', 'layer1.0.ce', 'layer1.1.ce',
                               'layer2.0.ce', 'layer2.1.ce', 'layer3.0.ce',
                               'layer3.1.ce']
    assert all(c.gate == pytest.approx(0.5) for c in ce_layers.values())
    assert all(c.images == 2 for c in ce_layers.values())
    assert all(0 < c.ir_weight_min <= c.ir_weight_max < 1
               for c in ce_layers.values())


def test_bnce_layers_are_norms_and_their_ce_is_recorded():
    backbone = build_resnet('ResNet', norm_cfg=dict(type='BNCE'))
    analysis = analyze_backbone(backbone, images(1, 32), 0.1)
    assert {n.type for n in analysis.norm_layers} == {'BatchNormCE'}
    assert all(n.feeds_activation for n in analysis.norm_layers)
    assert len(analysis.ce_layers) == len(analysis.norm_layers)
    assert all(c.images == 1 for c in analysis.ce_layers)


# ------------------------------------------------------------- CE layers
class CEAfterNorm(nn.Module):
    def __init__(self, fold: bool) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(16)
        self.ce = ChannelEquilibrium(16)
        self.fold = fold

    def forward(self, x):
        if self.fold == 'shifted':  # as CE-ResNet: running mean in the conv
            shifted = x - self.norm.running_mean.view(1, -1, 1, 1)
            return self.ce(shifted, preceding_norm=BatchNormFold(
                self.norm, input_is_shifted=True))
        if self.fold:
            return self.ce(x, preceding_norm=self.norm)
        return self.ce(self.norm(x))


@pytest.mark.parametrize('fold', [False, True, 'shifted'])
def test_ir_weights_are_those_ce_applies(fold):
    """With lam ~ 0, CE in eval is x * a / running_scale: the recorder's
    ``a`` must be the factor CE applied, whether CE got the BN's output or
    folded the BN itself."""
    torch.manual_seed(0)
    module = CEAfterNorm(fold)
    with torch.no_grad():
        module.ce.gate_logit.fill_(-60.0)
        module.ce.running_scale.fill_(2.0)
        module.norm.running_mean.uniform_(-1, 1)
        module.norm.running_var.uniform_(0.5, 2)
        module.norm.bias.uniform_(-0.5, 0.5)
    module.eval()
    x = torch.randn(3, 16, 5, 7) + 0.5
    with CEStatisticsRecorder(module) as recorder, torch.no_grad():
        out = module(x)
    with torch.no_grad():
        bn_out = module.norm(x)
    # the per-image, per-channel factor out = bn_out * a / 2 (least squares)
    applied = 2.0 * (out * bn_out).flatten(2).sum(-1) / (
        bn_out * bn_out).flatten(2).sum(-1)
    recorded = torch.cat(recorder._weights['ce'])
    assert recorded == pytest.approx(applied, rel=1e-4)
    assert instance_reweighting_weights(module.ce, bn_out) == pytest.approx(
        applied, rel=1e-4)
    (stats, ) = recorder.statistics()
    assert stats.images == 3
    assert stats.ir_weight_spread == pytest.approx(
        float(applied.std(1, unbiased=False).mean()), rel=1e-4)


# -------------------------------------------------------------- errors
def test_models_without_norms_or_activation_modules_are_refused():
    no_norm = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    with pytest.raises(UnreadableModelError, match='no norm layer'):
        analyze_backbone(no_norm, images(1), 0.1)

    class FunctionalRelu(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.bn = nn.BatchNorm2d(4)

        def forward(self, x):
            return torch.relu(self.bn(self.conv(x)))

    with pytest.raises(UnreadableModelError, match='torch.nn.functional'):
        analyze_backbone(FunctionalRelu().eval(), images(1), 0.1)
    with pytest.raises(ValueError, match='no image'):
        analyze_backbone(ToyBackbone().eval(), [], 0.1)


class Detector(nn.Module):
    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(2, 2)


def test_checkpoint_of_another_backbone_is_refused(tmp_path):
    ce_state = Detector(build_resnet('CEResNet')).state_dict()
    torch.save(dict(state_dict=ce_state), tmp_path / 'ce.pth')
    plain = Detector(build_resnet('ResNet'))
    with pytest.raises(CheckpointMismatchError,
                       match=r'not in the model \(backbone\.stem_ce\.'):
        load_checked_checkpoint(plain, str(tmp_path / 'ce.pth'))
    with pytest.raises(CheckpointMismatchError, match='missing from'):
        torch.save(dict(state_dict=plain.state_dict()), tmp_path / 'p.pth')
        load_checked_checkpoint(Detector(build_resnet('CEResNet')),
                                str(tmp_path / 'p.pth'))
    (tmp_path / 'junk.pth').write_bytes(b'not a checkpoint')
    with pytest.raises(CheckpointMismatchError, match='not a readable'):
        load_checked_checkpoint(plain, str(tmp_path / 'junk.pth'))
    with pytest.raises(FileNotFoundError):
        load_checked_checkpoint(plain, str(tmp_path / 'missing.pth'))


def test_backbone_only_checkpoint_loads_into_the_backbone(tmp_path):
    source = build_resnet('CEResNet')
    with torch.no_grad():
        source.stem_ce.gate_logit.fill_(1.5)
    torch.save(dict(state_dict=source.state_dict()), tmp_path / 'bb.pth')
    target = Detector(build_resnet('CEResNet'))
    assert load_checked_checkpoint(target, str(tmp_path / 'bb.pth')) == \
        'backbone'
    assert float(target.backbone.stem_ce.gate_logit) == 1.5


def test_trace_leaves_the_model_without_hooks():
    backbone = ToyBackbone().eval()
    trace_activation_calls(backbone, images(1)[0])
    assert all(not m._forward_hooks and not m._forward_pre_hooks
               for m in backbone.modules())


def test_the_analysis_tools_label_their_models():
    """``--compare`` and ``--names`` of the analysis tools: labels in order,
    config names by default, repeats numbered, a wrong count refused."""
    import argparse

    from ce_mmdet.analysis.command_line import (
        add_model_arguments,
        labelled_models,
    )
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    args = parser.parse_args(
        ['a/ce.py', 'ce.pth', '--compare', 'b/bn.py', 'bn.pth'])
    assert labelled_models(args) == [('ce', 'a/ce.py', 'ce.pth'),
                                     ('bn', 'b/bn.py', 'bn.pth')]
    args = parser.parse_args(
        ['a/x.py', '1.pth', '--compare', 'b/x.py', '2.pth'])
    assert [name for name, _, _ in labelled_models(args)] == ['1:x', '2:x']
    args.names = ['CE', 'BN']
    assert [name for name, _, _ in labelled_models(args)] == ['CE', 'BN']
    args.names = ['CE']
    with pytest.raises(ValueError, match='--names gives 1 labels for 2'):
        labelled_models(args)
