"""Crafted checkpoints: a pickle assembler and the attacks of the suite.

A checkpoint is a zip archive (``archive/data.pkl`` and the tensor
storages) as ``torch.save`` writes it; its pickle is written here opcode by
opcode, so that it can do what no ``torch.save`` does: give one object two
states (pickle's ``BUILD``), call allowed globals with arbitrary arguments
(``REDUCE``), create objects without a state (``NEWOBJ``) and reuse objects
through the memo. The weights-only unpickler reads pickle protocol 2 and
these opcodes only.

Run as a script, it loads each checkpoint of a folder in a forked child with
a memory cap and a time limit, through ``torch.load``, MMEngine's
``CheckpointLoader`` and ``load_checkpoint(model, ...)``, and prints one
JSON line per attack: how each path ended, whether the process's state
(``HistoryBuffer``'s class-level methods, numpy's builtin dtypes, torch's
allow-list, MMEngine's loaders) changed, and the child's exit status (a
signal means a crash)::

    python tests/crafted_checkpoints.py [--allow-numpy-itself] DIR [NAME ...]
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import signal
import struct
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

# ---------------------------------------------------------------- assembler


@dataclass(frozen=True)
class Global:
    """A pickled global (``GLOBAL module name``)."""
    module: str
    name: str


@dataclass(frozen=True)
class Call:
    """``func(*args)`` (``REDUCE``)."""
    func: Any
    args: tuple = ()


@dataclass(frozen=True)
class NewObj:
    """``cls.__new__(cls, *args)`` (``NEWOBJ``): an object with no state."""
    cls: Any
    args: tuple = ()


@dataclass(frozen=True)
class Build:
    """``obj.__setstate__(state)`` (``BUILD``); the value is ``obj``."""
    obj: Any
    state: Any


@dataclass(frozen=True)
class Put:
    """``obj``, also stored in the memo under ``name``."""
    name: str
    obj: Any


@dataclass(frozen=True)
class Ref:
    """The memo's object ``name`` (``BINGET``): the same object again."""
    name: str


@dataclass(frozen=True)
class Storage:
    """A tensor storage of the archive (``BINPERSID``), raw bytes."""
    data: bytes
    dtype: str = 'float32'


