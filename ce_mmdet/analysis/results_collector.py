"""Read the COCO results of MMEngine runs and lay them out as the paper's
Table 3.

Where MMEngine writes them, inside a work dir (``--work-dir`` of
``tools/train.py`` / ``tools/test.py``), one ``<timestamp>/`` folder per run:

* ``tools/test.py``: ``<timestamp>/<timestamp>.json``, one JSON object of
  the test metrics (``coco/bbox_mAP``, ``coco/bbox_mAP_50``...);
* ``tools/train.py`` with validation: ``<timestamp>/vis_data/scalars.json``,
  one JSON object per line, validation lines carrying the metrics;
* both: ``<timestamp>/<timestamp>.log`` with ``coco/bbox_mAP: 0.3820 ...``
  (read only when no JSON holds the metrics).

The newest run of a work dir (its folders searched two levels down, so
``work_dir/test/<timestamp>`` counts) that has metrics wins. MMDetection's
``CocoMetric`` reports fractions; tables show percent.
"""
from __future__ import annotations

import glob
import json
import os
import os.path as osp
import re
from dataclasses import dataclass
from typing import Optional

from .baselines import Baseline

METRIC_KEYS = ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75',
               'coco/segm_mAP', 'coco/segm_mAP_50', 'coco/segm_mAP_75')
"""The Table 3 columns, in order."""

_RUN_FOLDER = re.compile(r'^\d{8}_\d{6}$')
_LOG_METRIC = re.compile(r'(coco/\w+):\s+(-?\d+(?:\.\d+)?)')


class NoResultsError(ValueError):
    """A work dir holds no COCO evaluation result."""


@dataclass
class RunResult:
    """The COCO metrics of one run.

    Attributes:
        name: the config's name (the ``.py`` MMEngine dumped into the work
            dir) or else the work dir's name.
        work_dir: as given.
        source: the file the metrics were read from.
        metrics: ``{'coco/bbox_mAP': 0.382, ...}`` (fractions, as logged).
    """
    name: str
    work_dir: str
    source: str
    metrics: dict[str, float]


def _run_folders(work_dir: str) -> list[str]:
    """``<timestamp>/`` folders at most two levels below ``work_dir``
    (``work_dir`` itself if it is one), newest first."""
    candidates = [work_dir] + glob.glob(osp.join(work_dir, '*')) + glob.glob(
        osp.join(work_dir, '*', '*'))
    runs = [c for c in candidates
            if osp.isdir(c)
            and _RUN_FOLDER.match(osp.basename(osp.normpath(c)))]
    return sorted(runs, key=lambda c: osp.basename(osp.normpath(c)),
                  reverse=True)


def _coco_metrics(record: dict) -> dict[str, float]:
    return {k: float(v) for k, v in record.items()
            if k.startswith('coco/') and isinstance(v, (int, float))}


def read_run_metrics(run_folder: str) -> Optional[tuple[str, dict]]:
    """``(source file, metrics)`` of one ``<timestamp>/`` folder, or None."""
    stamp = osp.basename(osp.normpath(run_folder))
    test_json = osp.join(run_folder, f'{stamp}.json')
    if osp.isfile(test_json):
        with open(test_json, encoding='utf-8') as f:
            try:
                metrics = _coco_metrics(json.load(f))
            except (json.JSONDecodeError, AttributeError):
                metrics = {}
        if metrics:
            return test_json, metrics
    scalars = osp.join(run_folder, 'vis_data', 'scalars.json')
    if osp.isfile(scalars):
        last: dict[str, float] = {}
        with open(scalars, encoding='utf-8') as f:
            for line in f:
                try:
                    metrics = _coco_metrics(json.loads(line))
                except (json.JSONDecodeError, AttributeError):
                    continue  # a line cut short by an interrupted run
                if metrics:
                    last = metrics
        if last:
            return scalars, last
    log = osp.join(run_folder, f'{stamp}.log')
    if osp.isfile(log):
        last = {}
        with open(log, encoding='utf-8', errors='replace') as f:
            for line in f:
                metrics = {k: float(v) for k, v in _LOG_METRIC.findall(line)}
                if 'coco/bbox_mAP' in metrics or 'coco/segm_mAP' in metrics:
                    last = metrics
        if last:
            return log, last
    return None


def config_name(work_dir: str) -> str:
    """The config MMEngine dumped into ``work_dir`` (``<name>.py``, the only
    ``.py`` there), else the work dir's own name."""
    dumped = [f for f in os.listdir(work_dir)
              if f.endswith('.py')] if osp.isdir(work_dir) else []
    if len(dumped) == 1:
        return osp.splitext(dumped[0])[0]
    return osp.basename(osp.normpath(work_dir))


def collect_run(work_dir: str, name: Optional[str] = None) -> RunResult:
    """The newest COCO result of ``work_dir``.

    Raises:
        FileNotFoundError: no such folder.
        NoResultsError: no run with COCO metrics in it.
    """
    if not osp.isdir(work_dir):
        raise FileNotFoundError(f'work dir {work_dir!r} not found')
    for run in _run_folders(work_dir):
        found = read_run_metrics(run)
        if found:
            source, metrics = found
            return RunResult(name=name or config_name(work_dir),
                             work_dir=work_dir, source=source,
                             metrics=metrics)
    raise NoResultsError(
        f'{work_dir!r} holds no COCO evaluation result: expected '
        '<timestamp>/<timestamp>.json (tools/test.py), '
        '<timestamp>/vis_data/scalars.json (tools/train.py with validation) '
        'or a log with "coco/bbox_mAP: ..." in a <timestamp>/ folder at most '
        'two levels down. Evaluate the checkpoint with tools/test.py CONFIG '
        'CHECKPOINT --work-dir WORK_DIR first.')


def _percent(value: Optional[float]) -> str:
    if value is None or value < 0:  # COCO reports -1 for "no such objects"
        return '–'
    return f'{100 * value:.1f}'


def _difference(ours: Optional[float], baseline: Optional[float]) -> str:
    if ours is None or ours < 0 or baseline is None:
        return '–'
    difference = round(round(100 * ours, 1) - baseline, 1)
    return f'{difference + 0.0:+.1f}'  # + 0.0: no "-0.0"


def table3_markdown(results: list[RunResult],
                    baselines: dict[str, Baseline]) -> str:
    """Table 3's layout: box AP, AP50, AP75, mask AP, AP50, AP75 per run,
    with MMDetection's BN baseline (box / mask AP) and the difference."""
    header = ('| config | box AP | AP50 | AP75 | mask AP | AP50 | AP75 | '
              'MMDetection (BN) box / mask | difference box / mask |')
    lines = [header, '|---|---|---|---|---|---|---|---|---|']
    for result in results:
        m = result.metrics
        values = [_percent(m.get(key)) for key in METRIC_KEYS]
        baseline = baselines.get(result.name)
        if baseline is None:
            reference, difference = 'no baseline listed', '–'
        else:
            reference = (f'{_percent_value(baseline.box)} / '
                         f'{_percent_value(baseline.mask)}')
            if baseline.note:
                reference += f' {baseline.note}'
            difference = (
                f'{_difference(m.get("coco/bbox_mAP"), baseline.box)} / '
                f'{_difference(m.get("coco/segm_mAP"), baseline.mask)}')
        lines.append('| ' + ' | '.join([result.name, *values, reference,
                                         difference]) + ' |')
    return '\n'.join(lines)


def _percent_value(value: Optional[float]) -> str:
    return '–' if value is None else f'{value:.1f}'
