"""Run MMDetection's own command-line tools with ce_mmdet registered.

The installed ``mmdet`` package ships its ``tools/`` (``train.py``,
``test.py``, ``analysis_tools/...``) under ``mmdet/.mim/tools`` (a wheel or a
``mim`` install) or, for a source checkout installed with ``pip install -e``,
next to the package in ``<checkout>/tools``. ce_mmdet's ``tools/train.py`` and
``tools/test.py`` run those very scripts after ``import ce_mmdet``, so their
arguments and behaviour are MMDetection's by construction.
"""
from __future__ import annotations

import os.path as osp
import runpy
from typing import Any

__all__ = ['mmdet_tool_path', 'run_mmdet_tool']


def mmdet_tool_path(name: str) -> str:
    """Path of one of MMDetection's tools, e.g. ``'train.py'``.

    Args:
        name: the tool's path relative to MMDetection's ``tools/`` directory
            (``'train.py'``, ``'test.py'``, ``'analysis_tools/get_flops.py'``).

    Returns:
        The absolute path of the script.

    Raises:
        FileNotFoundError: if the installed mmdet ships no such tool.
    """
    import mmdet

    package_dir = osp.dirname(osp.abspath(mmdet.__file__))
    candidates = [
        osp.join(package_dir, '.mim', 'tools', name),  # wheel / mim install
        osp.join(osp.dirname(package_dir), 'tools', name),  # source checkout
    ]
    for candidate in candidates:
        if osp.isfile(candidate):
            return candidate
    raise FileNotFoundError(
        f'MMDetection {mmdet.__version__} at {package_dir} ships no tool '
        f'{name!r}; looked for: {", ".join(candidates)}. Install mmdet from '
        'its wheel (pip/mim), which includes mmdet/.mim/tools, or from a '
        'source checkout that has tools/.')


def run_mmdet_tool(name: str) -> dict[str, Any]:
    """Run one of MMDetection's tools as ``__main__``, ce_mmdet registered.

    The tool parses ``sys.argv[1:]`` exactly as when it is run directly
    (``runpy`` sets ``sys.argv[0]`` to the tool's path meanwhile).

    Args:
        name: see :func:`mmdet_tool_path`.

    Returns:
        The tool's globals after it ran.
    """
    import ce_mmdet  # noqa: F401  (registers ce_mmdet's modules)

    return runpy.run_path(mmdet_tool_path(name), run_name='__main__')
