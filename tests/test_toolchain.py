"""CE in PyTorch 2's toolchain: traced, exported, compiled, counted, ONNX.

While ``torch.jit.trace``, ``torch.export`` or ``torch.compile`` capture a
graph, CE runs as plain differentiable ops (``graph_capture_in_progress``).
Checked here on small models (single CE, BNCE and SyncCE layers, CE-ResNet-18
at 64x64, the tiny CE detector of ``tiny_detector.py``) with non-trivial
running statistics:

* ``torch.jit.trace`` (gradients enabled) and ``torch.export.export`` in
  eval mode give eager's outputs on a new input;
* ``torch.compile`` (Inductor) trains CE-ResNet-18 like eager over two SGD
  steps: outputs, parameter gradients, CE and BN running statistics; and
  predicts like eager in eval mode;
* MMDetection's ``get_flops.py`` runs on every CE config of ``configs/``
  (on a tiny synthetic set), and MMEngine's counter behind it counts CE's
  matrix products;
* ONNX: CE-ResNet-18 and the tiny detector's backbone + neck export with
  torch's default (dynamo) exporter and run in onnxruntime like PyTorch;
  ``tools/deployment/export_onnx.py`` writes atomically.

MMEngine's ``compile=True`` training of the tiny CE detector takes minutes
on a CPU (Inductor compiles the heads, with many graph breaks): it is marked
``slow`` and runs only with ``--run-slow``.
"""
import copy
import functools
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from torch import Tensor, nn

import ce_mmdet  # noqa: F401
from ce_mmdet.backbones import CEResNet
from ce_mmdet.deployment import (
    BackboneNeck,
    OnnxMismatchError,
    check_onnx,
    export_and_check_onnx,
    export_onnx,
)
from ce_mmdet.layers import ChannelEquilibrium
from ce_mmdet.utils import openmmlab_tool_path, run_openmmlab_tool
from tiny_detector import (
    tiny_ce_backbone,
    tiny_test_pipeline,
    write_tiny_mask_rcnn_config,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
INPUT_SHAPE = (2, 3, 64, 64)


def seeded_input(shape, seed: int) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def with_running_statistics(model: nn.Module, shape,
                            steps: int = 3) -> nn.Module:
    """``model`` after a few training forwards (CE and BN running statistics
    away from their initial values), in eval mode."""
    model.train()
    with torch.no_grad():
        for step in range(steps):
            model(seeded_input(shape, 100 + step) * 2 + 0.5)
    return model.train(False)  # (BNCE.eval() would freeze only its BN)


def ce_resnet18(**kwargs) -> CEResNet:
    torch.manual_seed(0)
    model = CEResNet(depth=18, **kwargs)
    model.init_weights()
    return model


def ce_layer() -> nn.Module:
    torch.manual_seed(0)
    return MODELS.build(dict(type='CE', in_channels=32, group_size=16))


def bnce_layer() -> nn.Module:
    torch.manual_seed(0)
    layer = MODELS.build(dict(type='BNCE', num_features=32,
                              ce_cfg=dict(type='CE', group_size=16)))
    nn.init.uniform_(layer.weight, 0.5, 1.5)
    nn.init.uniform_(layer.bias, -0.5, 0.5)
    return layer


def syncce_layer() -> nn.Module:
    torch.manual_seed(0)
    return MODELS.build(dict(type='SyncCE', in_channels=32, group_size=16))


EVAL_MODELS: dict[str, tuple[Callable[[], nn.Module], tuple]] = {
    'CE': (ce_layer, (2, 32, 8, 8)),
    'BNCE': (bnce_layer, (2, 32, 8, 8)),
    'SyncCE': (syncce_layer, (2, 32, 8, 8)),
    'CEResNet18': (ce_resnet18, INPUT_SHAPE),
}


@pytest.fixture(scope='module', params=list(EVAL_MODELS))
def eval_model(request) -> tuple[nn.Module, tuple]:
    build, shape = EVAL_MODELS[request.param]
    return with_running_statistics(build(), shape), shape


def as_tuple(outputs) -> tuple[Tensor, ...]:
    return (outputs, ) if isinstance(outputs, Tensor) else tuple(outputs)


def assert_outputs_close(actual, expected, rel: float = 1e-5) -> None:
    """Each output within ``rel`` of its largest magnitude (float32)."""
    actual, expected = as_tuple(actual), as_tuple(expected)
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected):
        assert got.shape == want.shape
        scale = want.abs().max().item()
        assert (got - want).abs().max().item() <= rel * scale + 1e-7, (
            (got - want).abs().max().item(), scale)


