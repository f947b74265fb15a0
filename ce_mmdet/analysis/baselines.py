"""Numbers published by others, read from the one file that holds them:
``configs/published_results.yml``.

That file lists MMDetection's BN baselines per ce_mmdet config (COCO
val2017, box / mask AP), the CE paper's claims and its Fig. 1, and the
ImageNet top-1 figures that the pretraining configs should reach. The
results collector (``tools/analysis_tools/collect_results.py``) and the
model-zoo pages (:mod:`ce_mmdet.analysis.model_zoo`) read it; editing it is
how the numbers change.
"""
from __future__ import annotations

import os.path as osp
from dataclasses import dataclass
from typing import Any, Optional

import yaml

PUBLISHED_RESULTS = 'configs/published_results.yml'
"""Where the published numbers are, in what ce_mmdet ships
(:func:`~ce_mmdet.utils.package_resource`)."""


@dataclass(frozen=True)
class Baseline:
    """MMDetection's AP for the BN counterpart of a config (COCO val2017).

    Attributes:
        box: box AP in percent.
        mask: mask AP in percent; None for detectors without masks.
        note: what qualifies the comparison, e.g. ``'(R-50)'``.
    """
    box: Optional[float]
    mask: Optional[float]
    note: str = ''


def load_published_results(path: Optional[str] = None) -> dict[str, Any]:
    """The parsed ``published_results.yml`` (default: the one ce_mmdet
    ships, installed or checked out).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a YAML mapping.
    """
    if path is None:
        from ce_mmdet.utils import package_resource
        path = package_resource(PUBLISHED_RESULTS)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path!r} not found: the published baselines are read from '
            f'ce_mmdet\'s {PUBLISHED_RESULTS} (or a file of the same layout)')
    with open(path, encoding='utf-8') as f:
        data = yaml.safe_load(f)
    if not isinstance(data, dict):
        raise ValueError(f'{path}: expected a YAML mapping of sections, '
                         f'got {type(data).__name__}')
    return data


def _ap(value: Any, where: str) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f'{where}: expected a number (AP in percent) or '
                         f'null, got {value!r}')
    return float(value)


def load_baselines(path: Optional[str] = None) -> dict[str, Baseline]:
    """``{config name without .py: Baseline}`` from the
    ``mmdetection_baselines`` section of ``path`` (see
    :func:`load_published_results`).

    Raises:
        ValueError: an entry without a ``box`` number, or a value that is
            not a number; the message names the entry.
    """
    return baselines_of(load_published_results(path),
                        path or PUBLISHED_RESULTS)


def baselines_of(data: dict[str, Any],
                 where: str = PUBLISHED_RESULTS) -> dict[str, Baseline]:
    """The ``mmdetection_baselines`` section of already parsed published
    results (see :func:`load_baselines`)."""
    entries = data.get('mmdetection_baselines')
    if not isinstance(entries, dict):
        raise ValueError(f'{where}: no "mmdetection_baselines" mapping')
    baselines = {}
    for name, entry in entries.items():
        where = f'mmdetection_baselines.{name}'
        if not isinstance(entry, dict) or 'box' not in entry:
            raise ValueError(f'{where}: expected a mapping with "box" and '
                             f'"mask" (AP in percent), got {entry!r}')
        baselines[name] = Baseline(
            box=_ap(entry['box'], f'{where}.box'),
            mask=_ap(entry.get('mask'), f'{where}.mask'),
            note=str(entry.get('note', '')))
    return baselines
