"""Backbones of the comparison blocks: PluginResNet (SE/GE in BasicBlocks),
ProportionalReLUResNet, DeconvResNet; placement, MMDetection's ResNet
options, composition with CE, and refusal of mismatched pretrained weights.
"""
import pytest
import torch
from mmdet.models.backbones.resnet import BasicBlock, Bottleneck
from mmdet.registry import MODELS
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

import ce_mmdet  # noqa: F401
from ce_mmdet.backbones import (
    DeconvResNet,
    PluginResNet,
    ProportionalReLUResNet,
)
from ce_mmdet.layers import (
    ChannelEquilibrium,
    FastDeconv,
    GEThetaPlus,
    SqueezeExcitation,
)

SE_AFTER_CONV2 = [dict(cfg=dict(type='SE', ratio=16), position='after_conv2')]


pytestmark = pytest.mark.usefixtures('single_thread')


def build(**cfg):
    torch.manual_seed(0)
    model = MODELS.build({'init_cfg': None, **cfg})
    model.init_weights()
    return model


def randomise_norms(model):
    """Non-trivial BN affine parameters and running statistics."""
    torch.manual_seed(2)
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.normal_(0, 0.2)
            module.running_mean.normal_(0, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return model


def plain_resnet_state(depth):
    return build(type='ResNet', depth=depth).state_dict()


# ---------------------------------------------------------- PluginResNet
def test_plugin_basic_block_places_se_after_bn2_before_addition():
    model = randomise_norms(build(type='PluginResNet', depth=18,
                                  plugins=SE_AFTER_CONV2)).eval()
    block = model.layer2[0]
    assert isinstance(block.se, SqueezeExcitation)
    assert 'layer2.0.se.conv1.conv.weight' in model.state_dict()
    x = torch.randn(2, 64, 12, 10)
    expected = block.relu(
        block.se(block.norm2(block.conv2(block.relu(block.norm1(
            block.conv1(x)))))) + block.downsample(x))
    torch.testing.assert_close(block(x), expected)


def test_plugin_resnet_without_plugins_is_mmdetections_resnet():
    plain = build(type='ResNet', depth=18)
    plain.eval()
    ours = build(type='PluginResNet', depth=18).eval()
    ours.load_state_dict(plain.state_dict())  # strict: same names
    x = torch.randn(1, 3, 64, 48)
    for a, b in zip(plain(x), ours(x)):
        torch.testing.assert_close(a, b)


def test_plugin_positions_and_stage_selection():
    model = build(type='PluginResNet', depth=18, plugins=[
        dict(cfg=dict(type='GEThetaMinus'), position='after_conv1',
             stages=(False, True, False, False)),
        dict(cfg=dict(type='GEThetaPlus', ratio=16, postfix='_plus'),
             position='after_conv2', stages=(True, True, True, True)),
    ])
    assert model.layer2[1].after_conv1_plugin_names == ['ge']
    assert model.layer1[0].after_conv1_plugin_names == []
    assert isinstance(model.layer4[1].ge_plus, GEThetaPlus)
    assert model.layer4[1].ge_plus.in_channels == 512
    outs = model.train()(torch.randn(2, 3, 45, 61))  # odd input size
    assert all(torch.isfinite(o).all() for o in outs)
    with pytest.raises(ValueError, match="positions must be in"):
        build(type='PluginResNet', depth=18, plugins=[
            dict(cfg=dict(type='SE'), position='after_conv3')])


def test_se_and_ge_compose_with_ce_and_mmdetection_resnet_options():
    """CE + SE in one backbone (CEResNet takes mmdet's plugins); GE in
    MMDetection's own ResNet with DCN; with_cp changes nothing."""
    ce_se = build(type='CEResNet', depth=50, plugins=[
        dict(cfg=dict(type='SE'), position='after_conv3')])
    block = ce_se.layer1[0]
    assert isinstance(block.ce, ChannelEquilibrium)
    assert isinstance(block.se, SqueezeExcitation)
    outs = ce_se.train()(torch.randn(2, 3, 64, 64))
    assert all(torch.isfinite(o).all() for o in outs)

    ge_dcn = build(type='ResNet', depth=50,
                   dcn=dict(type='DCNv2', deform_groups=1,
                            fallback_on_stride=False),
                   stage_with_dcn=(False, False, False, True),
                   plugins=[dict(cfg=dict(type='GEThetaPlus'),
                                 position='after_conv3',
                                 stages=(False, True, True, True))])
    assert not hasattr(ge_dcn.layer1[0], 'ge')
    assert type(ge_dcn.layer4[0].conv2).__name__ == 'ModulatedDeformConv2dPack'
    ge_dcn.train()  # (MMDetection's ResNet.train returns None)
    outs = ge_dcn(torch.randn(2, 3, 64, 64))
    assert all(torch.isfinite(o).all() for o in outs)


@pytest.mark.parametrize('cfg', [
    dict(type='PluginResNet', depth=18, plugins=SE_AFTER_CONV2),
    dict(type='ProportionalReLUResNet', depth=18),
    dict(type='DeconvResNet', depth=18, norm_eval=False),
])
def test_with_cp_gives_the_same_outputs_and_gradients(cfg):
    """(BN and deconvolution statistics are updated twice under with_cp,
    as with MMDetection's BN: compared in eval mode.)"""
    results = []
    for with_cp in (False, True):
        model = build(**cfg, with_cp=with_cp).eval()
        torch.manual_seed(3)
        x = torch.randn(1, 3, 48, 48, requires_grad=True)
        sum(o.sum() for o in model(x)).backward()
        results.append((x.grad, model.layer1[0].conv1.weight.grad))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b)


