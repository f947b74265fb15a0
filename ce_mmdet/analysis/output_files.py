"""Write output files atomically: a reader never sees a half-written file.

Each writer writes to a temporary file in the target's folder and renames it
over the target (``os.replace``), so an interrupted run leaves either the old
file or the new one.
"""
from __future__ import annotations

import json
import os
import os.path as osp
import tempfile
from typing import Any, Callable


def write_atomically(path: str, write: Callable[[str], None]) -> str:
    """Call ``write(tmp_path)``, then rename ``tmp_path`` to ``path``.

    The suffix of ``path`` is kept on the temporary file (matplotlib picks
    the format from it). Returns ``path``.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    suffix = osp.splitext(path)[1]
    fd, tmp_path = tempfile.mkstemp(prefix='.tmp-', suffix=suffix, dir=folder)
    os.close(fd)
    try:
        write(tmp_path)
        os.replace(tmp_path, path)
    except BaseException:
        if osp.exists(tmp_path):
            os.unlink(tmp_path)
        raise
    return path


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