# ---------------------------------------------------------------- capture
def test_jit_trace_with_gradients_matches_eager(eval_model):
    model, shape = eval_model
    x = seeded_input(shape, 0)
    with torch.enable_grad():
        traced = torch.jit.trace(model, x, check_trace=False)
    graph = str(traced.inlined_graph)
    assert 'aten::matmul' in graph  # CE's map, visible to the tracer
    new_input = seeded_input(shape, 1)
    with torch.no_grad():
        expected = model(new_input)
    assert_outputs_close(traced(new_input), expected)


def test_torch_export_matches_eager(eval_model):
    model, shape = eval_model
    exported = torch.export.export(model, (seeded_input(shape, 0), ))
    new_input = seeded_input(shape, 1)
    with torch.no_grad():
        expected = model(new_input)
        assert_outputs_close(exported.module()(new_input), expected)


# ---------------------------------------------------------------- compile
def relative_error(actual: Tensor, reference: Tensor) -> float:
    """Max absolute difference over the reference's max magnitude."""
    scale = reference.abs().max().item() or 1.0
    return (actual.double() - reference).abs().max().item() / scale


def test_compiled_training_matches_eager():
    """Two SGD steps of CE-ResNet-18 under ``torch.compile`` (Inductor),
    against eager float32 and a float64 reference: outputs, parameter
    gradients, CE and BN running statistics.

    CE trains on batch statistics. The BNs of stages 2-4 do too; those of
    the stem and stage 1 are frozen (as ``norm_eval=True`` freezes all of
    them in the COCO configs), so the stem's CE and stage 1's fold them into
    their map. Residual branches are not zero-initialised, so that every
    parameter has a gradient at the first step. The second step reuses the
    compiled graphs with updated weights and buffers; compiled float32 must
    be as close to float64 as eager float32 is (within 2x, plus 1e-4).
    Gradients are compared at the first step only: at the second, a few
    ReLU inputs lie within float32 rounding of zero (e.g. 4e-7 in eager
    float32, -4e-6 in float64), their masks flip, and eager float32 itself
    differs from float64 by 2e-2 of ``layer2.0.conv1.weight.grad`` (compiled
    by 1e-4 there, but by 2e-2 on ``conv1.weight``): ties, not errors.
    """
    eager = ce_resnet18(norm_eval=False, zero_init_residual=False).train()
    frozen_norms = [eager.norm1] + [
        m for m in eager.layer1.modules() if isinstance(m, nn.BatchNorm2d)]
    for norm in frozen_norms:
        norm.eval()
    reference = copy.deepcopy(eager).double()
    compiled_model = copy.deepcopy(eager)
    # dynamic=False: torch 2.13 recompiles the frame resumed after CE's graph
    # break (the statistics graph outside Inductor) with dynamic shapes for
    # the next layer's shapes, and compiling that graph's backward then
    # fails on a guard (KeyError: 'x_grouped') with cold compile caches.
    compiled = torch.compile(compiled_model, dynamic=False)
    runs = {'float64': (reference, reference), 'eager': (eager, eager),
            'compiled': (compiled_model, compiled)}
    optimizers = {name: torch.optim.SGD(module.parameters(), lr=1e-4)
                  for name, (module, _) in runs.items()}
    initial_buffers = [b.clone() for b in eager.buffers()]
    for step in range(2):
        x = seeded_input(INPUT_SHAPE, 10 + step) * 2 + 0.5
        outputs = {}
        for name, (module, model) in runs.items():
            optimizers[name].zero_grad()
            result = model(x.to(next(module.parameters()).dtype))
            weights = [seeded_input(o.shape, 20 + i).to(o.dtype)
                       for i, o in enumerate(result)]
            sum((o * w).sum() for o, w in zip(result, weights)).backward()
            outputs[name] = [o.detach() for o in result]
        compared = [(f'step {step} output {i}', outputs['compiled'][i],
                     outputs['eager'][i], want)
                    for i, want in enumerate(outputs['float64'])]
        compared += [(f'step {step} {name}', got, mine, want) for
                     (name, got), mine, want in zip(
                         compiled_model.named_buffers(), eager.buffers(),
                         reference.buffers()) if want.is_floating_point()]
        if step == 0:
            compared += [(f'{name}.grad', got.grad, mine.grad, want.grad)
                         for (name, got), mine, want in zip(
                             compiled_model.named_parameters(),
                             eager.parameters(), reference.parameters())]
        for what, got, mine, want in compared:
            assert got is not None, what
            compiled_error = relative_error(got, want)
            eager_error = relative_error(mine, want)
            assert compiled_error <= 2 * eager_error + 1e-4, (
                f'{what}: compiled {compiled_error:.3g} from float64, '
                f'eager {eager_error:.3g}')
        for optimizer in optimizers.values():
            optimizer.step()
    for (name, got), want in zip(compiled_model.named_buffers(),
                                 eager.buffers()):
        assert torch.equal(got, want) or want.is_floating_point(), name
    changed = {name for (name, now), before in zip(
        compiled_model.named_buffers(), initial_buffers)
        if not torch.equal(now, before)}
    for name in ('stem_ce.running_whitening', 'layer1.0.ce.running_scale',
                 'layer2.0.ce.running_mean', 'layer2.0.bn2.running_var'):
        assert name in changed
    assert not changed & {'bn1.running_mean', 'layer1.0.bn2.running_var'}


