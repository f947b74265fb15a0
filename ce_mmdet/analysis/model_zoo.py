"""The model-zoo tables, rendered from the metafiles and the published
numbers, so that no result is written down twice.

Inputs: each config folder's ``metafile.yml`` (OpenMMLab's schema, listed
by ``model-index.yml``; ``Results`` hold only what ce_mmdet measured, each
with a ``Measured`` mapping: command, CPU, date, commit) and
``configs/published_results.yml`` (MMDetection's baselines, the papers'
numbers; :mod:`ce_mmdet.analysis.baselines`). Outputs: the *Results and
models* tables of ``configs/**/README.md`` (between
:data:`BEGIN_MARKER` and :data:`END_MARKER`, written by
``tools/misc/render_model_zoo.py``) and of ``docs/en/model_zoo.md`` (at
build time, by ``docs/en/conf.py``).
"""
from __future__ import annotations

import os.path as osp
from typing import Any, Optional

import yaml

from .baselines import baselines_of, load_published_results
from .output_files import write_text

MODEL_INDEX = 'model-index.yml'
BEGIN_MARKER = ('<!-- model-zoo tables: rendered from metafile.yml and '
                'configs/published_results.yml by '
                'tools/misc/render_model_zoo.py; edit those, not this -->')
END_MARKER = '<!-- end of model-zoo tables -->'
NOT_MEASURED = 'not yet measured'
DETECTION_TASKS = ('Object Detection', 'Instance Segmentation')
METRIC_TITLES = {'Top 1 Accuracy': 'Top-1 (%)',
                 'Top 1 Error': 'Top-1 error (%)'}
"""Column titles of OpenMMLab's metric names; others are shown as named."""


def metafile_paths(repo_root: str) -> list[str]:
    """The metafiles ``model-index.yml`` imports, as absolute paths."""
    with open(osp.join(repo_root, MODEL_INDEX), encoding='utf-8') as f:
        index = yaml.safe_load(f)
    return [osp.join(repo_root, path) for path in index['Import']]


def load_metafile(path: str) -> dict[str, Any]:
    """One metafile: ``{'Collections': [...], 'Models': [...]}``."""
    with open(path, encoding='utf-8') as f:
        return yaml.safe_load(f)


def _models_of(metafile: dict, collection: str) -> list[dict]:
    return [m for m in metafile['Models'] if m['In Collection'] == collection]


def model_metrics(model: dict) -> dict[str, float]:
    """A metafile model's measured metrics, all its results merged."""
    metrics: dict[str, float] = {}
    for result in model.get('Results') or []:
        metrics.update(result['Metrics'])
    return metrics


def _measured(model: dict) -> str:
    """``command, CPU, date, commit`` of a model's results, or ''."""
    seen = []
    for result in model.get('Results') or []:
        how = result.get('Measured')
        if how is None:
            raise ValueError(f'{model["Name"]}: a result without "Measured" '
                             '(command, CPU, date, commit)')
        text = (f'`{how["Command"]}`, {how["CPU"]}, {how["Date"]}, '
                f'{how["Commit"]}' +
                (f', {how["Seeds"]}' if 'Seeds' in how else ''))
        if text not in seen:
            seen.append(text)
    return '; '.join(seen)


def _config_cell(model: dict, link_configs: bool, folder: str) -> str:
    path = model['Config']
    if not link_configs:
        return f'`{path}`'
    return f'[config]({osp.relpath(path, folder)})'


def _is_detection(models: list[dict]) -> bool:
    """Whether a collection's models detect: their results' tasks, or
    ``Metadata.Task`` for a model with no results yet."""
    tasks = set()
    for model in models:
        if model.get('Results'):
            tasks |= {r['Task'] for r in model['Results']}
        elif 'Task' in model['Metadata']:
            tasks.add(model['Metadata']['Task'])
        else:
            raise ValueError(f'{model["Name"]}: no Results and no '
                             'Metadata.Task: say what the model does')
    return tasks <= set(DETECTION_TASKS)


def _number(value: Optional[float], digits: int = 1) -> str:
    return '–' if value is None else f'{value:.{digits}f}'


def _published_cells(name: str, model: dict, published: dict,
                     baselines: dict) -> dict[str, str]:
    """The published numbers of others for one model, by column title."""
    cells = {}
    if name in baselines:
        b = baselines[name]
        cells['MMDetection BN box / mask'] = (
            f'{_number(b.box)} / {_number(b.mask)}' +
            (f' {b.note}' if b.note else ''))
    claim = published.get('paper_coco_claims', {}).get(name)
    if claim:
        cells["paper's claim (Table 3)"] = claim
    peer = published.get('peer_imagenet_top1', {}).get(name)
    if peer:
        cells['ImageNet top-1 of the block (its papers)'] = peer
    top1 = published.get('imagenet_top1', {}).get(name)
    if top1:
        cells['ImageNet top-1 to reach (published)'] = ', '.join(
            f'{value} ({source})' for source, value in top1.items())
    fig1 = published.get('paper_fig1', {}).get(
        model['Metadata'].get('Fig1 label'))
    if fig1:
        cells['paper: inhibited / top-1 error'] = (
            f'{fig1["inhibited"]}% / {fig1["top1_error"]}')
    return cells


