"""Channel Equilibrium (CE): Shao et al., ICML 2020 (arXiv 2003.00214).

CE sits between a normalization layer and the ReLU. For an input ``X`` of
shape (N, C, H, W) it mixes a batch-decorrelated and an instance-reweighted
copy of ``X`` with a learned gate::

    CE(X) = lam * BD(X) + (1 - lam) * IR(X),      lam = sigmoid(gate_logit)

Both branches are linear in ``X`` for fixed statistics, so CE is computed as
one per-image block-diagonal 1x1 map ``out[n] = M[n] @ X[n]`` with
``M[n] = lam * W + diag((1 - lam) * a[n] / s)``; see
:mod:`ce_mmdet.layers.grouped_map` for how the statistics and the map share
passes over the tensor.
"""
import math
import warnings
from typing import Optional

import torch
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from .grouped_map import graph_capture_in_progress, statistics_conditioned_map

_LOW_PRECISION = (torch.float16, torch.bfloat16)
# Exact types: a subclass (e.g. BN+CE) may do more than an affine map.
_FOLDABLE_NORMS = (nn.BatchNorm2d, nn.SyncBatchNorm)


def resolve_group_size(num_channels: int, group_size: int) -> int:
    """The release's grouping rule: halve ``group_size`` until it divides C."""
    if num_channels < 1 or group_size < 1:
        raise ValueError(
            f'CE needs num_channels >= 1 and group_size >= 1, got '
            f'{num_channels} and {group_size}')
    while num_channels % group_size:
        group_size //= 2
    return group_size


def newton_whitening(sigma: Tensor, num_iterations: int) -> Tensor:
    """Approximate ``Sigma_N^(-1/2)`` of trace-normalised covariances.

    ``Sigma_N = Sigma / tr(Sigma)``, ``P_0 = I``,
    ``P_{k+1} = 1.5 P_k - 0.5 P_k^3 Sigma_N``; returns ``P_T`` for a batch
    (G, g, g) of covariances. As in the release, ``P_T`` is not rescaled by
    ``1 / sqrt(tr(Sigma))`` (unlike IterNorm). This uncoupled iteration
    converges quadratically once close, but rounding errors grow again after
    convergence (in float64, ~1e-15 at T=10, diverging by T~50): keep T small.
    """
    trace = sigma.diagonal(dim1=-2, dim2=-1).sum(-1)
    sigma_n = sigma / trace[..., None, None]
    eye = torch.eye(sigma.shape[-1], dtype=sigma.dtype, device=sigma.device)
    p = eye.expand_as(sigma)
    for _ in range(num_iterations):
        p = 1.5 * p - 0.5 * (p @ p) @ (p @ sigma_n)
    return p