def test_compiled_eval_matches_eager():
    """Eval mode: BN folded into CE, running statistics, one graph."""
    model = with_running_statistics(ce_resnet18(), INPUT_SHAPE)
    compiled = torch.compile(model)
    for seed in (0, 1):
        x = seeded_input(INPUT_SHAPE, seed)
        with torch.no_grad():
            assert_outputs_close(compiled(x), model(x), rel=1e-5)


# ------------------------------------------------------ MMEngine compile=True
@pytest.mark.slow
def test_mmengine_compile_trains_tiny_ce_detector(tiny_shapes_dataset: dict,
                                                  tmp_path: Path):
    """``compile=True``: MMEngine compiles ``train_step`` with Inductor.

    About 4.5 minutes on 2 CPU cores (the first iteration compiles the
    heads' many graphs), hence ``slow``.
    """
    write_tiny_mask_rcnn_config(tmp_path / 'tiny.py', tiny_shapes_dataset,
                                max_iters=2)
    config = tmp_path / 'tiny_ce_compiled.py'
    config.write_text("_base_ = './tiny.py'\n"
                      f'model = dict(backbone={tiny_ce_backbone()!r})\n'
                      'compile = True\n'
                      'val_dataloader = None\nval_cfg = None\n'
                      'val_evaluator = None\n')
    output = run_tool([REPO_ROOT / 'tools' / 'train.py', config,
                       '--work-dir', tmp_path / 'work'], cwd=tmp_path,
                      timeout=1200)
    assert 'Model has been "compiled"' in output
    losses = [float(v) for v in re.findall(r'Iter\(train\) \[\d/2\].*? loss: '
                                           r'([-0-9.naif]+)', output)]
    assert len(losses) == 2 and all(map(math.isfinite, losses)), output[-3000:]


# --------------------------------------------------------------- get_flops
CONFIGS = REPO_ROOT / 'configs'
CE_TYPE = re.compile(r"'type': '(CE|SyncCE|BNCE|CEResNet)'")
SHAPES_CE_CONFIG = CONFIGS / 'shapes' / 'mask_rcnn_ce_r18_fpn_shapes.py'


def config_models_with_ce() -> dict[Path, dict]:
    """The model of every detection config of ``configs/`` that has CE, one
    config per distinct architecture (the 2x configs share their 1x
    config's, the ``*_pretrained`` ones differ only in the initial
    weights)."""
    found: dict[Path, dict] = {}
    architectures: list[dict] = []
    for path in sorted(CONFIGS.rglob('*.py')):
        if ({'_base_', 'pretrain', 'fig1'}
                & set(path.relative_to(CONFIGS).parts)):
            continue  # pretrain/, fig1/: MMPretrain classifiers
        model = Config.fromfile(str(path)).model.to_dict()
        architecture = copy.deepcopy(model)
        architecture['backbone'].pop('init_cfg', None)
        if CE_TYPE.search(repr(model)) and architecture not in architectures:
            found[path] = model
            architectures.append(architecture)
    return found


