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

__all__ = ['openmmlab_tool_path', 'package_resource', 'run_openmmlab_tool']


def package_resource(relative_path: str, package: str = 'ce_mmdet') -> str:
    """Path of a file an OpenMMLab package ships beside its code, e.g.
    ``'tools/train.py'`` or ``'configs/README.md'``.

    A wheel or ``mim`` install holds ``tools/`` and ``configs/`` under
    ``<package>/.mim/``; a source checkout (``pip install -e .``) next to
    the package. ce_mmdet ships its own the same way (``setup.py``).

    Raises:
        FileNotFoundError: the package ships no such file; the message
            lists where it looked.
    """
    module = importlib.import_module(package)
    package_dir = osp.dirname(osp.abspath(module.__file__))
    candidates = [
        osp.join(package_dir, '.mim', relative_path),  # wheel / mim install
        osp.join(osp.dirname(package_dir), relative_path),  # source checkout
    ]
    for candidate in candidates:
        if osp.exists(candidate):
            return candidate
    raise FileNotFoundError(
        f'{package} at {package_dir} ships no {relative_path!r}; looked for: '
        f'{", ".join(candidates)}. Install {package} from its wheel '
        f'(pip/mim), which includes {package}/.mim/, or from a source '
        'checkout.')


def openmmlab_tool_path(name: str, package: str = 'mmdet') -> str:
    """Path of one of an OpenMMLab package's tools, e.g. ``'train.py'``.

    Args:
        name: the tool's path relative to the package's ``tools/`` directory
            (``'train.py'``, ``'test.py'``, ``'analysis_tools/get_flops.py'``).
        package: ``'mmdet'`` (MMDetection), ``'mmpretrain'`` or
            ``'ce_mmdet'``.

    Returns:
        The absolute path of the script.

    Raises:
        FileNotFoundError: if the installed package ships no such tool.
    """
    return package_resource(osp.join('tools', name), package)


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
