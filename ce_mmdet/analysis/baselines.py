"""MMDetection's BN baselines, read from the one place that lists them:
``configs/README.md``.

The README's tables have a first column linking a config
(``[mask_rcnn_ce_r50_fpn.py](mask_rcnn_ce_r50_fpn.py)``) and a column
headed ``MMDetection (BN) box / mask`` with cells such as ``38.2 / 34.7``,
``38.2 / 34.7 (R-50)`` or ``37.4 / –`` (no mask head). Editing the README
is how the baselines change; nothing else holds them.
"""
from __future__ import annotations

import os.path as osp
import re
from dataclasses import dataclass
from typing import Optional

CONFIGS_README = 'configs/README.md'
"""Where the baselines are, in what ce_mmdet ships
(:func:`~ce_mmdet.utils.package_resource`)."""

BASELINE_COLUMN = 'MMDetection (BN)'
_CONFIG_LINK = re.compile(r'\[([^\]]+?)\.py\]\(')
_NUMBER = r'(\d+(?:\.\d+)?|–|-)'
_BOX_MASK = re.compile(rf'^\s*{_NUMBER}\s*/\s*{_NUMBER}')


@dataclass(frozen=True)
class Baseline:
    """MMDetection's AP for the BN counterpart of a config (COCO val2017).

    Attributes:
        box: box AP in percent.
        mask: mask AP in percent; None for detectors without masks.
        note: the rest of the README's cell, e.g. ``'(R-50)'``.
    """
    box: Optional[float]
    mask: Optional[float]
    note: str = ''


def parse_baselines(markdown: str) -> dict[str, Baseline]:
    """``{config name without .py: Baseline}`` from README Markdown tables."""
    baselines: dict[str, Baseline] = {}
    column = None
    for line in markdown.splitlines():
        if not line.lstrip().startswith('|'):
            column = None
            continue
        cells = [cell.strip() for cell in line.strip().strip('|').split('|')]
        headers = [i for i, cell in enumerate(cells)
                   if cell.startswith(BASELINE_COLUMN)]
        if headers:
            column = headers[0]
            continue
        if column is None or column >= len(cells):
            continue
        link = _CONFIG_LINK.search(cells[0])
        values = _BOX_MASK.match(cells[column])
        if not link or not values:
            continue
        box, mask = (None if v in ('–', '-') else float(v)
                     for v in values.groups())
        name = osp.basename(link.group(1))
        baselines[name] = Baseline(box=box, mask=mask,
                                   note=cells[column][values.end():].strip())
    return baselines


def load_baselines(readme: Optional[str] = None) -> dict[str, Baseline]:
    """:func:`parse_baselines` of ``readme`` (default: the
    ``configs/README.md`` ce_mmdet ships, installed or checked out)."""
    if readme is None:
        from ce_mmdet.utils import package_resource
        readme = package_resource(CONFIGS_README)
    if not osp.isfile(readme):
        raise FileNotFoundError(
            f'{readme!r} not found: the baselines are read from ce_mmdet\'s '
            'configs/README.md (or a file of the same tables)')
    with open(readme, encoding='utf-8') as f:
        return parse_baselines(f.read())
