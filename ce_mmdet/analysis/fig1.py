"""The paper's Fig. 1 on the project's classifiers: measure trained pairs
(without / with CE) and draw the figure.

:data:`FIG1_MODELS` lists the eight classifiers of ``configs/fig1/`` and the
pair each belongs to. For each trained model, :func:`measure_model` runs the
inhibited-channel analysis (:func:`~.checkpoint_analysis.analyze_checkpoint`:
the relative ``tau`` criterion and the absolute dead / small ones) and the
cumulative ablation (:func:`~.checkpoint_analysis.ablate_checkpoint`: top-1
as channels are zeroed; its fraction 0 is the model's top-1 on the val
split); :func:`measure_work_dir` keeps that measurement in the model's work
dir. :func:`fig1_table` and :func:`plot_fig1` summarise them as the paper
does: (a) the norm pairs, (b) the activation pairs, inhibited share and
top-1 error; (c) the ablation curves, which :func:`ablation_table` reduces
to one number per order (the share of the above-chance top-1 kept).
"""
from __future__ import annotations

import json
import os.path as osp
from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence

from .baselines import load_published_results
from .channel_ablation import (
    DEFAULT_FRACTIONS,
    DEFAULT_SEEDS,
    ORDERS,
    AblationCurve,
)
from .checkpoint_analysis import (
    ablate_checkpoint,
    analyze_checkpoint,
    load_config,
)
from .inhibited_channels import format_percent
from .output_files import save_figure, write_json

FIG1_MODELS = {
    # name: (config stem in configs/fig1/, panel, pair)
    'BN': ('vgg_bn_shapes10', 'a', 'BN'),
    'BN+CE': ('vgg_bn-ce_shapes10', 'a', 'BN'),
    'LN': ('vgg_ln_shapes10', 'a', 'LN'),
    'LN+CE': ('vgg_ln-ce_shapes10', 'a', 'LN'),
    'ELU': ('vgg_bn_elu_shapes10', 'b', 'ELU'),
    'CE+ELU': ('vgg_bn-ce_elu_shapes10', 'b', 'ELU'),
    'LeakyReLU': ('vgg_bn_leakyrelu_shapes10', 'b', 'LeakyReLU'),
    'CE+LeakyReLU': ('vgg_bn-ce_leakyrelu_shapes10', 'b', 'LeakyReLU'),
}
"""The Fig. 1 classifiers: label -> (config, panel, pair)."""

def paper_fig1() -> dict[str, tuple[float, float]]:
    """The paper's Fig. 1(a, b): label -> (inhibited channels %, top-1
    error %), from ``configs/published_results.yml`` (``paper_fig1``)."""
    return {name: (entry['inhibited'], entry['top1_error'])
            for name, entry in load_published_results()['paper_fig1'].items()}


@dataclass
class Fig1Measurement:
    """One trained model: its shares of channels per criterion (trunk
    activations, channel-weighted), its top-1 (fraction 0 of the ablation),
    the chance top-1 of its head (100 / classes) and its ablation curves."""
    name: str
    seed: int
    config: str
    checkpoint: str
    top1: float
    inhibited: Optional[float]
    dead: Optional[float]
    small: Optional[float]
    tau: float
    epsilon: float
    chance: float
    curves: dict[str, AblationCurve] = field(default_factory=dict)

    @property
    def top1_error(self) -> float:
        return 100.0 - self.top1

    def to_dict(self) -> dict:
        data = asdict(self)
        data['curves'] = {k: v.to_dict() for k, v in self.curves.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict) -> 'Fig1Measurement':
        """The inverse of :meth:`to_dict` (a ``fig1.json`` entry; one
        written before ``chance`` was recorded takes it from its config)."""
        curves = {order: AblationCurve.from_dict(curve)
                  for order, curve in data.get('curves', {}).items()}
        data = dict(data, curves=curves)
        if 'chance' not in data:
            data['chance'] = chance_top1(load_config(data['config']))
        return cls(**data)

    def retained(self, order: str) -> Optional[float]:
        """:meth:`AblationCurve.retained` of one order above chance (None if
        the model is at chance or the order was not measured)."""
        curve = self.curves.get(order)
        return None if curve is None else curve.retained(self.chance)


