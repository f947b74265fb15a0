"""Checkpoints from strangers are data: the weights-only allow-list and the
guarded MMEngine loaders.

``import ce_mmdet`` registers restricted stand-ins for the globals of
MMEngine's checkpoints (:mod:`ce_mmdet.utils.checkpoint_safety`) and wraps
MMEngine's checkpoint loaders with checks of what resume reads
(:mod:`ce_mmdet.utils.checkpoint_loading`). Real message-hub checkpoints and
numpy values load as before; crafted pickles (``crafted_checkpoints.py``:
second states, shared buffers, foreign classes, ``getattr`` walks, object
and exotic arrays, huge or negative shapes, code in ``meta['config']``...)
are refused in a forked child with a memory cap, with no crash, no code run
and no process state changed. A short coverage-guided fuzz run of the same
path (``fuzz_checkpoint_loading.py``) ends without a finding.
"""
import copy
import functools
import io
import json
import os
import pickle
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import CheckpointLoader

import crafted_checkpoints
from ce_mmdet.utils import (
    CheckpointArray,
    allow_mmengine_checkpoint_globals,
    openmmlab_tool_path,
)
from ce_mmdet.utils.checkpoint_loading import gpu_ids_from_config_text
from crafted_checkpoints import MMENGINE_GLOBALS, without_safe_globals
from tool_runs import TOOLS, run_tool

try:
    from numpy._core import multiarray
except ImportError:  # numpy < 2
    from numpy.core import multiarray

TESTS = Path(__file__).resolve().parent


def message_hub_state(empty_buffers: bool) -> dict:
    """A message hub's ``state_dict``, filled as MMEngine's hooks fill it.

    Loss and lr histories (float64 values, int64 counts), a validation
    metric given as a numpy scalar, and in ``runtime_info`` numpy scalars
    (``eta``, ``best_score``), a non-scalar metric and a 0-d array. With
    ``empty_buffers``, also an empty ``HistoryBuffer`` and an empty array.
    """
    log_scalars, resumed_keys = {}, {}
    if empty_buffers:
        log_scalars['train/loss_empty'] = HistoryBuffer()
        resumed_keys['train/loss_empty'] = True
    hub = MessageHub('ce_mmdet-checkpoint-test',
                     log_scalars=log_scalars,
                     resumed_keys=resumed_keys)
    for value in (1.25, 0.75):
        hub.update_scalar('train/loss', value, count=2)
    hub.update_scalar('train/lr', 0.01)
    hub.update_scalar('val/coco/bbox_mAP', np.float64(0.5))
    hub.update_info('eta', np.float64(12.5))
    hub.update_info('best_score', np.float32(0.25))
    hub.update_info('is_best', np.bool_(True))
    hub.update_info('iter', np.int64(3))
    hub.update_info('val/classwise_AP',
                    np.array([[0.5, 0.25], [0.125, 1.0]], dtype=np.float32))
    hub.update_info('val/mean_AP', np.array(0.5))
    if empty_buffers:
        hub.update_info('val/no_detections', np.zeros((0, 4), np.int64))
    return hub.state_dict()


@pytest.mark.parametrize('empty_buffers', [False, True])
def test_message_hub_checkpoints_load(empty_buffers: bool,
                                      tmp_path: Path) -> None:
    from mmengine.runner.checkpoint import load_checkpoint, save_checkpoint

    model = torch.nn.Linear(2, 1)
    path = str(tmp_path / 'checkpoint.pth')
    save_checkpoint(
        dict(meta=dict(iter=3),
             state_dict=model.state_dict(),
             message_hub=message_hub_state(empty_buffers)), path)
    with without_safe_globals():
        # an empty buffer or array holds an empty bytes, pickled as bytes()
        assert set(torch.serialization.get_unsafe_globals_in_checkpoint(
            path)) == MMENGINE_GLOBALS | ({'builtins.bytes'}
                                          if empty_buffers else set())
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
    loaded = torch.load(path, weights_only=True)
    # MMEngine's own loader (load_from, resume) goes through torch.load too
    checkpoint = load_checkpoint(model, path, map_location='cpu')
    for state in (loaded['message_hub'], checkpoint['message_hub']):
        hub = MessageHub('ce_mmdet-checkpoint-test-loaded')
        hub.load_state_dict(state)
        loss = hub.get_scalar('train/loss')
        np.testing.assert_array_equal(loss.data[0], [1.25, 0.75])
        np.testing.assert_array_equal(loss.data[1], [2, 2])
        assert loss.data[1].dtype == np.int64
        assert loss.mean() == 0.5 and loss.current() == 0.75
        assert hub.get_scalar('val/coco/bbox_mAP').current() == 0.5
        info = hub.runtime_info
        expected = message_hub_state(empty_buffers)['runtime_info']
        assert info.keys() == expected.keys()
        for key, value in expected.items():
            assert type(info[key]) is type(value), key
            assert info[key].dtype == value.dtype, key
            np.testing.assert_array_equal(info[key], value)
        if empty_buffers:
            empty = hub.get_scalar('train/loss_empty')
            assert [history.shape for history in empty.data] == [(0, ), (0, )]


