"""Run MMDetection's and MMPretrain's own command-line tools with ce_mmdet
registered.

An installed OpenMMLab package ships its ``tools/`` (``train.py``,
``test.py``, ``analysis_tools/...``) under ``<package>/.mim/tools`` (a wheel
or a ``mim`` install) or, for a source checkout installed with ``pip install
-e``, next to the package in ``<checkout>/tools``. ce_mmdet's
``tools/train.py`` and ``tools/test.py`` run MMDetection's scripts, and
``tools/pretrain/train.py`` and ``tools/pretrain/test.py`` MMPretrain's,
after ``import ce_mmdet``, so their arguments and behaviour are the
toolboxes' own by construction.
"""
from __future__ import annotations

import importlib
import os.path as osp
import runpy
from typing import Any

__all__ = ['openmmlab_tool_path', 'run_openmmlab_tool']


def openmmlab_tool_path(name: str, package: str = 'mmdet') -> str:
    """Path of one of an OpenMMLab package's tools, e.g. ``'train.py'``.

    Args:
        name: the tool's path relative to the package's ``tools/`` directory
            (``'train.py'``, ``'test.py'``, ``'analysis_tools/get_flops.py'``).
        package: ``'mmdet'`` (MMDetection) or ``'mmpretrain'``.

    Returns:
        The absolute path of the script.

    Raises:
        FileNotFoundError: if the installed package ships no such tool.
    """
    module = importlib.import_module(package)
    package_dir = osp.dirname(osp.abspath(module.__file__))
    candidates = [
        osp.join(package_dir, '.mim', 'tools', name),  # wheel / mim install
        osp.join(osp.dirname(package_dir), 'tools', name),  # source checkout
    ]
    for candidate in candidates:
        if osp.isfile(candidate):
            return candidate
    raise FileNotFoundError(
        f'{package} {module.__version__} at {package_dir} ships no tool '
        f'{name!r}; looked for: {", ".join(candidates)}. Install {package} '
        f'from its wheel (pip/mim), which includes {package}/.mim/tools, or '
        'from a source checkout that has tools/.')


def run_openmmlab_tool(name: str, package: str = 'mmdet') -> dict[str, Any]:
    """Run one of an OpenMMLab package's tools as ``__main__``, ce_mmdet
    registered.

    The tool parses ``sys.argv[1:]`` exactly as when it is run directly
    (``runpy`` sets ``sys.argv[0]`` to the tool's path meanwhile).

    Args:
        name, package: see :func:`openmmlab_tool_path`.

    Returns:
        The tool's globals after it ran.
    """
    import ce_mmdet  # noqa: F401  (registers ce_mmdet's modules)

    return runpy.run_path(openmmlab_tool_path(name, package),
                          run_name='__main__')