def measure_model(name: str, seed: int, config: str, checkpoint: str,
                  work_dir: str, tau: float, epsilon: float,
                  analysis_images: int, ablation_images: Optional[int],
                  fractions: Sequence[float] = DEFAULT_FRACTIONS,
                  ablation_seeds: Sequence[int] = DEFAULT_SEEDS,
                  cfg_options: Optional[dict] = None) -> Fig1Measurement:
    """Inhibited channels and cumulative ablation of one trained model
    (``cfg_options`` apply to its config, e.g. another data root)."""
    analysis = analyze_checkpoint(config, checkpoint, tau,
                                  num_images=analysis_images, name=name,
                                  epsilon=epsilon, cfg_options=cfg_options)
    curves = ablate_checkpoint(config, checkpoint, work_dir,
                               num_images=ablation_images,
                               fractions=fractions, seeds=ablation_seeds,
                               cfg_options=cfg_options, name=name)
    top1 = next(iter(curves.values())).values[0][0]
    return Fig1Measurement(
        name=name, seed=seed, config=config, checkpoint=checkpoint,
        top1=top1, inhibited=analysis.inhibited['overall'],
        dead=analysis.dead['overall'], small=analysis.small['overall'],
        tau=tau, epsilon=epsilon,
        chance=chance_top1(load_config(config, cfg_options)), curves=curves)


MEASUREMENT_FILE = 'fig1_measurement.json'
"""Where :func:`measure_work_dir` keeps a model's measurement, in its work
dir, beside the checkpoint it was taken of."""


def measure_work_dir(name: str, seed: int, config: str, work_dir: str, *,
                     tau: float, epsilon: float, analysis_images: int,
                     ablation_images: Optional[int],
                     fractions: Sequence[float] = DEFAULT_FRACTIONS,
                     ablation_seeds: Sequence[int] = DEFAULT_SEEDS,
                     cfg_options: Optional[dict] = None
                     ) -> tuple[Fig1Measurement, bool]:
    """:func:`measure_model` on the checkpoint MMEngine last wrote in
    ``work_dir``, kept in ``work_dir/fig1_measurement.json``; a measurement
    kept there of the same checkpoint with the same settings is reused
    instead (``tools/fig1_demo.sh`` measures each model as soon as it is
    trained, and the report then reads them all).

    Returns:
        The measurement, and whether it was reused.

    Raises:
        FileNotFoundError: no checkpoint in ``work_dir``.
    """
    checkpoint = checkpoint_of(work_dir)
    # as JSON stores them (lists, not tuples), so that they compare equal
    settings = json.loads(json.dumps(dict(
        config=config, checkpoint=checkpoint, tau=tau, epsilon=epsilon,
        analysis_images=analysis_images, ablation_images=ablation_images,
        fractions=list(fractions), ablation_seeds=list(ablation_seeds),
        cfg_options=cfg_options)))
    path = osp.join(work_dir, MEASUREMENT_FILE)
    try:
        with open(path, encoding='utf-8') as f:
            kept = json.load(f)
        if kept['settings'] == settings:
            return Fig1Measurement.from_dict(kept['measurement']), True
    except (OSError, ValueError, KeyError, TypeError):
        pass  # none kept, or not one of ours: measure
    result = measure_model(
        name, seed, config, checkpoint, osp.join(work_dir, 'ablation'), tau,
        epsilon, analysis_images, ablation_images, fractions=fractions,
        ablation_seeds=ablation_seeds, cfg_options=cfg_options)
    write_json(path, dict(settings=settings, measurement=result.to_dict()))
    return result, False


def chance_top1(cfg) -> float:
    """Top-1 (%) of a classifier that guesses: 100 / its head's classes."""
    num_classes = cfg.model.get('head', {}).get('num_classes')
    if not num_classes:
        raise ValueError('the config has no model.head.num_classes: not a '
                         'classifier of configs/fig1/')
    return 100.0 / num_classes


def _mean(values: list[Optional[float]]) -> Optional[float]:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def by_model(results: list[Fig1Measurement]) -> dict[str, list]:
    """Results grouped by model label, in :data:`FIG1_MODELS` order."""
    groups: dict[str, list] = {}
    for name in list(FIG1_MODELS) + [r.name for r in results]:
        members = [r for r in results if r.name == name]
        if members and name not in groups:
            groups[name] = members
    return groups


def fig1_table(results: list[Fig1Measurement]) -> str:
    """Markdown: per model (mean over its seeds, and each seed), top-1
    error and the share of channels per criterion, beside the paper's."""
    if not results:
        return ''
    tau, epsilon = results[0].tau, results[0].epsilon
    lines = ['| model | seeds | top-1 error (%) | inhibited (tau='
             f'{tau:g}) | dead (zero on every input) | small (m <= '
             f'{epsilon:g}) | paper: inhibited / error |',
             '|---|---|---|---|---|---|---|']
    published = paper_fig1()
    for name, members in by_model(results).items():
        paper = published.get(name)
        per_seed = ', '.join(
            f'{100 - r.top1:.1f}' for r in members) if len(members) > 1 else ''
        lines.append(
            f'| {name} | {", ".join(str(r.seed) for r in members)} | '
            f'{_mean([r.top1_error for r in members]):.1f}'
            + (f' ({per_seed})' if per_seed else '') + ' | '
            + ' | '.join(format_percent(_mean([getattr(r, c)
                                               for r in members]))
                         for c in ('inhibited', 'dead', 'small'))
            + f' | {f"{paper[0]:.1f}% / {paper[1]:.1f}" if paper else "-"} |')
    return '\n'.join(lines)


