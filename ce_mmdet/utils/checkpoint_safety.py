"""Let ``torch.load(weights_only=True)`` read MMEngine's own checkpoints.

Since PyTorch 2.6, ``torch.load`` defaults to ``weights_only=True``: its
unpickler only rebuilds tensors, plain containers and the globals allow-listed
with ``torch.serialization.add_safe_globals``. MMEngine 0.10.x calls
``torch.load(filename, map_location=...)`` without ``weights_only``, so
``load_from`` and ``resume`` of a checkpoint that MMEngine itself wrote fail
with ``UnpicklingError: Unsupported global`` (open-mmlab/mmengine#1655), the
message hub and its ``HistoryBuffer`` objects being pickled objects.

:func:`allow_mmengine_checkpoint_globals` allow-lists the globals those
checkpoints carry (found by saving checkpoints of MMEngine runs and message
hubs and listing them with
``torch.serialization.get_unsafe_globals_in_checkpoint``). None of them is
registered as itself: each name resolves to a restricted stand-in that
accepts exactly what MMEngine and numpy write and raises
``pickle.UnpicklingError`` for anything else. Two rules of the weights-only
unpickler shape them:

* a ``REDUCE`` calls any allowed global with arguments from the file;
* a ``BUILD`` calls ``obj.__setstate__(state)`` on any object whose type is
  allowed, as often as the file says, and ``BUILD`` is how numpy arrays and
  ``HistoryBuffer`` objects receive their contents. numpy's own
  ``ndarray.__setstate__`` frees an array's buffer when it is given a second
  state, so a real ``numpy.ndarray`` that could be built twice is a
  use-after-free: torch's default-allowed
  ``torch._utils._rebuild_device_tensor_from_numpy`` makes a tensor that
  shares the buffer in between.

The stand-ins:

* ``mmengine.logging.history_buffer.HistoryBuffer`` (the message hub's
  ``log_scalars``: ``train/loss``, ``train/lr``, ``val/coco/bbox_mAP``...):
  :class:`_HistoryBufferFromCheckpoint`, which cannot be called, only
  created empty by pickle's ``NEWOBJ`` and given one state. The state is
  checked (see :func:`_checked_history_state`): two 1-D histories of equal
  length, plain numeric dtypes, finite values, at most ``max_length`` (a
  positive ``int``) of them, and the statistics methods MMEngine pickles.
  The object then becomes a real ``HistoryBuffer`` with fresh arrays and no
  state taken from the file but those three values: MMEngine's own
  ``__setstate__`` merges the file's methods into the class-level
  ``_statistics_methods`` of every buffer in the process, which this never
  does. A real ``HistoryBuffer`` is not allowed for ``BUILD``, so it cannot
  be given a second state.
* ``builtins.getattr``: a ``HistoryBuffer`` pickles its statistics methods as
  ``getattr(HistoryBuffer, 'mean')``. The real ``getattr`` would let a
  crafted file walk from any allowed object to any attribute (module
  namespaces included); the stand-in resolves only
  ``HistoryBuffer.{min,max,current,mean}``.
* ``builtins.bytes``: pickle protocol 2 (``torch.save``'s) writes an empty
  ``bytes`` as the call ``bytes()``; the raw data of every empty numpy array
  is one. The stand-in takes no argument and returns ``b''``. (Non-empty
  ``bytes`` are written as ``_codecs.encode(str, 'latin1')``, which torch
  allows by default.)
* numpy arrays: ``ndarray.__reduce__`` writes
  ``multiarray._reconstruct(numpy.ndarray, (0,), b'b')`` and then sets the
  array's state (version, shape, dtype, Fortran order, raw bytes). The
  stand-in for ``_reconstruct`` accepts exactly those arguments and returns
  an empty :class:`CheckpointArray`, an ``ndarray`` subclass of a void
  dtype that torch refuses to share, which takes one checked state: plain
  dtype, shape of non-negative ``int`` dimensions, raw ``bytes`` that fill
  it exactly. numpy copies those bytes into a buffer the array owns; a
  second state is refused, so nothing can free the buffer while a tensor
  shares it. ``numpy.ndarray`` itself resolves to a marker that refuses to
  be called (the real ``numpy.ndarray(shape, 'O', buffer)`` builds an
  object array whose pointers come from the file) and is not allowed for
  ``BUILD``. A :class:`CheckpointArray` pickles, deep-copies (MMEngine's
  message hub deep-copies ``runtime_info``) and converts with
  ``numpy.asarray`` to plain ``numpy.ndarray``.
* numpy dtypes: ``numpy.dtype('f8', False, True)`` followed by
  ``dtype.__setstate__(state)``. numpy applies any flags, fields and
  sub-array shape a state gives to a fresh dtype (an ``f8`` turned into a
  record with an object field reads pointers from the file). The stand-in
  for ``numpy.dtype`` returns a :class:`_PickledDtype` for the codes of
  bool, the signed and unsigned integers of 8 to 64 bits and the floats of
  16 to 64 bits (``b1``, ``i1`` ... ``u8``, ``f2``, ``f4``, ``f8``) and
  refuses every other dtype (object, strings, void/records, datetimes,
  complex). It takes one state, exactly the one numpy writes for that
  builtin dtype on this machine (a checkpoint of the other byte order is
  refused rather than read byte-swapped), and stands for numpy's builtin
  dtype wherever an array or a scalar is built; no numpy dtype is ever
  given a state from a file.
* numpy scalars (``eta``, ``best_score``, numpy metrics in the message hub's
  ``runtime_info``): ``multiarray.scalar(dtype, raw_bytes)``; the stand-in
  takes only one of the dtypes above and exactly ``itemsize`` bytes, and
  returns an immutable numpy scalar.

Every stand-in object takes at most one state, and only a checked one: a
second ``BUILD`` on anything a checkpoint made through these names is
refused.

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
trust it). A numpy dtype pickled on its own (not as the dtype of an array
or a scalar; MMEngine writes none) loads as a :class:`_PickledDtype`; its
``dtype`` attribute is numpy's. Registering numpy's real ``ndarray``,
``dtype`` or ``_reconstruct`` or MMEngine's ``HistoryBuffer`` yourself with
``add_safe_globals`` (as some guides suggest) replaces the stand-ins of the
same names and reopens what they close.

What a checkpoint's *contents* may do once loaded (``meta['config']``, which
MMEngine's resume executes; the message hub's structure) is checked by
:mod:`ce_mmdet.utils.checkpoint_loading`.

``import ce_mmdet`` (configs do it through ``custom_imports``) calls
:func:`allow_mmengine_checkpoint_globals`; it is idempotent and does nothing
when ``torch.load`` has no allow-list by name (PyTorch < 2.6, which also still
defaults to ``weights_only=False``).
"""
from __future__ import annotations