class InstanceReweighting(nn.Module):
    """IR's gating MLP: ``a = sigmoid(excite(relu(norm(squeeze(v)))))``.

    ``v`` (N, C) are per-image channel variances; ``squeeze``: C -> C/r and
    ``excite``: C/r -> C are bias-free linear maps, ``norm`` a LayerNorm over
    C/r (affine, eps 1e-5), as in the release.
    """

    def __init__(self, num_channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(num_channels // reduction, 1)
        self.squeeze = nn.Linear(num_channels, hidden, bias=False)
        self.norm = nn.LayerNorm(hidden, eps=1e-5)
        self.excite = nn.Linear(hidden, num_channels, bias=False)

    def forward(self, variance: Tensor) -> Tensor:
        hidden = F.relu(self.norm(self.squeeze(variance)))
        return torch.sigmoid(self.excite(hidden))


class ChannelEquilibrium(nn.Module):
    r"""Channel Equilibrium block (registered as ``'CE'``).

    Input and output: (N, C, H, W). The block computes
    ``CE(X) = lam * BD(X) + (1 - lam) * IR(X)`` with ``lam = sigmoid(w)``
    (``gate_logit``, initialised at 0), exactly as the authors' release:

    Batch decorrelation, per group of ``g`` consecutive channels (``g`` is
    halved until it divides C), over the M = N*H*W positions of the batch:

    * ``mu = mean(X)``, ``Sigma = eps*I + (1/M) (X - mu)(X - mu)^T``,
    * ``W = P_T`` from ``T`` Newton steps on ``Sigma / tr(Sigma)``
      (:func:`newton_whitening`),
    * ``BD(X) = W X``: the UNCENTRED input, ``W`` not rescaled.

    Instance reweighting, per image ``n`` and channel ``c``:

    * ``v[n, c]`` = unbiased variance of ``X[n, c]`` over H*W,
    * ``a = sigmoid(FC2(ReLU(LayerNorm(FC1(v)))))`` (:class:`InstanceReweighting`),
    * ``s = sqrt(mean_{n,c} v)``, ``IR(X)[n, c] = X[n, c] * a[n, c] / s``.

    Training uses the batch's ``W``, ``mu`` and ``s`` and updates
    ``running_mean``, ``running_whitening``, ``running_scale`` with
    ``r <- (1 - momentum) r + momentum * batch value``; eval uses the running
    values, so BD becomes a fixed block-diagonal 1x1 map. Gradients flow
    through ``W`` and ``s`` into ``X``.

    Where this deviates from the release, on purpose:

    * ``running_scale`` starts at 1, not 0: an untrained model in eval mode
      does not divide by zero. The scale used is floored at ``sqrt(eps)``, so
      constant or all-zero inputs give finite outputs and gradients.
    * A feature map with one position (H*W = 1) has no observable spread: its
      per-image variance is defined as 0 (the release's unbiased estimate is
      0/0 = NaN there).
    * A batch whose statistics are not finite (NaN/Inf in the input) leaves
      the running statistics untouched and warns with the layer's name.
    * Under autocast (fp16/bf16) the block runs in float32 and returns the
      input's dtype, so covariance and Newton steps are float32.

    Args:
        in_channels: C. (``build_norm_layer`` and ``build_plugin_layer`` pass it.)
        group_size: channels per decorrelation group (16 in residual blocks,
            64 for the stem in the release).
        num_iterations: Newton steps T.
        eps: added to the covariance diagonal.
        momentum: of the running statistics.
        reduction: C / hidden size of the IR MLP.
    """

    _abbr_ = 'ce'

    def __init__(self,
                 in_channels: int,
                 group_size: int = 16,
                 num_iterations: int = 3,
                 eps: float = 1e-5,
                 momentum: float = 0.1,
                 reduction: int = 4) -> None:
        super().__init__()
        if num_iterations < 1:
            raise ValueError(f'num_iterations must be >= 1, got {num_iterations}')
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f'momentum must be in [0, 1], got {momentum}')
        if eps <= 0:
            raise ValueError(f'eps must be > 0, got {eps}')
        self.in_channels = in_channels
        self.group_size = resolve_group_size(in_channels, group_size)
        self.num_groups = in_channels // self.group_size
        self.num_iterations = num_iterations
        self.eps = eps
        self.momentum = momentum
        self.reduction = reduction
        self.layer_name = f'ChannelEquilibrium({in_channels})'

        self.gate_logit = nn.Parameter(torch.zeros(1))
        self.reweighting = InstanceReweighting(in_channels, reduction)
        g = self.group_size
        self.register_buffer('running_mean', torch.zeros(self.num_groups, g))
        self.register_buffer('running_whitening',
                             torch.eye(g).repeat(self.num_groups, 1, 1))
        self.register_buffer('running_scale', torch.ones(1))

    def hyperparameters(self) -> dict:
        """The constructor's keyword arguments (besides ``in_channels``)."""
        return dict(group_size=self.group_size,
                    num_iterations=self.num_iterations, eps=self.eps,
                    momentum=self.momentum, reduction=self.reduction)

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, group_size={self.group_size}, '
                f'num_iterations={self.num_iterations}, eps={self.eps}, '
                f'momentum={self.momentum}')

    # ------------------------------------------------------------------ API
    def forward(self, x: Tensor,
                preceding_norm: Optional[nn.Module] = None,
                input_is_shifted: bool = False) -> Tensor:
        """CE(x), or CE(preceding_norm(x)) with the norm folded in when frozen.

        Args:
            x: (N, C, H, W).
            preceding_norm: a norm layer applied before CE. A plain
                ``BatchNorm2d`` is folded into CE's map (see
                :func:`is_foldable_batch_norm`); any other norm is applied
                first, as usual.
            input_is_shifted: ``x`` is the foldable ``preceding_norm``'s
                input minus its running mean (see :meth:`forward_folded`).
        """
        if preceding_norm is not None and not self.can_fold(preceding_norm):
            if input_is_shifted:
                raise ValueError(
                    f'{self.layer_name}: input_is_shifted=True needs a '
                    'foldable BatchNorm2d as preceding_norm (its running mean '
                    f'is the shift), got {type(preceding_norm).__name__}')
            x = preceding_norm(x)
            preceding_norm = None
        return self.forward_folded(x, preceding_norm, input_is_shifted)

    def can_fold(self, norm: nn.Module) -> bool:
        """Whether this layer folds ``norm`` into its map: a foldable BN
        (:func:`is_foldable_batch_norm`), except a BN in training mode when
        the batch statistics are synchronised across processes (each
        process's BN normalises with its own batch statistics then)."""
        if is_frozen_batch_norm(norm):
            return True
        return (is_foldable_batch_norm(norm)
                and not self._synchronizes_statistics())

    def forward_folded(self, x: Tensor,
                       frozen_norm: Optional[_BatchNorm] = None,
                       input_is_shifted: bool = False) -> Tensor:
        """``CE(frozen_norm(x))`` with the BN folded into CE's map.

        ``frozen_norm`` must be foldable (:func:`is_foldable_batch_norm`):
        a BN in eval mode, a fixed affine map, or a ``BatchNorm2d`` in
        training mode, whose batch statistics come from CE's own sums (its
        running statistics are updated as the BN would, and its backward is
        part of CE's); :meth:`forward` checks that, this does not.

        Precision: the statistics are sums over the tensor, and second
        moments from uncentred sums cancel in float32 when a channel's mean
        is large against its spread, as a convolution's raw output often is.
        So the input is first shifted by the BN's running mean (the estimate
        of its per-channel mean the BN already holds): ``y = x - running_mean``
        and ``BN(x) = scale * y + bias``. That costs one pass, unless the
        caller already produced ``y`` for free, e.g. as the convolution's
        bias (``input_is_shifted=True``, see
        :func:`ce_mmdet.backbones.ce_resnet.conv_norm_ce`).

        Args:
            x: (N, C, H, W), the input of ``frozen_norm`` (minus its
                running mean if ``input_is_shifted``).
            frozen_norm: the frozen BN to fold in, or None (plain CE).
            input_is_shifted: ``x`` is already ``BN input - running_mean``.
        """
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'{self.layer_name} expects (N, {self.in_channels}, H, W) '
                f'input, got shape {tuple(x.shape)}')
        # Statistics and Newton steps need float32 even under autocast.
        compute_dtype = torch.float32 if x.dtype in _LOW_PRECISION else x.dtype
        if torch.is_autocast_enabled(x.device.type):
            with torch.autocast(device_type=x.device.type, enabled=False):
                out = self._forward(x.to(compute_dtype), frozen_norm,
                                    input_is_shifted)
        else:
            out = self._forward(x.to(compute_dtype), frozen_norm,
                                input_is_shifted)
        return out.to(x.dtype)

    # ------------------------------------------------------------ internals
    def _synchronizes_statistics(self) -> bool:
        """Hook for SyncCE: whether batch statistics span processes."""
        return False

    def _reduce_batch_statistics(self, sums: list[Tensor]) -> list[Tensor]:
        """Hook for SyncCE: each of ``sums`` summed over the process group."""
        return sums

    def _forward(self, x: Tensor, norm: Optional[_BatchNorm],
                 input_is_shifted: bool) -> Tensor:
        n, c, h, w = x.shape
        if norm is not None and not input_is_shifted:
            x = x - norm.running_mean.to(x.dtype).view(1, c, 1, 1)
        x = x.contiguous()
        norm_training = norm is not None and norm.training
        if norm_training and n * h * w == 1:
            raise ValueError('Expected more than 1 value per channel when '
                             f'training, got input size {tuple(x.shape)}')
        params = [self.gate_logit, *self.reweighting.parameters()]
        if norm is not None:
            params += [
                x.new_ones(c) if norm.weight is None else norm.weight,
                x.new_zeros(c) if norm.bias is None else norm.bias
            ]
        batch_stats = self.training
        num_positions = h * w

        def statistics_to_map(gram, s1, gate_logit, w1, ln_w, ln_b, w2,
                              *norm_affine):
            # Moments of the (shifted) input; the frozen BN's affine map
            # ``scale * y + bias`` is applied to central moments, which
            # keeps them precise (no large uncentred terms to cancel).
            per_image_var = _per_image_variance(gram, s1, num_positions)
            norm_extras = ()
            if norm_training:
                scale, bias, norm_extras = _training_norm_affine(
                    norm, *norm_affine, gram, s1, n * num_positions)
            elif norm_affine:
                scale, bias = _frozen_norm_affine(norm, *norm_affine)
                scale = scale.view(self.num_groups, self.group_size)
                bias = bias.view(self.num_groups, self.group_size)
            if norm_affine:
                per_image_var = per_image_var * scale.square()
            per_image_var = per_image_var.reshape(n, c)
            if batch_stats:
                whitening, mean, scale_s = self._batch_whitening_and_scale(
                    gram, s1, per_image_var, num_positions,
                    *((scale, bias) if norm_affine else ()))
                extras = (whitening.detach(), mean.detach(),
                          scale_s.detach())
            else:
                whitening = self.running_whitening.to(gram.dtype)
                scale_s = self.running_scale.to(gram.dtype)
                extras = ()
            scale_s = scale_s.clamp_min(math.sqrt(self.eps))
            hidden = F.relu(F.layer_norm(
                F.linear(per_image_var, w1), (w1.shape[0], ), ln_w, ln_b,
                self.reweighting.norm.eps))
            attention = torch.sigmoid(F.linear(hidden, w2))
            lam = torch.sigmoid(gate_logit)
            diagonal = ((1 - lam) * attention / scale_s).view(
                n, self.num_groups, self.group_size)
            map_matrix = lam * whitening + torch.diag_embed(diagonal)
            offset = None
            if norm_affine:
                # M (scale * y + bias) = (M scale) y + M bias
                offset = (map_matrix @ bias.unsqueeze(-1)).squeeze(-1)
                map_matrix = map_matrix * scale.unsqueeze(-2)
            return map_matrix, offset, extras + norm_extras

        # Eval needs only the per-channel variances, not the covariance.
        out, extras = statistics_conditioned_map(x, self.group_size,
                                                 statistics_to_map, params,
                                                 full_gram=batch_stats)
        if norm_training:
            *extras, shifted_mean, variance = extras
            _update_batch_norm_statistics(norm, shifted_mean, variance,
                                          n * num_positions)
        if batch_stats and self.momentum > 0:
            self._update_running_statistics(*extras)
        return out

    def _batch_whitening_and_scale(self, gram: Tensor, s1: Tensor,
                                   per_image_var: Tensor, num_positions: int,
                                   affine_scale: Optional[Tensor] = None,
                                   affine_bias: Optional[Tensor] = None):
        """Batch W (G,g,g), mu (G,g) and s (1,) from per-image statistics.

        ``gram``/``s1`` are sums of ``y``; CE's input is ``y``, or
        ``affine_scale * y + affine_bias`` (per group, (G, g)) when a frozen
        BN is folded in. ``per_image_var`` (N, C) is of CE's input already.
        """
        n = gram.shape[0]
        g = self.group_size
        sum_sq, sum_x, sum_var, count, count_var = self._reduce_batch_statistics([
            gram.sum(0), s1.sum(0), per_image_var.sum(),
            gram.new_tensor(float(n * num_positions)),
            gram.new_tensor(float(per_image_var.numel()))
        ])
        mean = sum_x / count
        covariance = sum_sq / count - mean.unsqueeze(-1) * mean.unsqueeze(-2)
        if affine_scale is not None:
            covariance = (covariance * affine_scale.unsqueeze(-1)
                          * affine_scale.unsqueeze(-2))
            mean = affine_scale * mean + affine_bias
        eye = torch.eye(g, dtype=gram.dtype, device=gram.device)
        whitening = newton_whitening(covariance + self.eps * eye,
                                     self.num_iterations)
        scale = (sum_var / count_var).clamp_min(self.eps).sqrt().view(1)
        return whitening, mean, scale

    @torch.no_grad()
    def _update_running_statistics(self, whitening: Tensor, mean: Tensor,
                                   scale: Tensor) -> None:
        finite = (torch.isfinite(whitening).all() & torch.isfinite(mean).all()
                  & torch.isfinite(scale).all())
        batch = dict(running_whitening=whitening, running_mean=mean,
                     running_scale=scale)
        if graph_capture_in_progress():
            # No host sync (and no warning) inside a captured graph: a
            # non-finite batch still leaves the running values unchanged.
            for name, value in batch.items():
                running = getattr(self, name)
                running.copy_(torch.where(
                    finite, running.lerp(value.to(running), self.momentum),
                    running))
            return
        if not bool(finite):
            warnings.warn(
                f'{self.layer_name}: the batch statistics are not finite '
                '(NaN/Inf in the input?); running statistics left unchanged. '
                'Check the data and the learning rate.', RuntimeWarning,
                stacklevel=3)
            return
        for name, value in batch.items():
            running = getattr(self, name)
            running.lerp_(value.to(running), self.momentum)