def ablation_table(results: list[Fig1Measurement]) -> str:
    """Markdown: per model (mean over its seeds), the share of the
    above-chance top-1 kept under cumulative ablation
    (:meth:`AblationCurve.retained`) in each order. A network that spreads
    its information over its channels keeps more in the random order; one
    whose smallest channels carry nothing keeps more smallest-first."""
    if not results:
        return ''
    lines = ['| model | seeds | top-1 kept, random order | top-1 kept, '
             'smallest first |', '|---|---|---|---|']
    for name, members in by_model(results).items():
        cells = []
        for order in ORDERS:
            kept = _mean([r.retained(order) for r in members])
            cells.append('-' if kept is None else f'{kept:.3f}')
        lines.append(f'| {name} | {", ".join(str(r.seed) for r in members)} '
                     f'| {" | ".join(cells)} |')
    return '\n'.join(lines)


def plot_fig1(results: list[Fig1Measurement], path: str) -> str:
    """Three panels as the paper's Fig. 1: (a) norm pairs and (b)
    activation pairs, bars of the three criteria with the top-1 error on
    top; (c) the random-order ablation curves (mean over seeds and models
    of one label) and the smallest-first ones dashed."""
    import numpy as np
    from matplotlib.figure import Figure

    groups = by_model(results)
    figure = Figure(figsize=(16, 5))
    axes = figure.subplots(1, 3)
    criteria = (('inhibited', f'inhibited (tau={results[0].tau:g})'),
                ('dead', 'dead (zero everywhere)'),
                ('small', f'small (m <= {results[0].epsilon:g})'))
    for axis, panel, title in ((axes[0], 'a', '(a) norm layers'),
                               (axes[1], 'b', '(b) activations')):
        names = [n for n in groups
                 if FIG1_MODELS.get(n, ('', 'a'))[1] == panel]
        positions = np.arange(len(names))
        width = 0.8 / len(criteria)
        tallest = np.zeros(len(names))
        for index, (key, label) in enumerate(criteria):
            heights = [100 * (_mean([getattr(r, key) for r in groups[n]])
                              or 0.0) for n in names]
            tallest = np.maximum(tallest, heights)
            axis.bar(positions + (index - 1) * width, heights, width,
                     label=label)
        for position, name, top in zip(positions, names, tallest):
            error = _mean([r.top1_error for r in groups[name]])
            axis.annotate(f'top-1 error\n{error:.1f}%', (position, top + 2),
                          ha='center', va='bottom', fontsize=8)
        axis.set_xticks(positions)
        axis.set_xticklabels(names, fontsize=8)
        axis.set_ylim(0, 120)
        axis.set_ylabel('channels (%)')
        axis.set_title(title)
        axis.grid(True, axis='y', alpha=0.3)
        axis.legend(fontsize=7, loc='upper left')
    axis = axes[2]
    for index, (name, members) in enumerate(groups.items()):
        colour = f'C{index % 10}'
        for order, style in (('random', '-'), ('magnitude', '--')):
            curves = [r.curves[order] for r in members if order in r.curves]
            if not curves:
                continue
            mean = np.mean([c.mean for c in curves], axis=0)
            axis.plot(curves[0].fractions, mean, style, color=colour,
                      label=name if order == 'random' else None)
    axis.set_xlabel('fraction of channels zeroed per layer')
    axis.set_ylabel('top-1 accuracy (%)')
    axis.set_title('(c) cumulative ablation (solid: random order, dashed: '
                   'smallest first)', fontsize=9)
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    return save_figure(figure, path)


def load_fig1_json(path: str) -> list[Fig1Measurement]:
    """The measurements of a ``fig1.json`` (``fig1_report.py``'s output).

    Raises:
        ValueError: the file cannot be read or is not such a file.
    """
    try:
        with open(path, encoding='utf-8') as f:
            return [Fig1Measurement.from_dict(entry)
                    for entry in json.load(f)['models']]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f'{path}: not a fig1.json written by fig1_report.py '
                         f'({type(error).__name__}: {error})') from error


def checkpoint_of(work_dir: str) -> str:
    """The checkpoint MMEngine last wrote in ``work_dir``
    (``last_checkpoint``)."""
    pointer = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(pointer):
        raise FileNotFoundError(
            f'{work_dir}: no last_checkpoint (was the model trained? '
            'tools/fig1_demo.sh trains it)')
    with open(pointer, encoding='utf-8') as f:
        return f.read().strip()
