"""CE through MMDetection's builders, the BN+CE norm layer, and SyncCE."""
import copy
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmcv.cnn import build_norm_layer, build_plugin_layer
from mmdet.models.backbones import ResNet
from mmdet.registry import MODELS
from mmengine.registry import DefaultScope
from torch import nn

import ce_mmdet  # noqa: F401
from ce_mmdet.layers import (
    BatchNormCE,
    ChannelEquilibrium,
    SyncChannelEquilibrium,
    convert_sync_channel_equilibrium,
)


@pytest.mark.parametrize('scope', [None, 'mmdet'])
def test_builders_find_ce_inside_and_outside_the_mmdet_scope(scope):
    instance = (DefaultScope.get_instance(f'scope-{scope}', scope_name=scope)
                if scope else None)
    with DefaultScope.overwrite_default_scope(scope):
        name, norm = build_norm_layer(
            dict(type='BNCE', ce_cfg=dict(type='CE', group_size=8)), 32,
            postfix=3)
        assert name == 'bn3' and isinstance(norm, BatchNormCE)
        assert norm.ce.group_size == 8 and norm.eps == 1e-5
        name, plugin = build_plugin_layer(dict(type='CE'), in_channels=64)
        assert name == 'ce' and isinstance(plugin, ChannelEquilibrium)
        _, sync = build_plugin_layer(dict(type='SyncCE'), in_channels=64)
        assert isinstance(sync, SyncChannelEquilibrium)
    assert isinstance(MODELS.build(dict(type='CE', in_channels=16)),
                      ChannelEquilibrium)
    del instance


def test_bnce_loads_plain_bn_weights_and_matches_bn_then_ce():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(32)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    bnce = BatchNormCE(32)
    result = bnce.load_state_dict(bn.state_dict(), strict=False)
    assert not result.unexpected_keys
    assert all(key.startswith('ce.') for key in result.missing_keys)
    ce = copy.deepcopy(bnce.ce)
    x = torch.randn(4, 32, 6, 6)
    for mode in (True, False):
        bnce.train(mode)
        ce.train(mode)
        bn.train(mode)
        torch.testing.assert_close(bnce(x), ce(bn(x)))


def test_bnce_in_mmdet_resnet_follows_norm_eval():
    model = ResNet(depth=18, init_cfg=None, norm_eval=True, frozen_stages=-1,
                   norm_cfg=dict(type='BNCE', requires_grad=True))
    model.train()
    bnce = model.layer2[0].bn1
    assert (isinstance(bnce, BatchNormCE) and not bnce.training
            and bnce.ce.training)
    before = bnce.running_mean.clone(), bnce.ce.running_whitening.clone()
    model(torch.randn(2, 3, 64, 64))
    assert torch.equal(before[0], bnce.running_mean)  # BN part frozen
    assert not torch.equal(before[1], bnce.ce.running_whitening)  # CE learns
    model.eval()
    assert not bnce.training and not bnce.ce.training


def test_bnce_in_a_frozen_stem_is_frozen_completely():
    model = ResNet(depth=18, init_cfg=None, norm_eval=True, frozen_stages=1,
                   norm_cfg=dict(type='BNCE', requires_grad=True))
    model.train()
    for frozen in (model.norm1, model.layer1[0].bn2):
        assert not frozen.training and not frozen.ce.training
    assert model.layer2[0].bn2.ce.training


def test_convert_sync_keeps_state_and_output():
    model = MODELS.build(dict(type='CEResNet', depth=18, init_cfg=None))
    model.train()
    model(torch.randn(2, 3, 64, 64))  # non-trivial running statistics
    reference = copy.deepcopy(model)
    converted = convert_sync_channel_equilibrium(model)
    ce_layers = [m for m in converted.modules()
                 if isinstance(m, ChannelEquilibrium)]
    assert ce_layers and all(isinstance(m, SyncChannelEquilibrium)
                             for m in ce_layers)
    for key, value in reference.state_dict().items():
        assert torch.equal(value, converted.state_dict()[key]), key
    converted.eval()
    reference.eval()
    x = torch.randn(1, 3, 64, 64)
    for a, b in zip(converted(x), reference(x)):
        torch.testing.assert_close(a, b)


