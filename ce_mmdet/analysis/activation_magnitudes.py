"""Per-channel mean magnitude after each activation call, and inhibited
channels.

The paper (Fig. 1) calls a channel *inhibited* when its output after the
activation is small and contributes little to the next layer. We measure,
for every activation call ``k`` (see
:class:`~ce_mmdet.analysis.model_structure.ActivationCall`) and channel ``c``,
over ``N`` images::

    m_c = mean over images n of
          ( mean over positions (h, w) of |y[n, c, h, w]| )

and call channel ``c`` inhibited when ``m_c <= tau * mean_c(m_c)``: its mean
magnitude is at most ``tau`` times that of the layer's average channel. A
relative threshold compares layers and models whatever the scale of their
features (BN and CE rescale them freely).

Default ``tau = 0.1`` (:data:`DEFAULT_TAU`). Why: for a Gaussian
pre-activation ``gamma * z + beta`` the mean ReLU output is
``gamma * (phi(t) + t * Phi(t))`` with ``t = beta / gamma``; it falls to 10%
of a centred channel's (``beta = 0``) at ``t ~ -1.35``, where the channel is
active at only about 9% of the positions. ``tau = 0.1`` so flags channels
that are off almost everywhere, not merely sparse ones, and a channel with
a tenth of the average magnitude carries about a tenth of an average
channel's signal into the next convolution. The paper's own threshold is not
known to us; pass ``tau`` to compare with other choices.

Two absolute criteria are measured beside it (a relative threshold can call
half of a layer inhibited when a few channels are very large, and none when
all are equally small):

* **dead**: ``max |y[n, c, h, w]| == 0`` over every position of every image
  evaluated: the channel is exactly zero on all inputs (a ReLU channel
  whose pre-activation is never positive). It contributes nothing at all.
  ELU and LeakyReLU channels are never exactly zero: this criterion is for
  ReLU networks.
* **small**: ``m_c <= epsilon`` (default :data:`DEFAULT_EPSILON` = 0.01):
  mean magnitude below a constant, on the scale of features normalised to
  unit variance (a BN+ReLU channel with ``gamma = 1, beta = 0`` has
  ``m_c ~ 0.40``; ``m_c = 0.01`` needs ``beta / gamma ~ -2.0``, active at
  about 2% of the positions).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .model_structure import ActivationCallCounter, activation_modules

DEFAULT_TAU = 0.1
"""Default relative threshold of :func:`inhibited_share` (see module doc)."""

DEFAULT_EPSILON = 0.01
"""Default absolute threshold of the *small* criterion (see module doc)."""

CRITERIA = ('inhibited', 'dead', 'small')
"""The per-channel criteria, in table order: relative (``tau``), exactly
zero everywhere, mean magnitude below ``epsilon``."""


@dataclass
class ActivationMagnitude:
    """The measure of one activation call.

    Attributes:
        key: ``'<module name>#<call index>'``.
        channels: C.
        images: how many images were averaged.
        channel_mean_magnitude: ``m_c``, C floats.
        channel_max_magnitude: ``max |y|`` per channel over every position
            of every image, C floats.
        inhibited: how many channels have ``m_c <= tau * mean(m)``.
        share: ``inhibited / channels``.
        dead: how many channels are exactly zero everywhere.
        small: how many channels have ``m_c <= epsilon``.
    """
    key: str
    channels: int
    images: int
    channel_mean_magnitude: list[float] = field(repr=False)
    channel_max_magnitude: list[float] = field(repr=False,
                                               default_factory=list)
    inhibited: int = 0
    share: float = 0.0
    dead: int = 0
    small: int = 0


def inhibited_mask(channel_magnitude: Tensor, tau: float) -> Tensor:
    """Boolean (C,): ``m_c <= tau * mean(m)``.

    A layer whose channels are all zero is all inhibited.
    """
    if tau < 0:
        raise ValueError(f'tau must be >= 0, got {tau}')
    return channel_magnitude <= tau * channel_magnitude.mean()


def inhibited_share(channel_magnitude: Tensor, tau: float) -> float:
    """Share of the C channels of ``channel_magnitude`` (C,) inhibited."""
    return float(inhibited_mask(channel_magnitude, tau).float().mean())


def dead_mask(channel_max_magnitude: Tensor) -> Tensor:
    """Boolean (C,): the channel is exactly zero on every input
    (``max |y| == 0``)."""
    return channel_max_magnitude == 0


def small_mask(channel_magnitude: Tensor, epsilon: float) -> Tensor:
    """Boolean (C,): ``m_c <= epsilon``."""
    if epsilon < 0:
        raise ValueError(f'epsilon must be >= 0, got {epsilon}')
    return channel_magnitude <= epsilon


class ActivationMagnitudeRecorder:
    """Hooks every activation module of a backbone and accumulates ``m_c``.

    Calls of one module are told apart by their index within one forward of
    the backbone (the counters reset when the backbone's forward starts).
    Use as a context manager around forward passes of the backbone::

        with ActivationMagnitudeRecorder(backbone) as recorder:
            for images in batches:          # (N, 3, H, W) each
                backbone(images)
        magnitudes = recorder.magnitudes(tau=0.1)
    """

    def __init__(self, backbone: nn.Module) -> None:
        self.backbone = backbone
        self._sums: dict[str, Tensor] = {}
        self._maxima: dict[str, Tensor] = {}
        self._images: dict[str, int] = {}
        self._handles: list = []
        self._counter = ActivationCallCounter(backbone)

    def __enter__(self) -> 'ActivationMagnitudeRecorder':
        self._handles.append(self._counter.attach())
        for name, module in activation_modules(self.backbone):
            self._handles.append(module.register_forward_hook(
                lambda m, a, out, name=name: self._record(name, out)))
        return self

    def __exit__(self, *exc_info) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    @torch.no_grad()
    def _record(self, name: str, output) -> None:
        key = f'{name}#{self._counter.next_index(name)}'
        if not isinstance(output, Tensor) or output.dim() < 2:
            return
        # (N, C, ...) -> per image and channel: mean and max |y| over the
        # positions
        magnitude = output.detach().abs().float()
        if magnitude.dim() == 2:
            magnitude = magnitude[..., None]
        per_image = magnitude.flatten(2).mean(-1)
        maximum = magnitude.transpose(0, 1).flatten(1).amax(-1)
        if key in self._sums:
            self._sums[key] += per_image.sum(0)
            self._maxima[key] = torch.maximum(self._maxima[key], maximum)
            self._images[key] += per_image.shape[0]
        else:
            self._sums[key] = per_image.sum(0)
            self._maxima[key] = maximum
            self._images[key] = per_image.shape[0]

    def magnitudes(self, tau: float, epsilon: float = DEFAULT_EPSILON
                   ) -> dict[str, ActivationMagnitude]:
        """``key -> ActivationMagnitude`` in the order of the first forward,
        with the three criteria (``tau`` relative, dead, ``epsilon``
        absolute; see the module doc)."""
        results = {}
        for key, total in self._sums.items():
            mean = total / self._images[key]
            mask = inhibited_mask(mean, tau)
            results[key] = ActivationMagnitude(
                key=key, channels=mean.numel(), images=self._images[key],
                channel_mean_magnitude=[float(v) for v in mean],
                channel_max_magnitude=[float(v) for v in self._maxima[key]],
                inhibited=int(mask.sum()), share=float(mask.float().mean()),
                dead=int(dead_mask(self._maxima[key]).sum()),
                small=int(small_mask(mean, epsilon).sum()))
        return results