class ForeignPayload:
    """A class no allow-list knows about."""

    def __init__(self) -> None:
        self.value = 42


class ReducePayload:
    """Pickles as the call ``func(*args)``, as a crafted file would.

    With ``state``, the unpickler then runs ``obj.__setstate__(state)`` on
    the object the call returned (pickle's ``BUILD``).
    """

    def __init__(self, func: Callable, *args: Any, state: Any = None) -> None:
        self.func, self.args, self.state = func, args, state

    def __reduce__(self) -> tuple:
        if self.state is None:
            return self.func, self.args
        return self.func, self.args, self.state


def save_to_buffer(obj: object) -> io.BytesIO:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return buffer


@pytest.mark.parametrize('payload, message', [
    pytest.param(ForeignPayload(), 'ForeignPayload', id='class'),
    pytest.param(
        functools.partial(os.getcwd), 'functools.partial', id='partial'),
    pytest.param(
        ReducePayload(os.system, 'echo owned'), r'\.system', id='os.system'),
    # numpy: object arrays (pointers read from the file) and any other
    # dtype than bool, integers and floats stay refused, also when crafted
    pytest.param(np.array([1, 'a'], dtype=object),
                 r"numpy\.dtype\('O8'",
                 id='object-array'),
    pytest.param(
        np.array(['ab']), r"numpy\.dtype\('U2'", id='string-array'),
    pytest.param(ReducePayload(np.ndarray, (1, ), 'O', b'A' * 8),
                 r"numpy\.ndarray\(\(1,\), 'O'",
                 id='ndarray-object-pointers'),
    pytest.param(ReducePayload(multiarray._reconstruct, np.ndarray, (1, ),
                               b'O'),
                 r"_reconstruct\(.*b'O'\)",
                 id='reconstruct-object'),
    pytest.param(ReducePayload(multiarray._reconstruct, np.ndarray,
                               (1 << 40, ), b'b'),
                 r'_reconstruct\(.*1099511627776',
                 id='reconstruct-huge'),
    pytest.param(ReducePayload(multiarray.scalar, np.dtype('f8'), b'A' * 4),
                 r'multiarray\.scalar',
                 id='scalar-short-data'),
    pytest.param(
        ReducePayload(bytes, 1 << 40), r'bytes\(1099511627776',
        id='bytes-huge'),
])
def test_foreign_globals_are_still_refused(payload: object,
                                          message: str) -> None:
    buffer = save_to_buffer(dict(state_dict={}, meta=dict(payload=payload)))
    with pytest.raises(pickle.UnpicklingError, match=message):
        torch.load(buffer)


@pytest.mark.parametrize('obj, name', [
    (HistoryBuffer, '__init__'),
    (HistoryBuffer, 'update'),
    # pickled as getattr(HistoryBuffer, 'mean'): a walk towards the module
    (HistoryBuffer.mean, '__globals__'),
    (np.ndarray, 'tofile'),
    (torch.nn.Parameter, '__reduce_ex__'),
])
def test_getattr_is_limited_to_history_buffer_methods(obj: object,
                                                      name: str) -> None:
    buffer = save_to_buffer(dict(meta=ReducePayload(getattr, obj, name)))
    with pytest.raises(pickle.UnpicklingError, match='is refused'):
        torch.load(buffer)


def test_pickled_dtype_state_cannot_rewrite_dtypes() -> None:
    # numpy's dtype.__setstate__ applies such a state to a fresh dtype: the
    # float64 becomes a record with a field and a sub-array of 64 floats in
    # 8 bytes, with every flag set (object items among them)
    tampered_float64 = ReducePayload(
        np.dtype,
        'f8',
        False,
        True,
        state=(3, '|', (np.dtype('f8'), (64, )), ('a', ),
               dict(a=(np.dtype('f8'), 0)), 8, 1, 0x3f))
    array = ReducePayload(
        multiarray._reconstruct,
        np.ndarray, (0, ),
        b'b',
        state=(1, (2, ), tampered_float64, False, np.arange(2.0).tobytes()))
    with pytest.raises(pickle.UnpicklingError,
                       match='state .* for numpy dtype float64 is refused'):
        torch.load(save_to_buffer(dict(array=array)))
    # numpy's builtin float64 was never given that state
    float64 = np.dtype('f8')
    assert float64.names is None and float64.subdtype is None
    assert not float64.hasobject and float64.flags == 0