CE_CONFIG_MODELS = config_models_with_ce()


def run_tool(args: list, cwd: Path, timeout: float = 300) -> str:
    """Run ``args`` with this python (one OpenMP thread), return stdout+err."""
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}
    result = subprocess.run([sys.executable, *map(str, args)], cwd=cwd,
                            env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            timeout=timeout)
    assert result.returncode == 0, (
        f'{args} exited with {result.returncode}:\n{result.stdout[-4000:]}')
    return result.stdout


def flops_config(base: Path, data: dict, directory: Path) -> Path:
    """``base`` on the tiny shapes set at 64x64 (the images get_flops reads:
    its val_dataloader), without pretrained weights, and with at most 20
    proposals (the RoI heads' cost grows with them, not the backbone's)."""
    root = Path(data['data_root'])
    dataset = dict(
        data_root=str(root) + '/',
        ann_file=str(Path(data['val_ann_file']).relative_to(root)),
        data_prefix=dict(img=Path(data['val_img_dir']).name + '/'),
        pipeline=tiny_test_pipeline())
    config = directory / f'flops_{base.stem}.py'
    model = dict(backbone=dict(init_cfg=None))
    if 'rpn' in Config.fromfile(str(base)).model.get('test_cfg', {}):
        model['test_cfg'] = dict(rpn=dict(nms_pre=100, max_per_img=20))
    config.write_text(
        f'_base_ = {str(base)!r}\n'
        f'model = {model!r}\n'
        f'val_dataloader = dict(num_workers=0, persistent_workers=False, '
        f'dataset={dataset!r})\n')
    return config


def parse_get_flops(output: str) -> dict[str, str]:
    fields = dict(re.findall(r'^(Input shape|Flops|Params): (.+)$', output,
                             re.MULTILINE))
    assert set(fields) == {'Input shape', 'Flops', 'Params'}, output[-3000:]
    return fields


def test_get_flops_tool_on_the_shapes_ce_config(tiny_shapes_dataset: dict,
                                                tmp_path: Path):
    """MMDetection's get_flops.py, run as a user runs it, on the shapes CE
    config and its plain ResNet-18 counterpart."""
    tool = openmmlab_tool_path('analysis_tools/get_flops.py')
    results = {}
    for name in ('mask_rcnn_ce_r18_fpn_shapes', 'mask_rcnn_r18_fpn_shapes'):
        config = flops_config(CONFIGS / 'shapes' / f'{name}.py',
                              tiny_shapes_dataset, tmp_path)
        output = run_tool([tool, config, '--num-images', '1'], cwd=tmp_path)
        results[name] = parse_get_flops(output)
        assert 'Traceback' not in output
    ce, plain = results.values()
    assert ce['Input shape'] == plain['Input shape'] == '(64, 64)'
    # CE's parameters: per layer a gate and the IR MLP with its LayerNorm
    assert float(ce['Params'][:-1]) > float(plain['Params'][:-1])


@pytest.mark.parametrize(
    'config', [c for c in CE_CONFIG_MODELS if c != SHAPES_CE_CONFIG],
    ids=lambda path: str(path.relative_to(CONFIGS)))
def test_get_flops_tool_runs_on_every_ce_config(config: Path,
                                                tiny_shapes_dataset: dict,
                                                tmp_path: Path, monkeypatch,
                                                capsys):
    """get_flops.py (in this process, as tools/train.py runs train.py) on
    every CE model of configs/ at 64x64: it traces CE and prints a count."""
    monkeypatch.setattr(sys, 'argv', [
        'get_flops.py',
        str(flops_config(config, tiny_shapes_dataset, tmp_path)),
        '--num-images', '1'
    ])
    run_openmmlab_tool('analysis_tools/get_flops.py')
    fields = parse_get_flops(capsys.readouterr().out)
    assert fields['Input shape'] == '(64, 64)'
    assert float(re.match(r'[0-9.]+', fields['Flops']).group()) > 0


