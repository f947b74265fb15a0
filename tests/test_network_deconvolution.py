"""FastDeconv against a plainly written float64 reference of the equations.

The reference whitens every patch explicitly (``D (patch_block - mu)``) and
applies the kernel to it; the layer folds ``D`` into the kernel instead, so
the two meet only through the equations.
"""
import pytest
import torch
import torch.nn.functional as F
from mmcv.cnn import build_conv_layer
from torch.autograd import gradcheck
from torch.func import functional_call

import ce_mmdet  # noqa: F401  (registers FastDeconv)
from ce_mmdet.layers import FastDeconv, newton_schulz_isqrt

pytestmark = pytest.mark.usefixtures('single_thread')


# ------------------------------------------------------------- reference
def ref_patches(x, k, stride, padding):
    """Patches (N, out_h, out_w, C*k*k), channel-major (c, i, j) order."""
    n, c, height, width = x.shape
    padded = torch.zeros(n, c, height + 2 * padding, width + 2 * padding,
                         dtype=x.dtype)
    padded[:, :, padding:padding + height, padding:padding + width] = x
    out_h = (height + 2 * padding - k) // stride + 1
    out_w = (width + 2 * padding - k) // stride + 1
    patches = torch.empty(n, out_h, out_w, c * k * k, dtype=x.dtype)
    for i in range(out_h):
        for j in range(out_w):
            window = padded[:, :, i * stride:i * stride + k,
                            j * stride:j * stride + k]
            patches[:, i, j] = window.reshape(n, -1)
    return patches


def ref_blocks(patches, num_blocks):
    """(..., C*k*k) -> (..., num_blocks, F): block b holds the entries
    whose index is congruent to b modulo num_blocks."""
    return torch.stack([patches[..., b::num_blocks]
                        for b in range(num_blocks)], dim=-2)


def ref_newton_schulz(cov, n_iter):
    norm = torch.sqrt((cov * cov).sum())
    eye = torch.eye(cov.shape[0], dtype=cov.dtype)
    y, z = cov / norm, eye.clone()
    for _ in range(n_iter):
        t = (3 * eye - z @ y) / 2
        y, z = y @ t, t @ z
    return z / torch.sqrt(norm)


def ref_statistics(x, layer):
    """mu (F) and D (F, F) from the patches sampled with stride
    sampling_stride * stride."""
    k, stride = layer.kernel_size[0], layer.stride[0]
    sampled = ref_patches(x, k, layer.sampling_stride * stride,
                          layer.padding[0])
    rows = ref_blocks(sampled, layer.num_blocks).reshape(
        -1, layer.num_features)
    mean = rows.mean(0)
    centred = rows - mean
    cov = centred.t() @ centred / rows.shape[0] + layer.eps * torch.eye(
        layer.num_features, dtype=x.dtype)
    return mean, ref_newton_schulz(cov, layer.n_iter)


def ref_deconv(x, layer, mean, deconv):
    """out[n, o, p] = sum_b <W[o, block b], D (patch_b(p) - mu)> + bias."""
    k, stride = layer.kernel_size[0], layer.stride[0]
    patches = ref_blocks(ref_patches(x, k, stride, layer.padding[0]),
                         layer.num_blocks)  # (N, h, w, blocks, F)
    whitened = (patches - mean) @ deconv.t()
    weight = ref_blocks(layer.weight.detach().double().reshape(
        layer.out_channels, -1), layer.num_blocks)  # (O, blocks, F)
    out = torch.einsum('nhwbf,obf->nohw', whitened, weight)
    if layer.bias is not None:
        out = out + layer.bias.detach().double().view(1, -1, 1, 1)
    return out


def make_layer(**kwargs):
    torch.manual_seed(0)
    cfg = dict(in_channels=4, out_channels=5, kernel_size=3, padding=1,
               block=2, sampling_stride=2, n_iter=5)
    cfg.update(kwargs)
    layer = FastDeconv(**cfg).double()
    with torch.no_grad():
        if layer.bias is not None:
            layer.bias.normal_()
    return layer


# ------------------------------------------------------------------ tests
def test_newton_schulz_converges_to_the_inverse_square_root():
    torch.manual_seed(0)
    a = torch.randn(6, 6, dtype=torch.float64)
    cov = a @ a.t() / 6 + 0.5 * torch.eye(6, dtype=torch.float64)
    values, vectors = torch.linalg.eigh(cov)
    exact = vectors @ torch.diag(values.rsqrt()) @ vectors.t()
    torch.testing.assert_close(newton_schulz_isqrt(cov, 40), exact)
    torch.testing.assert_close(newton_schulz_isqrt(cov, 5),
                               ref_newton_schulz(cov, 5))


