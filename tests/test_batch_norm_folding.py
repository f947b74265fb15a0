"""A BN folded into CE's map: which BNs fold, how, and the decision made
once per call (``ce_mmdet.layers.batch_norm_folding``)."""
import copy

import pytest
import torch
from torch import nn

from ce_mmdet.backbones.ce_resnet import conv_norm_ce
from ce_mmdet.layers import BatchNormCE, BatchNormFold
from ce_mmdet.layers import channel_equilibrium as ce_module
from test_channel_equilibrium import randomized_ce

CHANNELS = 32


def random_bn(training: bool, norm_type=nn.BatchNorm2d) -> nn.Module:
    torch.manual_seed(0)
    bn = norm_type(CHANNELS).double()
    with torch.no_grad():
        bn.running_mean.uniform_(-3, 3)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    return bn.train(training)


@pytest.mark.parametrize('norm,folds', [
    (lambda: random_bn(False), True),
    (lambda: random_bn(True), True),
    (lambda: random_bn(False, nn.SyncBatchNorm), True),
    # a SyncBN in training needs a sync of its own
    (lambda: random_bn(True, nn.SyncBatchNorm), False),
    (lambda: nn.BatchNorm2d(CHANNELS, track_running_stats=False), False),
    (lambda: nn.GroupNorm(1, CHANNELS), False),
    # a subclass may do more than an affine map
    (lambda: BatchNormCE(CHANNELS).eval(), False),
])
def test_which_norms_ce_folds(norm, folds):
    fold = randomized_ce(CHANNELS).double().fold_for(norm())
    assert (fold is not None) == folds
    if fold is not None:
        assert not fold.input_is_shifted


@pytest.mark.parametrize('norm', [
    lambda: nn.GroupNorm(1, CHANNELS),
    lambda: random_bn(True, nn.SyncBatchNorm),
    lambda: nn.BatchNorm2d(CHANNELS, track_running_stats=False),
])
def test_a_fold_of_a_norm_that_does_not_fold_is_refused(norm):
    with pytest.raises(ValueError, match=r'Apply the norm first instead'):
        BatchNormFold(norm())


@pytest.mark.parametrize('bn_training', [True, False])
@pytest.mark.parametrize('ce_training', [True, False])
def test_shifted_and_unshifted_folds_equal_bn_then_ce(bn_training,
                                                      ce_training):
    """``CE(BN(x))`` three ways in float64: BN then CE, the BN folded with
    CE shifting ``x``, and folded with ``x - running_mean`` given; outputs,
    gradients and every running statistic (BN's and CE's) agree."""
    x = (torch.randn(2, CHANNELS, 5, 6, dtype=torch.float64) * 2 + 40)
    runs = []
    for way in ('separate', 'folded', 'shifted'):
        bn = random_bn(bn_training)
        ce = randomized_ce(CHANNELS).double().train(ce_training)
        inp = x.clone().requires_grad_()
        if way == 'separate':
            out = ce(bn(inp))
        elif way == 'folded':
            out = ce(inp, preceding_norm=bn)
        else:
            shifted = inp - bn.running_mean.view(1, -1, 1, 1)
            out = ce(shifted, preceding_norm=BatchNormFold(
                bn, input_is_shifted=True))
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)
         .double()).sum().backward()
        grads = [inp.grad] + [p.grad for p in (*bn.parameters(),
                                               *ce.parameters())]
        runs.append((out, grads, {**bn.state_dict(), **{
            f'ce.{k}': v for k, v in ce.state_dict().items()}}))
    separate = runs[0]
    for out, grads, state in runs[1:]:
        torch.testing.assert_close(out, separate[0], rtol=1e-9, atol=1e-9)
        for got, want in zip(grads, separate[1]):
            torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-9)
        for key, value in state.items():
            torch.testing.assert_close(value, separate[2][key], rtol=1e-10,
                                       atol=1e-12, msg=key)


def test_training_fold_needs_the_batch_sums():
    fold = BatchNormFold(random_bn(True))
    weight, bias = fold.affine_parameters(torch.zeros(1)).values()
    with pytest.raises(ValueError, match='pass batch_sums'):
        fold.affine_map(weight, bias, (2, 16))


@pytest.mark.parametrize('training', [True, False])
def test_conv_norm_ce_decides_the_fold_once(monkeypatch, training):
    """One decision per call: ``conv_norm_ce`` asks CE once and hands the
    decision over (CE does not ask again)."""
    calls = []
    original = ce_module.is_foldable_batch_norm
    monkeypatch.setattr(
        ce_module, 'is_foldable_batch_norm',
        lambda norm: calls.append(norm) or original(norm))
    conv = nn.Conv2d(8, CHANNELS, 3, padding=1, bias=False).double()
    bn = random_bn(training)
    ce = randomized_ce(CHANNELS).double().train(training)
    x = torch.randn(2, 8, 6, 6, dtype=torch.float64)
    expected = copy.deepcopy(ce)(copy.deepcopy(bn)(conv(x)))
    out = conv_norm_ce(conv, bn, ce, x)
    assert calls == [bn]
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-9)
