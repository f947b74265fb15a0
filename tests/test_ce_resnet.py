"""CE-ResNet: MMDetection ResNet options, CE placement, train/eval, weights."""
import logging
import os

import pytest
import torch
from mmdet.models.backbones import ResNet
from mmdet.registry import MODELS
from mmengine.logging import MMLogger
from torch.nn.modules.batchnorm import _BatchNorm

import ce_mmdet  # noqa: F401
from ce_mmdet.backbones import CEResNet
from ce_mmdet.converters import CENetCheckpointError, convert_cenet_checkpoint
from ce_mmdet.layers import ChannelEquilibrium


def build(**kwargs) -> CEResNet:
    cfg = dict(type='CEResNet', depth=50, init_cfg=None)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def ce_layers(model):
    return {n: m for n, m in model.named_modules()
            if isinstance(m, ChannelEquilibrium)}


@pytest.mark.parametrize('depth,channels', [(18, [64, 128, 256, 512]),
                                            (34, [64, 128, 256, 512]),
                                            (50, [256, 512, 1024, 2048]),
                                            (101, [256, 512, 1024, 2048]),
                                            (152, [256, 512, 1024, 2048])])
def test_depths_and_out_indices(depth, channels):
    model = build(depth=depth, out_indices=(0, 1, 2, 3)).train()
    outs = model(torch.randn(2, 3, 64, 64))
    assert [o.shape for o in outs] == [
        (2, c, 64 // s, 64 // s) for c, s in zip(channels, (4, 8, 16, 32))]
    # CE placement as in the release: stem, and every block of stages 1-3.
    blocks = {18: (2, 2, 2), 34: (3, 4, 6), 50: (3, 4, 6), 101: (3, 4, 23),
              152: (3, 8, 36)}[depth]
    names = set(ce_layers(model))
    expected = {'stem_ce'} | {f'layer{s + 1}.{b}.ce'
                              for s, n in enumerate(blocks)
                              for b in range(n)}
    assert names == expected
    assert (model.stem_ce.group_size == 64
            and model.layer1[0].ce.group_size == 16)
    assert [o.shape[1] for o in build(depth=depth, out_indices=(1, 3))(
        torch.randn(1, 3, 64, 64))] == [channels[1], channels[3]]


def test_stage_with_ce_and_no_stem_ce():
    model = build(depth=18, stage_with_ce=(False, True, False, True),
                  stem_ce_cfg=None)
    assert set(ce_layers(model)) == {'layer2.0.ce', 'layer2.1.ce',
                                     'layer4.0.ce', 'layer4.1.ce'}
    with pytest.raises(ValueError, match='one flag per stage'):
        build(depth=18, stage_with_ce=(True, True))


def test_frozen_stages_freeze_stem_ce_and_stage_completely():
    model = build(frozen_stages=1, norm_eval=False).train()
    frozen = [model.conv1, model.norm1, model.stem_ce, model.layer1]
    for module in frozen:
        assert all(not p.requires_grad for p in module.parameters())
    for module in frozen[1:]:  # (a conv has no mode; MMDetection leaves it)
        assert all(not m.training for m in module.modules())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model(torch.randn(2, 3, 64, 64))
    after = model.state_dict()
    for key in before:
        changed = not torch.equal(before[key], after[key])
        if key.startswith(('stem_ce.', 'layer1.', 'bn1.')):
            assert not changed, key
    assert not torch.equal(before['layer2.0.ce.running_whitening'],
                           after['layer2.0.ce.running_whitening'])
    assert (model.layer2[0].ce.training
            and model.layer2[0].ce.gate_logit.requires_grad)


@pytest.mark.parametrize('ce_eval', [False, True])
def test_norm_eval_and_ce_eval(ce_eval):
    model = build(norm_eval=True, ce_eval=ce_eval, frozen_stages=-1).train()
    assert all(not m.training for m in model.modules()
               if isinstance(m, _BatchNorm))
    assert all(m.training != ce_eval for m in ce_layers(model).values())
    before = model.layer3[0].ce.running_whitening.clone()
    model(torch.randn(2, 3, 64, 64))
    assert torch.equal(before, model.layer3[0].ce.running_whitening) == ce_eval
    model.eval()
    assert not any(m.training for m in model.modules())


def test_dcn_and_plugin_combination():
    model = build(dcn=dict(type='DCN', deform_groups=1,
                           fallback_on_stride=False),
                  stage_with_dcn=(False, False, True, True),
                  plugins=[dict(cfg=dict(type='ContextBlock', ratio=1. / 16),
                                stages=(False, True, True, True),
                                position='after_conv3')]).train()
    block = model.layer3[0]
    assert type(block.conv2).__name__ == 'DeformConv2dPack'
    assert block.after_conv3_plugin_names == ['context_block']
    outs = model(torch.randn(1, 3, 128, 128))  # mmcv's DCN needs >= 3x3 maps
    sum(o.sum() for o in outs).backward()
    assert block.ce.gate_logit.grad is not None


def test_ce_as_plugin_of_mmdet_resnet():
    """CE also plugs into MMDetection's own ResNet (weights at layerS.B.ce)."""
    model = ResNet(depth=50, init_cfg=None, plugins=[
        dict(cfg=dict(type='CE', group_size=16), position='after_conv3',
             stages=(True, True, True, False))])
    assert 'layer2.3.ce.running_whitening' in model.state_dict()
    assert 'layer4.0.ce.running_whitening' not in model.state_dict()
    model.train()  # (MMDetection's ResNet.train returns None)
    model(torch.randn(2, 3, 64, 64))
    assert model.layer1[0].after_conv3_plugin_names == ['ce']


def test_with_cp_gives_the_same_result():
    torch.manual_seed(0)
    model = build(depth=18, with_cp=True).train()
    reference = build(depth=18, with_cp=False).train()
    reference.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    out, out_ref = model(x)[-1], reference(x_ref)[-1]
    torch.testing.assert_close(out, out_ref)
    out.sum().backward()
    out_ref.sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad)


def test_torchvision_weights_load_and_ce_keys_are_logged(tmp_path):
    """A plain ResNet checkpoint (torchvision names) initialises every non-CE
    weight; CE keeps its initial values, listed in one log line."""
    plain = ResNet(depth=50, init_cfg=None)
    with torch.no_grad():
        for tensor in plain.state_dict().values():
            if tensor.is_floating_point():
                tensor.uniform_(0.5, 1.5)
    path = str(tmp_path / 'resnet50_torchvision_names.pth')
    torch.save(dict(state_dict=plain.state_dict()), path)
    model = build(init_cfg=dict(type='Pretrained', checkpoint=path))
    initial_ce = {k: v.clone() for k, v in model.state_dict().items()
                  if 'ce.' in k}
    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        model.init_weights()
    finally:
        logger.removeHandler(handler)
    state = model.state_dict()
    for key, value in plain.state_dict().items():
        assert torch.equal(state[key], value), key
    for key, value in initial_ce.items():
        assert torch.equal(state[key], value), key
    messages = [r.getMessage() for r in records
                if 'intentionally new' in r.getMessage()]
    assert len(messages) == 1
    assert 'layer2.3.ce.running_whitening' in messages[0]
    assert 'stem_ce.gate_logit' in messages[0]


# ------------------------------------------------------ released checkpoints
def release_layout_state_dict(depth=50, prefix=''):
    """A state dict in the CENet release layout (docs/en/advanced_guides/
    design.md, "The released checkpoint"),
    with random values: torchvision names + ce1 / layerS.B.ce keys."""
    torch.manual_seed(0)
    plain = ResNet(depth=depth, init_cfg=None)
    state = {k: torch.randn_like(v) if v.is_floating_point() else v
             for k, v in plain.state_dict().items()}
    state['fc.weight'] = torch.randn(1000, 2048 if depth >= 50 else 512)
    state['fc.bias'] = torch.randn(1000)
    expansion = 4 if depth >= 50 else 1
    ce_layers_ = [('ce1', 64, 64)]
    for stage, blocks in zip((1, 2, 3), plain.stage_blocks):
        channels = 64 * 2**(stage - 1) * expansion
        ce_layers_ += [(f'layer{stage}.{b}.ce', channels, 16)
                       for b in range(blocks)]
    for name, c, g in ce_layers_:
        state[f'{name}.x_weight'] = torch.randn(1)
        state[f'{name}.running_mean'] = torch.randn(c // g, g, 1)
        state[f'{name}.running_wm'] = torch.randn(c // g, g, g)
        state[f'{name}.AR.running_scale'] = torch.rand(1) + 0.5
        state[f'{name}.AR.fc.0.weight'] = torch.randn(c // 4, c)
        state[f'{name}.AR.fc.1.weight'] = torch.randn(c // 4)
        state[f'{name}.AR.fc.1.bias'] = torch.randn(c // 4)
        state[f'{name}.AR.fc.3.weight'] = torch.randn(c, c // 4)
    return {prefix + k: v for k, v in state.items()}


def save_release(path, state_dict):
    torch.save(dict(epoch=100, model='resnetv1ce50', state_dict=state_dict,
                    best_prec1=78.2,
                    optimizer=dict(state={}, param_groups=[])),
               path)


@pytest.mark.parametrize('prefix', ['', 'module.'])
def test_released_checkpoint_converts_and_loads_through_init_cfg(
        tmp_path, prefix):
    source = release_layout_state_dict(prefix=prefix)
    src, dst = str(tmp_path / 'cenet.pth.tar'), str(tmp_path / 'ce_r50.pth')
    save_release(src, source)
    assert convert_cenet_checkpoint(src, dst, depth=50) == 50
    model = build(init_cfg=dict(type='Pretrained', checkpoint=dst))
    missing_or_unexpected = model.load_state_dict(
        torch.load(dst, weights_only=True)['state_dict'], strict=True)
    assert not missing_or_unexpected.missing_keys
    model = build(init_cfg=dict(type='Pretrained', checkpoint=dst))
    model.init_weights()
    state = model.state_dict()
    p = prefix
    assert torch.equal(state['layer2.3.ce.running_whitening'],
                       source[p + 'layer2.3.ce.running_wm'])
    assert torch.equal(state['layer2.3.ce.running_mean'],
                       source[p + 'layer2.3.ce.running_mean'][..., 0])
    assert torch.equal(state['layer1.0.ce.gate_logit'],
                       source[p + 'layer1.0.ce.x_weight'])
    assert torch.equal(state['layer3.5.ce.running_scale'],
                       source[p + 'layer3.5.ce.AR.running_scale'])
    assert torch.equal(state['layer3.5.ce.reweighting.squeeze.weight'],
                       source[p + 'layer3.5.ce.AR.fc.0.weight'])
    assert torch.equal(state['layer3.5.ce.reweighting.norm.bias'],
                       source[p + 'layer3.5.ce.AR.fc.1.bias'])
    assert torch.equal(state['layer3.5.ce.reweighting.excite.weight'],
                       source[p + 'layer3.5.ce.AR.fc.3.weight'])
    assert torch.equal(state['stem_ce.running_whitening'],
                       source[p + 'ce1.running_wm'])
    assert torch.equal(state['layer4.2.bn3.running_var'],
                       source[p + 'layer4.2.bn3.running_var'])
    assert torch.equal(state['conv1.weight'], source[p + 'conv1.weight'])


def test_converter_refuses_bad_sources_without_writing(tmp_path):
    dst = str(tmp_path / 'out.pth')
    plain = str(tmp_path / 'plain.pth')
    torch.save(dict(state_dict=ResNet(depth=50, init_cfg=None).state_dict()),
               plain)
    with pytest.raises(CENetCheckpointError,
                       match='not a CE-ResNet checkpoint'):
        convert_cenet_checkpoint(plain, dst)
    good = str(tmp_path / 'good.pth')
    save_release(good, release_layout_state_dict())
    with pytest.raises(CENetCheckpointError, match='CE-ResNet-50, not -101'):
        convert_cenet_checkpoint(good, dst, depth=101)
    truncated = str(tmp_path / 'truncated.pth')
    with open(good, 'rb') as f, open(truncated, 'wb') as g:
        g.write(f.read()[:100000])
    with pytest.raises(CENetCheckpointError, match='truncated'):
        convert_cenet_checkpoint(truncated, dst)
    with pytest.raises(CENetCheckpointError, match='no such file'):
        convert_cenet_checkpoint(str(tmp_path / 'missing.pth'), dst)
    assert not os.path.exists(dst)
    assert not [f for f in os.listdir(tmp_path) if '.tmp' in f]


def test_frozen_bn_shift_in_conv_keeps_hooks_and_results():
    """With frozen BNs, the conv before CE runs with BN's running mean as its
    bias (CE's precision); a hook on that conv still fires, and the hooked
    (unfused) path gives the same result."""
    model = build(depth=50, norm_eval=True).double().train()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, _BatchNorm):
                module.running_mean.uniform_(-2, 2)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    fused = model(x)
    seen = []
    conv = model.layer1[0].conv3
    handle = conv.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    hooked = model(x)
    handle.remove()
    assert seen == [(2, 256, 16, 16)]
    for a, b in zip(fused, hooked):
        torch.testing.assert_close(a, b)


def test_ce_and_se_in_basic_blocks():
    """CE-ResNet-18 takes BasicBlock plugins: SE after CE, before the
    addition."""
    model = build(depth=18, plugins=[dict(cfg=dict(type='SE'),
                                          position='after_conv2')])
    block = model.layer1[0]
    assert block.ce is not None and block.after_conv2_plugin_names
    plain = build(depth=18)
    assert set(plain.state_dict()) < set(model.state_dict())  # CE keys kept
    order = []
    for name in ('ce', block.after_conv2_plugin_names[0]):
        getattr(block, name).register_forward_hook(
            lambda m, i, o, name=name: order.append(name))
    outs = model.train()(torch.randn(2, 3, 64, 64))
    assert order == ['ce', block.after_conv2_plugin_names[0]]
    assert all(torch.isfinite(o).all() for o in outs)


def _refused_without_writing(tmp_path, state_dict, match):
    src, dst = str(tmp_path / 'cenet.pth.tar'), str(tmp_path / 'out.pth')
    save_release(src, state_dict)
    with pytest.raises(CENetCheckpointError, match=match):
        convert_cenet_checkpoint(src, dst)
    assert not os.path.exists(dst)
    assert not [f for f in os.listdir(tmp_path) if '.tmp' in f]


def test_converter_refuses_an_incomplete_checkpoint(tmp_path):
    """Every tensor of one CE layer removed (found by trying: it converted
    before), or one BN statistic: refused, naming them."""
    state = release_layout_state_dict()
    for key in [k for k in state if k.startswith('layer3.5.ce.')]:
        del state[key]
    _refused_without_writing(
        tmp_path, state, r'incomplete CE-ResNet-50 .* 8 tensors missing: '
        r'layer3\.5\.ce\.')
    state = release_layout_state_dict()
    del state['layer4.2.bn3.running_var']
    _refused_without_writing(tmp_path, state,
                             r'1 tensors missing: layer4\.2\.bn3\.running_var')


@pytest.mark.parametrize('key,shape', [
    ('layer2.1.ce.running_wm', (32, 16, 15)),
    ('layer2.1.ce.running_mean', (32, 16, 2)),  # not squeezed into shape
    ('ce1.AR.fc.0.weight', (32, 64)),           # another reduction
])
def test_converter_refuses_tensors_of_the_wrong_shape(tmp_path, key, shape):
    state = release_layout_state_dict()
    state[key] = torch.randn(shape)
    _refused_without_writing(tmp_path, state, 'tensors of the wrong shape')


def test_converter_refuses_unknown_keys_and_accepts_missing_batch_counters(
        tmp_path):
    state = release_layout_state_dict()
    state['layer1.0.ce.AR.extra'] = torch.randn(3)
    _refused_without_writing(tmp_path, state, 'keys of unknown meaning')
    state = release_layout_state_dict()
    # the release has no stage-4 CE
    state['layer4.0.ce.x_weight'] = torch.randn(1)
    _refused_without_writing(tmp_path, state,
                             r'does not have: layer4\.0\.ce\.gate_logit')
    # Older PyTorch saved no num_batches_tracked: not a missing weight.
    state = {k: v for k, v in release_layout_state_dict().items()
             if not k.endswith('num_batches_tracked')}
    src, dst = str(tmp_path / 'old.pth.tar'), str(tmp_path / 'old.pth')
    save_release(src, state)
    assert convert_cenet_checkpoint(src, dst) == 50


def test_converter_command_exits_non_zero_and_writes_nothing(tmp_path):
    import hashlib
    import subprocess
    import sys
    tool = (os.path.dirname(os.path.dirname(os.path.abspath(__file__))) +
            '/tools/model_converters/cenet2mmdet.py')
    src, dst = str(tmp_path / 'cenet.pth.tar'), str(tmp_path / 'out.pth')
    state = release_layout_state_dict()
    save_release(src, state)
    result = subprocess.run([sys.executable, tool, src, dst, '--depth', '101'],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert ('refused: the checkpoint is a CE-ResNet-50, not -101'
            in result.stderr)
    del state['layer2.1.ce.running_wm']
    save_release(src, state)
    result = subprocess.run([sys.executable, tool, src, dst],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert 'layer2.1.ce.running_whitening' in result.stderr
    assert os.listdir(tmp_path) == ['cenet.pth.tar']
    result = subprocess.run([sys.executable, tool, src.replace('cenet', 'x'),
                             dst], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and 'no such file' in result.stderr
    # A good file: the SHA-256 of what was read is printed and kept in meta.
    save_release(src, release_layout_state_dict())
    result = subprocess.run([sys.executable, tool, src, dst],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    with open(src, 'rb') as f:
        sha256 = hashlib.sha256(f.read()).hexdigest()
    assert f'read {src} (sha256 {sha256})' in result.stdout
    meta = torch.load(dst, weights_only=True)['meta']
    assert meta['source_sha256'] == sha256


def test_converted_file_without_its_ce_tensors_is_refused_by_the_backbone(
        tmp_path):
    """A file whose meta says CE-ResNet (the converter's) but which holds no
    CE tensor is an error, not a plain ResNet whose CE is "new"."""
    src, dst = str(tmp_path / 'cenet.pth.tar'), str(tmp_path / 'ce_r50.pth')
    save_release(src, release_layout_state_dict())
    convert_cenet_checkpoint(src, dst)
    converted = torch.load(dst, weights_only=True)
    assert converted['meta']['architecture'] == 'CEResNet-50'
    converted['state_dict'] = {k: v for k, v in converted['state_dict'].items()
                               if 'ce.' not in k}
    torch.save(converted, dst)
    model = build(init_cfg=dict(type='Pretrained', checkpoint=dst))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError,
                       match='says it holds a CEResNet-50 .* none of the'):
        model.init_weights()
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key  # nothing loaded
    # The same tensors without the meta: a plain ResNet, CE new by design.
    del converted['meta']
    torch.save(converted, dst)
    build(init_cfg=dict(type='Pretrained', checkpoint=dst)).init_weights()