def collection_table(metafile: dict, collection: str, *,
                     link_configs: bool, folder: str = 'configs',
                     published: Optional[dict] = None,
                     baselines: Optional[dict] = None) -> str:
    """One collection's *Results and models* table (Markdown).

    Detection collections get MMDetection's columns (Backbone, Style, Lr
    schd, Mem (GB), box AP, mask AP), classification ones MMPretrain's
    (Model, Params, FLOPs, then their metrics); then the published numbers
    of others in columns of their own, Config, Download and, where ce_mmdet
    measured something, how it was measured. ``link_configs``: Markdown
    links relative to ``folder`` (the READMEs) or inline paths (the docs).
    """
    published = load_published_results() if published is None else published
    baselines = baselines_of(published) if baselines is None else baselines
    models = _models_of(metafile, collection)
    if not models:
        raise ValueError(f'collection {collection!r} has no models')
    detection = _is_detection(models)
    if detection:
        metric_names = ['box AP', 'mask AP']
    else:
        metric_names = []
        for model in models:
            metric_names += [k for k in model_metrics(model)
                             if k not in metric_names]
        metric_names = metric_names or ['Top 1 Accuracy']
    published_cells = {m['Name']: _published_cells(m['Name'], m, published,
                                                   baselines)
                       for m in models}
    published_columns: list[str] = []
    for cells in published_cells.values():
        published_columns += [c for c in cells if c not in published_columns]
    how = {m['Name']: _measured(m) for m in models}
    shared_how = set(how.values())
    # one run measured every row: say how once, under the table
    footnote = (f'\n\nMeasured: {shared_how.pop()}.'
                if len(shared_how) == 1 and '' not in shared_how else '')
    measured_column = not footnote and any(how.values())

    if detection:
        head = ['Backbone', 'Style', 'Lr schd', 'Mem (GB)']
    else:
        head = ['Model', 'Params (M)', 'FLOPs (G)']
    head += [METRIC_TITLES.get(k, k) for k in metric_names]
    head += published_columns + ['Config', 'Download']
    head += ['measured (command, CPU, date, commit)'] if measured_column \
        else []
    lines = ['| ' + ' | '.join(head) + ' |',
             '|' + '---|' * len(head)]
    for model in models:
        meta = model['Metadata']
        metrics = model_metrics(model)
        if detection:
            row = [meta['Backbone'], meta.get('Style', '–'), meta['Lr schd'],
                   _number(meta.get('Training Memory (GB)'))]
            box_only = meta.get('Task') == 'Object Detection'
            row += [
                f'{metrics["box AP"]:g}' if 'box AP' in metrics
                else NOT_MEASURED,
                f'{metrics["mask AP"]:g}' if 'mask AP' in metrics
                else ('–' if box_only else NOT_MEASURED)]
        else:
            params, flops = meta.get('Parameters'), meta.get('FLOPs')
            row = [meta['Backbone'],
                   _number(params / 1e6, 2) if params else '–',
                   _number(flops / 1e9, 2) if flops else '–']
            row += [f'{metrics[k]:g}' if k in metrics else NOT_MEASURED
                    for k in metric_names]
        row += [published_cells[model['Name']].get(c, '–')
                for c in published_columns]
        row += [_config_cell(model, link_configs, folder),
                model.get('Weights') or 'not published']
        row += [how[model['Name']] or '–'] if measured_column else []
        lines.append('| ' + ' | '.join(row) + ' |')
    lines[-1] += footnote
    return '\n'.join(lines)


def metafile_tables(metafile_path: str, repo_root: str, *,
                    link_configs: bool, heading: str = '###') -> str:
    """Every collection of a metafile: a heading and its table each."""
    metafile = load_metafile(metafile_path)
    folder = osp.relpath(osp.dirname(metafile_path), repo_root)
    published = load_published_results()
    baselines = baselines_of(published)
    blocks = []
    for collection in metafile['Collections']:
        name = collection['Name']
        blocks.append(f'{heading} {name}\n\n' + collection_table(
            metafile, name, link_configs=link_configs, folder=folder,
            published=published, baselines=baselines))
    return '\n\n'.join(blocks)


def render_readme(text: str, tables: str, path: str = 'README') -> str:
    """``text`` with the part between the markers replaced by ``tables``.

    Raises:
        ValueError: the markers are missing or out of order.
    """
    begin, end = text.find(BEGIN_MARKER), text.find(END_MARKER)
    if begin < 0 or end < begin:
        raise ValueError(f'{path}: no model-zoo markers; put the two lines '
                         f'{BEGIN_MARKER!r} and {END_MARKER!r} where the '
                         'tables go')
    return (text[:begin + len(BEGIN_MARKER)] + '\n\n' + tables + '\n\n' +
            text[end:])


def stale_readmes(repo_root: str, write: bool = False) -> list[str]:
    """The config READMEs whose tables differ from their metafile's (each
    metafile's ``README.md`` beside it); ``write`` renders them anew."""
    stale = []
    for metafile_path in metafile_paths(repo_root):
        readme = osp.join(osp.dirname(metafile_path), 'README.md')
        with open(readme, encoding='utf-8') as f:
            text = f.read()
        rendered = render_readme(
            text, metafile_tables(metafile_path, repo_root,
                                  link_configs=True), readme)
        if rendered != text:
            stale.append(readme)
            if write:
                write_text(readme, rendered)
    return stale