def test_frozen_stage_freezes_its_plugins_and_norm_eval_their_bns():
    """MMDetection's semantics, which the configs account for (parametric
    plugins only in stages 2-4 when stage 1 is frozen)."""
    model = build(type='PluginResNet', depth=18, frozen_stages=1,
                  norm_eval=True, plugins=[
                      dict(cfg=dict(type='GEThetaPlus'),
                           position='after_conv2')]).train()
    assert not any(p.requires_grad for p in model.layer1[0].ge.parameters())
    assert all(p.requires_grad for p in model.layer2[0].ge.parameters())
    assert not model.layer2[0].ge.norm.training


# ------------------------------------------------------- proportional ReLU
def test_proportional_relu_presets_and_block_equations():
    bottleneck_net = randomise_norms(
        build(type='ProportionalReLUResNet', depth=50)).eval()
    assert bottleneck_net.kept_relus == (False, True)  # 3 convs : 2 ReLUs
    block = bottleneck_net.layer1[0]
    x = torch.randn(1, 64, 9, 7)
    out = block.norm1(block.conv1(x))  # no ReLU after bn1
    out = block.relu(block.norm2(block.conv2(out)))
    expected = block.relu(block.norm3(block.conv3(out)) + block.downsample(x))
    torch.testing.assert_close(block(x), expected)

    basic_net = randomise_norms(
        build(type='ProportionalReLUResNet', depth=18)).eval()
    assert basic_net.kept_relus == (False, )  # 2 convs : 1 ReLU
    block = basic_net.layer1[1]
    x = torch.randn(1, 64, 9, 7)
    expected = block.relu(
        block.norm2(block.conv2(block.norm1(block.conv1(x)))) + x)
    torch.testing.assert_close(block(x), expected)


def test_all_relus_kept_is_mmdetections_resnet():
    plain = randomise_norms(build(type='ResNet', depth=50))
    plain.eval()
    ours = build(type='ProportionalReLUResNet', depth=50,
                 kept_relus='all').eval()
    missing, unexpected = ours.load_state_dict(plain.state_dict(),
                                               strict=False)
    assert missing == ['kept_relus_record'] and not unexpected
    x = torch.randn(1, 3, 64, 64)
    for a, b in zip(plain(x), ours(x)):
        torch.testing.assert_close(a, b)


def test_proportional_relu_arguments_and_plugins():
    with pytest.raises(ValueError, match='needs 2 flag'):
        build(type='ProportionalReLUResNet', depth=50, kept_relus=(True, ))
    with pytest.raises(ValueError, match='unknown'):
        build(type='ProportionalReLUResNet', depth=18, kept_relus='3:2')
    model = build(type='ProportionalReLUResNet', depth=34,
                  kept_relus=(True, ), plugins=SE_AFTER_CONV2)
    assert isinstance(model.layer3[5].se, SqueezeExcitation)
    assert model.layer3[5].kept_relus == (True, )