def test_numpy_values_round_trip() -> None:
    buffer = HistoryBuffer([1.5, 2.5], [1, 2])
    dtypes = ('bool', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16',
              'uint32', 'uint64', 'float16', 'float32', 'float64')
    values = dict(
        arrays={dtype: np.arange(3).astype(dtype)
                for dtype in dtypes},
        empty={dtype: np.zeros((0, 2), dtype)
               for dtype in dtypes},
        shaped=[np.array(2.5),
                np.asfortranarray(np.arange(6.0).reshape(2, 3))],
        scalars=[
            np.float64(0.5),
            np.float32(0.25),
            np.float16(2.0),
            np.int64(3),
            np.uint8(7),
            np.bool_(True)
        ],
        buffer=buffer,
        empty_buffer=HistoryBuffer())
    loaded = torch.load(save_to_buffer(values))
    for group in ('arrays', 'empty'):
        for dtype, array in values[group].items():
            assert type(loaded[group][dtype]) is CheckpointArray
            assert loaded[group][dtype].flags.owndata
            assert loaded[group][dtype].dtype is np.dtype(dtype)
            assert loaded[group][dtype].shape == array.shape
            np.testing.assert_array_equal(loaded[group][dtype], array)
    for loaded_array, array in zip(loaded['shaped'], values['shaped']):
        assert loaded_array.shape == array.shape
        assert loaded_array.flags.f_contiguous == array.flags.f_contiguous
        np.testing.assert_array_equal(loaded_array, array)
    assert loaded['scalars'] == values['scalars']
    assert [type(s) for s in loaded['scalars']
            ] == [type(s) for s in values['scalars']]
    # arrays read from a checkpoint pickle, copy and convert as plain ones
    for converted in (copy.deepcopy(loaded['shaped'][1]),
                      copy.copy(loaded['shaped'][1]),
                      np.asarray(loaded['shaped'][1]),
                      pickle.loads(pickle.dumps(loaded['shaped'][1]))):
        assert type(converted) is np.ndarray
        np.testing.assert_array_equal(converted, values['shaped'][1])
    assert type(loaded['buffer']) is HistoryBuffer
    assert type(loaded['buffer'].data[0]) is np.ndarray
    assert loaded['buffer'].mean() == buffer.mean()
    assert loaded['buffer'].current() == 2.5
    assert loaded['empty_buffer'].data[0].shape == (0, )


def test_allow_list_is_idempotent_and_needs_torch_2_6(
        monkeypatch: pytest.MonkeyPatch) -> None:
    before = set(torch.serialization.get_safe_globals())
    names = allow_mmengine_checkpoint_globals()
    assert allow_mmengine_checkpoint_globals() == names
    assert set(torch.serialization.get_safe_globals()) == before
    assert 'builtins.getattr' in names
    monkeypatch.delattr(torch.serialization, 'add_safe_globals')
    assert allow_mmengine_checkpoint_globals() == []


