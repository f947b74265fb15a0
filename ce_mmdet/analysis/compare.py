"""Compare blocks on the shapes set: train, evaluate and analyse each variant.

The library side of ``tools/analysis_tools/compare_blocks.py`` (and of
``bash tools/run_demo.sh compare ...``). A *variant* names a config of
``configs/shapes/``: ``plain`` is ``mask_rcnn_r18_fpn_shapes.py``, any other
name ``X`` is ``mask_rcnn_X_r18_fpn_shapes.py`` (``ce``, ``se``,
``ge-minus``, ``ge-plus``, ``deconv``, ``proprelu``...); the variants
available are the configs present. For each variant, one after another:

1. train with ``tools/train.py`` (a subprocess: MMDetection's own script),
2. evaluate the last checkpoint with ``tools/test.py`` (COCO bbox and segm
   AP on the val split),
3. run the inhibited-channel analysis on its backbone
   (:func:`~ce_mmdet.analysis.checkpoint_analysis.analyze_checkpoint`),
4. count parameters and backbone FLOPs
   (:func:`~ce_mmdet.analysis.checkpoint_analysis.detector_cost`) and read the
   seconds per training iteration from the training log.

Then one summary: ``summary.md`` (Markdown table), ``summary.json``,
``summary.png`` (AP and inhibited ratios side by side) and the analysis
report of all variants together under ``inhibited_channels/``.
"""
from __future__ import annotations

import glob
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

from mmengine.config import Config

from ..utils import package_resource
from .checkpoint_analysis import (
    analyze_checkpoint,
    detector_cost,
    write_report,
)
from .inhibited_channels import ModelAnalysis, format_percent
from .output_files import save_figure, write_json, write_text
from .results_collector import collect_run

SHAPES_CONFIGS = 'configs/shapes'
"""The variants' configs, in what ce_mmdet ships (installed or checked out:
:func:`~ce_mmdet.utils.package_resource`)."""
PLAIN_VARIANT = 'plain'
DEFAULT_VARIANTS = ('ce', 'plain')

NO_VALIDATION = 1_000_000
"""``train_cfg.val_begin`` that skips validation during training."""

ASSUMED_SECONDS_PER_ITER = 0.4
"""Up-front guess of one training iteration of the shapes configs on 2 CPU
cores (CE-ResNet-18 measured 0.36-0.38 s at 160x160, 8 images), used for
the first estimate until a variant has run; later estimates use the measured
time of the variants done."""
ASSUMED_OVERHEAD_SECONDS = 60
"""Up-front guess per variant of what is not training: start-up, the
evaluation by tools/test.py (and the validation at the end of training),
the analysis."""



class UnknownVariantError(ValueError):
    """A variant with no config."""


@dataclass
class VariantResult:
    """What the comparison measured for one variant."""
    variant: str
    config: str
    checkpoint: str
    metrics: dict[str, float]
    inhibited: Optional[float]
    beta_nonpositive_feeding: Optional[float]
    beta_nonpositive: Optional[float]
    params: int
    backbone_flops: int
    seconds_per_iter: Optional[float]
    wall_seconds: float
    logs: dict[str, str] = field(default_factory=dict)


def shapes_config_dir() -> str:
    """``configs/shapes`` of the installed or checked-out ce_mmdet."""
    return package_resource(SHAPES_CONFIGS)


def config_for(variant: str, config_dir: Optional[str] = None) -> str:
    """The config file of a variant (which need not exist) in
    ``config_dir`` (default: :func:`shapes_config_dir`)."""
    config_dir = config_dir or shapes_config_dir()
    if variant == PLAIN_VARIANT:
        return osp.join(config_dir, 'mask_rcnn_r18_fpn_shapes.py')
    return osp.join(config_dir, f'mask_rcnn_{variant}_r18_fpn_shapes.py')


def available_variants(config_dir: Optional[str] = None) -> list[str]:
    """Variants whose config exists in ``config_dir``, ``plain`` first."""
    config_dir = config_dir or shapes_config_dir()
    found = []
    if osp.isfile(config_for(PLAIN_VARIANT, config_dir)):
        found.append(PLAIN_VARIANT)
    prefix, suffix = 'mask_rcnn_', '_r18_fpn_shapes.py'
    for path in sorted(glob.glob(osp.join(config_dir, f'{prefix}*{suffix}'))):
        name = osp.basename(path)[len(prefix):-len(suffix)]
        if name:
            found.append(name)
    return found


