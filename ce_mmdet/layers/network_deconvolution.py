"""Network Deconvolution (Ye et al., ICLR 2020): the whitened convolution.

A convolution whose input patches are whitened (their channel and pixel
correlations removed) before the kernel is applied; in the authors' networks
it replaces BN. Registered as a conv layer, so any MMCV/MMDetection module
that builds its convolutions with ``build_conv_layer(conv_cfg, ...)`` can use
it: ``conv_cfg=dict(type='FastDeconv')``.
"""
import math
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor, nn


def newton_schulz_isqrt(cov: Tensor, n_iter: int) -> Tensor:
    """``cov^(-1/2)`` of an SPD (F, F) matrix by coupled Newton-Schulz.

    ``Y = cov / ||cov||_F``, ``Z = I``; ``n_iter`` times
    ``T = (3I - Z Y) / 2``, ``Y <- Y T``, ``Z <- T Z``; returns
    ``Z / sqrt(||cov||_F)``. Differentiable (autograd through the loop).
    """
    norm = torch.linalg.matrix_norm(cov)  # Frobenius
    eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
    y, z = cov / norm, eye
    for _ in range(n_iter):
        t = 0.5 * (3.0 * eye - z @ y)
        y, z = y @ t, t @ z
    return z / norm.sqrt()


