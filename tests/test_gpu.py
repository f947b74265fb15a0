"""CE, BNCE, CE-ResNet-50 and SyncCE on an accelerator, against the CPU.

The device is ``CE_MMDET_TEST_DEVICE`` (default ``cuda``). With CUDA named
and none available every test here is skipped, so the CPU suite skips them;
``CE_MMDET_TEST_DEVICE=cpu`` runs the same checks on the CPU, which proves
their logic on a machine without a GPU. ``tools/gpu_check.sh`` runs them on
CUDA. float32 here means IEEE float32: the ``ieee_float32`` fixture turns
TF32 off in CUDA matmuls and convolutions (cuDNN convolutions use TF32 by
default, ~1e-3 relative error), so that a float32 tolerance means one.

Tolerances are relative (``relative_error``: max |difference| / max
|expected|). The ones below are set from errors measured on the CPU (torch
2.14.1, one thread), with the margins given; they have not been measured on
a GPU yet.
"""
import copy
import os

import pytest
import torch
import torch.distributed as dist
from mmdet.registry import MODELS
from torch import nn

import ce_mmdet  # noqa: F401  (registers CEResNet)
from ce_mmdet.layers import (
    ChannelEquilibrium,
    SyncChannelEquilibrium,
    convert_sync_channel_equilibrium,
)
from ce_reference import reference_from_module
from test_channel_equilibrium import (
    check_autocast_output,
    check_autocast_running_statistics,
    randomized_ce,
    relative_error,
    sample_input,
)
from test_distributed_training import free_port
from test_float32_precision import (
    bnce_frozen_case,
    folded_layer_case,
    output_and_input_grad,
    with_running_statistics,
)

DEVICE = torch.device(os.environ.get('CE_MMDET_TEST_DEVICE', 'cuda'))
LOW_PRECISION = [pytest.param(torch.float16, id='fp16'),
                 pytest.param(torch.bfloat16, id='bf16')]

# One CE layer, float32 on the device against float64 (measured on the CPU:
# outputs and input gradients 2e-7; 1e-5 is the CPU suite's own bound).
LAYER_TOLERANCE = 1e-5
# The folded path may be this much less precise than centred float32 on the
# CPU (tests/test_float32_precision.py holds the CPU itself to 1.25).
FOLDED_FACTOR, FOLDED_FLOOR = 2.0, 1e-6
# CE-ResNet-50 float32 on the device against float32 on the CPU (measured:
# float32 against float64 on the CPU, outputs and input gradient 6e-7-1e-6;
# 100 times that, for cuDNN's convolution algorithms' own rounding).
NETWORK_TOLERANCE = 1e-4
# ... under autocast, (outputs, input gradient) against float32 (measured on
# CPU autocast: bf16 0.013 and 0.20, fp16 0.0015 and 0.12; not underflow,
# loss scaling does not change them: rounding through 50 layers). About 8x
# the outputs' error, 3x the gradient's.
AUTOCAST_TOLERANCE = {torch.bfloat16: (0.1, 0.6), torch.float16: (0.02, 0.4)}

pytestmark = [
    pytest.mark.skipif(
        DEVICE.type == 'cuda' and not torch.cuda.is_available(),
        reason=f'CE_MMDET_TEST_DEVICE={DEVICE} but CUDA is not available '
        '(CE_MMDET_TEST_DEVICE=cpu runs these checks on the CPU)'),
    pytest.mark.usefixtures('ieee_float32'),
]