# ------------------------------------------------------------ DeconvResNet
def test_deconv_resnet_arrangement():
    model = build(type='DeconvResNet', depth=50)
    assert isinstance(model.conv1, FastDeconv)
    assert (model.conv1.n_iter, model.conv1.freeze_after) == (15, 100)
    assert model.conv1.bias is not None
    assert isinstance(model.norm1, nn.Identity)
    bns = [name for name, m in model.named_modules()
           if isinstance(m, _BatchNorm)]
    # only the projection shortcuts keep their BN
    assert bns == [f'layer{s}.0.downsample.1' for s in (1, 2, 3, 4)]
    block = model.layer2[0]
    for conv in (block.conv1, block.conv2, block.conv3,
                 block.downsample[0]):
        assert isinstance(conv, FastDeconv) and conv.bias is not None
    # zero_init_residual: the last convolution starts at 0
    assert block.conv3.weight.abs().sum() == 0
    basic = build(type='DeconvResNet', depth=18)
    assert basic.layer1[0].conv2.weight.abs().sum() == 0
    assert isinstance(basic.layer1[0].norm1, nn.Identity)
    with pytest.raises(ValueError, match='conv_cfg'):
        build(type='DeconvResNet', depth=18, conv_cfg=dict(type='Conv2d'))


def test_deconv_resnet_with_dcn_keeps_the_bn_of_the_deformable_conv():
    model = build(type='DeconvResNet', depth=50,
                  dcn=dict(type='DCNv2', deform_groups=1),
                  stage_with_dcn=(False, True, False, False))
    block = model.layer2[1]
    assert type(block.conv2).__name__ == 'ModulatedDeformConv2dPack'
    assert isinstance(block.norm2, _BatchNorm)
    assert isinstance(block.conv1, FastDeconv)
    assert isinstance(block.conv3, FastDeconv)
    assert isinstance(block.norm3, nn.Identity)
    outs = model.train()(torch.randn(2, 3, 64, 64))
    assert all(torch.isfinite(o).all() for o in outs)


def _statistics(model):
    return {k: v.clone() for k, v in model.state_dict().items()
            if 'running' in k}


@pytest.mark.parametrize('norm_eval,deconv_eval,frozen_stages', [
    (True, None, 1),  # detection fine-tuning: nothing moves
    (True, False, 1),  # deconvolution on batch statistics, BN frozen
    (False, None, -1),  # from scratch: everything moves
    (False, None, 1),
])
def test_norm_eval_deconv_eval_and_frozen_stages(norm_eval, deconv_eval,
                                                 frozen_stages):
    model = build(type='DeconvResNet', depth=18, norm_eval=norm_eval,
                  deconv_eval=deconv_eval, frozen_stages=frozen_stages)
    model.train()
    before = _statistics(model)
    model(torch.randn(2, 3, 64, 64))
    after = _statistics(model)
    deconv_moves = not (norm_eval if deconv_eval is None else deconv_eval)
    for key in before:
        stage = 0 if key.startswith('conv1.') else int(key[len('layer')])
        frozen = stage <= frozen_stages
        is_bn = '.downsample.1.' in key
        moves = (not norm_eval if is_bn else deconv_moves) and not frozen
        assert torch.equal(before[key], after[key]) != moves, key
    if frozen_stages >= 0:
        assert not model.conv1.weight.requires_grad
        assert not any(p.requires_grad for p in model.layer1.parameters())


def test_deconv_resnet_under_bf16_autocast():
    model = build(type='DeconvResNet', depth=18, norm_eval=False).train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        outs = model(torch.randn(2, 3, 64, 64))
    assert all(torch.isfinite(o).all() for o in outs)
    for name, module in model.named_modules():
        if isinstance(module, FastDeconv):
            assert module.running_deconv.dtype == torch.float32, name
            assert torch.isfinite(module.running_deconv).all(), name
    # eval before any training step, batch of 1
    fresh = build(type='DeconvResNet', depth=18).eval()
    outs = fresh(torch.randn(1, 3, 32, 32))
    assert all(torch.isfinite(o).all() for o in outs)


# ------------------------------------------------------ pretrained weights
@pytest.mark.parametrize('backbone', [
    dict(type='DeconvResNet', depth=18),
    dict(type='ProportionalReLUResNet', depth=18),
])
def test_refuses_plain_resnet_weights_and_names_the_fix(backbone, tmp_path):
    zoo = MODELS.build({**backbone, 'init_cfg': dict(
        type='Pretrained', checkpoint='torchvision://resnet18')})
    with pytest.raises(ValueError,
                       match='torchvision://resnet18.*own ImageNet training'):
        zoo.init_weights()

    plain = tmp_path / 'resnet18.pth'
    torch.save(dict(state_dict=plain_resnet_state(18)), plain)
    local = MODELS.build({**backbone, 'init_cfg': dict(
        type='Pretrained', checkpoint=str(plain))})
    with pytest.raises(ValueError, match='is not a checkpoint of this '
                       'network.*own ImageNet training.*init_cfg=None'):
        local.init_weights()

    missing = MODELS.build({**backbone, 'init_cfg': dict(
        type='Pretrained', checkpoint=str(tmp_path / 'none.pth'))})
    with pytest.raises(FileNotFoundError, match='none.pth.*own ImageNet'):
        missing.init_weights()


