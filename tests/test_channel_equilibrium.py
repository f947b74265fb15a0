"""CE against an independent float64 implementation of the paper's
equations."""
import copy
import warnings

import pytest
import torch
from torch import nn

from ce_mmdet.layers import (
    ChannelEquilibrium,
    InstanceReweighting,
    newton_whitening,
)
from ce_reference import (
    PAPER_BLOCK_GROUP_SIZE,
    PAPER_EPS,
    PAPER_ITERATIONS,
    PAPER_MOMENTUM,
    PAPER_REDUCTION,
    reference_from_module,
)


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual - expected| / max |expected| (in float64)."""
    actual, expected = actual.double(), expected.double()
    return ((actual - expected).abs().max() / expected.abs().max()).item()


def randomized_ce(channels=32, seed=0, **kwargs) -> ChannelEquilibrium:
    """A CE with non-trivial parameters (gate away from 0.5, random MLP)."""
    torch.manual_seed(seed)
    ce = ChannelEquilibrium(channels, **kwargs)
    with torch.no_grad():
        ce.gate_logit.fill_(0.3)
        ce.reweighting.norm.weight.uniform_(0.5, 1.5)
        ce.reweighting.norm.bias.uniform_(-0.5, 0.5)
    return ce


def sample_input(shape=(3, 32, 9, 11), seed=1) -> torch.Tensor:
    """Post-BN-like data: per-channel offsets and scales, correlated
    channels."""
    g = torch.Generator().manual_seed(seed)
    n, c, h, w = shape
    base = torch.randn(shape, generator=g)
    mix = torch.eye(c) + 0.3 * torch.randn(c, c, generator=g)
    x = torch.einsum('dc,nchw->ndhw', mix, base)
    return (x * torch.rand(1, c, 1, 1, generator=g).add(0.5)
            + 0.2 * torch.randn(1, c, 1, 1, generator=g))


def test_defaults_are_the_papers():
    """g = 16, T = 3, eps = 1e-5, momentum 0.1, IR width C / 4, LayerNorm
    eps 1e-5, gate at 0 (lambda = 0.5), running statistics at zeros,
    identity and 1 (the release's 0 divides by zero: see the reference)."""
    ce = ChannelEquilibrium(64)
    assert ce.group_size == PAPER_BLOCK_GROUP_SIZE
    assert ce.num_iterations == PAPER_ITERATIONS
    assert ce.eps == PAPER_EPS and ce.momentum == PAPER_MOMENTUM
    assert ce.reweighting.squeeze.weight.shape == (64 // PAPER_REDUCTION, 64)
    assert ce.reweighting.excite.weight.shape == (64, 64 // PAPER_REDUCTION)
    assert ce.reweighting.squeeze.bias is None
    assert ce.reweighting.excite.bias is None
    assert ce.reweighting.norm.eps == 1e-5
    assert ce.gate_logit.item() == 0.0
    assert torch.equal(ce.running_mean, torch.zeros(4, 16))
    assert torch.equal(ce.running_whitening, torch.eye(16).repeat(4, 1, 1))
    assert torch.equal(ce.running_scale, torch.ones(1))


@pytest.mark.parametrize('channels,requested,expected', [
    (64, 16, 16), (24, 16, 8), (40, 16, 8), (12, 16, 4), (48, 16, 16),
    (3, 16, 1), (64, 64, 64), (96, 64, 32)])
def test_group_size_is_halved_until_it_divides_the_channels(
        channels, requested, expected):
    ce = ChannelEquilibrium(channels, group_size=requested)
    assert ce.group_size == expected
    assert ce.running_whitening.shape == (channels // expected, expected,
                                          expected)


@pytest.mark.parametrize('shape,group_size', [((3, 32, 9, 11), 16),
                                              ((2, 24, 5, 7), 16),
                                              ((4, 64, 6, 6), 64)])
def test_training_forward_matches_reference(shape, group_size):
    ce = randomized_ce(shape[1], group_size=group_size).train()
    x = sample_input(shape)
    expected, _ = reference_from_module(ce, x, group_size=group_size)
    assert relative_error(ce(x), expected) < 1e-5


def test_running_statistics_follow_reference_over_steps():
    ce = randomized_ce(32).train()
    running = dict(mean=torch.zeros(2, 16, dtype=torch.float64),
                   whitening=torch.eye(
                       16, dtype=torch.float64).repeat(2, 1, 1),
                   scale=torch.ones(1, dtype=torch.float64))
    for step in range(4):
        x = sample_input(seed=10 + step)
        _, stats = reference_from_module(ce, x)
        ce(x)
        for key in running:
            running[key] = ((1 - PAPER_MOMENTUM) * running[key] +
                            PAPER_MOMENTUM * stats[key])
    assert relative_error(ce.running_mean, running['mean']) < 1e-5
    assert relative_error(ce.running_whitening, running['whitening']) < 1e-5
    assert relative_error(ce.running_scale, running['scale']) < 1e-5
    # Eval uses exactly those running values.
    ce.eval()
    x = sample_input(seed=99)
    expected, _ = reference_from_module(ce, x)
    assert relative_error(ce(x), expected) < 1e-5


def test_eval_does_not_touch_running_statistics():
    ce = randomized_ce(32).eval()
    before = copy.deepcopy(ce.state_dict())
    ce(sample_input())
    for key, value in ce.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_newton_iterations_converge_to_inverse_square_root():
    # The uncoupled iteration converges quadratically, then rounding errors
    # grow again (measured: 4e-15 at T=10, 8e-11 at T=20, divergence by 60):
    # check the converged regime on a covariance with eigenvalues in [0.2, 2].
    torch.manual_seed(0)
    rotation, _ = torch.linalg.qr(torch.randn(3, 8, 8, dtype=torch.float64))
    spectrum = torch.rand(3, 8, dtype=torch.float64) * 1.8 + 0.2
    sigma = rotation @ torch.diag_embed(spectrum) @ rotation.transpose(1, 2)
    whitening = newton_whitening(sigma, num_iterations=12)
    sigma_n = sigma / sigma.diagonal(dim1=1, dim2=2).sum(-1)[:, None, None]
    eigenvalues, eigenvectors = torch.linalg.eigh(sigma_n)
    expected = (eigenvectors @ torch.diag_embed(eigenvalues.rsqrt())
                @ eigenvectors.transpose(1, 2))
    assert relative_error(whitening, expected) < 1e-12


@pytest.mark.parametrize('training', [True, False])
def test_gradcheck_float64(training):
    ce = randomized_ce(8, group_size=4).double().train(training)
    ce.momentum = 0.0  # gradcheck calls forward many times
    x = sample_input((2, 8, 3, 4)).double().requires_grad_()
    params = [ce.gate_logit, *ce.reweighting.parameters()]
    assert torch.autograd.gradcheck(lambda inp, *p: ce(inp), (x, *params))


@pytest.mark.parametrize('ce_training', [True, False])
def test_frozen_batchnorm_is_folded_exactly(ce_training):
    """CE(bn(x)) with a frozen BN folded in equals applying BN first,
    forward and backward (BN's affine parameters still train)."""
    torch.manual_seed(3)
    bn = nn.BatchNorm2d(32).double()
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    bn.eval()
    ce = randomized_ce(32).double().train(ce_training)
    ce_separate = copy.deepcopy(ce)
    bn_separate = copy.deepcopy(bn)
    x = sample_input().double().requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    folded = ce(x, preceding_norm=bn)
    separate = ce_separate(bn_separate(x2))
    torch.testing.assert_close(folded, separate)
    weights = torch.randn_like(folded)
    (folded * weights).sum().backward()
    (separate * weights).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)
    torch.testing.assert_close(bn.weight.grad, bn_separate.weight.grad)
    torch.testing.assert_close(bn.bias.grad, bn_separate.bias.grad)
    torch.testing.assert_close(ce.gate_logit.grad, ce_separate.gate_logit.grad)
    for key, value in ce.state_dict().items():
        torch.testing.assert_close(value, ce_separate.state_dict()[key])


def test_gradients_match_autograd_of_reference():
    ce = randomized_ce(32).double().train()
    ce.momentum = 0.0
    x = sample_input().double().requires_grad_()
    weights = torch.randn(3, 32, 9, 11, dtype=torch.float64)
    (ce(x) * weights).sum().backward()
    x_ref = x.detach().clone().requires_grad_()
    expected, _ = reference_from_module(ce, x_ref)
    (expected * weights).sum().backward()
    assert relative_error(x.grad, x_ref.grad) < 1e-10


# ----------------------------------------------------------------- robustness
def test_non_finite_batch_leaves_running_statistics_and_warns():
    ce = randomized_ce(32).train()
    ce.layer_name = 'backbone.layer1.0.ce'
    ce(sample_input())
    before = copy.deepcopy(ce.state_dict())
    for bad in (float('nan'), float('inf')):
        x = sample_input()
        x[1, 5, 2, 3] = bad
        with pytest.warns(RuntimeWarning, match='backbone.layer1.0.ce'):
            ce(x)
        for key, value in ce.state_dict().items():
            assert torch.equal(value, before[key]), key


@pytest.mark.parametrize('shape', [(2, 32, 1, 1), (1, 32, 5, 5), (1, 32, 1, 1),
                                   (2, 24, 4, 4), (2, 20, 3, 3)])
@pytest.mark.parametrize('content', ['random', 'constant', 'zeros'])
def test_degenerate_inputs_give_finite_outputs_and_gradients(shape, content):
    ce = randomized_ce(shape[1]).train()
    x = {'random': sample_input(shape),
         'constant': torch.full(shape, 3.0),
         'zeros': torch.zeros(shape)}[content].requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # a finite batch must not warn
        out = ce(x)
    out.square().sum().backward()
    assert torch.isfinite(out).all()
    assert torch.isfinite(x.grad).all()
    for p in ce.parameters():
        assert p.grad is None or torch.isfinite(p.grad).all()
    for buffer in ce.buffers():
        assert torch.isfinite(buffer).all()


def check_autocast_output(device: torch.device, dtype: torch.dtype,
                          tolerance: float = 2e-2) -> None:
    """Under ``dtype`` autocast on ``device``, CE returns its input's dtype
    (a float32 input stays float32) and, fed the rounded input, the float32
    result up to that rounding (``tolerance``: relative)."""
    ce = randomized_ce(32).to(device).train()
    x = sample_input().to(device)
    expected = copy.deepcopy(ce)(x)
    with torch.autocast(device.type, dtype=dtype):
        out = ce(x.to(dtype))
    assert out.dtype == dtype and out.device.type == device.type
    # Only the rounding of input and output remains.
    assert relative_error(out, expected) < tolerance
    with torch.autocast(device.type, dtype=dtype):
        out_running = ce(x)  # float32 input under autocast stays float32
    assert out_running.dtype == torch.float32


def check_autocast_running_statistics(device: torch.device,
                                      dtype: torch.dtype) -> None:
    """Under ``dtype`` autocast on ``device``, one training step leaves the
    running statistics of a float32 step on the same (rounded) input, in
    float32 and at float32 precision: statistics computed in ``dtype``
    (relative errors ~1e-2 in bf16) fail this."""
    ce = randomized_ce(32).to(device).train()
    reference = copy.deepcopy(ce)
    x = (sample_input() * 3 + 2).to(device, dtype)
    with torch.autocast(device.type, dtype=dtype):
        ce(x)
    reference(x.float())
    for name in ('running_mean', 'running_whitening', 'running_scale'):
        actual, expected = getattr(ce, name), getattr(reference, name)
        assert actual.dtype == torch.float32, name
        assert actual.device.type == device.type, name
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6,
                                   msg=name)


def test_autocast_bfloat16_runs_statistics_in_float32():
    check_autocast_output(torch.device('cpu'), torch.bfloat16)


def test_autocast_running_statistics_equal_a_float32_step():
    check_autocast_running_statistics(torch.device('cpu'), torch.bfloat16)


def test_bad_input_shapes_are_refused():
    ce = ChannelEquilibrium(32)
    with pytest.raises(ValueError, match=r'expects \(N, 32, H, W\)'):
        ce(torch.zeros(2, 16, 4, 4))
    with pytest.raises(ValueError, match='num_iterations'):
        ChannelEquilibrium(32, num_iterations=0)


@pytest.mark.parametrize('momentum', [0.1, None])
@pytest.mark.parametrize('ce_training', [True, False])
def test_training_batchnorm_is_folded_exactly(ce_training, momentum):
    """CE(bn(x)) with a BN in training mode folded in (its batch statistics
    from CE's sums, its backward inside CE's) equals applying the BN first:
    outputs, gradients of x, BN and CE parameters, and the running
    statistics of both, over two steps."""
    torch.manual_seed(4)
    bn = nn.BatchNorm2d(32, momentum=momentum).double()
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    ce = randomized_ce(32).double().train(ce_training)
    bn_separate, ce_separate = copy.deepcopy(bn), copy.deepcopy(ce)
    for step in range(2):
        x = (sample_input(seed=step) * 3 + 2).double().requires_grad_()
        x2 = x.detach().clone().requires_grad_()
        folded = ce(x, preceding_norm=bn)
        separate = ce_separate(bn_separate(x2))
        torch.testing.assert_close(folded, separate)
        weights = torch.randn_like(folded)
        (folded * weights).sum().backward()
        (separate * weights).sum().backward()
        torch.testing.assert_close(x.grad, x2.grad)
    for ours, theirs in [(bn, bn_separate), (ce, ce_separate)]:
        for p, q in zip(ours.parameters(), theirs.parameters()):
            torch.testing.assert_close(p.grad, q.grad)
        for key, value in ours.state_dict().items():
            torch.testing.assert_close(value, theirs.state_dict()[key])


def test_training_batchnorm_fold_refuses_one_value_per_channel():
    bn, ce = nn.BatchNorm2d(32).train(), randomized_ce(32).train()
    with pytest.raises(ValueError, match='more than 1 value per channel'):
        ce(torch.randn(1, 32, 1, 1), preceding_norm=bn)


def reference_ir(ce: ChannelEquilibrium, x: torch.Tensor) -> torch.Tensor:
    """``a`` (N, C) of the plain IR MLP with ``ce``'s weights, as the
    float64 reference writes it."""
    v = x.flatten(2).var(-1, unbiased=True)
    ir = ce.reweighting
    hidden = torch.relu(torch.nn.functional.layer_norm(
        v @ ir.squeeze.weight.t(), (ir.squeeze.out_features, ),
        ir.norm.weight, ir.norm.bias, 1e-5))
    return torch.sigmoid(hidden @ ir.excite.weight.t())


def test_eval_before_training_is_the_closed_form():
    """Untrained, in eval: W = I, s = 1 (the initial running values), gate 0
    (lambda = 1/2), so CE(x) = x / 2 + x a(v) / 2 with
    a(v) = sigmoid(FC2(ReLU(LN(FC1(v))))), v the unbiased per-image
    variance: the paper's equation with nothing else left (the release's
    running scale 0 would divide by zero here)."""
    ce = randomized_ce(32).double().eval()  # random MLP and LN affine
    with torch.no_grad():
        ce.gate_logit.zero_()
    x = sample_input().double()
    a = reference_ir(ce, x)
    expected = 0.5 * x + 0.5 * x * a[:, :, None, None]
    torch.testing.assert_close(ce(x), expected, rtol=1e-12, atol=1e-12)


class BiasedReweighting(InstanceReweighting):
    """IR with biases in both linear maps: parameters CE does not know."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels)
        hidden = self.squeeze.out_features
        self.squeeze = nn.Linear(channels, hidden, bias=True)
        self.excite = nn.Linear(hidden, channels, bias=True)
        with torch.no_grad():
            self.squeeze.bias.uniform_(-1, 1)
            self.excite.bias.uniform_(-1, 1)


@pytest.mark.parametrize('training', [True, False])
def test_reweighting_module_is_what_ce_applies(training):
    """CE runs its ``reweighting`` module's own forward with its parameters
    by name: an IR MLP with parameters of its own (here biases) is applied
    and trained as written, forward and backward, through the fused map
    (no tie to the order in which parameters are registered)."""
    ce = randomized_ce(32).double().train(training)
    ce.momentum = 0.0
    ce.reweighting = BiasedReweighting(32).double()
    x = sample_input().double().requires_grad_()
    out = ce(x)
    assert type(out.grad_fn).__name__.startswith('_StatisticsConditionedMap')

    # The same CE written out, with IR as the module computes it.
    lam = torch.sigmoid(ce.gate_logit)
    v = x.flatten(2).var(-1, unbiased=True)
    a = ce.reweighting(v)
    if training:
        # The float64 reference (its IR without the biases), IR corrected.
        reference, _ = reference_from_module(ce, x, detach=False)
        s = v.mean().sqrt()
        expected = reference + (1 - lam) * x * (
            a - reference_ir(ce, x))[:, :, None, None] / s
    else:  # untrained running values: W = I, s = 1
        expected = lam * x + (1 - lam) * x * a[:, :, None, None]
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)

    weights = torch.randn_like(out)
    got = torch.autograd.grad((out * weights).sum(),
                              [x, *ce.reweighting.parameters()])
    want = torch.autograd.grad((expected * weights).sum(),
                               [x, *ce.reweighting.parameters()])
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-10)