def resolve_variants(variants: list[str],
                     config_dir: Optional[str] = None) -> dict[str, str]:
    """``{variant: config}``; raises :class:`UnknownVariantError` naming the
    available variants when one has no config."""
    config_dir = config_dir or shapes_config_dir()
    available = available_variants(config_dir)
    missing = [v for v in variants
               if not osp.isfile(config_for(v, config_dir))]
    if missing:
        raise UnknownVariantError(
            f'no config for variant(s) {", ".join(missing)} (looked for '
            f'{", ".join(config_for(v, config_dir) for v in missing)}); '
            f'available: {", ".join(available) or "none"}')
    if len(set(variants)) != len(variants):
        raise UnknownVariantError(f'variants given twice: {variants}')
    return {v: config_for(v, config_dir) for v in variants}


def max_iters_option(max_iters: int) -> dict:
    """``--cfg-options`` that shorten training to ``max_iters`` iterations
    (validation and the checkpoint at the end, as in the configs)."""
    return {
        'train_cfg.max_iters': max_iters,
        'train_cfg.val_interval': max_iters,
        'default_hooks.checkpoint.interval': max_iters,
    }


def cfg_options_args(options: dict) -> list[str]:
    """``{'a.b': 1}`` -> ``['--cfg-options', 'a.b=1']`` (nothing if empty)."""
    if not options:
        return []
    return ['--cfg-options'] + [f'{k}={_option_value(v)}'
                                for k, v in options.items()]


def _option_value(value) -> str:
    if isinstance(value, (list, tuple)):
        inner = ','.join(_option_value(v) for v in value)
        return f'[{inner}]' if isinstance(value, list) else f'({inner})'
    return str(value)


def training_seconds_per_iter(work_dir: str) -> Optional[float]:
    """Median ``time`` (seconds per iteration) of the training records of
    the newest training run in ``work_dir`` (``<timestamp>/vis_data/
    scalars.json``; the first logged record, with start-up, left out when
    there are more)."""
    runs = sorted(glob.glob(osp.join(work_dir, '[0-9]*_[0-9]*', 'vis_data',
                                     'scalars.json')))
    if not runs:
        return None
    times = []
    with open(runs[-1], encoding='utf-8') as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if 'loss' in record and 'time' in record:
                times.append(float(record['time']))
    if len(times) > 1:
        times = times[1:]
    return statistics.median(times) if times else None


def run_logged(command: list[str], log_path: str, cwd: str) -> None:
    """Run ``command``, its output into ``log_path``; on failure raise
    ``RuntimeError`` with the log's tail."""
    os.makedirs(osp.dirname(log_path), exist_ok=True)
    with open(log_path, 'w', encoding='utf-8') as log:
        returncode = subprocess.call(command, stdout=log,
                                     stderr=subprocess.STDOUT, cwd=cwd)
    if returncode:
        with open(log_path, encoding='utf-8', errors='replace') as f:
            tail = ''.join(f.readlines()[-25:])
        raise RuntimeError(
            f'{" ".join(command)} failed (exit {returncode}); last lines of '
            f'{log_path}:\n{tail}')


@dataclass
class CompareSettings:
    """How to run the comparison.

    Attributes:
        out_dir: work dirs of the variants (``<out_dir>/<variant>``) and the
            summary.
        max_iters: shorten training (None: the configs' own length).
        cfg_options: more overrides for training, evaluation and analysis.
        num_images: images of the val split the analysis runs on.
        tau: threshold of inhibited channels.
        python: interpreter for tools/train.py and tools/test.py.
        work_root: where the tools run and the configs' relative paths
            (``data_root``) resolve (default: the current directory).
    """
    out_dir: str
    max_iters: Optional[int] = None
    cfg_options: dict = field(default_factory=dict)
    num_images: int = 20
    tau: float = 0.1
    python: str = sys.executable
    work_root: str = field(default_factory=os.getcwd)

    def options(self) -> dict:
        options = dict(self.cfg_options)
        if self.max_iters is not None:
            options.update(max_iters_option(self.max_iters))
        return options


def estimate_seconds(configs: dict[str, str], settings: CompareSettings,
                     done: list[VariantResult]) -> float:
    """Estimated time of the variants in ``configs`` not yet ``done``."""
    remaining = [v for v in configs if v not in {d.variant for d in done}]
    if done:
        per_variant = statistics.mean(d.wall_seconds for d in done)
        return per_variant * len(remaining)
    total = 0.0
    for variant in remaining:
        cfg = Config.fromfile(configs[variant])
        if settings.options():
            cfg.merge_from_dict(settings.options())
        iters = cfg.get('train_cfg', {}).get('max_iters') or 0
        total += iters * ASSUMED_SECONDS_PER_ITER + ASSUMED_OVERHEAD_SECONDS
    return total


