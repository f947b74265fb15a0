"""The end of an experiment: Table 3 as Markdown, JSON and a bar chart.

One row per detector (backbone, schedule, where its weights came from):
its classification top-1 where the plan measured one, box and mask AP
(with AP50 and AP75 on COCO), MMDetection's published BN baseline and the
paper's claim for the config (``configs/published_results.yml``; the
paper's exact Table 3 numbers are not quoted there, so none are shown),
and the measured time of each step. Written atomically into the collect
step's work directory: ``table3.md``, ``table3.json``, ``table3.png``.
"""
from __future__ import annotations

import os.path as osp
from typing import Any, Optional

from ce_mmdet.analysis.output_files import save_figure, write_json, write_text

from .presets import weights_source
from .runner import PlannedStep, minutes

__all__ = ['table3_rows', 'write_table3']

DETECTION_COLUMNS = (('box AP', 'coco/bbox_mAP'),
                     ('AP50', 'coco/bbox_mAP_50'),
                     ('AP75', 'coco/bbox_mAP_75'),
                     ('mask AP', 'coco/segm_mAP'),
                     ('AP50 ', 'coco/segm_mAP_50'),
                     ('AP75 ', 'coco/segm_mAP_75'))


def _percent(value: Optional[float]) -> Optional[float]:
    """COCO fractions as percent (one decimal); -1 (no objects) -> None."""
    if value is None or value < 0:
        return None
    return round(100 * value, 1)


def _cell(value: Optional[float]) -> str:
    return '–' if value is None else f'{value:.1f}'


def _backbone(row: str) -> str:
    parts = row.split('-')
    depth = next((p[1:] for p in parts if p.startswith('r') and
                  p[1:].isdigit()), '18')
    ce = parts[0] == 'ce'
    return f'{"CE-" if ce else ""}ResNet-{depth}'


def table3_rows(planned: list[PlannedStep],
                published: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of the table, from the done steps' markers."""
    steps = [item.step for item in planned]
    by_name = {item.step.name: item for item in planned}
    rows = []
    for item in planned:
        step = item.step
        if step.kind != 'test' or step.toolbox != 'mmdet':
            continue
        marker = item.state.marker or {}
        metrics = marker.get('results', {})
        detect = by_name[step.checkpoint_from]
        config = osp.splitext(osp.basename(step.config))[0]
        top1 = None
        for other in planned:
            if (other.step.kind == 'test'
                    and other.step.toolbox == 'mmpretrain'
                    and detect.step.checkpoint_from
                    and other.step.checkpoint_from ==
                    detect.step.checkpoint_from):
                top1 = (other.state.marker or {}).get('results', {}).get(
                    'accuracy/top1')
        baseline = published.get('mmdetection_baselines', {}).get(config)
        chain = [name for name in (detect.step.checkpoint_from,
                                   detect.step.name, step.name) if name]
        seconds = {name: (by_name[name].state.marker or {}).get('seconds')
                   for name in chain}
        rows.append(dict(
            row=step.row, backbone=_backbone(step.row), config=config,
            weights=weights_source(steps, step.row),
            top1=None if top1 is None else round(float(top1), 2),
            metrics={column: _percent(metrics.get(key))
                     for column, key in DETECTION_COLUMNS},
            mmdetection_bn=(None if baseline is None else
                            dict(model=baseline['model'],
                                 box=baseline['box'], mask=baseline['mask'])),
            paper=published.get('paper_coco_claims', {}).get(config),
            seconds=seconds))
    return rows


def table3_markdown(rows: list[dict[str, Any]], coco: bool) -> str:
    """The rows as a Markdown table."""
    columns = [c for c, _ in DETECTION_COLUMNS] if coco else ['box AP',
                                                             'mask AP']
    header = ['detector', 'backbone weights', 'top-1', *columns]
    if coco:
        header += ['MMDetection BN box / mask', 'paper (Table 3)']
    header.append('time of its steps')
    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '---|' * len(header)]
    for row in rows:
        cells = [f'{row["backbone"]} ({row["config"]})', row['weights'],
                 _cell(row['top1']),
                 *[_cell(row['metrics'][c]) for c in columns]]
        if coco:
            bn = row['mmdetection_bn']
            cells += [f'{bn["box"]} / {bn["mask"]} ({bn["model"]})' if bn
                      else '–', row['paper'] or '–']
        cells.append(', '.join(f'{name} {minutes(seconds)}'
                               for name, seconds in row['seconds'].items()))
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def _chart(rows: list[dict[str, Any]], path: str, title: str) -> str:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    labels = [f'{row["backbone"]}\n{row["weights"]}' for row in rows]
    figure, axis = plt.subplots(figsize=(max(6, 1.8 * len(rows)), 4.5))
    width = 0.38
    for offset, (column, colour) in enumerate((('box AP', '#3b75af'),
                                                ('mask AP', '#ef8636'))):
        values = [row['metrics'][column] or 0.0 for row in rows]
        positions = [i + (offset - 0.5) * width for i in range(len(rows))]
        bars = axis.bar(positions, values, width, label=column, color=colour)
        axis.bar_label(bars, fmt='%.1f', fontsize=8)
    axis.set_xticks(range(len(rows)), labels, fontsize=8)
    axis.set(ylabel='AP (%)', title=title)
    axis.legend()
    figure.tight_layout()
    saved = save_figure(figure, path)
    plt.close(figure)
    return saved


def write_table3(planned: list[PlannedStep], published: dict[str, Any],
                 out_dir: str, preset: str, machine: str) -> dict[str, str]:
    """Write ``table3.md``, ``table3.json`` and ``table3.png``.

    Returns:
        name -> path of the three files (the collect step's outputs).
    """
    rows = table3_rows(planned, published)
    coco = preset == 'coco'
    steps = {item.step.name: (item.state.marker or {}).get('seconds')
             for item in planned if item.step.kind in ('train', 'test')}
    markdown = '\n'.join([
        f'# Table 3, preset {preset}', '',
        f'Machine: {machine}. AP in percent (COCO metrics of '
        f'{"val2017" if coco else "the shapes val split"}); top-1 of the '
        'pretrained backbone on its classification val split.', '',
        table3_markdown(rows, coco), '',
        '| step | measured time |', '|---|---|',
        *[f'| {name} | {minutes(seconds)} |' for name, seconds in
          steps.items()], ''])
    return dict(
        table=write_text(osp.join(out_dir, 'table3.md'), markdown),
        json=write_json(osp.join(out_dir, 'table3.json'),
                        dict(preset=preset, machine=machine, rows=rows,
                             step_seconds=steps)),
        chart=_chart(rows, osp.join(out_dir, 'table3.png'),
                     f'Table 3 ({preset}): box and mask AP'))