class FastDeconv(nn.Conv2d):
    """Network deconvolution: ``conv(D (patch - mu), W) + b``, folded.

    For an input (N, C_in, H, W) and a k_h x k_w kernel, patches are split
    into C_in / B channel blocks of ``F = k_h k_w B`` values, ``B =
    min(block, C_in)`` reduced to a divisor of C_in; block ``b`` holds the
    flattened-patch entries (channel-major, as ``F.unfold``) congruent to
    ``b`` modulo C_in / B. All blocks share one mean ``mu`` (F) and one
    whitening matrix ``D = Cov^(-1/2)`` (F, F), ``Cov = Xc^T Xc / n + eps I``
    over the rows ``X`` of every sampled patch and block, computed by
    :func:`newton_schulz_isqrt` with gradients. The input is never whitened
    explicitly: ``W' = W D`` per block and ``b' = b - sum_blocks W' mu``
    (Eq. of the reference implementation), then one ``F.conv2d``. Output
    (N, C_out, H_out, W_out) as ``nn.Conv2d``.

    Training samples the patches with stride ``sampling_stride * stride``
    (im2col), updates ``running_mean``/``running_deconv`` (momentum, initial
    0 and I) and uses the batch's ``mu``/``D``; eval uses the running ones
    (so eval before any training is the plain convolution). The statistics,
    Newton-Schulz and the fold run in float32 even under autocast; the
    convolution itself follows autocast. Statistics are per device (no
    synchronisation).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation:
            as ``nn.Conv2d``.
        groups: only 1 is supported.
        bias: whether the convolution has a learned bias ``b``. The
            mean-correction ``- W' mu`` is applied either way.
        eps: added to the covariance diagonal.
        n_iter: Newton-Schulz iterations (5; the authors' stem uses 15).
        momentum: of the running statistics.
        block: channel block size B (before reduction to a divisor of C_in).
        sampling_stride: patch subsampling factor in training.
        freeze_after: if set, the statistics are computed in the first
            ``freeze_after`` training forwards only (counted by
            ``num_batches_tracked``, saved with the weights); afterwards the
            running ones are used and kept (the authors' stem: "frozen
            statistics").
        learnable_bias: overrides ``bias`` when not None. MMDetection's
            blocks build their convolutions with ``bias=False`` because a BN
            follows; where the deconvolution replaces that BN it needs the
            BN's shift, as in the authors' networks: ``learnable_bias=True``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: Union[int, Tuple[int, int]],
                 stride: Union[int, Tuple[int, int]] = 1,
                 padding: Union[int, Tuple[int, int]] = 0,
                 dilation: Union[int, Tuple[int, int]] = 1,
                 groups: int = 1,
                 bias: bool = True,
                 eps: float = 1e-5,
                 n_iter: int = 5,
                 momentum: float = 0.1,
                 block: int = 64,
                 sampling_stride: int = 3,
                 freeze_after: Optional[int] = None,
                 learnable_bias: Optional[bool] = None) -> None:
        if groups != 1:
            raise NotImplementedError(
                f'FastDeconv: groups={groups} is not supported (only 1); use '
                'a plain convolution for grouped/depthwise layers.')
        if isinstance(padding, str):
            raise ValueError('FastDeconv: give padding as numbers, not '
                             f'{padding!r}')
        if n_iter < 1 or sampling_stride < 1 or block < 1:
            raise ValueError('FastDeconv: n_iter, sampling_stride and block '
                             'must be >= 1')
        if learnable_bias is not None:
            bias = learnable_bias
        super().__init__(in_channels, out_channels, kernel_size, stride,
                         padding, dilation, groups, bias)
        self.eps = eps
        self.n_iter = n_iter
        self.momentum = momentum
        self.block = math.gcd(min(block, in_channels), in_channels)
        self.num_blocks = in_channels // self.block
        self.sampling_stride = sampling_stride
        self.freeze_after = freeze_after
        self.num_features = self.kernel_size[0] * self.kernel_size[1] * \
            self.block
        self.register_buffer('running_mean', torch.zeros(self.num_features))
        self.register_buffer('running_deconv', torch.eye(self.num_features))
        self.register_buffer('num_batches_tracked',
                             torch.tensor(0, dtype=torch.long))

    # ------------------------------------------------------------ helpers
    @property
    def statistics_frozen(self) -> bool:
        """Whether training uses (and keeps) the running statistics."""
        return (self.freeze_after is not None
                and int(self.num_batches_tracked) >= self.freeze_after)

    def sample_rows(self, x: Tensor) -> Tensor:
        """Sampled patches as rows (n, F), one row per patch and block."""
        step = tuple(self.sampling_stride * s for s in self.stride)
        if self.kernel_size == (1, 1) and self.padding == (0, 0):
            # im2col of a 1x1 kernel is a strided subsample of the pixels
            patches = x[:, :, ::step[0], ::step[1]].flatten(2)
        else:
            patches = F.unfold(x, self.kernel_size, self.dilation,
                               self.padding, step)
        rows = patches.transpose(1, 2).reshape(-1, self.num_features,
                                               self.num_blocks)
        return rows.transpose(1, 2).reshape(-1, self.num_features)

    def batch_statistics(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """``mu`` (F) and ``D`` (F, F) of the batch, in float32 or wider."""
        rows = self.sample_rows(x.to(torch.promote_types(x.dtype,
                                                         torch.float32)))
        mean = rows.mean(0)
        centred = rows - mean
        eye = torch.eye(self.num_features, dtype=rows.dtype, device=x.device)
        cov = torch.addmm(eye, centred.t(), centred, beta=self.eps,
                          alpha=1.0 / rows.shape[0])
        return mean, newton_schulz_isqrt(cov, self.n_iter)

    def folded_weight_and_bias(self, mean: Tensor,
                               deconv: Tensor) -> Tuple[Tensor, Tensor]:
        """``W' = W D`` per block and ``b' = b - sum_blocks W' mu``."""
        out_channels = self.out_channels
        weight = self.weight.to(deconv.dtype).reshape(
            out_channels, self.num_features, self.num_blocks).transpose(1, 2)
        folded = weight @ deconv  # (C_out, blocks, F)
        bias = -(folded @ mean).sum(1)
        if self.bias is not None:
            bias = bias + self.bias.to(bias.dtype)
        folded = folded.transpose(1, 2).reshape(self.weight.shape)
        return folded, bias

    # ------------------------------------------------------------ forward
    def forward(self, x: Tensor) -> Tensor:
        use_batch = self.training and not self.statistics_frozen
        # Statistics, Newton-Schulz and the fold in float32 under autocast:
        # bf16/fp16 cannot hold an inverse square root of a covariance.
        with torch.autocast(x.device.type, enabled=False):
            if use_batch:
                mean, deconv = self.batch_statistics(x)
                self._update_running_statistics(mean, deconv)
            else:
                mean, deconv = self.running_mean, self.running_deconv
            weight, bias = self.folded_weight_and_bias(mean, deconv)
        if not torch.is_autocast_enabled(x.device.type):
            weight, bias = weight.to(x.dtype), bias.to(x.dtype)
        return F.conv2d(x, weight, bias, self.stride, self.padding,
                        self.dilation, self.groups)

    @torch.no_grad()
    def _update_running_statistics(self, mean: Tensor, deconv: Tensor) -> None:
        self.num_batches_tracked += 1
        self.running_mean.lerp_(mean.to(self.running_mean), self.momentum)
        self.running_deconv.lerp_(deconv.to(self.running_deconv),
                                  self.momentum)

    def extra_repr(self) -> str:
        return (super().extra_repr() + f', block={self.block}, '
                f'n_iter={self.n_iter}, sampling_stride='
                f'{self.sampling_stride}, freeze_after={self.freeze_after}')


MODELS.register_module('FastDeconv', module=FastDeconv)