def analysis_summary(analysis: ModelAnalysis) -> dict[str, Optional[float]]:
    """A variant's channel shares in the summary (whole backbone): inhibited
    channels, and beta <= 0 among the norms feeding an activation (the
    paper's criterion) and among all norms."""
    return dict(
        inhibited=analysis.inhibited['overall'],
        beta_nonpositive_feeding=analysis.beta_nonpositive_feeding['overall'],
        beta_nonpositive=analysis.beta_nonpositive['overall'])


def run_variant(variant: str, config: str, settings: CompareSettings,
                say: Callable[[str], None]) -> tuple[VariantResult,
                                                     ModelAnalysis]:
    """Train, evaluate and analyse one variant."""
    start = time.monotonic()
    work_dir = osp.join(settings.out_dir, variant)
    options = settings.options()
    # The final checkpoint is evaluated with tools/test.py below: no
    # validation inside the training to repeat it.
    extra = cfg_options_args({'train_cfg.val_begin': NO_VALIDATION, **options})
    train_log = osp.join(work_dir, 'train_output.log')
    say(f'{variant}: training {osp.relpath(config, settings.work_root)} '
        f'(output: {train_log})')
    run_logged([settings.python, package_resource('tools/train.py'), config,
                '--work-dir', work_dir] + extra, train_log, settings.work_root)
    with open(osp.join(work_dir, 'last_checkpoint'), encoding='utf-8') as f:
        checkpoint = f.read().strip()
    test_dir = osp.join(work_dir, 'test')
    test_log = osp.join(work_dir, 'test_output.log')
    say(f'{variant}: evaluating {checkpoint}')
    run_logged([settings.python, package_resource('tools/test.py'), config,
                checkpoint, '--work-dir', test_dir] + extra, test_log,
               settings.work_root)
    metrics = collect_run(test_dir, name=variant).metrics
    say(f'{variant}: inhibited-channel analysis on {settings.num_images} '
        'val images')
    analysis = analyze_checkpoint(config, checkpoint, settings.tau,
                                  num_images=settings.num_images,
                                  cfg_options=options, name=variant)
    cfg = Config.fromfile(config)
    if options:
        cfg.merge_from_dict(options)
    cost = detector_cost(cfg)
    result = VariantResult(
        variant=variant, config=config, checkpoint=checkpoint,
        metrics=metrics, **analysis_summary(analysis),
        params=cost['params'], backbone_flops=cost['backbone_flops'],
        seconds_per_iter=training_seconds_per_iter(work_dir),
        wall_seconds=time.monotonic() - start,
        logs=dict(train=train_log, test=test_log))
    return result, analysis


def summary_markdown(results: list[VariantResult], tau: float) -> str:
    """The comparison as a Markdown table."""
    lines = [
        '| variant | bbox AP | segm AP | inhibited channels '
        f'(tau={tau:g}) | beta<=0 (norms feeding an activation) | '
        'parameters (M) | backbone GFLOPs | s / iter | wall time (min) |',
        '|---|---|---|---|---|---|---|---|---|'
    ]
    for r in results:
        box = r.metrics.get('coco/bbox_mAP')
        segm = r.metrics.get('coco/segm_mAP')
        lines.append(
            f'| {r.variant} | {_ap(box)} | {_ap(segm)} | '
            f'{format_percent(r.inhibited)} | '
            f'{format_percent(r.beta_nonpositive_feeding)} | '
            f'{r.params / 1e6:.2f} | {r.backbone_flops / 1e9:.2f} | '
            f'{"n/a" if r.seconds_per_iter is None else f"{r.seconds_per_iter:.2f}"} | '  # noqa: E501
            f'{r.wall_seconds / 60:.1f} |')
    return '\n'.join(lines)


def _ap(value: Optional[float]) -> str:
    return 'n/a' if value is None or value < 0 else f'{100 * value:.1f}'


def plot_summary(results: list[VariantResult], path: str) -> str:
    """AP (bbox, segm) and the inhibited / beta <= 0 ratios per variant,
    side by side."""
    import numpy as np
    from matplotlib.figure import Figure

    names = [r.variant for r in results]
    positions = np.arange(len(names))
    figure = Figure(figsize=(max(9, 2.2 * len(names) + 4), 4.5))
    ap_axis, ratio_axis = figure.subplots(1, 2)

    def bars(axis, series, ylabel, title):
        width = 0.8 / len(series)
        for index, (label, values) in enumerate(series):
            offsets = positions + (index - (len(series) - 1) / 2) * width
            heights = [np.nan if v is None else 100 * v for v in values]
            drawn = axis.bar(offsets, heights, width, label=label)
            axis.bar_label(drawn, fmt='%.1f', fontsize=7)
        axis.set_xticks(positions)
        axis.set_xticklabels(names)
        axis.set_ylabel(ylabel)
        axis.set_title(title)
        axis.grid(True, axis='y', alpha=0.3)
        axis.legend(fontsize=8)

    bars(ap_axis, [('bbox AP', [r.metrics.get('coco/bbox_mAP')
                                for r in results]),
                   ('segm AP', [r.metrics.get('coco/segm_mAP')
                                for r in results])],
         'AP (%)', 'COCO AP on the val split')
    bars(ratio_axis,
         [('inhibited channels', [r.inhibited for r in results]),
          ('beta <= 0 (feeding an activation)',
           [r.beta_nonpositive_feeding for r in results])],
         'channels (%)', 'Inhibited channels and beta <= 0')
    figure.tight_layout()
    return save_figure(figure, path)