def without_ce(cfg):
    """A model config's CE-free counterpart: CEResNet without CE layers,
    BN instead of BN + CE."""
    if isinstance(cfg, dict):
        cfg = {key: without_ce(value) for key, value in cfg.items()}
        if cfg.get('type') == 'CEResNet':
            cfg.update(ce_cfg=None, stem_ce_cfg=None)
        if cfg.get('type') == 'BNCE':
            cfg = dict(type='BN', requires_grad=cfg.get('requires_grad', True))
        return cfg
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(without_ce(value) for value in cfg)
    return cfg


def distinct_backbone_necks() -> list[Path]:
    """One config per distinct CE backbone + neck."""
    seen, found = [], []
    for path, model in CE_CONFIG_MODELS.items():
        part = (model['backbone'], model.get('neck'))
        if part not in seen:
            seen.append(part)
            found.append(path)
    return found


@pytest.mark.parametrize('config', distinct_backbone_necks(),
                         ids=lambda path: str(path.relative_to(CONFIGS)))
def test_flop_count_includes_ce(config: Path):
    """MMEngine's FLOP counter (what get_flops.py calls) on each CE config's
    backbone + neck: every CE layer is counted, at least its map's
    multiply-adds, as matrix products; the CE-free counterpart counts less."""
    from mmengine.analysis import FlopAnalyzer

    model_cfg = copy.deepcopy(CE_CONFIG_MODELS[config])
    model_cfg['backbone']['init_cfg'] = None
    x = seeded_input((1, 3, 64, 64), 0)
    counts = {}
    for label, cfg in (('ce', model_cfg), ('plain', without_ce(model_cfg))):
        torch.manual_seed(0)
        model = BackboneNeck(MODELS.build(cfg['backbone']),
                             MODELS.build(cfg['neck'])).eval()
        ce_inputs = {}

        def record_input(module, args, name):
            ce_inputs[name] = (args[0].shape, module.group_size)

        for name, module in model.named_modules():
            if isinstance(module, ChannelEquilibrium):
                module.register_forward_pre_hook(
                    functools.partial(record_input, name=name))
        analyzer = FlopAnalyzer(model, x)
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        counts[label] = (analyzer.total(), analyzer.by_operator(),
                         analyzer.by_module(), ce_inputs)
    (ce_total, ce_ops, ce_modules, ce_inputs), (plain_total, plain_ops, _,
                                                plain_inputs) = counts.values()
    assert ce_inputs and not plain_inputs
    for name, (shape, group_size) in ce_inputs.items():
        n, c, h, w = shape
        assert ce_modules[name] >= n * c * group_size * h * w, name
    assert ce_ops.get('matmul', 0) > 0 and 'matmul' not in plain_ops
    assert ce_total > plain_total


# ------------------------------------------------------------------- ONNX
def onnxruntime_outputs(path: Path, x: Tensor) -> list[Tensor]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path),
                                           providers=['CPUExecutionProvider'])
    (meta, ) = session.get_inputs()
    return [torch.from_numpy(o) for o in session.run(None,
                                                     {meta.name: x.numpy()})]


def test_onnx_ce_resnet18_matches_pytorch(tmp_path: Path):
    model = with_running_statistics(ce_resnet18(), INPUT_SHAPE)
    path = tmp_path / 'ce_resnet18.onnx'
    check = export_and_check_onnx(model, INPUT_SHAPE, path)
    assert path.is_file() and check.worst_rel < 1e-5, check.summary()
    x = seeded_input(INPUT_SHAPE, 5)
    with torch.no_grad():
        assert_outputs_close(onnxruntime_outputs(path, x), model(x))


