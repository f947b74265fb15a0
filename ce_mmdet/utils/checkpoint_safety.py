"""Let ``torch.load(weights_only=True)`` read MMEngine's own checkpoints.

Since PyTorch 2.6, ``torch.load`` defaults to ``weights_only=True``: its
unpickler only rebuilds tensors, plain containers and the globals allow-listed
with ``torch.serialization.add_safe_globals``. MMEngine 0.10.x calls
``torch.load(filename, map_location=...)`` without ``weights_only``, so
``load_from`` and ``resume`` of a checkpoint that MMEngine itself wrote fail
with ``UnpicklingError: Unsupported global`` (open-mmlab/mmengine#1655), the
message hub and its ``HistoryBuffer`` objects being pickled objects.

:func:`allow_mmengine_checkpoint_globals` allow-lists exactly the globals
those checkpoints carry, found by saving checkpoints of MMEngine runs and
listing them with ``torch.serialization.get_unsafe_globals_in_checkpoint``
(the dtype classes, which are no pickle globals, by loading them):

* ``mmengine.logging.history_buffer.HistoryBuffer``, the message hub's
  ``log_scalars`` (``train/loss``, ``train/lr``, ``val/coco/bbox_mAP``...).
* ``builtins.getattr``: a ``HistoryBuffer`` pickles its statistics methods
  as ``getattr(HistoryBuffer, 'mean')``. The real ``getattr`` would let a
  crafted file walk from any allowed object to any attribute (module
  namespaces included) and defeat ``weights_only``, so a stand-in is
  registered under that name that resolves only
  ``HistoryBuffer.{min,max,current,mean}`` and refuses everything else.
* numpy, for the buffers' histories (``float64`` values, ``int64`` counts)
  and for numpy scalars in the message hub's ``runtime_info`` (``eta``,
  ``best_score``, non-scalar ``val/...`` metrics): ``ndarray``, ``dtype``,
  ``multiarray._reconstruct`` and ``multiarray.scalar``, under both the
  numpy 2.x (``numpy._core``) and the numpy 1.x (``numpy.core``) names so
  that checkpoints written under either load under the installed numpy, and
  the dtype classes of bool, the signed and unsigned integers of 8 to 64
  bits and the floats of 16 to 64 bits (``numpy.dtypes.Float64DType``...).
  Object, string, void, datetime and complex dtypes stay refused.

Everything else in those checkpoints (``meta``, the optimizer's and the
parameter schedulers' states, ``MultiStepLR``'s ``collections.Counter``, AMP
loss-scaler and EMA states) is tensors, builtins or already allowed by torch.
Anything else, e.g. an arbitrary class in a checkpoint, is still refused.
Not covered: ``OneCycleLR``'s state, which pickles a bound method together
with the whole scheduler and its optimizer (load such a checkpoint with
``torch.serialization.safe_globals`` or ``weights_only=False`` if you trust
it).

``import ce_mmdet`` (configs do it through ``custom_imports``) calls
:func:`allow_mmengine_checkpoint_globals`; it is idempotent and does nothing
when ``torch.load`` has no allow-list by name (PyTorch < 2.6, which also still
defaults to ``weights_only=False``).
"""
from __future__ import annotations

import inspect
import pickle
from typing import Any, Callable, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

__all__ = [
    'allow_mmengine_checkpoint_globals', 'mmengine_checkpoint_globals',
    'HISTORY_BUFFER_STATISTICS'
]

SafeGlobal = Union[Callable, tuple[Callable, str]]

HISTORY_BUFFER_STATISTICS = frozenset({'min', 'max', 'current', 'mean'})
"""The methods a ``HistoryBuffer`` pickles (its default statistics)."""

# plain-data dtypes that numpy arrays and scalars of MMEngine's message hub
# can hold; the kinds 'b' (bool), 'i'/'u' (integers) and 'f' (floats)
_NUMPY_DTYPES = ('bool', 'int8', 'int16', 'int32', 'int64', 'uint8',
                 'uint16', 'uint32', 'uint64', 'float16', 'float32',
                 'float64')


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` restricted to the methods a ``HistoryBuffer`` pickles.

    Registered as ``builtins.getattr`` for ``weights_only`` loads only.

    Raises:
        pickle.UnpicklingError: for any other object or attribute.
    """
    if obj is HistoryBuffer and isinstance(
            name, str) and name in HISTORY_BUFFER_STATISTICS:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'weights_only load: getattr({obj!r}, {name!r}) is refused; '
        'ce_mmdet only allows getattr(HistoryBuffer, name) for name in '
        f'{sorted(HISTORY_BUFFER_STATISTICS)}')


def _numpy_multiarray() -> Any:
    """numpy's ``multiarray`` module (``numpy._core`` since numpy 2.0)."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    return multiarray


def mmengine_checkpoint_globals() -> list[SafeGlobal]:
    """The globals of MMEngine checkpoints, for ``add_safe_globals``.

    Returns:
        list of classes/functions and ``(object, 'module.qualname')`` pairs,
        the latter for objects pickled under another name than their own.
    """
    multiarray = _numpy_multiarray()
    safe_globals: list[SafeGlobal] = [
        HistoryBuffer,
        (_history_buffer_getattr, 'builtins.getattr'),
        np.ndarray,
        np.dtype,
    ]
    for numpy_core in ('numpy._core', 'numpy.core'):
        safe_globals += [
            (multiarray._reconstruct,
             f'{numpy_core}.multiarray._reconstruct'),
            (multiarray.scalar, f'{numpy_core}.multiarray.scalar'),
        ]
    # a pickled dtype is rebuilt by numpy.dtype(...), then its state is set,
    # which torch allows only for instances of allow-listed classes:
    # numpy.dtypes.Float64DType & co (numpy.dtype[float64] on numpy < 1.25)
    safe_globals += [type(np.dtype(name)) for name in _NUMPY_DTYPES]
    return safe_globals


def _supports_named_safe_globals() -> bool:
    """Whether ``add_safe_globals`` exists and takes ``(obj, name)`` pairs.

    Both came with the ``weights_only=True`` default (PyTorch 2.6); before,
    ``torch.load`` unpickles everything by default and nothing is needed.
    """
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is None:
        return False
    try:
        signature = str(inspect.signature(add_safe_globals))
    except (TypeError, ValueError):  # pragma: no cover
        return False
    return 'tuple' in signature.lower()


def allow_mmengine_checkpoint_globals() -> list[str]:
    """Allow-list MMEngine's checkpoint globals for ``weights_only`` loads.

    Registers :func:`mmengine_checkpoint_globals` with
    ``torch.serialization.add_safe_globals``, so that MMEngine's
    ``load_from``/``resume`` (and ``torch.load``) read checkpoints written by
    MMEngine runners with PyTorch's default ``weights_only=True``. Never
    disables ``weights_only``: other globals are still refused.

    Idempotent (the allow-list is a set). A no-op on PyTorch < 2.6.

    Returns:
        The names registered, ``'module.qualname'``; empty when nothing was
        done.
    """
    if not _supports_named_safe_globals():
        return []
    safe_globals = mmengine_checkpoint_globals()
    torch.serialization.add_safe_globals(safe_globals)
    return [
        item[1] if isinstance(item, tuple) else
        f'{item.__module__}.{item.__qualname__}' for item in safe_globals
    ]
