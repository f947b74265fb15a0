"""MMEngine checkpoint loading that treats a checkpoint as data, never code.

``torch.load(weights_only=True)`` (with the stand-ins of
:mod:`ce_mmdet.utils.checkpoint_safety`) decides which *objects* a
checkpoint can make. What MMEngine then does with them is a second matter:

* ``Runner.resume`` passes ``checkpoint['meta']['config']``, a plain string,
  to ``Config.fromstring(..., '.py')``, which executes it as Python, to read
  the GPU ids of the run that wrote it. MMEngine's own checkpoints have no
  such key (they keep the config text as ``meta['cfg']``, which resume never
  parses); checkpoints of MMCV 1.x and crafted ones do.
* A message hub whose state holds something else than MMEngine writes makes
  a resumed run fail minutes later with an unrelated error (or skip the
  value with a warning).

:func:`check_mmengine_checkpoint` checks a loaded checkpoint and replaces
``meta['config']`` by ``gpu_ids = [...]`` read from it without executing it
(``ast.literal_eval`` of its top-level ``gpu_ids`` assignment), so that
MMEngine's check of the number of GPUs still runs; a text whose ``gpu_ids``
cannot be read so is dropped with a warning. :func:`
guard_mmengine_checkpoint_loaders` wraps every loader that MMEngine's
``CheckpointLoader`` has registered (local files, URLs, ...) with it, and
re-raises any failure to unpickle as :class:`CheckpointRefusedError` naming
the file (other errors get a note that names it). ``Runner.load_checkpoint``,
``Runner.resume``, ``load_from`` and ``mmengine.runner.load_checkpoint``
(``tools/test.py``, ``init_cfg`` ``Pretrained``) all go through it;
``import ce_mmdet`` installs it.
"""
from __future__ import annotations

import ast
import functools
import logging
import pickle
from typing import Any, Callable

from mmengine.logging import HistoryBuffer, print_log
from mmengine.runner.checkpoint import CheckpointLoader, load_from_local

__all__ = [
    'CheckpointRefusedError', 'check_mmengine_checkpoint',
    'guard_mmengine_checkpoint_loaders', 'gpu_ids_from_config_text',
    'is_local_checkpoint'
]

_MAX_CONFIG_TEXT = 10 * 2**20
_WEIGHTS_ONLY_DETAIL = 'WeightsUnpickler error: '
_TORCH_DOCS_ADVICE = 'Check the documentation of torch.load'


class CheckpointRefusedError(pickle.UnpicklingError):
    """A checkpoint that holds something else than MMEngine writes."""


def _refuse(source: str, key: str, problem: str) -> CheckpointRefusedError:
    return CheckpointRefusedError(
        f'checkpoint {source}: {key} {problem}; ce_mmdet loads only what '
        'MMEngine writes (see ce_mmdet.utils.checkpoint_loading)')


def _literal_gpu_ids(node: ast.expr) -> Any:
    """A literal, or ``range(...)`` of int literals (MMDetection 2.x wrote
    ``gpu_ids = range(0, 8)``)."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == 'range' and not node.keywords
            and 1 <= len(node.args) <= 3):
        args = [ast.literal_eval(arg) for arg in node.args]
        if all(type(arg) is int and abs(arg) < 2**16 for arg in args):
            return range(*args)
    return ast.literal_eval(node)


def gpu_ids_from_config_text(text: str) -> list[int] | None:
    """The ``gpu_ids`` a config text assigns, read without executing it.

    Args:
        text: a Python config text (MMCV 1.x checkpoints kept one in
            ``meta['config']``).

    Returns:
        The ints of its last top-level ``gpu_ids = ...`` (a literal list or
        tuple, or ``range`` of int literals), or None if it assigns none.

    Raises:
        ValueError: if the text does not parse as Python, is larger than
            10 MiB, or assigns ``gpu_ids`` anything else.
    """
    if len(text) > _MAX_CONFIG_TEXT:
        raise ValueError(f'is {len(text)} characters long')
    try:
        module = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        raise ValueError(f'is not Python ({type(error).__name__})') from None
    gpu_ids = None
    for node in module.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == 'gpu_ids'):
            try:
                gpu_ids = _literal_gpu_ids(node.value)
            except (ValueError, TypeError, SyntaxError, RecursionError,
                    MemoryError):
                raise ValueError('assigns gpu_ids an expression, not a '
                                 'literal') from None
    if gpu_ids is None:
        return None
    if not isinstance(gpu_ids, (list, tuple, range)) or not all(
            type(gpu) is int for gpu in gpu_ids):
        raise ValueError(f'assigns gpu_ids {gpu_ids!r:.80}, not ints')
    return list(gpu_ids)


def _defuse_config_text(meta: dict, source: str) -> None:
    """Replace ``meta['config']`` by the literal ``gpu_ids`` it assigns.

    MMEngine's ``Runner.resume`` executes that text to read ``gpu_ids``;
    what cannot be read as a literal is dropped, and with it MMEngine's
    check of the number of GPUs.
    """
    text = meta['config']
    try:
        if type(text) is not str:
            raise ValueError(f'is a {type(text).__name__}, not a str')
        gpu_ids = gpu_ids_from_config_text(text)
    except ValueError as error:
        del meta['config']
        print_log(
            f'checkpoint {source}: meta["config"] {error}; dropped, not '
            'executed (MMEngine\'s check of the number of GPUs of a '
            'resumed run is skipped)',
            logger='current',
            level=logging.WARNING)
        return
    if gpu_ids is None:
        del meta['config']
    else:
        meta['config'] = f'gpu_ids = {gpu_ids!r}\n'
    print_log(
        f'checkpoint {source}: meta["config"] was not executed (gpu_ids '
        f'read as a literal: {gpu_ids})',
        logger='current')


def _check_meta(meta: Any, source: str) -> None:
    """Check what ``Runner.resume`` reads of ``meta``; defuse ``config``."""
    if not isinstance(meta, dict):
        raise _refuse(source, "['meta']", f'is a {type(meta).__name__}')
    for key in ('epoch', 'iter'):
        if key in meta and not (type(meta[key]) is int and meta[key] >= 0):
            raise _refuse(source, f"['meta'][{key!r}]",
                          f'is {meta[key]!r:.40}, not an int >= 0')
    if meta.get('seed') is not None and type(meta['seed']) is not int:
        raise _refuse(source, "['meta']['seed']",
                      f'is {meta["seed"]!r:.40}, not an int')
    if 'config' in meta:
        _defuse_config_text(meta, source)


def _check_message_hub(hub: Any, source: str) -> None:
    """Check a message hub's ``state_dict`` as ``MessageHub`` loads it."""
    where = "['message_hub']"
    keys = ('log_scalars', 'runtime_info', 'resumed_keys')
    if not isinstance(hub, dict) or any(
            not isinstance(hub.get(key), dict) for key in keys):
        raise _refuse(source, where, f'is not a dict of dicts {list(keys)}')
    for key, value in hub['log_scalars'].items():
        if type(key) is not str or type(value) is not HistoryBuffer:
            raise _refuse(source, f"{where}['log_scalars'][{key!r:.80}]",
                          f'is a {type(value).__name__}, not a '
                          'HistoryBuffer')
    for key in hub['runtime_info']:
        if type(key) is not str:
            raise _refuse(source, f"{where}['runtime_info'] key {key!r:.80}",
                          'is not a str')
    for key, value in hub['resumed_keys'].items():
        if type(key) is not str or type(value) is not bool:
            raise _refuse(source, f"{where}['resumed_keys'][{key!r:.80}]",
                          f'is {value!r:.40}, not a bool')