def is_foldable_batch_norm(norm: nn.Module) -> bool:
    """Whether CE can fold ``norm`` into its own map: a frozen BN
    (:func:`is_frozen_batch_norm`), or a plain ``BatchNorm2d`` in training
    mode that tracks running statistics (its batch statistics are CE's
    sums; a ``SyncBatchNorm``'s would need a sync of their own)."""
    return is_frozen_batch_norm(norm) or (
        type(norm) is nn.BatchNorm2d and norm.training
        and norm.track_running_stats and norm.running_mean is not None)


def is_frozen_batch_norm(norm: nn.Module) -> bool:
    """Whether ``norm`` is a plain BN applying a fixed affine map (eval mode
    with running statistics), which CE can fold into its own map."""
    return (type(norm) in _FOLDABLE_NORMS and not norm.training
            and norm.running_var is not None)


def _per_image_variance(gram: Tensor, s1: Tensor, num_positions: int) -> Tensor:
    """Unbiased per-image variance (N, G, g) from Gram diagonals and sums.

    ``v = (sum x^2 - (sum x)^2 / P) / (P - 1)``; 0 when P = 1 (no spread).
    """
    if num_positions == 1:
        return torch.zeros_like(s1)
    sum_sq = gram.diagonal(dim1=-2, dim2=-1)
    centred = sum_sq - s1 * s1 / num_positions
    return centred.clamp_min(0) / (num_positions - 1)