import inspect
import math
import pickle
from typing import Any, Callable, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

__all__ = [
    'allow_mmengine_checkpoint_globals', 'mmengine_checkpoint_globals',
    'CheckpointArray', 'HISTORY_BUFFER_STATISTICS', 'PLAIN_NUMPY_DTYPES'
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

_MAX_ARRAY_DIMENSIONS = 32
_MAX_DIMENSION_SIZE = 2**31 - 1


def _unspellable(name: str) -> str:
    """A name under which an allowed class is reachable only by ``BUILD``.

    Torch runs ``__setstate__`` only on instances of allowed classes, but an
    allowed class can also be called by name. A name that holds a newline
    can be spelled by no pickle ``GLOBAL`` (the module and the name are read
    as lines), so the class is allowed for the former only.
    """
    return f'{name}\n(only built by ce_mmdet.utils.checkpoint_safety)'


def _refused(call: str, allowed: str) -> pickle.UnpicklingError:
    """The error of a stand-in for a call it does not accept."""
    return pickle.UnpicklingError(
        f'weights_only load: {call} is refused; ce_mmdet only allows '
        f'{allowed} (see ce_mmdet.utils.checkpoint_safety)')


def _is_int(value: Any) -> bool:
    """Whether ``value`` is a Python ``int`` (``bool`` excluded)."""
    return type(value) is int


class _PickledDtype:
    """A numpy builtin dtype as a checkpoint spells it, given one state.

    Made by the stand-in of ``numpy.dtype(code, False, True)``; the state
    that follows must be the one numpy writes for that builtin dtype.

    Attributes:
        dtype: numpy's builtin dtype (one of :data:`PLAIN_NUMPY_DTYPES`).
    """

    __slots__ = ('dtype', 'built')

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = dtype
        self.built = False

    def __setstate__(self, state: Any) -> None:
        """Accept numpy's own state of :attr:`dtype`, once.

        Raises:
            pickle.UnpicklingError: on a second state or any other state
                (fields, flags, a sub-array, another byte order).
        """
        if self.built:
            raise _refused(f'a second state for {self.dtype}',
                           'one state per dtype')
        expected = self.dtype.__reduce__()[2]
        if type(state) is not tuple or state != expected or any(
                type(item) is not type(want)
                for item, want in zip(state, expected)):
            raise _refused(
                f'state {state!r:.120} for numpy dtype {self.dtype}',
                f'numpy\'s own state {expected!r} (a checkpoint written '
                'on a machine of the same byte order)')
        self.built = True

    def __repr__(self) -> str:
        return f'_PickledDtype({self.dtype!r})'


def _builtin_dtype(dtype: Any) -> np.dtype | None:
    """numpy's builtin dtype of a built :class:`_PickledDtype`, or None."""
    if type(dtype) is _PickledDtype and dtype.built:
        return dtype.dtype
    return None


class CheckpointArray(np.ndarray):
    """A numpy array read from a checkpoint: built once, owns its buffer.

    Made empty (of a void dtype that ``torch.from_numpy`` refuses) by the
    stand-in of ``multiarray._reconstruct``, then given its contents by
    exactly one ``__setstate__``, which numpy copies into a buffer of the
    array's own. Behaves as an ``ndarray``; pickles, deep-copies and
    ``numpy.asarray``-converts to a plain ``numpy.ndarray``.
    """

    def __setstate__(self, state: Any) -> None:
        """Take the state ``ndarray.__reduce__`` wrote, once, after checks.

        Args:
            state: ``(1, shape, dtype, is_fortran, raw_bytes)``.

        Raises:
            pickle.UnpicklingError: on a second state, or one that is not
                a plain array whose bytes fill its shape exactly.
        """
        if self.built:
            raise _refused('a second state for a numpy array',
                           'one state per array (it could free a buffer '
                           'that a tensor shares)')
        if not (type(state) is tuple and len(state) == 5 and state[0] == 1
                and _is_int(state[0])):
            raise _refused(f'numpy array state {state!r:.80}',
                           '(1, shape, dtype, is_fortran, bytes)')
        _, shape, pickled_dtype, is_fortran, raw = state
        dtype = _builtin_dtype(pickled_dtype)
        if not (type(shape) is tuple and len(shape) <= _MAX_ARRAY_DIMENSIONS
                and all(
                    _is_int(size) and 0 <= size <= _MAX_DIMENSION_SIZE
                    for size in shape)):
            raise _refused(
                f'numpy array shape {shape!r:.80}',
                f'a tuple of at most {_MAX_ARRAY_DIMENSIONS} ints in '
                f'[0, {_MAX_DIMENSION_SIZE}]')
        if dtype is None:
            raise _refused(f'numpy array dtype {pickled_dtype!r:.80}',
                           f'a pickled dtype of {sorted(PLAIN_NUMPY_DTYPES)}')
        if type(is_fortran) is not bool:
            raise _refused(f'numpy array order flag {is_fortran!r:.40}',
                           'a bool')
        if type(raw) is not bytes or len(raw) != math.prod(
                shape) * dtype.itemsize:
            raise _refused(
                f'numpy array data of {type(raw).__name__} '
                f'{len(raw) if isinstance(raw, bytes) else ""}',
                f'bytes that fill shape {shape} of {dtype} exactly')
        # numpy copies `raw` into a new buffer of the array's own
        super().__setstate__((1, shape, dtype, is_fortran, raw))
        self.__dict__['_built'] = True

    @property
    def built(self) -> bool:
        """Whether the array has received its one state."""
        return self.__dict__.get('_built', False)

    def __reduce__(self) -> tuple:
        """Pickle as the plain ``numpy.ndarray`` it stands for."""
        return np.asarray(self).__reduce__()

    def __deepcopy__(self, memo: dict) -> np.ndarray:
        """A plain ``numpy.ndarray`` copy."""
        return np.array(self, copy=True)

    def __copy__(self) -> np.ndarray:
        """A plain ``numpy.ndarray`` copy."""
        return np.array(self, copy=True)


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` restricted to the methods a ``HistoryBuffer`` pickles.

    Registered as ``builtins.getattr`` for ``weights_only`` loads only; the
    pickled ``HistoryBuffer`` resolves to its stand-in.

    Raises:
        pickle.UnpicklingError: for any other object or attribute.
    """
    if (obj in (HistoryBuffer, _HistoryBufferFromCheckpoint)
            and type(name) is str and name in HISTORY_BUFFER_STATISTICS):
        return getattr(HistoryBuffer, name)
    raise _refused(
        f'getattr({obj!r:.80}, {name!r:.80})', 'getattr(HistoryBuffer, name) '
        f'for name in {sorted(HISTORY_BUFFER_STATISTICS)}')


def _checked_history(state: dict, key: str, kinds: str) -> np.ndarray:
    """``state[key]``: a 1-D history array, checked and copied."""
    history = state[key]
    if type(history) is not CheckpointArray:
        raise _refused(
            f'HistoryBuffer {key} of type {type(history).__name__}',
            'a numpy array as MMEngine writes it')
    if not history.built:
        raise _refused(f'HistoryBuffer {key} without contents',
                       'a numpy array with its state')
    if history.ndim != 1 or history.dtype.kind not in kinds:
        raise _refused(
            f'HistoryBuffer {key} of shape {history.shape} and dtype '
            f'{history.dtype}', f'a 1-D array of kind {kinds!r}')
    if history.dtype.kind == 'f' and not np.isfinite(history).all():
        raise _refused(f'HistoryBuffer {key} with non-finite values',
                       'finite values')
    return np.array(history, copy=True)


def _checked_history_state(state: Any) -> dict:
    """The parts of a pickled ``HistoryBuffer`` state that are kept.

    Args:
        state: what ``HistoryBuffer.__getstate__`` wrote: ``max_length``,
            ``_log_history``, ``_count_history`` and ``statistics_methods``
            (``{name: getattr(HistoryBuffer, name)}`` for MMEngine's four
            default statistics).

    Returns:
        ``max_length`` and fresh copies of the two histories.

    Raises:
        pickle.UnpicklingError: for anything else.
    """
    required = {'max_length', '_log_history', '_count_history'}
    if type(state) is not dict or not required <= state.keys() <= (
            required | {'statistics_methods'}):
        keys = sorted(map(repr, state)) if type(state) is dict else state
        raise _refused(
            f'HistoryBuffer state {keys!r:.120}',
            f'a dict of {sorted(required)} and statistics_methods')
    max_length = state['max_length']
    if not _is_int(max_length) or max_length < 1:
        raise _refused(f'HistoryBuffer max_length {max_length!r:.40}',
                       'a positive int')
    log_history = _checked_history(state, '_log_history', 'biuf')
    count_history = _checked_history(state, '_count_history', 'biuf')
    if len(log_history) != len(count_history) or len(
            log_history) > max_length:
        raise _refused(
            f'HistoryBuffer histories of lengths {len(log_history)} and '
            f'{len(count_history)} for max_length {max_length}',
            'two histories of equal length, at most max_length')
    methods = state.get('statistics_methods', {})
    if type(methods) is not dict or any(
            type(name) is not str or name not in HISTORY_BUFFER_STATISTICS
            or method is not getattr(HistoryBuffer, name)
            for name, method in methods.items()):
        raise _refused(
            f'HistoryBuffer statistics_methods {methods!r:.120}',
            f'MMEngine\'s {sorted(HISTORY_BUFFER_STATISTICS)} (never '
            'methods of the checkpoint\'s own)')
    return dict(
        max_length=max_length,
        _log_history=log_history,
        _count_history=count_history)


class _HistoryBufferFromCheckpoint:
    """What ``mmengine.logging.history_buffer.HistoryBuffer`` resolves to.

    MMEngine pickles a ``HistoryBuffer`` as ``NEWOBJ(HistoryBuffer)`` (an
    empty object) followed by a ``BUILD`` with its ``__dict__``. The stand-in
    is created empty the same way and becomes a real ``HistoryBuffer`` on
    its one checked state; calling it (pickle's ``REDUCE``) is refused.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise _refused(
            f'HistoryBuffer{args!r:.80}',
            'HistoryBuffer objects as pickle writes them (created empty, '
            'then given their state)')

    def __setstate__(self, state: Any) -> None:
        """Check ``state`` and become a ``HistoryBuffer`` holding it.

        Raises:
            pickle.UnpicklingError: see :func:`_checked_history_state`.
        """
        self.__dict__.update(_checked_history_state(state))
        # a real HistoryBuffer is not allowed for BUILD: no second state
        self.__class__ = HistoryBuffer  # type: ignore[assignment]
        # MMEngine's defaults only, as every new HistoryBuffer registers
        # them; the checkpoint's statistics_methods never reach the class
        self._set_default_statistics()  # type: ignore[attr-defined]


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
                         typecode: Any) -> CheckpointArray:
    """``multiarray._reconstruct`` restricted to what ndarray pickles.

    ``ndarray.__reduce__`` always writes
    ``_reconstruct(numpy.ndarray, (0,), b'b')``, an empty placeholder whose
    ``__setstate__`` then sets the shape, dtype and data.

    Returns:
        An empty :class:`CheckpointArray` of dtype ``V1``: until its state
        arrives, ``torch.from_numpy`` refuses to share it.

    Raises:
        pickle.UnpicklingError: for any other arguments (another class, a
            shape that allocates, an object typecode...).
    """
    if (subtype is not _refuse_ndarray_call or type(shape) is not tuple
            or shape != (0, ) or typecode not in (b'b', 'b')):
        raise _refused(
            f'multiarray._reconstruct({subtype!r:.40}, {shape!r:.40}, '
            f'{typecode!r:.40})',
            "multiarray._reconstruct(numpy.ndarray, (0,), b'b')")
    return np.ndarray.__new__(CheckpointArray, (0, ), np.dtype('V1'))


def _plain_dtype(code: Any,
                 align: Any = False,
                 copy: Any = False) -> _PickledDtype:
    """``numpy.dtype(code, align, copy)`` restricted to builtin plain dtypes.

    Returns a :class:`_PickledDtype` of numpy's builtin dtype (``copy`` is
    ignored), which takes the state that follows in the pickle.

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
    return _PickledDtype(PLAIN_NUMPY_DTYPES[code])


def _plain_scalar(dtype: Any, data: Any) -> np.generic:
    """``multiarray.scalar(dtype, data)`` restricted to plain numpy scalars.

    Raises:
        pickle.UnpicklingError: unless ``dtype`` is one of
            :data:`PLAIN_NUMPY_DTYPES` and ``data`` is ``bytes`` of its size.
    """
    builtin = _builtin_dtype(dtype)
    if (builtin is None or type(data) is not bytes
            or len(data) != builtin.itemsize):
        raise _refused(
            f'multiarray.scalar({dtype!r:.40}, {data!r:.40})',
            'multiarray.scalar(dtype, bytes of dtype.itemsize) for the dtypes '
            f'{sorted(PLAIN_NUMPY_DTYPES)}')
    return _numpy_multiarray().scalar(builtin, data)


def mmengine_checkpoint_globals() -> list[SafeGlobal]:
    """The globals of MMEngine checkpoints, for ``add_safe_globals``.

    Returns:
        ``(stand_in, 'module.qualname')`` pairs: each restricted stand-in
        under the name of what it stands in for, and the classes of the
        objects they make under names that only ``BUILD`` reaches.
    """
    safe_globals: list[SafeGlobal] = [
        (_HistoryBufferFromCheckpoint,
         'mmengine.logging.history_buffer.HistoryBuffer'),
        (_history_buffer_getattr, 'builtins.getattr'),
        (_empty_bytes, 'builtins.bytes'),
        (_refuse_ndarray_call, 'numpy.ndarray'),
        (CheckpointArray, _unspellable('numpy.ndarray')),
        (_plain_dtype, 'numpy.dtype'),
    ]
    for numpy_core in ('numpy._core', 'numpy.core'):
        safe_globals += [
            (_reconstruct_ndarray, f'{numpy_core}.multiarray._reconstruct'),
            (_plain_scalar, f'{numpy_core}.multiarray.scalar'),
        ]
    safe_globals.append((_PickledDtype, _unspellable('numpy.dtype')))
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
    return [name for _, name in safe_globals]  # type: ignore[misc]

