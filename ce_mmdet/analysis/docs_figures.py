"""The documentation's pictures, drawn from the same data the tables use.

- :func:`draw_ce_block`: the CE block between BN and ReLU (its equations).
- :func:`draw_fig1_bars`: Fig. 1 as ce_mmdet measured it (inhibited
  channels and top-1 error per classifier, ``configs/fig1/metafile.yml``)
  beside the paper's (``configs/published_results.yml``).
- :func:`draw_table3_layout`: Table 3's chart: MMDetection's BN box / mask
  AP beside ce_mmdet's CE rows, which stay empty ("not yet measured")
  until a run fills ``configs/metafile.yml``.

- :func:`shrink_png`: a copy of a PNG made small enough for the docs.

``tools/misc/draw_docs_figures.py`` writes them (and shrinks the demo's
loss curve and predictions) into ``docs/en/_static/images/``.
"""
from __future__ import annotations

from typing import Any

from ce_mmdet.utils.atomic_files import write_atomically

from .baselines import load_baselines, load_published_results
from .model_zoo import model_metrics
from .output_files import save_figure


def _figure(width: float, height: float, columns: int = 1):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    axes = figure.subplots(1, columns, squeeze=False)[0]
    return figure, axes


def draw_ce_block(path: str) -> str:
    """Boxes and arrows: BN -> (BD, IR) -> gate -> ReLU, with each branch's
    equation, as ``CE(X) = lam BD(X) + (1 - lam) IR(X)``."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    figure, (axis,) = _figure(9.0, 3.4)
    axis.set_xlim(0, 9)
    axis.set_ylim(0, 3.4)
    axis.axis('off')

    def box(x, y, w, h, text, colour, size=9):
        axis.add_patch(FancyBboxPatch(
            (x, y), w, h, boxstyle='round,pad=0.05', facecolor=colour,
            edgecolor='#333333', linewidth=1))
        axis.text(x + w / 2, y + h / 2, text, ha='center', va='center',
                  fontsize=size)

    def arrow(start, end):
        axis.add_patch(FancyArrowPatch(start, end, arrowstyle='-|>',
                                       mutation_scale=12, color='#333333'))

    box(0.1, 1.35, 1.0, 0.7, 'conv\n+ BN', '#dddddd')
    box(1.9, 2.15, 3.2, 1.05,
        'Batch decorrelation (BD)\nW = P_3, Newton on Sigma / tr(Sigma)\n'
        'BD(X) = W X, groups of 16 over the batch', '#cfe2f3', 8)
    box(1.9, 0.2, 3.2, 1.05,
        'Instance reweighting (IR)\na = sigmoid(FC(ReLU(LN(FC(v)))))\n'
        'IR(X) = X a / s (v: per-image variances)', '#fce5cd', 8)
    box(5.7, 1.3, 1.6, 0.8, 'lam BD + (1-lam) IR\nlam = sigmoid(w)',
        '#d9ead3', 8)
    box(7.9, 1.35, 0.95, 0.7, 'ReLU', '#dddddd')
    arrow((1.15, 1.7), (1.9, 2.6))
    arrow((1.15, 1.7), (1.9, 0.75))
    arrow((5.15, 2.6), (5.7, 1.85))
    arrow((5.15, 0.75), (5.7, 1.55))
    arrow((7.35, 1.7), (7.9, 1.7))
    axis.text(1.2, 1.7, 'X (N, C, H, W)', fontsize=7, va='center')
    axis.set_title('Channel Equilibrium: between the normalization and the '
                   'ReLU', fontsize=10)
    return save_figure(figure, path, dpi=90)


def _fig1_rows(metafile: dict[str, Any]) -> list[tuple[str, float, float]]:
    rows = []
    for model in metafile['Models']:
        metrics = model['Results'][0]['Metrics']
        rows.append((model['Metadata']['Fig1 label'],
                     metrics['Inhibited channels (tau=0.1)'],
                     metrics['Top 1 Error']))
    return rows


def draw_fig1_bars(fig1_metafile: dict[str, Any], path: str) -> str:
    """Two panels: inhibited channels (%) and top-1 error (%) per Fig. 1
    classifier, ce_mmdet's measurement beside the paper's."""
    import numpy as np

    paper = load_published_results()['paper_fig1']
    rows = _fig1_rows(fig1_metafile)
    labels = [label for label, _, _ in rows]
    positions = np.arange(len(labels))
    figure, axes = _figure(10.0, 3.6, columns=2)
    for axis, index, key, title in (
            (axes[0], 1, 'inhibited', 'inhibited channels (%)'),
            (axes[1], 2, 'top1_error', 'top-1 error (%)')):
        ours = [row[index] for row in rows]
        theirs = [paper[label][key] for label in labels]
        axis.bar(positions - 0.2, ours, 0.4, label='ce_mmdet (shapes10)',
                 color='#3c78d8')
        axis.bar(positions + 0.2, theirs, 0.4, label='paper (Fig. 1)',
                 color='#bbbbbb')
        axis.set_xticks(positions, labels, rotation=40, ha='right',
                        fontsize=8)
        axis.set_title(title, fontsize=10)
        axis.legend(fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path, dpi=80)


def draw_table3_layout(coco_metafile: dict[str, Any], path: str) -> str:
    """Box and mask AP of the Table 3 configs: MMDetection's BN baselines,
    and ce_mmdet's measured AP where a run produced it (an empty bar
    labelled "not yet measured" otherwise)."""
    import numpy as np

    baselines = load_baselines()
    models = [m for m in coco_metafile['Models']
              if m['In Collection'].endswith('(Table 3)')
              and '_2x' not in m['Name']]
    labels = [m['Metadata']['Backbone'] for m in models]
    positions = np.arange(len(models))
    figure, axes = _figure(10.0, 3.8, columns=2)
    for axis, key, title in ((axes[0], 'box', 'box AP'),
                             (axes[1], 'mask', 'mask AP')):
        reference = [getattr(baselines[m['Name']], key) for m in models]
        axis.bar(positions - 0.2, reference, 0.4, color='#bbbbbb',
                 label='MMDetection BN baseline')
        for position, model, height in zip(positions, models, reference):
            value = model_metrics(model).get(f'{key} AP')
            if value is None:
                axis.bar(position + 0.2, height, 0.4, fill=False,
                         edgecolor='#3c78d8', linestyle='--')
                axis.text(position + 0.2, height + 0.5, 'not yet\nmeasured',
                          ha='center', fontsize=6)
            else:
                axis.bar(position + 0.2, value, 0.4, color='#3c78d8')
        axis.bar([], [], fill=False, edgecolor='#3c78d8', linestyle='--',
                 label='ce_mmdet: not yet measured')
        axis.set_ylim(25, 45)
        axis.set_xticks(positions, labels, rotation=30, ha='right',
                        fontsize=8)
        axis.set_title(f'Mask R-CNN 1x, {title}', fontsize=10)
        axis.legend(fontsize=7, loc='upper left')
    figure.tight_layout()
    return save_figure(figure, path, dpi=80)


def shrink_png(src: str, dst: str, max_kb: int) -> str:
    """Copy the PNG ``src`` to ``dst``, scaled by 0.75 per side until its
    file is at most ``max_kb`` KiB; returns ``dst``."""
    import cv2

    image = cv2.imread(src, cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f'{src}: not a readable image')
    while True:
        ok, encoded = cv2.imencode('.png', image,
                                   [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if ok and len(encoded) <= max_kb * 1024:
            break
        image = cv2.resize(image, None, fx=0.75, fy=0.75,
                           interpolation=cv2.INTER_AREA)

    def write(tmp: str) -> None:
        with open(tmp, 'wb') as f:
            f.write(encoded.tobytes())

    return write_atomically(dst, write)
