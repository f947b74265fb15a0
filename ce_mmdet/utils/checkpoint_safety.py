"""Let ``torch.load(weights_only=True)`` read MMEngine's own checkpoints.

Since PyTorch 2.6, ``torch.load`` defaults to ``weights_only=True``: its
unpickler only rebuilds tensors, plain containers and the globals allow-listed
with ``torch.serialization.add_safe_globals``. MMEngine 0.10.x calls
``torch.load(filename, map_location=...)`` without ``weights_only``, so
``load_from`` and ``resume`` of a checkpoint that MMEngine itself wrote fail
with ``UnpicklingError: Unsupported global`` (open-mmlab/mmengine#1655), the
message hub and its ``HistoryBuffer`` objects being pickled objects.

:func:`allow_mmengine_checkpoint_globals` allow-lists the globals those
checkpoints carry, found by saving checkpoints of MMEngine runs and message
hubs (empty and non-empty buffers, numpy scalars and arrays) and listing them
with ``torch.serialization.get_unsafe_globals_in_checkpoint``. Every global
that a crafted pickle could turn into something else than what MMEngine
writes is registered as a restricted stand-in under its name, which accepts
exactly the calls numpy and MMEngine pickle and raises
``pickle.UnpicklingError`` for anything else:

* ``mmengine.logging.history_buffer.HistoryBuffer`` (the class itself), the
  message hub's ``log_scalars`` (``train/loss``, ``train/lr``,
  ``val/coco/bbox_mAP``...).
* ``builtins.getattr``: a ``HistoryBuffer`` pickles its statistics methods
  as ``getattr(HistoryBuffer, 'mean')``. The real ``getattr`` would let a
  crafted file walk from any allowed object to any attribute (module
  namespaces included); the stand-in resolves only
  ``HistoryBuffer.{min,max,current,mean}``.
* ``builtins.bytes``: pickle protocol 2 (``torch.save``'s) writes an empty
  ``bytes`` as the call ``bytes()``; the raw data of every empty numpy array
  (an empty ``HistoryBuffer`` holds two) is one. The stand-in takes no
  argument and returns ``b''``. (Non-empty ``bytes`` are written as
  ``_codecs.encode(str, 'latin1')``, which torch allows by default: it only
  encodes a string with a codec of the standard ``encodings`` package.)
* numpy arrays: ``ndarray.__reduce__`` writes
  ``multiarray._reconstruct(numpy.ndarray, (0,), b'b')`` and then sets the
  array's state (shape, dtype, raw bytes) with ``ndarray.__setstate__``,
  which takes nothing but ``bytes`` that fill the shape exactly for the
  plain dtypes below. The
  stand-in for ``_reconstruct`` accepts exactly those arguments,
  ``numpy.ndarray`` resolves to a marker that refuses to be called (the real
  ``numpy.ndarray(shape, 'O', buffer)`` builds an object array whose
  pointers come from the file: a segmentation fault or worse), and the real
  class is registered under a name that no pickle can spell (it holds a
  newline), so that torch lets ``__setstate__`` run on the arrays that
  ``_reconstruct`` built and on nothing else.
* numpy dtypes: ``numpy.dtype('f8', False, True)`` followed by
  ``dtype.__setstate__(state)``. numpy applies any flags, fields and
  sub-array shape a state gives to a fresh dtype (an ``f8`` turned into a
  record with an object field reads pointers from the file), but leaves its
  builtin dtypes alone. The stand-in for ``numpy.dtype`` therefore returns
  numpy's builtin dtype of the codes of bool, the signed and unsigned
  integers of 8 to 64 bits and the floats of 16 to 64 bits (``b1``, ``i1``
  ... ``u8``, ``f2``, ``f4``, ``f8``) and refuses every other dtype (object,
  strings, void/records, datetimes, complex). Their classes
  (``numpy.dtypes.Float64DType``...; their constructors return the builtin
  dtypes too) are allowed so that torch runs ``__setstate__`` on them.
  A consequence: the byte order in the state is ignored, so a checkpoint
  written on a machine of the other endianness loads with byte-swapped
  numpy values (MMEngine runs on little-endian machines).
* numpy scalars (``eta``, ``best_score``, numpy metrics in the message hub's
  ``runtime_info``): ``multiarray.scalar(dtype, raw_bytes)``; the stand-in
  takes only one of the dtypes above and exactly ``itemsize`` bytes.

The numpy globals are registered under both the numpy 2.x
(``numpy._core``) and the numpy 1.x (``numpy.core``) module names, so that
checkpoints written under either load under the installed numpy.

Everything else in those checkpoints (``meta``, the optimizer's and the
parameter schedulers' states, ``MultiStepLR``'s ``collections.Counter``, AMP
loss-scaler and EMA states) is tensors, builtins or already allowed by torch.
Anything else, e.g. an arbitrary class or function in a checkpoint, is still
refused. Not covered: ``OneCycleLR``'s state, which pickles a bound method
together with the whole scheduler and its optimizer (load such a checkpoint
with ``torch.serialization.safe_globals`` or ``weights_only=False`` if you
trust it). Registering numpy's real ``ndarray``, ``dtype`` or
``_reconstruct`` yourself with ``add_safe_globals`` (as some guides suggest)
may replace the stand-ins of the same names and reopens what they close.

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
    'HISTORY_BUFFER_STATISTICS', 'PLAIN_NUMPY_DTYPES'
]

SafeGlobal = Union[Callable, tuple[Callable, str]]

HISTORY_BUFFER_STATISTICS = frozenset({'min', 'max', 'current', 'mean'})
"""The methods a ``HistoryBuffer`` pickles (its default statistics)."""

# plain-data dtypes that numpy arrays and scalars of MMEngine's message hub
# can hold; the kinds 'b' (bool), 'i'/'u' (integers) and 'f' (floats)
_NUMPY_DTYPES = ('bool', 'int8', 'int16', 'int32', 'int64', 'uint8',
                 'uint16', 'uint32', 'uint64', 'float16', 'float32',
                 'float64')

PLAIN_NUMPY_DTYPES: dict[str, np.dtype] = {
    np.dtype(name).str[1:]: np.dtype(name)
    for name in _NUMPY_DTYPES
}
"""numpy's builtin dtypes that checkpoints may hold, by pickled code.

