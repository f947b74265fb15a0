"""Cumulative channel ablation: how much a network relies on its channels.

The method of Morcos et al., "On the importance of single directions for
generalization" (ICLR 2018), which the paper's Fig. 1(c) uses: zero a growing
fraction ``f`` (0 to 0.9) of the channels at the outputs of chosen layers and
record the network's score (top-1 of a classifier, AP of a detector) at each
``f``. A network whose information is spread over many channels degrades
slowly; one that relies on a few loses its score fast. Dead channels are
free to drop: zeroing a channel that is already zero changes nothing.

Layers are activation calls (:class:`~.model_structure.ActivationCall`,
e.g. ``layer1.0.relu#1``): by default every trunk activation of the
backbone. At fraction ``f`` each chosen layer of C channels loses the first
``round(f * C)`` channels of its order:

* ``'random'``: a random permutation per layer, drawn per seed
  (``torch.Generator`` seeded with the seed, layers in call order); the curve
  is the mean over seeds, with their minimum and maximum;
* ``'magnitude'``: smallest mean magnitude first (``m_c`` of
  :mod:`.activation_magnitudes`, measured during the evaluation with nothing
  dropped); the inhibited channels go first.

:func:`cumulative_ablation` takes any ``evaluate()`` callable;
:func:`ablate_checkpoint` builds one from a config and checkpoint with
MMEngine's Runner (its test loop and evaluator: ``tools/test.py``'s
numbers), for every backbone of the project and the classifiers of
``configs/pretrain/`` and ``configs/fig1/``.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Optional, Sequence

import torch
from torch import Tensor, nn

from .activation_magnitudes import ActivationMagnitudeRecorder
from .model_structure import (
    ActivationCallCounter,
    activation_modules,
    trace_activation_calls,
)

DEFAULT_FRACTIONS = tuple(round(0.1 * i, 1) for i in range(10))
"""0, 0.1, ..., 0.9: the x axis of the paper's Fig. 1(c)."""
DEFAULT_SEEDS = (0, 1, 2)
ORDERS = ('random', 'magnitude')


@dataclass
class AblationCurve:
    """Scores of one model as channels are dropped in one order.

    Attributes:
        name: the model's label.
        order: ``'random'`` or ``'magnitude'``.
        metric: what ``values`` are (e.g. ``'accuracy/top1'``).
        fractions: the fractions dropped per layer.
        values: one row per seed (``'random'``) or one row
            (``'magnitude'``), one value per fraction.
        seeds: the seeds of the rows (``[]`` for ``'magnitude'``).
        layers: the activation calls ablated.
    """
    name: str
    order: str
    metric: str
    fractions: list[float]
    values: list[list[float]]
    seeds: list[int] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)

    @property
    def mean(self) -> list[float]:
        return [sum(column) / len(column) for column in zip(*self.values)]

    @property
    def lowest(self) -> list[float]:
        return [min(column) for column in zip(*self.values)]

    @property
    def highest(self) -> list[float]:
        return [max(column) for column in zip(*self.values)]

    def retained(self, floor: float = 0.0) -> Optional[float]:
        """How much of the score above ``floor`` survives the ablation, on
        average over the fractions: the area under the mean curve of
        ``(score(f) - floor) / (score(0) - floor)`` (trapezoids), divided by
        the span of the fractions. 1: no loss; 0: at the floor at once.

        Args:
            floor: the score of a network that learned nothing (a
                classifier's chance top-1, 100 / classes; 0 for AP).

        Returns:
            The share, or None if the unablated score is not above
            ``floor`` (nothing to lose).

        Raises:
            ValueError: the curve does not start at fraction 0 or has a
                single fraction.
        """
        if len(self.fractions) < 2 or self.fractions[0] != 0.0:
            raise ValueError(
                f'{self.name} ({self.order}): the retained share needs the '
                f'fractions to start at 0 and span an interval, got '
                f'{self.fractions}')
        mean = self.mean
        if mean[0] <= floor:
            return None
        kept = [(value - floor) / (mean[0] - floor) for value in mean]
        area = sum((right - left) * (a + b) / 2 for left, right, a, b in zip(
            self.fractions, self.fractions[1:], kept, kept[1:]))
        return area / (self.fractions[-1] - self.fractions[0])

    def to_dict(self) -> dict:
        return dict(asdict(self), mean=self.mean)

    @classmethod
    def from_dict(cls, data: dict) -> 'AblationCurve':
        """The inverse of :meth:`to_dict` (its derived ``mean`` dropped)."""
        return cls(**{key: value for key, value in data.items()
                      if key != 'mean'})


class ChannelAblation:
    """Zeroes chosen channels at the outputs of a backbone's activation calls.

    A context manager: forward hooks on every activation module (calls told
    apart as in :class:`~.activation_magnitudes.ActivationMagnitudeRecorder`)
    multiply the output of each call in :attr:`dropped` by its keep mask::

        with ChannelAblation(backbone) as ablation:
            ablation.dropped = {
                'layer1.0.relu#1': mask}  # bool (C,), True: zero
            backbone(images)
    """

    def __init__(self, backbone: nn.Module) -> None:
        self.backbone = backbone
        self.dropped: dict[str, Tensor] = {}
        self.seen: set[str] = set()
        self._counter = ActivationCallCounter(backbone)
        self._handles: list = []

    def __enter__(self) -> 'ChannelAblation':
        self._handles.append(self._counter.attach())
        for name, module in activation_modules(self.backbone):
            self._handles.append(module.register_forward_hook(
                lambda m, a, out, name=name: self._ablate(name, out)))
        return self

    def __exit__(self, *exc_info) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _ablate(self, name: str, output) -> Optional[Tensor]:
        key = f'{name}#{self._counter.next_index(name)}'
        self.seen.add(key)
        mask = self.dropped.get(key)
        if mask is None or not isinstance(output, Tensor):
            return None
        if output.dim() < 2 or output.shape[1] != mask.numel():
            raise ValueError(
                f'{key}: a mask of {mask.numel()} channels for an output of '
                f'shape {tuple(output.shape)}')
        keep = (~mask).to(device=output.device, dtype=output.dtype)
        return output * keep.view(1, -1, *([1] * (output.dim() - 2)))