@pytest.mark.parametrize('backbone', [
    dict(type='DeconvResNet', depth=18),
    dict(type='ProportionalReLUResNet', depth=18),
])
def test_loads_its_own_checkpoint(backbone, tmp_path):
    trained = build(**backbone)
    trained.train()(torch.randn(2, 3, 32, 32))  # statistics move
    path = tmp_path / 'own.pth'
    torch.save(dict(state_dict=trained.state_dict()), path)
    loaded = MODELS.build({**backbone, 'init_cfg': dict(
        type='Pretrained', checkpoint=str(path))})
    loaded.init_weights()
    for key, value in trained.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_refuses_another_relu_pattern(tmp_path):
    path = tmp_path / 'all_relus.pth'
    torch.save(dict(state_dict=build(type='ProportionalReLUResNet', depth=18,
                                     kept_relus='all').state_dict()), path)
    model = MODELS.build(dict(
        type='ProportionalReLUResNet', depth=18,
        init_cfg=dict(type='Pretrained', checkpoint=str(path))))
    with pytest.raises(ValueError, match=r'trained with kept_relus=\(True,\)'):
        model.init_weights()


def test_registered_types():
    assert MODELS.get('PluginResNet') is PluginResNet
    assert MODELS.get('DeconvResNet') is DeconvResNet
    assert MODELS.get('ProportionalReLUResNet') is ProportionalReLUResNet
    assert PluginResNet.block_classes[BasicBlock].__name__ == \
        'PluginBasicBlock'
    assert Bottleneck not in PluginResNet.block_classes


# -------------------------------------------------------------- benchmark
def test_benchmark_backbone_builds_every_variant_and_runs_quick(capsys):
    import importlib.util
    import sys
    from pathlib import Path

    path = (Path(__file__).resolve().parents[1] / 'tools' / 'analysis_tools'
            / 'benchmark_backbone.py')
    spec = importlib.util.spec_from_file_location('benchmark_backbone', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    expected = {'plain': 'ResNet', 'ce': 'CEResNet', 'se': 'PluginResNet',
                'ge-minus': 'PluginResNet', 'ge-plus': 'PluginResNet',
                'deconv': 'DeconvResNet', 'proprelu': 'ProportionalReLUResNet'}
    for kind, type_name in expected.items():
        model = tool.build_backbone(kind, 50)
        assert type(model).__name__ == type_name
        assert model.frozen_stages == 1 and model.norm_eval
    se = tool.build_backbone('se', 18)
    assert all(hasattr(block, 'se') for layer in (se.layer1, se.layer4)
               for block in layer)
    ge_plus = tool.build_backbone('ge-plus', 50)
    assert [ge_plus.layer1[0].ge.gather.gather_size,
            ge_plus.layer4[2].ge.gather.gather_size] == [56, 7]

    argv = sys.argv
    sys.argv = ['benchmark_backbone.py', '--quick', '--no-memory', '--depth',
                '18', '--variants', 'ce', 'ge-minus']
    try:
        tool.main()
    finally:
        sys.argv = argv
    table = capsys.readouterr().out
    for row in ('| eval (detection) | 1x3x64x96 | CE-ResNet |',
                '| train (detection) | 2x3x64x64 | GE-theta-minus-ResNet |'):
        assert row in table


def test_paired_ratios_follow_rounds_not_medians():
    """The benchmarks' ratio is the median of per-round ratios: a machine
    that slows down between rounds (both candidates alike) does not bias it,
    where a ratio of medians would."""
    from ce_mmdet.utils.benchmark import interleaved_times, paired_ratios

    base = [1.0, 1.0, 1.0, 3.0, 3.0]
    other = [1.1, 1.1, 1.2, 3.3, 3.0]  # 10% slower in the median round
    assert paired_ratios(base, other) == pytest.approx((1.1, 1.0, 1.2))
    assert (sorted(other)[2] / sorted(base)[2]) == pytest.approx(1.2)
    calls = []
    times = interleaved_times([lambda: calls.append('a'),
                               lambda: calls.append('b')], repeats=3, warmup=1)
    assert calls == ['a', 'b'] * 4 and [len(t) for t in times] == [3, 3]