``'f8'`` for float64, ``'b1'`` for bool...: the first argument of the
``numpy.dtype(code, False, True)`` call a pickled dtype is rebuilt with.
"""

NDARRAY_INSTANCES_NAME = ('numpy.ndarray\n(instances built by the stand-in '
                          'of numpy multiarray._reconstruct)')
"""The name ``numpy.ndarray`` itself is registered under.

Torch runs ``__setstate__`` only on instances of allowed classes, but an
allowed class can also be called; registered under a name that holds a
newline (no pickle ``GLOBAL`` can spell it: the module and the name are read
as lines), ``numpy.ndarray`` is allowed for the former and unreachable for
the latter.
"""


def _refused(call: str, allowed: str) -> pickle.UnpicklingError:
    """The error of a stand-in for a call it does not accept."""
    return pickle.UnpicklingError(
        f'weights_only load: {call} is refused; ce_mmdet only allows '
        f'{allowed} (see ce_mmdet.utils.checkpoint_safety)')


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` restricted to the methods a ``HistoryBuffer`` pickles.

    Registered as ``builtins.getattr`` for ``weights_only`` loads only.

    Raises:
        pickle.UnpicklingError: for any other object or attribute.
    """
    if obj is HistoryBuffer and isinstance(
            name, str) and name in HISTORY_BUFFER_STATISTICS:
        return getattr(obj, name)
    raise _refused(
        f'getattr({obj!r}, {name!r})', 'getattr(HistoryBuffer, name) for '
        f'name in {sorted(HISTORY_BUFFER_STATISTICS)}')


def _empty_bytes(*args: Any) -> bytes:
    """``bytes()``: how pickle protocol 2 writes ``b''``.

    Registered as ``builtins.bytes``; non-empty bytes are pickled as
    ``_codecs.encode(str, 'latin1')``.

    Raises:
        pickle.UnpicklingError: if called with any argument.
    """
    if args:
        raise _refused(f'bytes{args!r:.80}', "bytes() (b'')")
    return b''


def _refuse_ndarray_call(*args: Any) -> None:
    """What ``numpy.ndarray`` resolves to: a marker that cannot be called.

    Only :func:`_reconstruct_ndarray` takes it (as the class to build).

    Raises:
        pickle.UnpicklingError: always.
    """
    raise _refused(
        f'numpy.ndarray{args!r:.80}',
        "numpy.ndarray as the class of multiarray._reconstruct")