# -------------------------------------------------------------- SyncCE, gloo
def _sync_worker(rank: int, world_size: int, init_file: str, out_dir: str,
                 split: tuple) -> None:
    dist.init_process_group('gloo', init_method=f'file://{init_file}',
                            rank=rank, world_size=world_size)
    torch.manual_seed(0)
    layer = SyncChannelEquilibrium(32, group_size=8).train()
    x_full, weights = _sync_inputs(split)
    start = sum(split[:rank])
    x = x_full[start:start + split[rank]].clone().requires_grad_()
    for _ in range(2):  # two steps: running statistics
        out = layer(x)
    (out * weights[start:start + split[rank]]).sum().backward()
    torch.save(dict(out=out.detach(), grad=x.grad, state=layer.state_dict(),
                    param_grads=[p.grad for p in layer.parameters()]),
               os.path.join(out_dir, f'rank{rank}.pth'))
    dist.destroy_process_group()


def _sync_inputs(split):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(sum(split), 32, 5, 7, generator=g) * 2 + 0.5
    return x, torch.randn(x.shape, generator=g)


@pytest.mark.parametrize('split', [(2, 2), (3, 1)])
def test_sync_ce_on_two_processes_equals_ce_on_the_whole_batch(
        tmp_path, split):
    mp.spawn(_sync_worker,
             args=(2, str(tmp_path / 'init'), str(tmp_path), split),
             nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f'rank{r}.pth') for r in range(2)]
    torch.manual_seed(0)
    layer = ChannelEquilibrium(32, group_size=8).train()
    x_full, weights = _sync_inputs(split)
    x = x_full.clone().requires_grad_()
    for _ in range(2):
        out = layer(x)
    (out * weights).sum().backward()
    torch.testing.assert_close(torch.cat([r['out'] for r in ranks]),
                               out.detach())
    torch.testing.assert_close(torch.cat([r['grad'] for r in ranks]), x.grad)
    for rank in ranks:
        for key, value in layer.state_dict().items():
            torch.testing.assert_close(rank['state'][key], value, msg=key)
    # Parameter gradients: DDP sums (averages) the ranks' contributions.
    for i, param in enumerate(layer.parameters()):
        torch.testing.assert_close(
            ranks[0]['param_grads'][i] + ranks[1]['param_grads'][i],
            param.grad)


# SyncCE in the configs' settings: float64, unequal per-process batches.
# 'frozen-bn': CE-ResNet-18 with SyncCE as mask_rcnn_syncce_*.py (norm_eval:
# frozen BNs with non-trivial statistics folded into CE, the shift through the
# conv bias) against CE on all images in one process. 'training-bn': a BN in
# training mode folded into SyncCE (BNCE's path): each process normalises
# with its own batch's statistics (BN is not synchronised), then CE's
# statistics are the whole batch's.
SYNC_SPLIT = (2, 3)


def _sync_setting(setting: str, sync: bool):
    torch.manual_seed(0)
    ce_type = 'SyncCE' if sync else 'CE'
    if setting == 'frozen-bn':
        from ce_mmdet.backbones import CEResNet
        model = CEResNet(depth=18, norm_eval=True, init_cfg=None,
                         ce_cfg=dict(type=ce_type, group_size=16),
                         stem_ce_cfg=dict(type=ce_type, group_size=64))
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                with torch.no_grad():
                    module.running_mean.uniform_(-2, 2)
                    module.running_var.uniform_(0.5, 2)
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.uniform_(-0.5, 0.5)
        model = model.double().train()  # norm_eval keeps the BNs in eval

        def state(m):
            return {k: v for k, v in m.state_dict().items() if 'ce' in k}
        return model, (lambda m, x: m(x)[-1]), state, (32, 3, 32, 32)
    bn = nn.BatchNorm2d(32)
    layer = MODELS.build(dict(type=ce_type, in_channels=32, group_size=8))
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    model = nn.ModuleDict(dict(bn=bn, ce=layer)).double().train()
    return (model, lambda m, x: m['ce'](x, preceding_norm=m['bn']),
            lambda m: m['ce'].state_dict(), (32, 32, 5, 7))


def _sync_setting_inputs(setting: str):
    g = torch.Generator().manual_seed(1)
    shape = _sync_setting(setting, sync=False)[3]
    x = (torch.randn(sum(SYNC_SPLIT), *shape[1:], generator=g,
                     dtype=torch.float64) * 2 + 0.5)
    return x