@pytest.fixture(scope='module')
def attack_results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every crafted checkpoint, loaded three ways in a forked child."""
    folder = tmp_path_factory.mktemp('attacks')
    marker = folder / 'code-ran'
    crafted_checkpoints.write_attacks(folder, marker)
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    result = subprocess.run(
        [sys.executable, str(TESTS / 'crafted_checkpoints.py'), str(folder)],
        env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in result.stdout.splitlines()
             if line.startswith('{')]
    return dict(marker=marker, folder=folder,
                results={line['name']: line for line in lines})


@pytest.mark.parametrize('name', sorted(crafted_checkpoints.ATTACKS))
def test_crafted_checkpoint_is_refused(name: str, attack_results: dict
                                      ) -> None:
    result = attack_results['results'][name]
    # the child ended normally: no signal, no hang, no memory blow-up
    assert result['exit'] == 0, result
    assert not result['state_changed'], result
    assert not attack_results['marker'].exists()
    expected = crafted_checkpoints.ATTACKS[name][1]
    if isinstance(expected, crafted_checkpoints.Defused):
        for way, outcome in result['ways'].items():
            assert outcome['outcome'] == 'loaded', (way, outcome)
            if way != 'torch_load':
                assert outcome['config'] == expected.config, (way, outcome)
        return
    for way, outcome in result['ways'].items():
        if way == 'torch_load' and name in (
                crafted_checkpoints.TORCH_LOAD_LOADS):
            # a bare torch.load returns data; MMEngine's loaders check it
            assert outcome['outcome'] == 'loaded', (way, outcome)
            continue
        assert outcome['outcome'] == 'refused', (way, outcome)
        assert re.search(expected, outcome['message']), (way, outcome)
        if way != 'torch_load' and outcome['error'] != 'TypeError':
            # MMEngine's loaders name the file
            assert outcome['error'] == 'CheckpointRefusedError', outcome
            assert f'{name}.pth' in outcome['message'], outcome


def test_use_after_free_is_real_with_numpys_own_classes(attack_results: dict
                                                       ) -> None:
    # the attack is real and the runner sees it: with numpy's real ndarray
    # allow-listed (the stand-ins replaced), the tensor reads a buffer that
    # was freed: the child dies of a segmentation fault, or the tensor
    # holds other values than the file's (the pages were mapped again)
    name = 'use-after-free-second-array-state'
    result = subprocess.run(
        [sys.executable, str(TESTS / 'crafted_checkpoints.py'),
         '--allow-numpy-itself', str(attack_results['folder']), name],
        env={**os.environ, 'OMP_NUM_THREADS': '1'}, capture_output=True,
        text=True, timeout=300)
    (line, ) = [json.loads(line) for line in result.stdout.splitlines()
                if line.startswith('{')]
    written = 7 * crafted_checkpoints.UAF_BYTES  # the tensor's sum in the file
    assert line['exit'] == f'signal {signal.SIGSEGV}' or any(
        way['outcome'] == 'loaded' and way['total'] != written
        for way in line['ways'].values()), line


def test_array_from_a_checkpoint_owns_its_buffer_and_takes_one_state(
) -> None:
    data = crafted_checkpoints.checkpoint_bytes(
        dict(a=crafted_checkpoints.array([1.5, 2.5])))
    loaded = torch.load(io.BytesIO(data), weights_only=True)['a']
    assert type(loaded) is CheckpointArray
    assert loaded.flags.owndata and loaded.base is None
    np.testing.assert_array_equal(loaded, [1.5, 2.5])
    with pytest.raises(pickle.UnpicklingError, match='a second state'):
        loaded.__setstate__((1, (0, ), np.dtype('f8'), False, b''))
    np.testing.assert_array_equal(loaded, [1.5, 2.5])


def test_history_buffer_loads_without_touching_the_class() -> None:
    methods = dict(HistoryBuffer._statistics_methods)
    buffer = HistoryBuffer([1.0, 3.0], [1, 1])
    loaded = torch.load(save_to_buffer(dict(buffer=buffer)))['buffer']
    assert type(loaded) is HistoryBuffer
    assert loaded.statistics('mean') == 2.0
    assert 'statistics_methods' not in vars(loaded)
    assert HistoryBuffer._statistics_methods == methods
    # a loaded buffer cannot be given a second state by a pickle
    data = crafted_checkpoints.checkpoint_bytes(
        dict(b=crafted_checkpoints.Build(crafted_checkpoints.history_buffer(),
                                         crafted_checkpoints.history_state())))
    with pytest.raises(pickle.UnpicklingError, match='Can only build'):
        torch.load(io.BytesIO(data), weights_only=True)


@pytest.mark.parametrize('text, gpu_ids', [
    ('gpu_ids = [0, 1]\nmodel = dict(type="X")\n', [0, 1]),
    ('gpu_ids = range(0, 8)\n', list(range(8))),  # MMDetection 2.x
    ('gpu_ids = (2, )\n', [2]),
    ('model = dict()\n', None),
    ('import os\nos.system("false")\n', None),
    ('gpu_ids = list(range(2))\n', 'an expression, not a literal'),
    ('gpu_ids = __import__("os").getpid()\n', 'an expression'),
    ('gpu_ids = range(10**9)\n', 'an expression'),
    ('gpu_ids = ["0"]\n', 'not ints'),
    ('gpu_ids = [0\n', 'is not Python'),
    ('(' * 10000 + ')' * 10000, 'is not Python'),
])
def test_gpu_ids_are_read_without_executing(text: str, gpu_ids: Any) -> None:
    if isinstance(gpu_ids, str):
        with pytest.raises(ValueError, match=re.escape(gpu_ids)):
            gpu_ids_from_config_text(text)
    else:
        assert gpu_ids_from_config_text(text) == gpu_ids


def test_loaders_defuse_the_config_text_in_meta(tmp_path: Path) -> None:
    from mmengine.runner.checkpoint import save_checkpoint

    marker = tmp_path / 'code-ran'
    path = str(tmp_path / 'legacy.pth')
    config = (f'import pathlib\npathlib.Path({str(marker)!r}).write_text('
              '"ran")\ngpu_ids = [0, 1]\n')
    save_checkpoint(dict(meta=dict(epoch=1, iter=5, config=config),
                         state_dict={}), path)
    # a bare torch.load returns the text as data
    assert torch.load(path)['meta']['config'] == config
    checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    # what MMEngine's resume parses: the GPU ids, as a literal
    assert checkpoint['meta'] == dict(epoch=1, iter=5,
                                      config='gpu_ids = [0, 1]\n')
    import mmengine
    assert mmengine.Config.fromstring(checkpoint['meta']['config'],
                                      '.py').gpu_ids == [0, 1]
    assert not marker.exists()


def test_guarded_loaders_cover_every_scheme_once() -> None:
    from ce_mmdet.utils import guard_mmengine_checkpoint_loaders

    before = dict(CheckpointLoader._schemes)
    assert '' in before and 'http://' in before
    assert all(getattr(loader, 'ce_mmdet_guarded', False)
               for loader in before.values())
    guard_mmengine_checkpoint_loaders()
    assert CheckpointLoader._schemes == before
    # MMEngine's log line names the backend from the loader's name
    assert before[''].__name__ == 'load_from_local'


def test_short_fuzz_run_finds_nothing(tmp_path: Path) -> None:
    pytest.importorskip('atheris')
    corpus = tmp_path / 'corpus'
    result = subprocess.run(
        [sys.executable, str(TESTS / 'fuzz_checkpoint_loading.py'),
         '-runs=3000', '-timeout=20', '-rss_limit_mb=4096', str(corpus)],
        env={**os.environ, 'OMP_NUM_THREADS': '1'},
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert re.search(r'Done 3000 runs', log), log[-2000:]
    assert len(list(corpus.iterdir())) >= len(crafted_checkpoints.ATTACKS)


# ------------------------------------------- resume through tools/train.py


def test_resume_never_executes_the_checkpoints_config(tiny_run: dict
                                                     ) -> None:
    # a real checkpoint of the run with Python in meta['config'], which
    # MMEngine's resume passes to Config.fromstring; through MMDetection's
    # own train.py, ce_mmdet being imported by the config's custom_imports
    root = tiny_run['root']
    marker = root / 'code-ran'
    checkpoint = torch.load(tiny_run['work_dir'] / 'iter_2.pth')
    checkpoint['meta']['config'] = (
        f'import pathlib\npathlib.Path({str(marker)!r}).write_text("ran")\n'
        'gpu_ids = [0]\n')
    tampered = root / 'tampered.pth'
    torch.save(checkpoint, tampered)
    output = run_tool([
        openmmlab_tool_path('train.py'), tiny_run['config'], '--work-dir',
        root / 'work_tampered', '--resume', tampered, '--cfg-options',
        'train_cfg.max_iters=3', 'train_cfg.val_interval=4'
    ], cwd=root)
    assert not marker.exists()
    assert 'meta["config"] was not executed (gpu_ids read as a literal: ' \
        '[0])' in output
    assert 'resumed epoch: 0, iter: 2' in output


def test_resume_refuses_a_crafted_checkpoint_naming_it(tiny_run: dict
                                                      ) -> None:
    from crafted_checkpoints import checkpoint_bytes, use_after_free

    crafted = tiny_run['root'] / 'crafted.pth'
    crafted.write_bytes(checkpoint_bytes(use_after_free()))
    output = run_tool([
        TOOLS / 'train.py', tiny_run['config'], '--work-dir',
        tiny_run['root'] / 'work_crafted', '--resume', crafted
    ], cwd=tiny_run['root'], expect_failure=True)
    assert (f'CheckpointRefusedError: checkpoint {crafted} refused while '
            'unpickling') in output
    assert 'a second state for a numpy array' in output


def test_checkpoint_globals_are_exactly_covered(tiny_run: dict) -> None:
    checkpoint = str(tiny_run['work_dir'] / 'iter_4.pth')
    with without_safe_globals():
        unsafe = set(
            torch.serialization.get_unsafe_globals_in_checkpoint(checkpoint))
        assert unsafe == MMENGINE_GLOBALS
        with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer'):
            torch.load(checkpoint)
        # with ce_mmdet's allow-list
        assert unsafe <= set(allow_mmengine_checkpoint_globals())
        assert torch.serialization.get_unsafe_globals_in_checkpoint(
            checkpoint) == []
        assert torch.load(checkpoint)['meta']['iter'] == 4