def drop_masks(orders: dict[str, Tensor],
               fraction: float) -> dict[str, Tensor]:
    """Per layer, a bool mask (C,) of the first ``round(fraction * C)``
    channels of its order (a permutation of ``range(C)``)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f'fraction must be in [0, 1], got {fraction}')
    masks = {}
    for key, order in orders.items():
        mask = torch.zeros(order.numel(), dtype=torch.bool)
        mask[order[:round(fraction * order.numel())]] = True
        masks[key] = mask
    return masks


def random_orders(channels: dict[str, int], seed: int) -> dict[str, Tensor]:
    """A random permutation of each layer's channels; layers in the given
    order share one generator seeded with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return {key: torch.randperm(count, generator=generator)
            for key, count in channels.items()}


def magnitude_orders(magnitudes: dict[str, Tensor]) -> dict[str, Tensor]:
    """Each layer's channels by ascending mean magnitude (ties by index)."""
    return {key: torch.sort(values, stable=True).indices
            for key, values in magnitudes.items()}


def trunk_calls(backbone: nn.Module, example_input: Tensor) -> list[str]:
    """Keys of the backbone's trunk activation calls, in call order."""
    return [call.key for call in trace_activation_calls(backbone,
                                                        example_input)
            if call.trunk]


def cumulative_ablation(backbone: nn.Module,
                        evaluate: Callable[[], float],
                        layers: Sequence[str],
                        fractions: Sequence[float] = DEFAULT_FRACTIONS,
                        seeds: Sequence[int] = DEFAULT_SEEDS,
                        orders: Iterable[str] = ORDERS,
                        name: str = 'model',
                        metric: str = 'score') -> dict[str, AblationCurve]:
    """Score ``evaluate()`` as a growing fraction of channels is zeroed.

    Args:
        backbone: the module whose activation calls are ablated (in eval
            mode); ``evaluate`` must run it.
        evaluate: runs the whole evaluation, returns the score.
        layers: activation-call keys to ablate (e.g. :func:`trunk_calls`).
        fractions: in [0, 1], increasing; 0 is evaluated once and shared.
        seeds: of the random orders.
        orders: any of :data:`ORDERS`.
        name, metric: labels of the curves.

    Returns:
        ``{order: AblationCurve}``.

    Raises:
        ValueError: an unknown order, a fraction outside [0, 1], no layer,
            or a layer the evaluation never runs.
    """
    orders = list(orders)
    unknown = [o for o in orders if o not in ORDERS]
    if unknown or not orders:
        raise ValueError(f'orders must be among {ORDERS}, got {orders}')
    fractions = [float(f) for f in fractions]
    if not fractions or any(not 0.0 <= f <= 1.0 for f in fractions):
        raise ValueError(f'fractions must be in [0, 1], got {fractions}')
    if not layers:
        raise ValueError('no layer to ablate')
    if 'random' in orders and not seeds:
        raise ValueError('the random order needs at least one seed')

    with ChannelAblation(backbone) as ablation, \
            ActivationMagnitudeRecorder(backbone) as recorder:
        baseline = float(evaluate())
    missing = [key for key in layers if key not in ablation.seen]
    if missing:
        raise ValueError(
            f'layers never called in the evaluation: {missing[:6]}; known: '
            f'{sorted(ablation.seen)[:12]}...')
    measured = recorder.magnitudes(tau=0.0)
    magnitudes = {key: torch.tensor(measured[key].channel_mean_magnitude)
                  for key in layers}
    channels = {key: values.numel() for key, values in magnitudes.items()}

    def curve(order: dict[str, Tensor]) -> list[float]:
        values = []
        with ChannelAblation(backbone) as ablation:
            for fraction in fractions:
                if fraction == 0.0:
                    values.append(baseline)
                    continue
                ablation.dropped = drop_masks(order, fraction)
                values.append(float(evaluate()))
        return values

    results = {}
    for order_name in orders:
        if order_name == 'magnitude':
            rows, used_seeds = [curve(magnitude_orders(magnitudes))], []
        else:
            rows = [curve(random_orders(channels, seed)) for seed in seeds]
            used_seeds = list(seeds)
        results[order_name] = AblationCurve(
            name=name, order=order_name, metric=metric, fractions=fractions,
            values=rows, seeds=used_seeds, layers=list(layers))
    return results


def select_layers(keys: Sequence[str], pattern: Optional[str]) -> list[str]:
    """The keys matching the regular expression ``pattern`` (all when
    None)."""
    if pattern is None:
        return list(keys)
    try:
        regex = re.compile(pattern)
    except re.error as error:
        raise ValueError(f'--layers {pattern!r} is not a regular expression: '
                         f'{error}') from error
    chosen = [key for key in keys if regex.search(key)]
    if not chosen:
        raise ValueError(f'--layers {pattern!r} matches none of the '
                         f'activation calls {list(keys)[:12]}...')
    return chosen