def test_export_onnx_tool_on_tiny_ce_detector(tiny_shapes_dataset: dict,
                                              tmp_path: Path):
    """tools/deployment/export_onnx.py on a checkpoint of the tiny CE
    detector: backbone + FPN in onnxruntime as in PyTorch."""
    from ce_mmdet.analysis.checkpoint_analysis import (
        build_detector,
        load_config,
    )

    write_tiny_mask_rcnn_config(tmp_path / 'tiny.py', tiny_shapes_dataset)
    config = tmp_path / 'tiny_ce.py'
    config.write_text("_base_ = './tiny.py'\n"
                      f'model = dict(backbone={tiny_ce_backbone()!r})\n')
    torch.manual_seed(0)
    detector = build_detector(load_config(str(config)))
    features = BackboneNeck(detector.backbone, detector.neck)
    with_running_statistics(features, INPUT_SHAPE)
    checkpoint = tmp_path / 'tiny_ce.pth'
    torch.save(dict(state_dict=detector.state_dict()), checkpoint)
    out = tmp_path / 'onnx' / 'tiny_ce.onnx'
    output = run_tool([
        REPO_ROOT / 'tools' / 'deployment' / 'export_onnx.py', config,
        checkpoint, out, '--input-shape', '64', '64', '--batch-size', '2'
    ], cwd=tmp_path)
    assert re.search(r'^worst: max abs diff \S+, max rel diff \S+$', output,
                     re.MULTILINE), output[-3000:]
    x = seeded_input(INPUT_SHAPE, 6)
    with torch.no_grad():
        expected = features(x)
    got = onnxruntime_outputs(out, x)
    assert len(got) == 5  # the FPN's levels
    assert_outputs_close(got, expected)
    # A tolerance no float32 export meets: the real comparison fails, the
    # command exits non-zero and writes nothing.
    strict = tmp_path / 'onnx' / 'strict.onnx'
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / 'tools/deployment/export_onnx.py'),
         str(config), str(checkpoint), str(strict), '--input-shape', '64',
         '64', '--tolerance', '1e-12'], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=300)
    assert result.returncode != 0
    assert 'differs from PyTorch beyond the tolerance 1e-12' in result.stdout
    assert sorted(p.name for p in out.parent.iterdir()) == ['tiny_ce.onnx']


def test_failed_onnx_check_writes_nothing(tmp_path: Path, monkeypatch):
    from ce_mmdet.deployment import onnx_export

    def mismatch(*args, **kwargs):
        raise OnnxMismatchError('differs')

    monkeypatch.setattr(onnx_export, 'check_onnx', mismatch)
    path = tmp_path / 'ce.onnx'
    path.write_bytes(b'previous')
    model = with_running_statistics(ce_layer(), (2, 32, 8, 8))
    with pytest.raises(OnnxMismatchError):
        export_and_check_onnx(model, (2, 32, 8, 8), path)
    assert path.read_bytes() == b'previous'
    assert [p.name for p in tmp_path.iterdir()] == ['ce.onnx']


def test_onnx_check_fails_on_a_model_changed_after_export(tmp_path: Path,
                                                         monkeypatch):
    """The real comparison (no stub): a file exported from other weights
    fails check_onnx, and export_and_check_onnx then writes nothing."""
    from ce_mmdet.deployment import onnx_export

    model = with_running_statistics(ce_layer(), (2, 32, 8, 8))
    changed = copy.deepcopy(model)
    with torch.no_grad():
        changed.gate_logit.add_(1.0)  # lambda 0.5 -> 0.73
    exported = tmp_path / 'changed.onnx'
    export_onnx(changed, seeded_input((2, 32, 8, 8), 0), exported)
    with pytest.raises(OnnxMismatchError, match='beyond the tolerance'):
        check_onnx(exported, model, seeded_input((2, 32, 8, 8), 1))
    check = check_onnx(exported, changed, seeded_input((2, 32, 8, 8), 1))
    assert check.worst_rel < 1e-5

    real_export = onnx_export.export_onnx
    monkeypatch.setattr(
        onnx_export, 'export_onnx',
        lambda module, *args, **kwargs: real_export(changed, *args, **kwargs))
    path = tmp_path / 'ce.onnx'
    with pytest.raises(OnnxMismatchError, match='not written'):
        export_and_check_onnx(model, (2, 32, 8, 8), path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['changed.onnx']


def test_onnx_export_refuses_training_mode(tmp_path: Path):
    with pytest.raises(ValueError, match=r'call module\.eval\(\)'):
        export_onnx(ce_layer().train(), seeded_input((2, 32, 8, 8), 0),
                    tmp_path / 'ce.onnx')