@pytest.mark.parametrize('kwargs', [
    dict(),
    dict(stride=2),
    dict(kernel_size=1, padding=0, block=4),
    dict(kernel_size=1, padding=0, stride=2, block=1, bias=False),
    dict(in_channels=6, block=4),  # B reduced to gcd(4, 6) = 2
])
def test_training_and_eval_match_reference(kwargs):
    layer = make_layer(**kwargs).train()
    x = torch.randn(2, layer.in_channels, 7, 6, dtype=torch.float64) + 0.3
    mean, deconv = ref_statistics(x, layer)
    torch.testing.assert_close(layer(x), ref_deconv(x, layer, mean, deconv))
    # running statistics: momentum 0.1 from mean 0 and D = I
    torch.testing.assert_close(layer.running_mean, 0.1 * mean)
    eye = torch.eye(layer.num_features, dtype=torch.float64)
    torch.testing.assert_close(layer.running_deconv, 0.9 * eye + 0.1 * deconv)
    assert int(layer.num_batches_tracked) == 1
    layer.eval()
    torch.testing.assert_close(
        layer(x), ref_deconv(x, layer, layer.running_mean,
                             layer.running_deconv))


def test_block_size_and_features():
    assert FastDeconv(3, 64, 7).block == 3  # the stem: F = 7*7*3
    assert FastDeconv(3, 64, 7).num_features == 147
    assert FastDeconv(96, 8, 1, block=64).block == 32
    assert FastDeconv(256, 8, 3).num_features == 9 * 64


def test_eval_before_training_is_the_plain_convolution():
    layer = make_layer().eval()
    x = torch.randn(1, 4, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(
        layer(x), F.conv2d(x, layer.weight, layer.bias, padding=1))


@pytest.mark.parametrize('kwargs', [dict(), dict(stride=2),
                                    dict(kernel_size=1, padding=0)])
def test_gradcheck_input_and_weight(kwargs):
    layer = make_layer(**kwargs).train()
    x = torch.randn(2, 4, 5, 4, dtype=torch.float64, requires_grad=True)
    weight = layer.weight.detach().clone().requires_grad_()

    def run(x, weight):
        return functional_call(layer, {'weight': weight}, (x, ))

    assert gradcheck(run, (x, weight))


@pytest.mark.parametrize('shape', [(1, 4, 1, 1), (1, 4, 2, 1), (2, 4, 1, 1)])
def test_batch_of_one_and_1x1_maps_are_finite(shape):
    for kwargs in (dict(), dict(kernel_size=1, padding=0), dict(stride=2)):
        layer = make_layer(**kwargs).float()
        x = torch.randn(shape)
        assert torch.isfinite(layer.train()(x)).all()
        assert torch.isfinite(layer.running_deconv).all()
        assert torch.isfinite(layer.eval()(x)).all()


def test_bf16_autocast_keeps_statistics_in_float32():
    layer = make_layer().float().train()
    x = torch.randn(2, 4, 8, 8)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = layer(x)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    assert layer.running_deconv.dtype == torch.float32
    assert layer.running_mean.dtype == torch.float32
    # the statistics are those of a float32 step on the same input at
    # float32 precision (the input is bf16-representable: rounding it
    # changes nothing), not bf16 Newton-Schulz (errors ~1e-2)
    layer = make_layer().float().train()
    x = torch.randn(2, 4, 8, 8).bfloat16().float()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        layer(x)
    reference = make_layer().float().train()
    reference(x)
    for name in ('running_deconv', 'running_mean'):
        torch.testing.assert_close(getattr(layer, name),
                                   getattr(reference, name), rtol=1e-5,
                                   atol=1e-6, msg=name)


def test_freeze_after_keeps_running_statistics():
    layer = make_layer(freeze_after=2).train()
    for _ in range(2):
        layer(torch.randn(2, 4, 6, 6, dtype=torch.float64))
    assert layer.statistics_frozen
    frozen = layer.running_deconv.clone()
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    out = layer(x)
    assert torch.equal(layer.running_deconv, frozen)
    assert int(layer.num_batches_tracked) == 2
    torch.testing.assert_close(out, layer.eval()(x))


def test_conv_registry_and_bad_arguments():
    layer = build_conv_layer(dict(type='FastDeconv', n_iter=7), 8, 16, 3,
                             padding=1, bias=False)
    assert isinstance(layer, FastDeconv) and layer.n_iter == 7
    assert layer.bias is None
    layer = build_conv_layer(dict(type='FastDeconv', learnable_bias=True), 8,
                             16, 1, bias=False)
    assert layer.bias is not None
    with pytest.raises(NotImplementedError, match='groups=2'):
        FastDeconv(8, 8, 3, groups=2)
