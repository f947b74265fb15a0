"""PNG plots of inhibited-channel analyses (per-layer bars, one colour per
model) and of cumulative ablation curves.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot, no GUI
backend: the Agg canvas renders them) and written atomically.
"""
from __future__ import annotations

from typing import Callable, Optional

from .channel_ablation import AblationCurve
from .inhibited_channels import ModelAnalysis, format_percent
from .output_files import save_figure


def _figure(width: float, height: float, rows: int = 1):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    axes = figure.subplots(rows, 1, squeeze=False)[:, 0]
    return figure, axes


def _ordered_union(lists: list[list[str]]) -> list[str]:
    seen: dict[str, None] = {}
    for names in lists:
        for name in names:
            seen.setdefault(name, None)
    return list(seen)


def _grouped_bars(axis, labels: list[str], series: list[tuple[str, dict]],
                  ylabel: str, title: str) -> None:
    """Bars of ``{label: value}`` per series, side by side per label."""
    import numpy as np

    positions = np.arange(len(labels))
    width = 0.8 / max(len(series), 1)
    for index, (legend, values) in enumerate(series):
        heights = [values.get(label, np.nan) for label in labels]
        axis.bar(positions + (index - (len(series) - 1) / 2) * width,
                 heights, width, label=legend)
    axis.set_xticks(positions)
    axis.set_xticklabels(labels, rotation=90, fontsize=7)
    axis.set_xlim(-0.6, len(labels) - 0.4)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.grid(True, axis='y', alpha=0.3)
    axis.legend(fontsize=8, loc='upper left', bbox_to_anchor=(1.01, 1))


def _width(num_labels: int) -> float:
    return min(max(8.0, 0.28 * num_labels + 4), 40.0)


def plot_beta_shares(analyses: list[ModelAnalysis], path: str) -> str:
    """Share of ``beta <= 0`` per norm layer; legend: the overall shares
    (norm layers feeding an activation / all)."""
    labels = _ordered_union([[n.name for n in a.norm_layers]
                             for a in analyses])
    series = [
        (f'{a.name}: feeding '
         f'{format_percent(a.beta_nonpositive_feeding["overall"])}'
         f', all {format_percent(a.beta_nonpositive["overall"])}',
         {n.name: 100 * n.share for n in a.norm_layers})
        for a in analyses
    ]
    figure, (axis, ) = _figure(_width(len(labels)), 5.5)
    _grouped_bars(axis, labels, series, 'channels with beta <= 0 (%)',
                  'Norm layers: share of channels with beta <= 0')
    axis.axhline(50, color='grey', linewidth=0.8, linestyle='--')
    figure.tight_layout()
    return save_figure(figure, path)


def plot_inhibited_shares(analyses: list[ModelAnalysis], path: str) -> str:
    """Share of inhibited channels per trunk activation call; legend: the
    overall share."""
    labels = _ordered_union([[r.key for r in a.activations if r.trunk]
                             for a in analyses])
    tau = analyses[0].tau if analyses else 0
    series = [(f'{a.name}: {format_percent(a.inhibited["overall"])}',
               {r.key: 100 * r.share for r in a.activations if r.trunk})
              for a in analyses]
    figure, (axis, ) = _figure(_width(len(labels)), 5.5)
    _grouped_bars(
        axis, labels, series, 'inhibited channels (%)',
        f'Inhibited channels after each activation call (mean |y| <= '
        f'{tau:g} x layer mean, {analyses[0].images if analyses else 0} '
        'images)')
    figure.tight_layout()
    return save_figure(figure, path)


def plot_ce_layers(analyses: list[ModelAnalysis], path: str) -> Optional[str]:
    """CE gate lambda and IR weight spread per CE layer; None when no model
    has CE layers."""
    with_ce = [a for a in analyses if a.ce_layers]
    if not with_ce:
        return None
    labels = _ordered_union([[c.name for c in a.ce_layers] for a in with_ce])
    figure, (gate_axis, spread_axis) = _figure(_width(len(labels)), 8, rows=2)

    def series(value: Callable, summary: Callable) -> list:
        return [(f'{a.name}: {summary(a)}',
                 {c.name: value(c) for c in a.ce_layers}) for a in with_ce]

    _grouped_bars(
        gate_axis, labels,
        series(lambda c: c.gate, lambda a: 'mean {:.3f}'.format(
            sum(c.gate for c in a.ce_layers) / len(a.ce_layers))),
        'lambda = sigmoid(w)', 'CE gate: weight of batch decorrelation')
    _grouped_bars(
        spread_axis, labels,
        series(lambda c: c.ir_weight_spread, lambda a: 'mean {:.3f}'.format(
            sum(c.ir_weight_spread for c in a.ce_layers) /
            len(a.ce_layers))),
        'std of IR weights over channels',
        'Instance reweighting: spread of its weights a (mean over images)')
    figure.tight_layout()
    return save_figure(figure, path)


def plot_ablation_curves(curves: list[AblationCurve], path: str,
                         title: Optional[str] = None) -> str:
    """Score against the fraction of channels dropped, one colour per model:
    the random order's mean over seeds (solid, its min-max shaded) and the
    smallest-magnitude-first order (dashed), as in the paper's Fig. 1(c)."""
    figure, (axis, ) = _figure(7.5, 5)
    colours: dict[str, str] = {}
    for curve in curves:
        colour = colours.setdefault(curve.name, f'C{len(colours) % 10}')
        if curve.order == 'random':
            axis.plot(curve.fractions, curve.mean, '-o', color=colour,
                      markersize=3,
                      label=f'{curve.name}: random ({len(curve.seeds)} '
                      'seeds)')
            if len(curve.values) > 1:
                axis.fill_between(curve.fractions, curve.lowest,
                                  curve.highest, color=colour, alpha=0.2)
        else:
            axis.plot(curve.fractions, curve.mean, '--s', color=colour,
                      markersize=3,
                      label=f'{curve.name}: smallest magnitude first')
    metrics = sorted({curve.metric for curve in curves})
    axis.set_xlabel('fraction of channels zeroed in every ablated layer')
    axis.set_ylabel(', '.join(metrics))
    axis.set_title(title or 'Cumulative ablation')
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)