def _numpy_multiarray() -> Any:
    """numpy's ``multiarray`` module (``numpy._core`` since numpy 2.0)."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    return multiarray


def _reconstruct_ndarray(subtype: Any, shape: Any,
                         typecode: Any) -> np.ndarray:
    """``multiarray._reconstruct`` restricted to what ndarray pickles.

    ``ndarray.__reduce__`` always writes
    ``_reconstruct(numpy.ndarray, (0,), b'b')``, an empty placeholder whose
    ``__setstate__`` then sets the shape, dtype and data.

    Raises:
        pickle.UnpicklingError: for any other arguments (another class, a
            shape that allocates, an object typecode...).
    """
    if (subtype not in (_refuse_ndarray_call, np.ndarray)
            or type(shape) is not tuple or shape != (0, )
            or typecode not in (b'b', 'b')):
        raise _refused(
            f'multiarray._reconstruct({subtype!r}, {shape!r:.40}, '
            f'{typecode!r:.40})',
            "multiarray._reconstruct(numpy.ndarray, (0,), b'b')")
    return _numpy_multiarray()._reconstruct(np.ndarray, (0, ), b'b')


def _plain_dtype(code: Any,
                 align: Any = False,
                 copy: Any = False) -> np.dtype:
    """``numpy.dtype(code, align, copy)`` restricted to builtin plain dtypes.

    Returns numpy's builtin dtype (``copy`` is ignored): numpy's
    ``dtype.__setstate__`` leaves builtin dtypes unchanged, so the state
    that follows in the pickle cannot add fields, flags or a sub-array.

    Raises:
        pickle.UnpicklingError: for a code not in
            :data:`PLAIN_NUMPY_DTYPES` or ``align=True``.
    """
    if (type(code) is not str or code not in PLAIN_NUMPY_DTYPES
            or align is not False or type(copy) is not bool):
        raise _refused(
            f'numpy.dtype({code!r:.80}, {align!r:.20}, {copy!r:.20})',
            f'numpy.dtype(code, False, copy) for code in '
            f'{sorted(PLAIN_NUMPY_DTYPES)}')
    return PLAIN_NUMPY_DTYPES[code]


def _is_plain_dtype(dtype: Any) -> bool:
    """Whether ``dtype`` is one of the builtin :data:`PLAIN_NUMPY_DTYPES`."""
    return any(dtype is plain for plain in PLAIN_NUMPY_DTYPES.values())


def _plain_scalar(dtype: Any, data: Any) -> np.generic:
    """``multiarray.scalar(dtype, data)`` restricted to plain numpy scalars.

    Raises:
        pickle.UnpicklingError: unless ``dtype`` is one of
            :data:`PLAIN_NUMPY_DTYPES` and ``data`` is ``bytes`` of its size.
    """
    if (not _is_plain_dtype(dtype) or type(data) is not bytes
            or len(data) != dtype.itemsize):
        raise _refused(
            f'multiarray.scalar({dtype!r:.40}, {data!r:.40})',
            'multiarray.scalar(dtype, bytes of dtype.itemsize) for the dtypes '
            f'{sorted(PLAIN_NUMPY_DTYPES)}')
    return _numpy_multiarray().scalar(dtype, data)


def mmengine_checkpoint_globals() -> list[SafeGlobal]:
    """The globals of MMEngine checkpoints, for ``add_safe_globals``.

    Returns:
        list of classes and ``(object, 'module.qualname')`` pairs, the
        latter for the restricted stand-ins registered under the name of
        what they stand in for (and for ``numpy.ndarray`` itself, see
        :data:`NDARRAY_INSTANCES_NAME`).
    """
    safe_globals: list[SafeGlobal] = [
        HistoryBuffer,
        (_history_buffer_getattr, 'builtins.getattr'),
        (_empty_bytes, 'builtins.bytes'),
        (_refuse_ndarray_call, 'numpy.ndarray'),
        (np.ndarray, NDARRAY_INSTANCES_NAME),
        (_plain_dtype, 'numpy.dtype'),
    ]
    for numpy_core in ('numpy._core', 'numpy.core'):
        safe_globals += [
            (_reconstruct_ndarray, f'{numpy_core}.multiarray._reconstruct'),
            (_plain_scalar, f'{numpy_core}.multiarray.scalar'),
        ]
    # torch runs dtype.__setstate__ only on instances of allow-listed
    # classes: numpy.dtypes.Float64DType & co (numpy.dtype[float64] on
    # numpy < 1.25), whose constructors return the builtin dtypes as well
    safe_globals += [type(dtype) for dtype in PLAIN_NUMPY_DTYPES.values()]
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