def ensure_shapes_data(configs: dict[str, str], say: Callable[[str], None],
                       options: Optional[dict] = None,
                       work_root: Optional[str] = None) -> None:
    """Generate the embedded default set (``EMBEDDED_DEFAULT_SET``) at the
    configs' ``data_root`` (relative to ``work_root``, default: the current
    directory) when its annotation files are missing."""
    work_root = work_root or os.getcwd()
    from ce_mmdet.datasets import EMBEDDED_DEFAULT_SET, generate_shapes_dataset

    for config in configs.values():
        cfg = Config.fromfile(config)
        if options:
            cfg.merge_from_dict(options)
        dataset = cfg.train_dataloader.dataset
        root = dataset.get('data_root') or ''
        anns = [osp.join(root, cfg.train_dataloader.dataset.ann_file),
                osp.join(root, cfg.val_dataloader.dataset.ann_file)]
        if all(osp.isfile(osp.join(work_root, a)) for a in anns):
            continue
        out = osp.join(work_root, root)
        say(f'generating the synthetic shapes set into {out}')
        generate_shapes_dataset(out, show_progress=False,
                                **EMBEDDED_DEFAULT_SET)


def write_summary(results: list[VariantResult],
                  analyses: list[ModelAnalysis],
                  settings: CompareSettings) -> dict[str, str]:
    """Write the summary files of the variants done; ``{what: path}``."""
    table = summary_markdown(results, settings.tau)
    paths = dict(
        summary=write_text(
            osp.join(settings.out_dir, 'summary.md'),
            '# Block comparison on the shapes set\n\n' + table + '\n\n'
            'AP: COCO AP of tools/test.py on the val split; inhibited '
            'channels: share of the trunk activations\' channels whose mean '
            f'magnitude is at most {settings.tau:g} x the layer mean '
            f'({settings.num_images} val images); beta<=0: share of the '
            'channels of the norm layers feeding an activation; GFLOPs: the '
            'backbone on one val image; s / iter: median training '
            'iteration.\n'),
        json=write_json(osp.join(settings.out_dir, 'summary.json'),
                        dict(tau=settings.tau, num_images=settings.num_images,
                             variants=[asdict(r) for r in results])),
        plot=plot_summary(results, osp.join(settings.out_dir, 'summary.png')),
    )
    report = write_report(analyses,
                          osp.join(settings.out_dir, 'inhibited_channels'))
    paths.update({f'analysis_{what}': path for what, path in report.items()})
    return paths


def compare_variants(configs: dict[str, str], settings: CompareSettings,
                     say: Callable[[str], None]) -> dict[str, str]:
    """Run every variant of ``configs`` and write the summary.

    Returns:
        ``{what: path}`` of the summary files.
    """
    total = estimate_seconds(configs, settings, [])
    say(f'comparing {len(configs)} variants ({", ".join(configs)}) into '
        f'{settings.out_dir}; estimated total {total / 60:.0f} min '
        f'(about {ASSUMED_SECONDS_PER_ITER} s per training iteration until '
        'a variant has run)')
    results: list[VariantResult] = []
    analyses: list[ModelAnalysis] = []
    for index, (variant, config) in enumerate(configs.items(), start=1):
        say(f'[{index}/{len(configs)}] {variant}')
        result, analysis = run_variant(variant, config, settings, say)
        results.append(result)
        analyses.append(analysis)
        remaining = estimate_seconds(configs, settings, results)
        say(f'[{index}/{len(configs)}] {variant} done in '
            f'{result.wall_seconds / 60:.1f} min: bbox AP '
            f'{_ap(result.metrics.get("coco/bbox_mAP"))}, inhibited '
            f'{format_percent(result.inhibited)}'
            + (f'; about {remaining / 60:.0f} min left' if remaining else ''))
        # After every variant: an interrupted comparison keeps what it has.
        paths = write_summary(results, analyses, settings)
    return paths