def _training_norm_affine(norm: _BatchNorm, weight: Tensor, bias: Tensor,
                          gram: Tensor, s1: Tensor, count: int):
    """A BN in training mode as ``scale * y + bias`` on ``y = x -
    running_mean``, its batch statistics from CE's sums of ``y``.

    Returns ``(scale, bias)`` as (G, g) and the detached batch statistics
    ``(mean of y, biased variance)`` (G, g) for the running averages.
    """
    mean = s1.sum(0) / count
    sum_sq = gram.diagonal(dim1=-2, dim2=-1).sum(0)
    variance = (sum_sq / count - mean.square()).clamp_min(0)
    scale = weight.view_as(mean) * torch.rsqrt(variance + norm.eps)
    shift = bias.view_as(mean) - mean * scale
    return scale, shift, (mean.detach(), variance.detach())


@torch.no_grad()
def _update_batch_norm_statistics(norm: _BatchNorm, shifted_mean: Tensor,
                                  variance: Tensor, count: int) -> None:
    """The running averages a ``BatchNorm2d`` in training mode keeps.

    ``shifted_mean`` is the batch mean minus the running mean (the shift):
    ``running_mean <- running_mean + factor * shifted_mean``; the variance
    enters unbiased, as in ``F.batch_norm``.
    """
    norm.num_batches_tracked.add_(1)
    factor = (1.0 / float(norm.num_batches_tracked) if norm.momentum is None
              else norm.momentum)
    unbiased = variance * (count / (count - 1))
    norm.running_mean.add_(shifted_mean.flatten().to(norm.running_mean),
                           alpha=factor)
    norm.running_var.lerp_(unbiased.flatten().to(norm.running_var), factor)


def _frozen_norm_affine(norm: _BatchNorm, weight: Tensor,
                        bias: Tensor) -> tuple[Tensor, Tensor]:
    """A frozen BN as ``scale * (x - running_mean) + bias``: (scale, bias),
    each (C,). The input is shifted by ``running_mean`` before any sum."""
    inv_std = torch.rsqrt(norm.running_var.to(weight.dtype) + norm.eps)
    return weight * inv_std, bias


# Registered once, in MMEngine's root MODELS: every scope falls back to it.
MODELS.register_module('CE', module=ChannelEquilibrium)
