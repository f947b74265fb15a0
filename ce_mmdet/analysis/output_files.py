"""The analysis reports' files (text, JSON, figures), each written
atomically (:func:`ce_mmdet.utils.atomic_files.write_atomically`): an
interrupted run leaves the old file or the new one."""
from __future__ import annotations

import json
from typing import Any

from ce_mmdet.utils.atomic_files import write_atomically


def write_text(path: str, text: str) -> str:
    """Write ``text`` (UTF-8) to ``path`` atomically."""

    def write(tmp: str) -> None:
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write(text)

    return write_atomically(path, write)


def write_json(path: str, data: Any) -> str:
    """Write ``data`` as indented JSON to ``path`` atomically (NaN -> null)."""
    return write_text(path, json.dumps(_finite(data), indent=2) + '\n')


def save_figure(figure, path: str, dpi: int = 100) -> str:
    """``figure.savefig`` to ``path`` atomically."""
    return write_atomically(path, lambda tmp: figure.savefig(tmp, dpi=dpi))


def _finite(data: Any) -> Any:
    """JSON has no NaN: replace non-finite floats by None."""
    if isinstance(data, float):
        return data if data == data and abs(data) != float('inf') else None
    if isinstance(data, dict):
        return {key: _finite(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(value) for value in data]
    return data