def _sync_setting_worker(rank: int, init_file: str, out_dir: str,
                         setting: str) -> None:
    dist.init_process_group('gloo', init_method=f'file://{init_file}',
                            rank=rank, world_size=2)
    model, forward, state, _ = _sync_setting(setting, sync=True)
    start = sum(SYNC_SPLIT[:rank])
    x = _sync_setting_inputs(setting)[start:start + SYNC_SPLIT[rank]]
    x = x.clone().requires_grad_()
    out = forward(model, x)
    out.square().sum().backward()
    torch.save(dict(out=out.detach(), grad=x.grad, state=state(model)),
               os.path.join(out_dir, f'rank{rank}.pth'))
    dist.destroy_process_group()


@pytest.mark.parametrize('setting', ['frozen-bn', 'training-bn'])
def test_sync_ce_in_the_configs_settings_equals_whole_batch_ce(tmp_path,
                                                              setting):
    mp.spawn(_sync_setting_worker,
             args=(str(tmp_path / 'init'), str(tmp_path), setting),
             nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f'rank{r}.pth') for r in range(2)]
    model, forward, state, _ = _sync_setting(setting, sync=False)
    x_full = _sync_setting_inputs(setting)
    if setting == 'frozen-bn':
        x = x_full.clone().requires_grad_()
        out = forward(model, x)
        out.square().sum().backward()
        grad = x.grad
    else:  # BN per process, CE over the whole batch
        chunks = [c.clone().requires_grad_()
                  for c in x_full.split(list(SYNC_SPLIT))]
        normalised = [model['bn'](c) for c in chunks]
        out = model['ce'](torch.cat(normalised))
        out.square().sum().backward()
        grad = torch.cat([c.grad for c in chunks])
    tolerance = dict(rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(torch.cat([r['out'] for r in ranks]),
                               out.detach(), **tolerance)
    torch.testing.assert_close(torch.cat([r['grad'] for r in ranks]), grad,
                               **tolerance)
    expected = state(model)
    if setting == 'training-bn':
        # The whole-batch model ran its BN twice: compare CE's own buffers.
        assert set(expected) == set(ranks[0]['state'])
    for rank in ranks:
        for key, value in expected.items():
            torch.testing.assert_close(rank['state'][key], value, msg=key,
                                       **tolerance)


# Each layer with the smallest arguments that build it.
LAYER_ARGS = {
    'CE': dict(in_channels=16),
    'SyncCE': dict(in_channels=16),
    'BNCE': dict(num_features=16),
    'NormCE': dict(num_features=16),
    'SE': dict(in_channels=16, ratio=4),
    'GEThetaMinus': dict(in_channels=16),
    'GETheta': dict(in_channels=16),
    'GEThetaPlus': dict(in_channels=16, ratio=4),
    'FastDeconv': dict(in_channels=16, out_channels=16, kernel_size=3),
}


def test_every_layer_is_registered_once_in_the_root_registry():
    from mmengine.registry import MODELS as ROOT_MODELS
    from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
    registered_here = {name for name, cls in ROOT_MODELS.module_dict.items()
                       if cls.__module__.startswith('ce_mmdet.layers')}
    assert registered_here == set(LAYER_ARGS)
    registries = [ROOT_MODELS, MODELS, MMPRETRAIN_MODELS,
                  *ROOT_MODELS.children.values()]
    for name in LAYER_ARGS:
        holders = {id(registry) for registry in registries
                   if name in registry.module_dict}
        assert holders == {id(ROOT_MODELS)}, name


@pytest.mark.parametrize('scope,prefix', [('mmdet', ''), ('mmpretrain', ''),
                                          ('mmpretrain', 'mmdet.')])
@pytest.mark.parametrize('name', sorted(LAYER_ARGS))
def test_every_layer_builds_from_the_mmdet_and_mmpretrain_scopes(
        scope, prefix, name):
    import mmpretrain.models  # noqa: F401  (fills MMPretrain's registry)
    from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
    registry = MODELS if scope == 'mmdet' else MMPRETRAIN_MODELS
    with DefaultScope.overwrite_default_scope(scope):
        layer = registry.build(dict(type=prefix + name, **LAYER_ARGS[name]))
    assert type(layer) is MODELS.get(name)