@pytest.fixture
def ieee_float32():
    """No TF32 in CUDA matmuls and convolutions during the test."""
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    if hasattr(conv, 'fp32_precision'):  # torch >= 2.9
        saved = matmul.fp32_precision, conv.fp32_precision
        matmul.fp32_precision = conv.fp32_precision = 'ieee'
        try:
            yield
        finally:
            matmul.fp32_precision, conv.fp32_precision = saved
    else:
        saved = (torch.backends.cuda.matmul.allow_tf32,
                 torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        try:
            yield
        finally:
            (torch.backends.cuda.matmul.allow_tf32,
             torch.backends.cudnn.allow_tf32) = saved


def assert_on_device(*tensors: torch.Tensor) -> None:
    """Every tensor lives on DEVICE (on its index, when DEVICE names one)."""
    for tensor in tensors:
        assert tensor.device.type == DEVICE.type, tensor.device
        if DEVICE.index is not None:
            assert tensor.device.index == DEVICE.index, tensor.device


def weights_like(x: torch.Tensor, seed: int = 2) -> torch.Tensor:
    """Fixed random loss weights (on the CPU, float64)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(x.shape, generator=generator, dtype=torch.float64)


# ------------------------------------------------------------------ (a) CE
@pytest.mark.parametrize('training', [True, False], ids=['train', 'eval'])
def test_ce_float32_on_device_matches_float64_reference(training):
    ce = randomized_ce(32)
    x = sample_input()
    if not training:
        with_running_statistics(ce, x)
    ce.train(training)
    weights = weights_like(x)
    truth, truth_grad = output_and_input_grad(
        lambda t: reference_from_module(ce, t)[0], x.double(), weights)

    layer = copy.deepcopy(ce).to(DEVICE)
    out, grad = output_and_input_grad(layer, x.to(DEVICE), weights.to(DEVICE))
    assert_on_device(out, grad, *layer.buffers(), *layer.parameters())
    assert relative_error(out.cpu(), truth) < LAYER_TOLERANCE
    assert relative_error(grad.cpu(), truth_grad) < LAYER_TOLERANCE
    if training:  # r <- (1 - momentum) r + momentum * batch value
        _, stats = reference_from_module(ce, x.double())
        for name, key in (('running_mean', 'mean'),
                          ('running_whitening', 'whitening'),
                          ('running_scale', 'scale')):
            expected = ((1 - ce.momentum) * getattr(ce, name).double()
                        + ce.momentum * stats[key])
            actual = getattr(layer, name).cpu()
            assert relative_error(actual, expected) < LAYER_TOLERANCE, name


# ----------------------------------------------------- (b) the folded path
@pytest.mark.parametrize('training', [True, False], ids=['train', 'eval'])
@pytest.mark.parametrize('ratio', [0, 500])
def test_folded_frozen_bn_on_device_matches_float64(ratio, training):
    """CE(x, preceding_norm=frozen BN) in float32 on the device, channel
    means up to 500 spreads from zero, against float64 on the CPU."""
    case = folded_layer_case(ratio, training)
    bn_dev, ce_dev = case.bn32.to(DEVICE), case.ce32.to(DEVICE)
    out, grad = output_and_input_grad(
        lambda t: ce_dev(t, preceding_norm=bn_dev),
        case.x.float().to(DEVICE), case.weights.to(DEVICE))
    assert_on_device(out, grad, *ce_dev.buffers(), *bn_dev.buffers())
    for name, actual, centred_value, expected in zip(
            ('output', 'input gradient'), (out, grad), case.centred,
            case.truth):
        bound = (FOLDED_FACTOR * relative_error(centred_value, expected)
                 + FOLDED_FLOOR)
        error = relative_error(actual.cpu(), expected)
        assert error <= bound, (name, error, bound)


def test_bnce_frozen_on_device_matches_float64():
    case = bnce_frozen_case(500)
    layer_dev = copy.deepcopy(case.layer).float().to(DEVICE)
    out, grad = output_and_input_grad(layer_dev, case.x.float().to(DEVICE),
                                      case.weights.to(DEVICE))
    assert_on_device(out, grad, *layer_dev.buffers())
    for name, actual, centred_value, expected in zip(
            ('output', 'input gradient'), (out, grad), case.centred,
            case.truth):
        bound = (FOLDED_FACTOR * relative_error(centred_value, expected)
                 + FOLDED_FLOOR)
        assert relative_error(actual.cpu(), expected) <= bound, name


# ------------------------------------------------------------ (c) autocast
@pytest.mark.parametrize('dtype', LOW_PRECISION)
def test_ce_autocast_on_device_keeps_statistics_in_float32(dtype):
    check_autocast_output(DEVICE, dtype)
    check_autocast_running_statistics(DEVICE, dtype)


# ------------------------------------------------------ (d) CE-ResNet-50
def ce_resnet50_step(model: nn.Module, x: torch.Tensor,
                     weights: list[torch.Tensor],
                     dtype: torch.dtype = None):
    """Outputs and input gradient of one training forward + backward (under
    ``dtype`` autocast on the model's device if given)."""
    x = x.detach().clone().requires_grad_()
    with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
        outs = model(x)
    sum((o.float() * w.to(o.device, torch.float32)).sum()
        for o, w in zip(outs, weights)).backward()
    return outs, x.grad


@pytest.fixture(scope='module')
def ce_resnet50_on_cpu():
    """CE-ResNet-50 (default config), its input, loss weights and one
    float32 training step's outputs and input gradient on the CPU."""
    torch.manual_seed(0)
    model = MODELS.build(dict(type='CEResNet', depth=50, init_cfg=None))
    model.train()
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 64, 64, generator=generator)
    with torch.no_grad():
        shapes = [o.shape for o in copy.deepcopy(model)(x)]
    weights = [torch.randn(s, generator=generator) for s in shapes]
    outs, grad = ce_resnet50_step(copy.deepcopy(model), x, weights)
    return model, x, weights, [o.detach() for o in outs], grad


@pytest.mark.parametrize('dtype', [pytest.param(None, id='fp32'),
                                   *LOW_PRECISION])
def test_ce_resnet50_on_device_matches_cpu(ce_resnet50_on_cpu, dtype):
    model, x, weights, expected_outs, expected_grad = ce_resnet50_on_cpu
    model = copy.deepcopy(model).to(DEVICE)
    outs, grad = ce_resnet50_step(model, x.to(DEVICE), weights, dtype)
    assert_on_device(*outs, grad, *model.parameters(), *model.buffers())
    out_tolerance, grad_tolerance = (
        (NETWORK_TOLERANCE, NETWORK_TOLERANCE) if dtype is None
        else AUTOCAST_TOLERANCE[dtype])
    assert all(o.dtype == (dtype or torch.float32) for o in outs)
    for actual, expected, tolerance in [
            *((o, e, out_tolerance) for o, e in zip(outs, expected_outs)),
            (grad, expected_grad, grad_tolerance)]:
        assert torch.isfinite(actual).all()
        error = relative_error(actual.cpu(), expected)
        assert error < tolerance, (error, tolerance)
    ce_buffers = [b for m in model.modules()
                  if isinstance(m, ChannelEquilibrium) for b in m.buffers()]
    assert ce_buffers and all(b.dtype == torch.float32 for b in ce_buffers)


# ------------------------------------------------- (e) SyncCE, one process
@pytest.fixture
def one_process_group():
    """The default process group, one process: NCCL on CUDA, else gloo."""
    backend = 'nccl' if DEVICE.type == 'cuda' else 'gloo'
    if DEVICE.type == 'cuda':
        torch.cuda.set_device(DEVICE.index if DEVICE.index is not None
                              else torch.cuda.current_device())
    dist.init_process_group(backend, world_size=1, rank=0,
                            init_method=f'tcp://127.0.0.1:{free_port()}')
    try:
        yield backend
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize('all_reduce', [False, True],
                         ids=['world-of-one', 'forced-all-reduce'])
def test_sync_ce_one_process_equals_ce(one_process_group, all_reduce,
                                       monkeypatch):
    """SyncCE over one process is CE: outputs, input and parameter
    gradients and running statistics over two steps. SyncCE skips the
    all-reduce in a world of one; ``forced-all-reduce`` makes it run the
    (differentiable, NCCL on CUDA) all-reduce anyway, an identity here."""
    assert dist.get_backend() == one_process_group
    if all_reduce:
        monkeypatch.setattr(SyncChannelEquilibrium, '_synchronizes_statistics',
                            lambda self: True)
    ce = randomized_ce(32).to(DEVICE).train()
    sync = convert_sync_channel_equilibrium(copy.deepcopy(ce))
    assert isinstance(sync, SyncChannelEquilibrium)
    assert sync._synchronizes_statistics() is all_reduce
    for step in range(2):
        x = sample_input(seed=10 + step).to(DEVICE)
        weights = weights_like(x, seed=step).to(DEVICE)
        out, grad = output_and_input_grad(ce, x, weights)
        sync_out, sync_grad = output_and_input_grad(sync, x, weights)
        assert_on_device(sync_out, sync_grad, *sync.buffers())
        torch.testing.assert_close(sync_out, out)
        torch.testing.assert_close(sync_grad, grad)
    for (name, p), sync_p in zip(ce.named_parameters(), sync.parameters()):
        assert_on_device(sync_p.grad)
        torch.testing.assert_close(sync_p.grad, p.grad, msg=name)
    for name, buffer in ce.named_buffers():
        torch.testing.assert_close(sync.get_buffer(name), buffer, msg=name)