def check_mmengine_checkpoint(checkpoint: Any, source: str) -> Any:
    """Check what MMEngine reads of a loaded checkpoint; defuse ``config``.

    ``meta``: ``epoch`` and ``iter`` ints >= 0, ``seed`` an int or None,
    ``config`` replaced by the literal ``gpu_ids`` it assigns (or removed,
    never executed).
    ``message_hub``: ``log_scalars`` of ``HistoryBuffer`` objects (their
    histories were checked while unpickling), ``runtime_info`` with ``str``
    keys, ``resumed_keys`` of bools. Other checkpoints (a bare state dict,
    a converted backbone) pass unchanged.

    Args:
        checkpoint: what ``torch.load`` returned.
        source: the file or URL it came from, for the error messages.

    Returns:
        ``checkpoint``, changed in place.

    Raises:
        CheckpointRefusedError: naming ``source`` and the key at fault.
    """
    if isinstance(checkpoint, dict):
        if 'meta' in checkpoint:
            _check_meta(checkpoint['meta'], source)
        if 'message_hub' in checkpoint:
            _check_message_hub(checkpoint['message_hub'], source)
    return checkpoint


def _guarded(loader: Callable) -> Callable:
    """``loader`` whose checkpoints pass :func:`check_mmengine_checkpoint`."""

    @functools.wraps(loader)
    def guarded_loader(filename: str, *args: Any, **kwargs: Any) -> Any:
        try:
            checkpoint = loader(filename, *args, **kwargs)
        except pickle.UnpicklingError as error:
            # torch wraps the unpickler's reason in advice to load with
            # weights_only=False; keep the reason
            detail = str(error).split(_WEIGHTS_ONLY_DETAIL)[-1].split(
                _TORCH_DOCS_ADVICE)[0].strip()
            raise CheckpointRefusedError(
                f'checkpoint {filename} refused while unpickling: '
                f'{detail}') from error
        except Exception as error:
            error.add_note(f'(while loading checkpoint {filename})')
            raise
        return check_mmengine_checkpoint(checkpoint, str(filename))

    guarded_loader.ce_mmdet_guarded = True  # type: ignore[attr-defined]
    return guarded_loader


def guard_mmengine_checkpoint_loaders() -> list[str]:
    """Wrap every registered MMEngine checkpoint loader with the checks.

    Idempotent. Loaders registered later (a new URL scheme) are not
    wrapped.

    Returns:
        The prefixes whose loaders are guarded.
    """
    for prefix, loader in list(CheckpointLoader._schemes.items()):
        if not getattr(loader, 'ce_mmdet_guarded', False):
            CheckpointLoader.register_scheme(
                prefix, _guarded(loader), force=True)
    return list(CheckpointLoader._schemes)


def is_local_checkpoint(checkpoint: str) -> bool:
    """Whether MMEngine loads ``checkpoint`` as a local file (no URL scheme).

    Args:
        checkpoint: what ``init_cfg``/``load_from`` names.
    """
    loader = CheckpointLoader._get_checkpoint_loader(checkpoint)
    return getattr(loader, '__wrapped__', loader) is load_from_local