class PickleWriter:
    """Writes a value tree of the classes above as protocol-2 opcodes."""

    def __init__(self) -> None:
        self.out = bytearray(b'\x80\x02')
        self.memo: dict[str, int] = {}
        self.storages: list[Storage] = []

    def write(self, value: Any) -> None:
        out = self.out
        if isinstance(value, Global):
            out += f'c{value.module}\n{value.name}\n'.encode()
        elif isinstance(value, Call):
            self.write(value.func)
            self.write(tuple(value.args))
            out += b'R'
        elif isinstance(value, NewObj):
            self.write(value.cls)
            self.write(tuple(value.args))
            out += b'\x81'
        elif isinstance(value, Build):
            self.write(value.obj)
            self.write(value.state)
            out += b'b'
        elif isinstance(value, Put):
            self.write(value.obj)
            self.memo[value.name] = len(self.memo)
            out += b'r' + struct.pack('<I', self.memo[value.name])
        elif isinstance(value, Ref):
            out += b'j' + struct.pack('<I', self.memo[value.name])
        elif isinstance(value, Storage):
            key = str(len(self.storages))
            self.storages.append(value)
            storage_type = dict(
                float32='FloatStorage', int64='LongStorage',
                uint8='ByteStorage')[value.dtype]
            item_size = dict(float32=4, int64=8, uint8=1)[value.dtype]
            self.write(('storage', Global('torch', storage_type), key, 'cpu',
                        len(value.data) // item_size))
            out += b'Q'
        elif value is None:
            out += b'N'
        elif value is True or value is False:
            out += b'\x88' if value else b'\x89'
        elif isinstance(value, int):
            if -2**31 <= value < 2**31:
                out += b'J' + struct.pack('<i', value)
            else:
                raw = value.to_bytes((value.bit_length() + 8) // 8,
                                     'little',
                                     signed=True)
                out += b'\x8a' + bytes([len(raw)]) + raw
        elif isinstance(value, float):
            out += b'G' + struct.pack('>d', value)
        elif isinstance(value, str):
            raw = value.encode('utf-8', 'surrogatepass')
            out += b'X' + struct.pack('<I', len(raw)) + raw
        elif isinstance(value, bytes):
            # as protocol 2 writes bytes
            if value:
                self.write(
                    Call(Global('_codecs', 'encode'),
                         (value.decode('latin1'), 'latin1')))
            else:
                self.write(Call(Global('builtins', 'bytes')))
        elif isinstance(value, tuple):
            out += b'('
            for item in value:
                self.write(item)
            out += b't'
        elif isinstance(value, list):
            out += b']('
            for item in value:
                self.write(item)
            out += b'e'
        elif isinstance(value, dict):
            out += b'}('
            for key, item in value.items():
                self.write(key)
                self.write(item)
            out += b'u'
        else:
            raise TypeError(f'cannot write {type(value)}')


def checkpoint_bytes(value: Any) -> bytes:
    """A ``torch.load``-able archive whose pickle is ``value``'s tree."""
    writer = PickleWriter()
    writer.write(value)
    writer.out += b'.'
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, 'w', zipfile.ZIP_STORED) as zip_file:
        zip_file.writestr('archive/data.pkl', bytes(writer.out))
        zip_file.writestr('archive/byteorder', 'little')
        zip_file.writestr('archive/version', '3\n')
        for key, storage in enumerate(writer.storages):
            zip_file.writestr(f'archive/data/{key}', storage.data)
    return archive.getvalue()


# -------------------------------------------------------- MMEngine's objects

NUMPY = 'numpy._core.multiarray'
HISTORY_BUFFER = Global('mmengine.logging.history_buffer', 'HistoryBuffer')
GETATTR = Global('builtins', 'getattr')
NDARRAY = Global('numpy', 'ndarray')
RECONSTRUCT = Global(NUMPY, '_reconstruct')
SCALAR = Global(NUMPY, 'scalar')
FROM_NUMPY = Global('torch._utils', '_rebuild_device_tensor_from_numpy')
REBUILD_TENSOR = Global('torch._utils', '_rebuild_tensor_v2')
ORDERED_DICT = Global('collections', 'OrderedDict')
DTYPE_STATE = {'<': (3, '<', None, None, None, -1, -1, 0),
               '|': (3, '|', None, None, None, -1, -1, 0)}


def dtype(code: str, state: Any = 'native') -> Any:
    """A pickled numpy dtype, ``numpy.dtype(code, False, True)`` + state."""
    if state == 'native':
        state = DTYPE_STATE['|' if code in ('b1', 'i1', 'u1') else '<']
    return Build(Call(Global('numpy', 'dtype'), (code, False, True)), state)


def empty_array() -> Call:
    """What ``ndarray.__reduce__`` starts an array with."""
    return Call(RECONSTRUCT, (NDARRAY, (0, ), b'b'))


def array_state(data: bytes, shape: tuple, code: str = 'f8',
                fortran: bool = False) -> tuple:
    return (1, shape, dtype(code), fortran, data)


def array(values: list, code: str = 'f8') -> Build:
    """A pickled numpy array of float64 or int64 values."""
    fmt = dict(f8='d', i8='q')[code]
    data = struct.pack(f'<{len(values)}{fmt}', *values)
    return Build(empty_array(), array_state(data, (len(values), ), code))


def history_state(log: Any = None, count: Any = None,
                  max_length: Any = 1000000, methods: Any = 'default'
                  ) -> dict:
    """A ``HistoryBuffer.__getstate__`` as MMEngine writes it."""
    if methods == 'default':
        methods = {name: Call(GETATTR, (HISTORY_BUFFER, name))
                   for name in ('min', 'max', 'current', 'mean')}
    state = dict(
        max_length=max_length,
        _log_history=array([1.0, 2.0]) if log is None else log,
        _count_history=array([1, 1], 'i8') if count is None else count)
    if methods is not None:
        state['statistics_methods'] = methods
    return state


def history_buffer(**kwargs: Any) -> Build:
    return Build(NewObj(HISTORY_BUFFER), history_state(**kwargs))


def checkpoint(message_hub_scalars: dict | None = None,
               meta: dict | None = None, **extra: Any) -> dict:
    """An MMEngine checkpoint's tree, with a message hub."""
    scalars = ({'train/loss': history_buffer()}
               if message_hub_scalars is None else message_hub_scalars)
    return dict(
        meta={**dict(epoch=0, iter=2, seed=0), **(meta or {})},
        state_dict={},
        message_hub=dict(log_scalars=scalars, runtime_info={},
                         resumed_keys={}),
        **extra)


# ---------------------------------------------------- the allow-list itself

NUMPY_CORE = ('numpy._core'
              if int(np.__version__.split('.')[0]) >= 2 else 'numpy.core')

MMENGINE_GLOBALS = {
    'builtins.getattr', 'mmengine.logging.history_buffer.HistoryBuffer',
    f'{NUMPY_CORE}.multiarray._reconstruct', f'{NUMPY_CORE}.multiarray.scalar',
    'numpy.dtype', 'numpy.ndarray'
}
"""The globals of MMEngine checkpoints that torch refuses by default."""


@contextlib.contextmanager
def without_safe_globals() -> Iterator[None]:
    """Empty torch's allow-list, as with plain MMEngine; restore it after."""
    import torch

    saved = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        yield
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(saved)


# ------------------------------------------------------------------ attacks

UAF_BYTES = 40 * 2**20


def use_after_free(share_before_build: bool = False) -> dict:
    """The report's attack: a tensor shares an array that a second state
    frees (40 MB: the first read of the tensor segfaulted)."""
    big = array_state(b'\x07' * UAF_BYTES, (UAF_BYTES, ), 'i1')
    array_object = (Put('x', empty_array()) if share_before_build else
                    Put('x', Build(empty_array(), big)))
    tensor = Call(FROM_NUMPY, (Ref('x'), Global('torch', 'int8'), 'cpu',
                               False))
    return dict(
        array=array_object,
        tensor=tensor,
        again=Build(Ref('x'), array_state(b'', (0, ), 'i1')),
        total=0)


def stride0_history() -> dict:
    """A history that is a stride-0 tensor of 1e9 elements (a few bytes in
    the file, gigabytes at the first statistic)."""
    huge = Call(REBUILD_TENSOR,
                (Storage(b'\x00' * 4), 0, (10**9, ), (0, ), False,
                 Call(ORDERED_DICT)))
    return checkpoint({'train/loss': history_buffer(log=huge, count=huge)})


@dataclass(frozen=True)
class Defused:
    """The outcome of code in ``meta['config']``: it loads, through
    MMEngine's loaders with ``config`` replaced by this (None: removed)."""
    config: str | None


ATTACKS: dict[str, tuple[Callable[[str], Any], str | Defused]] = {
    # name: (tree builder given the marker path, expected error regex or
    # the defused outcome)
    'use-after-free-second-array-state':
    (lambda m: use_after_free(), 'a second state for a numpy array'),
    'share-array-before-its-state':
    (lambda m: use_after_free(share_before_build=True), 'numpy.void'),
    'second-history-buffer-state':
    (lambda m: checkpoint({'train/loss': Build(history_buffer(),
                                               history_state())}),
     'Can only build'),
    'second-dtype-state':
    (lambda m: dict(d=Build(dtype('f8'), DTYPE_STATE['<'])),
     'a second state for float64'),
    'dtype-state-with-fields':
    (lambda m: dict(d=dtype('f8', (3, '|', (Global('numpy', 'dtype'), (64, )),
                                   ('a', ), None, 8, 1, 0x3f))),
     'state .* for numpy dtype float64'),
    'dtype-other-byte-order':
    (lambda m: dict(d=dtype('f8', (3, '>', None, None, None, -1, -1, 0))),
     'same byte order'),
    'object-dtype': (lambda m: dict(d=dtype('O8')), r"numpy\.dtype\('O8'"),
    'string-dtype': (lambda m: dict(d=dtype('U2')), r"numpy\.dtype\('U2'"),
    'complex-dtype': (lambda m: dict(d=dtype('c16')), r"numpy\.dtype\('c16'"),
    'datetime-dtype': (lambda m: dict(d=dtype('M8')), r"numpy\.dtype\('M8'"),
    'record-dtype': (lambda m: dict(d=dtype('V8')), r"numpy\.dtype\('V8'"),
    'ndarray-called-with-pointers':
    (lambda m: dict(a=Call(NDARRAY, ((1, ), 'O', b'A' * 8))),
     r"numpy\.ndarray\(\(1,\), 'O'"),
    'reconstruct-object-array':
    (lambda m: dict(a=Call(RECONSTRUCT, (NDARRAY, (1, ), b'O'))),
     r'_reconstruct\('),
    'array-huge-shape-short-data':
    (lambda m: dict(a=Build(empty_array(), array_state(b'\0' * 8,
                                                       (2**40, )))),
     'numpy array shape'),
    'array-negative-shape':
    (lambda m: dict(a=Build(empty_array(), array_state(b'', (-1, )))),
     'numpy array shape'),
    'array-too-many-dimensions':
    (lambda m: dict(a=Build(empty_array(), array_state(b'', (0, ) * 40))),
     'numpy array shape'),
    'array-bytes-too-short':
    (lambda m: dict(a=Build(empty_array(), array_state(b'\0' * 12, (2, )))),
     'bytes that fill'),
    'array-bytes-too-long':
    (lambda m: dict(a=Build(empty_array(), array_state(b'\0' * 24, (2, )))),
     'bytes that fill'),
    'array-data-as-bytearray':
    (lambda m: dict(a=Build(empty_array(), (1, (1, ), dtype('f8'), False,
                                            Call(Global('builtins',
                                                        'bytearray'),
                                                 ([0] * 8, ))))),
     'bytes that fill'),
    'array-dtype-without-state':
    (lambda m: dict(a=Build(empty_array(), (1, (1, ), Call(
        Global('numpy', 'dtype'), ('f8', False, True)), False, b'\0' * 8))),
     'numpy array dtype'),
    'scalar-short-data':
    (lambda m: dict(s=Call(SCALAR, (dtype('f8'), b'A' * 4))),
     r'multiarray\.scalar'),
    'bytes-huge': (lambda m: dict(b=Call(Global('builtins', 'bytes'),
                                         (2**40, ))), r'bytes\('),
    'getattr-walk-to-globals':
    (lambda m: dict(g=Call(GETATTR, (Call(GETATTR, (HISTORY_BUFFER, 'mean')),
                                     '__globals__'))), 'is refused'),
    'getattr-history-buffer-update':
    (lambda m: dict(g=Call(GETATTR, (HISTORY_BUFFER, 'update'))),
     'is refused'),
    'history-buffer-called-with-objects':
    (lambda m: dict(h=Call(HISTORY_BUFFER, ([HISTORY_BUFFER, 'a', 1], ))),
     r'HistoryBuffer\('),
    'history-buffer-own-statistics':
    (lambda m: checkpoint({'train/loss': history_buffer(methods={
        'mean': Call(GETATTR, (HISTORY_BUFFER, 'max'))})}),
     'statistics_methods'),
    'history-buffer-new-statistic':
    (lambda m: checkpoint({'train/loss': history_buffer(methods={
        'weighted': Call(GETATTR, (HISTORY_BUFFER, 'mean'))})}),
     'statistics_methods'),
    'history-stride0-tensor': (lambda m: stride0_history(),
                               '_log_history of type Tensor'),
    'history-of-strings':
    (lambda m: checkpoint({'train/loss': history_buffer(
        log=['a', 'b'], count=[1, 1])}), '_log_history of type list'),
    'history-non-finite':
    (lambda m: checkpoint({'train/loss': history_buffer(
        log=array([1.0, float('nan')]))}), 'non-finite'),
    'history-2d':
    (lambda m: checkpoint({'train/loss': history_buffer(log=Build(
        empty_array(), array_state(b'\0' * 32, (2, 2))))}), '1-D'),
    'history-lengths-differ':
    (lambda m: checkpoint({'train/loss': history_buffer(
        count=array([1], 'i8'))}), 'equal length'),
    'history-longer-than-max-length':
    (lambda m: checkpoint({'train/loss': history_buffer(max_length=1)}),
     'at most max_length'),
    'history-max-length-float':
    (lambda m: checkpoint({'train/loss': history_buffer(max_length=1e9)}),
     'max_length'),
    'history-max-length-bool':
    (lambda m: checkpoint({'train/loss': history_buffer(max_length=True)}),
     'max_length'),
    'history-buffer-extra-state':
    (lambda m: checkpoint({'train/loss': Build(NewObj(HISTORY_BUFFER), dict(
        history_state(), _statistics_methods={}))}), 'HistoryBuffer state'),
    'history-buffer-without-state':
    (lambda m: checkpoint({'train/loss': NewObj(HISTORY_BUFFER)}),
     'not a HistoryBuffer'),
    'history-array-without-state':
    (lambda m: checkpoint({'train/loss': history_buffer(log=empty_array())}),
     'without contents'),
    'meta-config-runs-code':
    (lambda m: checkpoint(meta=dict(config=(
        'import pathlib\npathlib.Path({!r}).write_text("ran")\n'
        'gpu_ids = __import__("os").getpid()\n').format(m))),
     Defused(config=None)),
    'meta-config-runs-code-with-gpu-ids':
    (lambda m: checkpoint(meta=dict(config=(
        'import pathlib\npathlib.Path({!r}).write_text("ran")\n'
        'gpu_ids = [0]\n').format(m))), Defused(config='gpu_ids = [0]\n')),
    'meta-config-not-python':
    (lambda m: checkpoint(meta=dict(config='gpu_ids = [0\n')),
     Defused(config=None)),
    'meta-config-gpu-ids-strings':
    (lambda m: checkpoint(meta=dict(config="gpu_ids = ['0']\n")),
     Defused(config=None)),
    'meta-config-not-a-string':
    (lambda m: checkpoint(meta=dict(config=['gpu_ids = [0]'])),
     Defused(config=None)),
    'meta-iter-string': (lambda m: checkpoint(meta=dict(iter='2')),
                         r"\['iter'\]"),
    'meta-seed-float': (lambda m: checkpoint(meta=dict(seed=0.5)),
                        r"\['seed'\]"),
    'message-hub-resumed-key-not-bool':
    (lambda m: dict(checkpoint(), message_hub=dict(
        log_scalars={}, runtime_info={}, resumed_keys={'a': 'yes'})),
     'resumed_keys'),
    'message-hub-not-a-dict':
    (lambda m: dict(checkpoint(), message_hub=[1, 2]), 'message_hub'),
}
"""Each attack and the error it must end with, through every path.

Attacks on what MMEngine does with a loaded checkpoint (``meta``,
``message_hub``) load through a bare ``torch.load`` (it returns data) and
are refused (or, for ``meta['config']``, defused) by MMEngine's loaders,
which ce_mmdet guards.
"""

TORCH_LOAD_LOADS = {name for name in ATTACKS
                    if name.startswith(('meta-', 'message-hub-'))
                    or name == 'history-buffer-without-state'}


def write_attacks(folder: Path, marker: Path) -> dict[str, Path]:
    """Write every attack's checkpoint into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, (build, _) in ATTACKS.items():
        paths[name] = folder / f'{name}.pth'
        paths[name].write_bytes(checkpoint_bytes(build(str(marker))))
    return paths


# ------------------------------------------------------------------- runner


def process_state() -> str:
    """What no checkpoint may change, as a comparable string."""
    import torch
    from mmengine.logging import HistoryBuffer
    from mmengine.runner.checkpoint import CheckpointLoader

    dtypes = [(d.str, d.flags, d.itemsize, d.alignment, d.names, d.subdtype,
               d.metadata, d.hasobject)
              for d in map(np.dtype, ('?', 'i1', 'i8', 'u8', 'f2', 'f4',
                                      'f8'))]
    return repr((sorted(
        (name, id(method))
        for name, method in HistoryBuffer._statistics_methods.items()),
                 dtypes, sorted(map(repr,
                                    torch.serialization.get_safe_globals())),
                 [(prefix, id(loader))
                  for prefix, loader in CheckpointLoader._schemes.items()]))


def read_everything(loaded: object) -> float:
    """Read every CPU tensor and numeric array in ``loaded`` in place.

    A buffer freed under a tensor is read here (a crash, or other values
    than the file's). Bounded: at most 100,000 objects, tensors of at most
    2**27 elements (a stride-0 view can claim any size).

    Returns:
        The sum of all values read.
    """
    import torch

    total, stack, seen = 0.0, [loaded], 0
    while stack and seen < 100000:
        item = stack.pop()
        seen += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif (isinstance(item, torch.Tensor) and item.layout == torch.strided
              and item.device.type == 'cpu' and item.numel() <= 2**27):
            total += float(item.sum())  # reads in place
        elif isinstance(item, np.ndarray) and item.dtype.kind in 'biuf':
            total += float(item.astype(np.float64).sum())
    return total


def load_all_ways(path: str) -> dict[str, dict]:
    """Load ``path`` through torch.load, CheckpointLoader, load_checkpoint."""
    import torch
    from mmengine.runner.checkpoint import CheckpointLoader, load_checkpoint

    ways = dict(
        torch_load=lambda: torch.load(path, weights_only=True),
        checkpoint_loader=lambda: CheckpointLoader.load_checkpoint(
            path, map_location='cpu'),
        load_checkpoint=lambda: load_checkpoint(
            torch.nn.Linear(1, 1), path, map_location='cpu', logger='silent'))
    results = {}
    for way, load in ways.items():
        try:
            loaded = load()
        except Exception as error:  # noqa: BLE001  (the outcome is data)
            results[way] = dict(outcome='refused',
                                error=type(error).__name__,
                                message=str(error)[-600:])
        else:
            total = read_everything(loaded)
            meta = loaded.get('meta') if isinstance(loaded, dict) else None
            results[way] = dict(
                outcome='loaded', total=total,
                config=(meta.get('config', None)
                        if isinstance(meta, dict) else None))
    return results


def run_in_child(path: str, memory_bytes: int, timeout: float) -> dict:
    """:func:`load_all_ways` in a forked child with a memory cap.

    Returns:
        ``ways`` (see :func:`load_all_ways`), ``state_changed``, and
        ``exit``: the child's exit status, ``'signal N'`` or ``'timeout'``.
    """
    read_end, write_end = os.pipe()
    before = process_state()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_end)
        status = 0
        try:
            soft, hard = resource.getrlimit(resource.RLIMIT_AS)
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, hard))
            result = dict(ways=load_all_ways(path))
            result['state_changed'] = process_state() != before
            os.write(write_end, json.dumps(result).encode())
        except BaseException as error:  # noqa: BLE001
            os.write(write_end, json.dumps(
                dict(child_error=repr(error))).encode())
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            status = None
            break
        time.sleep(0.02)
    with os.fdopen(read_end, 'rb') as pipe:
        output = pipe.read()
    result = json.loads(output) if output else {}
    if status is None:
        result['exit'] = 'timeout'
    elif os.WIFSIGNALED(status):
        result['exit'] = f'signal {os.WTERMSIG(status)}'
    else:
        result['exit'] = os.WEXITSTATUS(status)
    return result


def allow_numpy_itself() -> None:
    """Allow-list numpy's real array and dtype classes, as some guides say.

    In place of ce_mmdet's stand-ins: the vulnerable set-up, to show that
    the runner sees what the attacks do to it.
    """
    import torch

    from ce_mmdet.utils.checkpoint_safety import _numpy_multiarray

    torch.serialization.clear_safe_globals()
    torch.serialization.add_safe_globals(
        [(np.ndarray, 'numpy.ndarray'),
         (_numpy_multiarray()._reconstruct,
          f'{NUMPY_CORE}.multiarray._reconstruct'),
         (np.dtype, 'numpy.dtype'), (bytes, 'builtins.bytes')] +
        [type(np.dtype(code)) for code in ('i1', 'f8', 'i8')])


def main(argv: list[str]) -> None:
    import torch  # noqa: F401
    from mmengine.logging import HistoryBuffer

    import ce_mmdet  # noqa: F401  (the allow-list and the guarded loaders)

    if argv[0] == '--allow-numpy-itself':
        allow_numpy_itself()
        argv = argv[1:]
    folder, names = Path(argv[0]), argv[1:] or list(ATTACKS)
    # MMEngine registers its default statistics with the first HistoryBuffer
    # of a process; what a checkpoint may not change is the state after it
    HistoryBuffer()
    with open('/proc/self/status') as status:
        vm_size = next(int(line.split()[1]) * 1024 for line in status
                       if line.startswith('VmSize:'))
    for name in names:
        result = run_in_child(str(folder / f'{name}.pth'),
                              memory_bytes=vm_size + 2**30,
                              timeout=60)
        print(json.dumps(dict(name=name, **result)), flush=True)


if __name__ == '__main__':
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main(sys.argv[1:])
