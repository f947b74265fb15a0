"""The whole inhibited-channel analysis of one backbone, and its summaries.

:func:`analyze_backbone` combines the three measures of
:mod:`ce_mmdet.analysis`:

* ``beta <= 0`` shares of the norm layers (:mod:`.beta_signs`), for all of
  them and for those feeding an activation (:mod:`.model_structure`);
* inhibited channels after every activation call
  (:mod:`.activation_magnitudes`), per call, block, stage and overall (trunk
  activations only), by the relative criterion (``tau``) and the two
  absolute ones (dead: zero on every input; small: mean magnitude at most
  ``epsilon``);
* CE's gate and IR weight spread (:mod:`.ce_gates`).

The result, :class:`ModelAnalysis`, is plain data: ``dataclasses.asdict``
gives the JSON written by ``tools/analysis_tools/inhibited_channels.py``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterable, Optional

import torch
from torch import Tensor, nn

from .activation_magnitudes import (
    CRITERIA,
    DEFAULT_EPSILON,
    ActivationMagnitudeRecorder,
)
from .beta_signs import NormLayerBeta, norm_layer_betas, pooled_share
from .ce_gates import CELayerStatistics, CEStatisticsRecorder
from .model_structure import check_readable, trace_activation_calls


@dataclass
class ActivationCallResult:
    """Inhibited channels after one activation call (see
    :class:`~ce_mmdet.analysis.model_structure.ActivationCall`)."""
    key: str
    stage: str
    block: str
    trunk: bool
    fed_by: list[str]
    channels: int
    inhibited: int
    share: float
    channel_mean_magnitude: list[float] = field(repr=False)
    dead: int = 0
    small: int = 0


@dataclass
class ModelAnalysis:
    """Everything measured on one model.

    ``beta_nonpositive`` and ``inhibited`` hold the channel-weighted shares
    ``{'overall': float or None, 'by_stage': {stage: float}, ...}``;
    ``inhibited['by_block']`` likewise per block; ``dead`` and ``small``
    the same for the absolute criteria.
    """
    name: str
    backbone: str
    tau: float
    images: int
    norm_layers: list[NormLayerBeta]
    activations: list[ActivationCallResult]
    ce_layers: list[CELayerStatistics]
    beta_nonpositive: dict
    beta_nonpositive_feeding: dict
    inhibited: dict
    dead: dict = field(default_factory=dict)
    small: dict = field(default_factory=dict)
    epsilon: float = DEFAULT_EPSILON
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def analyze_backbone(backbone: nn.Module, images: Iterable[Tensor],
                     tau: float, name: str = 'model',
                     meta: Optional[dict] = None,
                     epsilon: float = DEFAULT_EPSILON) -> ModelAnalysis:
    """Run the analysis of one backbone on preprocessed images.

    Args:
        backbone: in eval mode (call ``model.eval()`` first).
        images: preprocessed batches (N, 3, H, W); the first also serves
            for the structural trace.
        tau: relative threshold of inhibited channels.
        name: the model's label in tables and plots.
        meta: extra JSON-able facts to keep (config, checkpoint...).
        epsilon: absolute threshold of the *small* criterion.

    Raises:
        UnreadableModelError: no norm layer or no activation module.
        ValueError: no image, or tau < 0, or epsilon < 0.
    """
    if tau < 0:
        raise ValueError(f'tau must be >= 0, got {tau}')
    if epsilon < 0:
        raise ValueError(f'epsilon must be >= 0, got {epsilon}')
    check_readable(backbone)
    iterator = iter(images)
    first = next(iterator, None)
    if first is None:
        raise ValueError('no image to run the backbone on')
    calls = trace_activation_calls(backbone, first)
    feeding = {norm for call in calls for norm in call.fed_by}
    norms = norm_layer_betas(backbone, feeding)

    count = 0
    with ActivationMagnitudeRecorder(backbone) as activations, \
            CEStatisticsRecorder(backbone) as ce_recorder:
        for batch in _chain(first, iterator):
            backbone(batch)
            count += batch.shape[0]
    magnitudes = activations.magnitudes(tau, epsilon)
    results = []
    for call in calls:
        measured = magnitudes.get(call.key)
        if measured is None:
            continue  # a non-tensor output
        results.append(ActivationCallResult(
            key=call.key, stage=call.stage, block=call.block,
            trunk=call.trunk, fed_by=call.fed_by,
            channels=measured.channels, inhibited=measured.inhibited,
            share=measured.share,
            channel_mean_magnitude=measured.channel_mean_magnitude,
            dead=measured.dead, small=measured.small))
    return ModelAnalysis(
        name=name, backbone=type(backbone).__name__, tau=tau, images=count,
        norm_layers=norms, activations=results,
        ce_layers=ce_recorder.statistics(),
        beta_nonpositive=pooled_share(norms),
        beta_nonpositive_feeding=pooled_share(
            [n for n in norms if n.feeds_activation]),
        inhibited=pooled_inhibited_share(results),
        dead=pooled_inhibited_share(results, 'dead'),
        small=pooled_inhibited_share(results, 'small'),
        epsilon=epsilon, meta=dict(meta or {}))


def pooled_inhibited_share(results: list[ActivationCallResult],
                           criterion: str = 'inhibited') -> dict:
    """Channel-weighted shares of the trunk activation calls' channels that
    meet ``criterion`` (one of :data:`CRITERIA`).

    Returns:
        ``{'overall', 'by_stage', 'by_block', 'channels'}``; the overall
        share is None when no trunk activation was measured.
    """
    if criterion not in CRITERIA:
        raise ValueError(f'criterion must be one of {CRITERIA}, got '
                         f'{criterion!r}')
    trunk = [r for r in results if r.trunk]

    def pool(key) -> dict:
        groups: dict[str, list[int]] = {}
        for result in trunk:
            counts = groups.setdefault(key(result), [0, 0])
            counts[0] += getattr(result, criterion)
            counts[1] += result.channels
        return {group: n / c for group, (n, c) in groups.items()}

    total = sum(r.channels for r in trunk)
    met = sum(getattr(r, criterion) for r in trunk)
    return dict(
        overall=(met / total if total else None),
        by_stage=pool(lambda r: r.stage),
        by_block=pool(lambda r: r.block),
        channels=total)


def format_percent(value: Optional[float]) -> str:
    return 'n/a' if value is None else f'{100 * value:.1f}%'


def summary_table(analyses: list[ModelAnalysis]) -> str:
    """A Markdown table: one row per model, the overall shares and, per
    stage, inhibited channels."""
    stages: list[str] = []
    for analysis in analyses:
        for stage in analysis.inhibited['by_stage']:
            if stage not in stages:
                stages.append(stage)
    header = ['model', 'beta<=0 (feeding act.)', 'beta<=0 (all norms)',
              f'inhibited (tau={analyses[0].tau:g})' if analyses else
              'inhibited', 'dead (zero on every input)',
              f'small (m <= {analyses[0].epsilon:g})' if analyses else
              'small'] + [f'inhibited {s}' for s in stages] + [
                  'CE gate lambda (mean)']
    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '---|' * len(header)]
    for analysis in analyses:
        gates = [layer.gate for layer in analysis.ce_layers]
        row = [
            analysis.name,
            format_percent(analysis.beta_nonpositive_feeding['overall']),
            format_percent(analysis.beta_nonpositive['overall']),
            format_percent(analysis.inhibited['overall']),
            format_percent(analysis.dead.get('overall')),
            format_percent(analysis.small.get('overall')),
        ] + [
            format_percent(analysis.inhibited['by_stage'].get(s))
            for s in stages
        ] + [f'{sum(gates) / len(gates):.3f}' if gates else '-']
        lines.append('| ' + ' | '.join(row) + ' |')
    return '\n'.join(lines) + '\n\n' + beta_by_stage_table(analyses)


def beta_by_stage_table(analyses: list[ModelAnalysis]) -> str:
    """Markdown: per model and stage, the share of beta <= 0 of the norm
    layers feeding an activation / of all norm layers."""
    stages: list[str] = []
    for analysis in analyses:
        for stage in analysis.beta_nonpositive['by_stage']:
            if stage not in stages:
                stages.append(stage)
    lines = ['| beta<=0 by stage (feeding / all) | ' + ' | '.join(stages)
             + ' |', '|---|' + '---|' * len(stages)]
    for analysis in analyses:
        feeding = analysis.beta_nonpositive_feeding['by_stage']
        every = analysis.beta_nonpositive['by_stage']
        cells = [f'{format_percent(feeding.get(s))} / '
                 f'{format_percent(every.get(s))}' for s in stages]
        lines.append(f'| {analysis.name} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def layer_table(analysis: ModelAnalysis) -> str:
    """Per-layer detail of one model as Markdown: norm layers, activation
    calls and CE layers."""
    lines = [f'### {analysis.name}: norm layers', '',
             '| norm layer | type | C | beta<=0 | feeds an activation | '
             'beta trains |',
             '|---|---|---|---|---|---|']
    for n in analysis.norm_layers:
        lines.append(f'| {n.name} | {n.type} | {n.channels} | '
                     f'{format_percent(n.share)} | '
                     f'{"yes" if n.feeds_activation else "no"} | '
                     f'{"yes" if n.trainable else "no (frozen)"} |')
    lines += ['', f'### {analysis.name}: activation calls '
              f'(tau={analysis.tau:g}, {analysis.images} images)', '',
              '| activation call | block | trunk | C | inhibited | dead | '
              'small | fed by |',
              '|---|---|---|---|---|---|---|---|']
    for a in analysis.activations:
        lines.append(f'| {a.key} | {a.block} | {"yes" if a.trunk else "no"} '
                     f'| {a.channels} | {format_percent(a.share)} | '
                     f'{format_percent(a.dead / a.channels)} | '
                     f'{format_percent(a.small / a.channels)} | '
                     f'{", ".join(a.fed_by) or "-"} |')
    if analysis.ce_layers:
        lines += ['', f'### {analysis.name}: CE layers', '',
                  '| CE layer | C | gate lambda | IR weight mean | '
                  'IR spread (std over C) | IR min | IR max |',
                  '|---|---|---|---|---|---|---|']
        for c in analysis.ce_layers:
            lines.append(
                f'| {c.name} | {c.channels} | {c.gate:.3f} | '
                f'{c.ir_weight_mean:.3f} | {c.ir_weight_spread:.3f} | '
                f'{c.ir_weight_min:.3f} | {c.ir_weight_max:.3f} |')
    return '\n'.join(lines)


def _chain(first: Tensor, rest) -> Iterable[Tensor]:
    yield first
    yield from rest
