"""SE and Gather-Excite plugins against plainly written float64 references."""
import math

import pytest
import torch
from mmcv.cnn import build_plugin_layer
from mmdet.registry import MODELS
from torch.autograd import gradcheck

import ce_mmdet  # noqa: F401  (registers SE, GEThetaMinus, GETheta, GEThetaPlus)
from ce_mmdet.layers import (
    GETheta,
    GEThetaMinus,
    GEThetaPlus,
    SqueezeExcitation,
)

EPS = 1e-5


pytestmark = pytest.mark.usefixtures('single_thread')


# ------------------------------------------------------------ references
def ref_nearest(gate, size):
    """Nearest-neighbour resize: out[h, w] = gate[floor(h h_g / H), ...]."""
    n, c, hg, wg = gate.shape
    height, width = size
    out = torch.empty(n, c, height, width, dtype=gate.dtype)
    for h in range(height):
        for w in range(width):
            out[:, :, h, w] = gate[:, :, h * hg // height, w * wg // width]
    return out


def ref_cell_average(x, extent):
    """Mean over extent x extent cells (stride extent), border cells over
    the positions they hold."""
    n, c, height, width = x.shape
    hg, wg = math.ceil(height / extent), math.ceil(width / extent)
    out = torch.empty(n, c, hg, wg, dtype=x.dtype)
    for i in range(hg):
        for j in range(wg):
            cell = x[:, :, i * extent:(i + 1) * extent,
                     j * extent:(j + 1) * extent]
            out[:, :, i, j] = cell.mean((2, 3))
    return out


def ref_adaptive_average(x, size):
    """Adaptive average pooling: bin i spans [floor(iH/S), ceil((i+1)H/S))."""
    n, c, height, width = x.shape
    out = torch.empty(n, c, size, size, dtype=x.dtype)
    for i in range(size):
        for j in range(size):
            h0, h1 = (i * height) // size, -((-(i + 1) * height) // size)
            w0, w1 = (j * width) // size, -((-(j + 1) * width) // size)
            out[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean((2, 3))
    return out


def ref_batch_norm(z, bn, training):
    """(z - mean) / sqrt(var + eps) * gamma + beta per channel; batch
    statistics (biased variance) in training, running ones in eval."""
    gamma = bn.weight.detach().double().view(1, -1, 1, 1)
    beta = bn.bias.detach().double().view(1, -1, 1, 1)
    if training:
        mean = z.mean((0, 2, 3), keepdim=True)
        var = ((z - mean)**2).mean((0, 2, 3), keepdim=True)
    else:
        mean = bn.running_mean.double().view(1, -1, 1, 1)
        var = bn.running_var.double().view(1, -1, 1, 1)
    return (z - mean) / torch.sqrt(var + EPS) * gamma + beta


def ref_depthwise_global(x, kernel):
    """z[n, c] = sum_{h, w} k[c, h, w] x[n, c, h, w] (kernel covers x)."""
    return (x * kernel.unsqueeze(0)).sum((2, 3), keepdim=True)


def ref_depthwise_3x3_s2(x, kernel):
    """Depthwise 3x3 convolution, stride 2, zero padding 1, no bias."""
    n, c, height, width = x.shape
    padded = torch.zeros(n, c, height + 2, width + 2, dtype=x.dtype)
    padded[:, :, 1:-1, 1:-1] = x
    out_h, out_w = (height - 1) // 2 + 1, (width - 1) // 2 + 1
    out = torch.zeros(n, c, out_h, out_w, dtype=x.dtype)
    for i in range(out_h):
        for j in range(out_w):
            patch = padded[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3]
            out[:, :, i, j] = (patch * kernel.unsqueeze(0)).sum((2, 3))
    return out


def ref_linear_1x1(z, conv):
    weight = conv.weight.detach().double()[:, :, 0, 0]
    return (torch.einsum('oc,nchw->nohw', weight, z)
            + conv.bias.detach().double().view(1, -1, 1, 1))


def randomise(module):
    """Non-trivial weights and BN affine parameters (seeded)."""
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in module.named_parameters():
            param.copy_(torch.randn_like(param) * 0.5
                        + (1.0 if name.endswith('norm.weight') else 0.0))
    return module


# ------------------------------------------------------------------- SE
def test_se_is_a_plugin_matching_the_equation():
    name, se = build_plugin_layer(dict(type='SE', ratio=4), in_channels=16)
    assert name == 'se' and isinstance(se, SqueezeExcitation)
    randomise(se).double()
    x = torch.randn(3, 16, 5, 7, dtype=torch.float64)
    z = x.mean((2, 3), keepdim=True)
    hidden = torch.relu(ref_linear_1x1(z, se.conv1.conv))
    s = torch.sigmoid(ref_linear_1x1(hidden, se.conv2.conv))
    torch.testing.assert_close(se(x), x * s)
    assert se.conv1.conv.out_channels == 4
    # same in training (no statistics), batch of 1, 1x1 map
    assert torch.isfinite(se.train()(x[:1, :, :1, :1])).all()


def test_se_gradcheck_and_bad_ratio():
    se = randomise(SqueezeExcitation(8, ratio=4)).double()
    x = torch.randn(2, 8, 3, 3, dtype=torch.float64, requires_grad=True)
    assert gradcheck(se, (x, ))
    with pytest.raises(ValueError, match='ratio 32 leaves no hidden'):
        SqueezeExcitation(16, ratio=32)


# ------------------------------------------------------------ GE-theta-
@pytest.mark.parametrize('extent', [None, 2, 4, 8])
@pytest.mark.parametrize('size', [(7, 5), (1, 1), (16, 16), (9, 3)])
def test_ge_theta_minus_matches_reference(extent, size):
    ge = MODELS.build(dict(type='GEThetaMinus', in_channels=4,
                           extent=extent))
    x = torch.randn(2, 4, *size, dtype=torch.float64)
    if extent is None:
        gathered = x.mean((2, 3), keepdim=True)
    else:
        gathered = ref_cell_average(x, extent)
    expected = x * torch.sigmoid(ref_nearest(gathered, size))
    torch.testing.assert_close(ge(x), expected)
    assert not list(ge.parameters())


def test_ge_rejects_extents_that_are_not_powers_of_two():
    for bad in (0, 1, 3, 6):
        with pytest.raises(ValueError, match='power of 2'):
            GEThetaMinus(8, extent=bad)
    with pytest.raises(ValueError, match='power of 2'):
        GETheta(8, extent=3)
    with pytest.raises(ValueError, match='no hidden channel'):
        GEThetaPlus(8, ratio=16)


# ------------------------------------------------------------- GE-theta
def ref_ge_theta(ge, x, training):
    gather = ge.gather
    if gather.extent is None:
        pooled = ref_adaptive_average(x, gather.gather_size)
        z = ref_depthwise_global(
            pooled, gather.convs[0].weight.detach().double()[:, 0])
    else:
        z = x
        for i, conv in enumerate(gather.convs):
            z = ref_depthwise_3x3_s2(z, conv.weight.detach().double()[:, 0])
            if i < len(gather.norms):
                z = torch.relu(ref_batch_norm(z, gather.norms[i], training))
    gate = ref_batch_norm(z, ge.norm, training)
    return x * torch.sigmoid(ref_nearest(gate, x.shape[-2:]))


@pytest.mark.parametrize('extent,gather_size,size', [
    (None, 4, (4, 4)),  # the paper's global gather (pooling = identity)
    (None, 4, (9, 6)),  # another size: adaptive cells
    (None, 3, (2, 2)),  # a map smaller than the grid
    (2, 7, (5, 7)),
    (4, 7, (9, 6)),
])
def test_ge_theta_train_eval_and_running_statistics(extent, gather_size,
                                                    size):
    ge = randomise(GETheta(6, extent=extent, gather_size=gather_size))
    ge.double().train()
    x = torch.randn(4, 6, *size, dtype=torch.float64)
    torch.testing.assert_close(ge(x), ref_ge_theta(ge, x, training=True))
    # running statistics moved by momentum 0.1 towards the batch's
    # (unbiased variance), starting from 0 / 1
    with torch.no_grad():
        z = ge.gather(x)
    count = z.numel() // z.shape[1]
    mean = z.mean((0, 2, 3))
    var = z.var((0, 2, 3), unbiased=True) if count > 1 else None
    torch.testing.assert_close(ge.norm.running_mean, 0.1 * mean)
    if var is not None:
        torch.testing.assert_close(ge.norm.running_var, 0.9 + 0.1 * var)
    ge.eval()
    torch.testing.assert_close(ge(x), ref_ge_theta(ge, x, training=False))


def test_global_depthwise_kernel_starts_as_average_pooling():
    ge = GETheta(3, gather_size=5)
    ge.init_weights()
    assert torch.all(ge.gather.convs[0].weight == 1 / 25)
    plus = GEThetaPlus(32, gather_size=2)
    plus.init_weights()
    assert torch.all(plus.gather.convs[0].weight == 1 / 4)


def ref_ge_theta_plus(ge, x, training):
    pooled = ref_adaptive_average(x, ge.gather.gather_size)
    z = ref_depthwise_global(pooled,
                             ge.gather.convs[0].weight.detach().double()[:, 0])
    z = torch.relu(ref_batch_norm(z, ge.norm, training))
    logits = ref_linear_1x1(torch.relu(ref_linear_1x1(z, ge.fc1)), ge.fc2)
    return x * torch.sigmoid(logits)


@pytest.mark.parametrize('size', [(3, 3), (8, 5), (1, 1)])
def test_ge_theta_plus_matches_reference(size):
    ge = randomise(GEThetaPlus(16, gather_size=3, ratio=4)).double().train()
    x = torch.randn(3, 16, *size, dtype=torch.float64)
    torch.testing.assert_close(ge(x), ref_ge_theta_plus(ge, x, True))
    ge.eval()
    torch.testing.assert_close(ge(x), ref_ge_theta_plus(ge, x, False))
    assert ge.fc1.out_channels == 4 and ge.fc1.bias is not None


@pytest.mark.parametrize('cfg', [
    dict(type='GETheta', extent=None, gather_size=3),
    dict(type='GETheta', extent=2),
    dict(type='GEThetaPlus', gather_size=3, ratio=4),
])
def test_ge_gradcheck(cfg):
    ge = randomise(MODELS.build({**cfg, 'in_channels': 4})).double().train()
    x = torch.randn(3, 4, 5, 4, dtype=torch.float64, requires_grad=True)
    assert gradcheck(ge, (x, ))


@pytest.mark.parametrize('cfg,size', [
    (dict(type='GETheta'), (6, 5)),
    (dict(type='GETheta', extent=8), (1, 1)),  # every map 1x1
    (dict(type='GEThetaPlus', ratio=4), (6, 5)),
])
def test_one_value_per_channel_uses_running_statistics(cfg, size):
    """Training BN on a 1x1 gathered map of one image: no error, finite,
    normalised with (and leaving unchanged) the running statistics."""
    ge = randomise(MODELS.build({**cfg, 'in_channels': 8}))
    x = torch.randn(1, 8, *size)
    before = {k: v.clone() for k, v in ge.state_dict().items()}
    out_train = ge.train()(x)
    assert torch.isfinite(out_train).all()
    for key, value in ge.state_dict().items():
        if 'running' in key:
            assert torch.equal(value, before[key]), key
    torch.testing.assert_close(out_train, ge.eval()(x))
    # eval before any training step, 1x1 input
    assert torch.isfinite(ge(torch.randn(1, 8, 1, 1))).all()


def test_bf16_autocast_keeps_statistics_in_float32():
    ge = randomise(GEThetaPlus(16, ratio=4)).train()
    x = torch.randn(4, 16, 9, 7)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = ge(x)
    assert torch.isfinite(out).all()
    assert ge.norm.running_mean.dtype == torch.float32
    assert ge.norm.running_var.dtype == torch.float32
    assert torch.isfinite(ge.norm.running_mean).all()
    assert ge.norm.running_mean.abs().sum() > 0
    # Equal to a float32 BN step on the same (rounded) input: the gathered
    # features, which the depthwise convolutions give in bf16 under
    # autocast. bf16 statistics (errors ~1e-2) would fail this.
    ge = randomise(GEThetaPlus(16, ratio=4)).train()
    reference = randomise(GEThetaPlus(16, ratio=4)).train()
    x = torch.randn(4, 16, 9, 7) * 2 + 1
    with torch.autocast('cpu', dtype=torch.bfloat16):
        ge(x)
        gathered = reference.gather(x)
    assert gathered.dtype == torch.bfloat16
    reference.norm(gathered.float())
    for name in ('running_mean', 'running_var'):
        torch.testing.assert_close(getattr(ge.norm, name),
                                   getattr(reference.norm, name), rtol=1e-5,
                                   atol=1e-6, msg=name)
