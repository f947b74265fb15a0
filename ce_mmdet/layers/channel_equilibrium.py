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
import functools
import math
import warnings
from typing import Optional, Union

import torch
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor, nn
from torch.func import functional_call

from .batch_norm_folding import BatchNormFold, is_foldable_batch_norm
from .grouped_map import graph_capture_in_progress, statistics_conditioned_map

_LOW_PRECISION = (torch.float16, torch.bfloat16)
_REWEIGHTING = 'reweighting.'  # prefix of the IR MLP's parameters
_NORM = 'norm.'  # prefix of a folded BN's affine parameters


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
    * ``a = sigmoid(FC2(ReLU(LayerNorm(FC1(v)))))``
      (:class:`InstanceReweighting`),
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
        in_channels: C. (``build_norm_layer`` and ``build_plugin_layer``
            pass it.)
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
            raise ValueError(
                f'num_iterations must be >= 1, got {num_iterations}')
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
        return (f'in_channels={self.in_channels}, '
                f'group_size={self.group_size}, '
                f'num_iterations={self.num_iterations}, eps={self.eps}, '
                f'momentum={self.momentum}')

    # ------------------------------------------------------------------ API
    def forward(self, x: Tensor,
                preceding_norm: Union[nn.Module, BatchNormFold, None] = None
                ) -> Tensor:
        """CE(x), or CE(preceding_norm(x)) with a BN folded in if it can be.

        Args:
            x: (N, C, H, W).
            preceding_norm: a norm layer applied before CE: folded into
                CE's map when :meth:`fold_for` says so, else applied first,
                as usual. Or a :class:`BatchNormFold` the caller has decided
                on (e.g. with ``input_is_shifted``, see
                :func:`ce_mmdet.backbones.ce_resnet.conv_norm_ce`).
        """
        fold = preceding_norm
        if preceding_norm is not None and not isinstance(
                preceding_norm, BatchNormFold):
            fold = self.fold_for(preceding_norm)
            if fold is None:
                x = preceding_norm(x)
        return self.forward_folded(x, fold)

    def fold_for(self, norm: nn.Module) -> Optional[BatchNormFold]:
        """How this layer folds ``norm`` into its map, or None if it does
        not: a foldable BN (:func:`is_foldable_batch_norm`), except a BN in
        training mode when the batch statistics are synchronised across
        processes (each process's BN normalises with its own batch
        statistics then)."""
        if not is_foldable_batch_norm(norm) or (
                norm.training and self._synchronizes_statistics()):
            return None
        return BatchNormFold(norm)

    def forward_folded(self, x: Tensor,
                       fold: Optional[BatchNormFold] = None) -> Tensor:
        """``CE(BN(x))`` with the BN of ``fold`` folded into CE's map, or
        ``CE(x)`` when ``fold`` is None.

        The BN is one per-channel affine map of ``y = x - running_mean``
        (:mod:`ce_mmdet.layers.batch_norm_folding`), frozen or from the
        batch's statistics, which come from CE's own sums (the BN's running
        statistics are updated as the BN would, and its backward is part of
        CE's). CE's statistics are taken of ``y``: float32 sums of ``x``
        would lose the spread of a channel whose mean is large against it.

        Args:
            x: (N, C, H, W), the input of the BN (or ``y`` if
                ``fold.input_is_shifted``).
            fold: the BN to fold in, or None (plain CE).
        """
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'{self.layer_name} expects (N, {self.in_channels}, H, W) '
                f'input, got shape {tuple(x.shape)}')
        if (fold is not None and fold.uses_batch_statistics
                and self._synchronizes_statistics()):
            raise ValueError(
                f'{self.layer_name} synchronises its statistics across '
                'processes, so it cannot fold a BatchNorm2d in training mode '
                '(that BN normalises with its own process\'s batch); pass '
                'the norm module as preceding_norm instead')
        # Statistics and Newton steps need float32 even under autocast.
        compute_dtype = torch.float32 if x.dtype in _LOW_PRECISION else x.dtype
        if torch.is_autocast_enabled(x.device.type):
            with torch.autocast(device_type=x.device.type, enabled=False):
                out = self._forward(x.to(compute_dtype), fold)
        else:
            out = self._forward(x.to(compute_dtype), fold)
        return out.to(x.dtype)

    # ------------------------------------------------------------ internals
    def _synchronizes_statistics(self) -> bool:
        """Hook for SyncCE: whether batch statistics span processes."""
        return False

    def _reduce_batch_statistics(self, sums: list[Tensor]) -> list[Tensor]:
        """Hook for SyncCE: each of ``sums`` summed over the process group."""
        return sums

    def _forward(self, x: Tensor, fold: Optional[BatchNormFold]) -> Tensor:
        n, c, h, w = x.shape
        params = {'gate_logit': self.gate_logit}
        params.update((_REWEIGHTING + name, value) for name, value in
                      self.reweighting.named_parameters())
        if fold is not None:
            if fold.uses_batch_statistics and n * h * w == 1:
                raise ValueError(
                    'Expected more than 1 value per channel when training, '
                    f'got input size {tuple(x.shape)}')
            x = fold.shifted_input(x)
            params.update((_NORM + name, value) for name, value in
                          fold.affine_parameters(x).items())
        statistics_to_map = functools.partial(
            self._statistics_to_map, num_positions=h * w, fold=fold)
        # Eval needs only the per-channel variances, not the covariance.
        out, extras = statistics_conditioned_map(
            x.contiguous(), self.group_size, statistics_to_map, params,
            full_gram=self.training)
        if fold is not None and fold.uses_batch_statistics:
            fold.update_running_statistics(
                mean=extras['norm_mean'], variance=extras['norm_variance'],
                count=n * h * w)
        if self.training and self.momentum > 0:
            self._update_running_statistics(
                whitening=extras['whitening'], mean=extras['mean'],
                scale=extras['scale'])
        return out

    def _statistics_to_map(self, gram: Tensor, s1: Tensor,
                           params: dict[str, Tensor], *, num_positions: int,
                           fold: Optional[BatchNormFold]
                           ) -> tuple[Tensor, Optional[Tensor],
                                      dict[str, Tensor]]:
        """CE's map ``M`` (N, G, g, g) from the statistics of its input.

        ``gram`` (N, G, g, g) and ``s1`` (N, G, g) are per-image sums of
        ``y`` (the input, or the folded BN's shifted input); ``params`` the
        tensors :meth:`_forward` names. With a BN folded in, CE's input is
        ``scale * y + shift`` and the map is ``(M scale) y + M shift``; the
        BN is applied to central moments, which keeps them precise (no
        large uncentred terms to cancel).
        """
        n = gram.shape[0]
        shape = (self.num_groups, self.group_size)
        per_image_var = _per_image_variance(gram, s1, num_positions)
        extras = {}
        affine = None
        if fold is not None:
            batch_sums = None
            if fold.uses_batch_statistics:
                batch_sums = (s1.sum(0),
                              gram.diagonal(dim1=-2, dim2=-1).sum(0))
            scale, shift, norm_statistics = fold.affine_map(
                weight=params[_NORM + 'weight'], bias=params[_NORM + 'bias'],
                shape=shape, batch_sums=batch_sums,
                count=n * num_positions)
            extras.update(('norm_' + name, value)
                          for name, value in norm_statistics.items())
            per_image_var = per_image_var * scale.square()
            affine = (scale, shift)
        per_image_var = per_image_var.reshape(n, self.in_channels)
        if self.training:
            whitening, mean, scale_s = self._batch_whitening_and_scale(
                gram, s1, per_image_var, num_positions, affine)
            extras.update(whitening=whitening, mean=mean, scale=scale_s)
        else:
            whitening = self.running_whitening.to(gram.dtype)
            scale_s = self.running_scale.to(gram.dtype)
        scale_s = scale_s.clamp_min(math.sqrt(self.eps))
        attention = self._instance_reweighting(per_image_var, params)
        lam = torch.sigmoid(params['gate_logit'])
        diagonal = ((1 - lam) * attention / scale_s).view(n, *shape)
        map_matrix = lam * whitening + torch.diag_embed(diagonal)
        if affine is None:
            return map_matrix, None, extras
        scale, shift = affine
        # M (scale * y + shift) = (M scale) y + M shift
        offset = (map_matrix @ shift.unsqueeze(-1)).squeeze(-1)
        return map_matrix * scale.unsqueeze(-2), offset, extras

    def _instance_reweighting(self, variance: Tensor,
                              params: dict[str, Tensor]) -> Tensor:
        """IR's weights ``a`` (N, C): the ``reweighting`` module run with
        the tensors ``params`` holds under its parameters' names."""
        weights = {name[len(_REWEIGHTING):]: value
                   for name, value in params.items()
                   if name.startswith(_REWEIGHTING)}
        own = dict(self.reweighting.named_parameters())
        if weights.keys() == own.keys() and all(
                weights[name] is value for name, value in own.items()):
            # Its own tensors (no gradient through the fused map, or graph
            # capture, where torch.jit.trace refuses functional_call).
            return self.reweighting(variance)
        # (Its parameters are never tied: skipping that check saves ~30%
        # of functional_call's cost, ~0.1 ms per training call on a CPU.)
        return functional_call(self.reweighting, weights, (variance, ),
                               tie_weights=False)

    def _batch_whitening_and_scale(
            self, gram: Tensor, s1: Tensor, per_image_var: Tensor,
            num_positions: int,
            affine: Optional[tuple[Tensor, Tensor]] = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Batch W (G,g,g), mu (G,g) and s (1,) from per-image statistics.

        ``gram``/``s1`` are sums of ``y``; CE's input is ``y``, or
        ``scale * y + shift`` (``affine``, each (G, g)) when a BN is folded
        in. ``per_image_var`` (N, C) is of CE's input already.
        """
        n = gram.shape[0]
        g = self.group_size
        sum_sq, sum_x, sum_var, count, count_var = (
            self._reduce_batch_statistics([
                gram.sum(0), s1.sum(0), per_image_var.sum(),
                gram.new_tensor(float(n * num_positions)),
                gram.new_tensor(float(per_image_var.numel()))
            ]))
        mean = sum_x / count
        covariance = sum_sq / count - mean.unsqueeze(-1) * mean.unsqueeze(-2)
        if affine is not None:
            scale, shift = affine
            covariance = (covariance * scale.unsqueeze(-1)
                          * scale.unsqueeze(-2))
            mean = scale * mean + shift
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


def _per_image_variance(gram: Tensor, s1: Tensor,
                        num_positions: int) -> Tensor:
    """Unbiased per-image variance (N, G, g) from Gram diagonals and sums.

    ``v = (sum x^2 - (sum x)^2 / P) / (P - 1)``; 0 when P = 1 (no spread).
    """
    if num_positions == 1:
        return torch.zeros_like(s1)
    sum_sq = gram.diagonal(dim1=-2, dim2=-1)
    centred = sum_sq - s1 * s1 / num_positions
    return centred.clamp_min(0) / (num_positions - 1)


# Registered once, in MMEngine's root MODELS: every scope falls back to it.
MODELS.register_module('CE', module=ChannelEquilibrium)
