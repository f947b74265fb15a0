"""Tests of tools/ and of MMEngine checkpoints under ``weights_only=True``.

A tiny Mask R-CNN (``tiny_detector.py``) is trained for 2 iterations with
``tools/train.py``, resumed for 2 more with ``--resume`` and evaluated with
``tools/test.py``, all with PyTorch's ``weights_only=True`` ``torch.load``
default. With a CE-ResNet-18 backbone, 2 iterations, a stop and a resume for
2 more reproduce an uninterrupted 4-iteration run bit for bit (losses,
weights, CE and BN running statistics, optimizer). Message hub checkpoints
(empty and non-empty buffers, numpy values) load through ``torch.load`` and
MMEngine's ``load_checkpoint``; crafted pickles (foreign classes, calls,
``getattr`` walks, object arrays, rewritten dtypes) are still refused.
The shell launchers are checked with stand-ins for ``python`` and
``srun`` that record their command lines (a real two-process run on CPU is
in ``test_distributed_training.py``).
"""
import contextlib
import functools
import io
import json
import os
import pickle
import runpy
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

from ce_mmdet.utils import (allow_mmengine_checkpoint_globals,
                            mmdet_tool_path, run_mmdet_tool)
from tiny_detector import tiny_ce_backbone, write_tiny_mask_rcnn_config

try:
    from numpy._core import multiarray
except ImportError:  # numpy < 2
    from numpy.core import multiarray

REPO_ROOT = Path(__file__).resolve().parents[1]
TOOLS = REPO_ROOT / 'tools'

# LinearLR(start_factor=0.1, end=4) and MultiStepLR(milestones=[3]) on lr
# 0.01: the lr used by iterations 1..4
EXPECTED_LRS = [0.001, 0.004, 0.007, 0.001]


def run_tool(args: list, cwd: Path, timeout: float = 300) -> str:
    """Run ``args`` with this python, return its output, fail with its tail.

    One OpenMP thread: the runs are tiny, and on a busy machine OpenMP's
    spinning threads slow them down by an order of magnitude.
    """
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}
    result = subprocess.run([sys.executable, *map(str, args)],
                            cwd=cwd,
                            env=env,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT,
                            text=True,
                            timeout=timeout)
    assert result.returncode == 0, (
        f'{args} exited with {result.returncode}:\n{result.stdout[-4000:]}')
    return result.stdout


def load_scalars(run_dir: Path) -> list[dict]:
    """The records of ``<run_dir>/vis_data/scalars.json``.

    ``run_dir`` is the ``<work_dir>/<timestamp>`` directory of one run.
    """
    scalars = run_dir / 'vis_data' / 'scalars.json'
    return [json.loads(line) for line in scalars.read_text().splitlines()]


def log_history(checkpoint: dict, key: str) -> np.ndarray:
    """The logged values of message-hub scalar ``key`` in a checkpoint."""
    return checkpoint['message_hub']['log_scalars'][key].data[0]


@pytest.fixture(scope='module')
def tiny_run(tiny_shapes_dataset: dict,
             tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Train 2 iterations, then resume for 2 more, both with tools/train.py.

    Validation runs after every iteration of the first run, so that its
    checkpoint also holds the validation metrics' history buffers.
    """
    root = tmp_path_factory.mktemp('tiny_run')
    config = write_tiny_mask_rcnn_config(
        root / 'tiny_mask_rcnn.py',
        tiny_shapes_dataset,
        max_iters=2,
        val_interval=1,
        checkpoint_interval=2)
    work_dir = root / 'work'
    run_tool([TOOLS / 'train.py', config, '--work-dir', work_dir], cwd=root)
    first_runs = {p.name for p in work_dir.iterdir() if p.is_dir()}
    resume_output = run_tool([
        TOOLS / 'train.py', config, '--work-dir', work_dir, '--resume',
        work_dir / 'iter_2.pth', '--cfg-options', 'train_cfg.max_iters=4',
        'train_cfg.val_interval=4'
    ],
                             cwd=root)
    (resumed_run, ) = [
        p for p in work_dir.iterdir()
        if p.is_dir() and p.name not in first_runs
    ]
    return dict(
        root=root,
        config=config,
        work_dir=work_dir,
        first_run=work_dir / first_runs.pop(),
        resumed_run=resumed_run,
        resume_output=resume_output,
        val_ann_file=tiny_shapes_dataset['val_ann_file'])


def test_train_tool_saves_checkpoint(tiny_run: dict) -> None:
    # a plain torch.load: weights_only=True by default (torch >= 2.6)
    checkpoint = torch.load(tiny_run['work_dir'] / 'iter_2.pth')
    assert checkpoint['meta']['iter'] == 2
    assert checkpoint['meta']['dataset_meta']['classes'] == (
        'circle', 'square', 'triangle', 'star')
    assert np.allclose(log_history(checkpoint, 'train/lr'), EXPECTED_LRS[:2])
    # the validation after iteration 1 went into the message hub
    assert isinstance(
        checkpoint['message_hub']['log_scalars']['val/coco/bbox_mAP'],
        HistoryBuffer)
    assert [r['iter'] for r in load_scalars(tiny_run['first_run'])
            if 'iter' in r] == [1, 2]


def test_resume_continues_the_run(tiny_run: dict) -> None:
    first = torch.load(tiny_run['work_dir'] / 'iter_2.pth')
    resumed = torch.load(tiny_run['work_dir'] / 'iter_4.pth')
    assert 'resumed epoch: 0, iter: 2' in tiny_run['resume_output']
    # the resumed process trained iterations 3 and 4 only
    assert [r['iter'] for r in load_scalars(tiny_run['resumed_run'])
            if 'iter' in r] == [3, 4]
    assert resumed['meta']['iter'] == 4
    assert [s['_global_step'] for s in resumed['param_schedulers']] == [4, 4]
    # message hub restored: the first run's wall-clock iteration times (no
    # fresh run could reproduce them) head the resumed run's history
    np.testing.assert_array_equal(
        log_history(resumed, 'train/time')[:2],
        log_history(first, 'train/time'))
    # optimizer restored: iteration 3 used the lr the first run's optimizer
    # ended with (the schedulers update lr relative to its current value; a
    # fresh optimizer would have stayed at the warm-up's 0.001)
    np.testing.assert_allclose(log_history(resumed, 'train/lr'), EXPECTED_LRS)
    assert first['optimizer']['state'].keys() == resumed['optimizer'][
        'state'].keys()
    assert all('momentum_buffer' in state
               for state in resumed['optimizer']['state'].values())


# The exact-resume runs: 2 iterations, stop, resume, 2 more; 4 iterations are
# one epoch (8 images, batch 2): the next iteration would start another one,
# after MMEngine's 2 s pause between epochs.
RESUME_AT = 2
RESUME_TO = 2 * RESUME_AT

# Per-iteration records of vis_data/scalars.json that are not timings.
TIMING_KEYS = {'time', 'data_time', 'eta', 'memory'}


def write_exact_resume_config(root: Path, data_paths: dict) -> Path:
    """The tiny detector with CE-ResNet-18, deterministic, for resuming.

    MMEngine 0.10.7 checkpoints the model, optimizer, schedulers and message
    hub, and re-reads the skipped batches on resume, which replays the data
    pipeline's numpy draws (``RandomFlip``); it saves no global torch RNG
    state, from which MMDetection's ``RandomSampler`` draws the proposals
    the RPN and R-CNN heads train on. ``PseudoSampler`` trains on all of
    them instead, so that every random draw of a training step is replayed
    by a resumed run. Validation is off (fewer processes to wait for).
    """
    write_tiny_mask_rcnn_config(root / 'tiny_mask_rcnn.py',
                                data_paths,
                                max_iters=RESUME_TO,
                                checkpoint_interval=RESUME_AT)
    no_sampling = dict(sampler=dict(_delete_=True, type='PseudoSampler'))
    model = dict(backbone=tiny_ce_backbone('CE'),
                 train_cfg=dict(rpn=no_sampling, rcnn=no_sampling))
    config = root / 'tiny_ce_mask_rcnn_exact_resume.py'
    config.write_text(
        "_base_ = './tiny_mask_rcnn.py'\n"
        f'model = {model!r}\n'
        'randomness = dict(seed=0, deterministic=True)\n'
        'val_dataloader = None\n'
        'val_cfg = None\n'
        'val_evaluator = None\n',
        encoding='utf-8')
    return config


@pytest.fixture(scope='module')
def exact_resume(tiny_shapes_dataset: dict,
                 tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Train 4 iterations at once, and 2, stop, ``--resume``, 2 more."""
    root = tmp_path_factory.mktemp('exact_resume')
    config = write_exact_resume_config(root, tiny_shapes_dataset)
    uninterrupted = root / 'uninterrupted'
    run_tool([TOOLS / 'train.py', config, '--work-dir', uninterrupted],
             cwd=root)
    interrupted = root / 'interrupted'
    run_tool([
        TOOLS / 'train.py', config, '--work-dir', interrupted,
        '--cfg-options', f'train_cfg.max_iters={RESUME_AT}'
    ],
             cwd=root)
    resume_output = run_tool([
        TOOLS / 'train.py', config, '--work-dir', interrupted, '--resume',
        interrupted / f'iter_{RESUME_AT}.pth'
    ],
                             cwd=root)
    return dict(uninterrupted=uninterrupted,
                interrupted=interrupted,
                resume_output=resume_output)


def iteration_records(work_dir: Path) -> list[dict]:
    """The training records of every run in ``work_dir``, timings removed."""
    runs = sorted(p for p in work_dir.iterdir() if p.is_dir())
    return [{
        key: value
        for key, value in record.items() if key not in TIMING_KEYS
    } for run in runs for record in load_scalars(run) if 'iter' in record]


def test_resume_reproduces_the_uninterrupted_losses(
        exact_resume: dict) -> None:
    output = exact_resume['resume_output']
    assert f'resumed epoch: 0, iter: {RESUME_AT}' in output
    assert f'Advance dataloader {RESUME_AT} steps' in output
    uninterrupted = iteration_records(exact_resume['uninterrupted'])
    interrupted = iteration_records(exact_resume['interrupted'])
    assert [r['iter'] for r in interrupted] == list(range(1, RESUME_TO + 1))
    assert {'loss', 'loss_rpn_cls', 'loss_cls', 'loss_mask', 'lr'
            } <= interrupted[-1].keys()
    # every loss of every iteration, bit for bit (JSON keeps all digits)
    for expected, record in zip(uninterrupted, interrupted, strict=True):
        assert record == expected


def test_resume_reproduces_the_uninterrupted_weights(
        exact_resume: dict) -> None:
    name = f'iter_{RESUME_TO}.pth'
    expected = torch.load(exact_resume['uninterrupted'] / name)
    resumed = torch.load(exact_resume['interrupted'] / name)
    at_stop = torch.load(exact_resume['interrupted'] /
                         f'iter_{RESUME_AT}.pth')['state_dict']
    state = resumed['state_dict']
    assert state.keys() == expected['state_dict'].keys()
    # weights and buffers: CE's running statistics, BN's, their counters
    for key, value in state.items():
        assert torch.equal(value, expected['state_dict'][key]), key
    running = [key for key in state if '.running_' in key]
    ce_running = [key for key in running if 'ce.running_' in key]
    assert 'backbone.stem_ce.running_whitening' in ce_running
    assert len(ce_running) == 3 * 7  # the stem's CE and 6 blocks'
    assert len(running) > len(ce_running)  # BN running statistics
    # ... which the resumed iterations did move
    for key in running:
        assert not torch.equal(state[key], at_stop[key]), key
    # the optimizer's momenta and the schedulers
    optimizer, expected_optimizer = (resumed['optimizer'],
                                     expected['optimizer'])
    assert optimizer['state'].keys() == expected_optimizer['state'].keys()
    for index, param_state in optimizer['state'].items():
        assert torch.equal(param_state['momentum_buffer'],
                           expected_optimizer['state'][index]
                           ['momentum_buffer'])
    assert resumed['param_schedulers'] == expected['param_schedulers']
    # the message hub's loss histories run through the resume
    for key in ('train/loss', 'train/loss_rpn_cls', 'train/lr'):
        for history, expected_history in zip(
                log_history_and_counts(resumed, key),
                log_history_and_counts(expected, key)):
            np.testing.assert_array_equal(history, expected_history)


def log_history_and_counts(checkpoint: dict, key: str) -> tuple:
    """The values and counts of message-hub scalar ``key``."""
    return checkpoint['message_hub']['log_scalars'][key].data


def test_test_tool_evaluates_checkpoint(tiny_run: dict) -> None:
    from pycocotools.coco import COCO

    out = tiny_run['root'] / 'test' / 'results.pkl'
    work_dir = tiny_run['root'] / 'test'
    output = run_tool([
        TOOLS / 'test.py', tiny_run['config'],
        tiny_run['work_dir'] / 'iter_4.pth', '--work-dir', work_dir, '--out',
        out, '--show-dir', 'vis'
    ],
                      cwd=tiny_run['root'])
    assert 'coco/bbox_mAP' in output and 'coco/segm_mAP' in output
    # pycocotools' AP table, for boxes and for masks
    assert 'Evaluating bbox' in output and 'Evaluating segm' in output
    assert output.count('Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all') == 2
    # --show-dir: one drawn image per val image, under <work_dir>/<timestamp>/
    drawn = list(work_dir.glob('*/vis/*.png'))
    assert len(drawn) == len(COCO(tiny_run['val_ann_file']).getImgIds())
    # MMEngine writes the test metrics to <work_dir>/<timestamp>/<timestamp>.json
    (metrics_file, ) = work_dir.glob('*/*.json')
    metrics = json.loads(metrics_file.read_text())
    for key in ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP'):
        assert -1 <= metrics[key] <= 1
    with open(out, 'rb') as f:
        results = pickle.load(f)
    val_ids = set(COCO(tiny_run['val_ann_file']).getImgIds())
    assert {r['img_id'] for r in results} == val_ids
    for result in results:
        pred = result['pred_instances']
        assert len(pred['bboxes']) == len(pred['scores']) == len(
            pred['masks'])


NUMPY_CORE = ('numpy._core'
              if int(np.__version__.split('.')[0]) >= 2 else 'numpy.core')

# the globals of MMEngine checkpoints that torch refuses by default
MMENGINE_GLOBALS = {
    'builtins.getattr', 'mmengine.logging.history_buffer.HistoryBuffer',
    f'{NUMPY_CORE}.multiarray._reconstruct', f'{NUMPY_CORE}.multiarray.scalar',
    'numpy.dtype', 'numpy.ndarray'
}


@contextlib.contextmanager
def without_safe_globals() -> Iterator[None]:
    """Empty torch's allow-list, as with plain MMEngine; restore it after."""
    saved = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        yield
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(saved)


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
    data = np.arange(2.0)
    array = ReducePayload(
        multiarray._reconstruct,
        np.ndarray, (0, ),
        b'b',
        state=(1, (2, ), tampered_float64, False, data.tobytes()))
    loaded = torch.load(save_to_buffer(dict(array=array)))['array']
    # the state went to numpy's builtin float64, which ignores it
    assert loaded.dtype is np.dtype('f8')
    assert loaded.dtype.names is None and loaded.dtype.subdtype is None
    assert not loaded.dtype.hasobject and loaded.dtype.flags == 0
    np.testing.assert_array_equal(loaded, data)


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
            assert type(loaded[group][dtype]) is np.ndarray
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


@pytest.mark.parametrize('tool', ['train.py', 'test.py'])
def test_tools_take_mmdetection_arguments(tool: str,
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture
                                          ) -> None:
    helps = []
    for script in (TOOLS / tool, mmdet_tool_path(tool)):
        monkeypatch.setattr(sys, 'argv', [str(script), '--help'])
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_path(str(script), run_name='__main__')
        assert exit_info.value.code == 0
        helps.append(capsys.readouterr().out)
    assert helps[0] == helps[1]
    assert '--cfg-options' in helps[0] and '--local_rank' in helps[0]


def test_run_mmdet_tool_reports_missing_tool() -> None:
    with pytest.raises(FileNotFoundError, match='no_such_tool.py'):
        run_mmdet_tool('no_such_tool.py')


def write_recorder(bin_dir: Path, command: str, record: Path) -> None:
    """A stand-in ``command`` that writes its arguments, one per line."""
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / command
    script.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" > {record}\n')
    script.chmod(0o755)


def recorded_call(script: str, args: list, tmp_path: Path, command: str,
                  env: dict | None = None) -> list[str]:
    record = tmp_path / f'{command}.args'
    write_recorder(tmp_path / 'bin', command, record)
    env = {
        **os.environ, 'PATH': f'{tmp_path / "bin"}:{os.environ["PATH"]}',
        **(env or {})
    }
    subprocess.run(['bash', str(TOOLS / script), *args],
                   cwd=tmp_path,
                   env=env,
                   check=True,
                   capture_output=True)
    return record.read_text().splitlines()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_shell_launchers_are_executable() -> None:
    for script in ('train.py', 'test.py', 'dist_train.sh', 'dist_test.sh',
                   'slurm_train.sh', 'slurm_test.sh'):
        assert os.access(TOOLS / script, os.X_OK), script


def test_dist_train_sh_runs_torchrun(tmp_path: Path) -> None:
    port = str(free_port())
    args = recorded_call(
        'dist_train.sh',
        ['cfg.py', '4', '--amp', '--cfg-options', 'a.b=1 2'],
        tmp_path,
        'python',
        env=dict(NNODES='2', NODE_RANK='1', PORT=port, MASTER_ADDR='10.0.0.1'))
    assert args == [
        '-m', 'torch.distributed.run', '--nnodes=2', '--node_rank=1',
        '--master_addr=10.0.0.1', '--nproc_per_node=4', f'--master_port={port}',
        f'{TOOLS}/train.py', 'cfg.py', '--launcher', 'pytorch', '--amp',
        '--cfg-options', 'a.b=1 2'
    ]


def test_dist_test_sh_runs_torchrun(tmp_path: Path) -> None:
    args = recorded_call('dist_test.sh', ['cfg.py', 'ckpt.pth', '2', '--tta'],
                         tmp_path, 'python')
    assert args == [
        '-m', 'torch.distributed.run', '--nnodes=1', '--node_rank=0',
        '--master_addr=127.0.0.1', '--nproc_per_node=2', '--master_port=29500',
        f'{TOOLS}/test.py', 'cfg.py', 'ckpt.pth', '--launcher', 'pytorch',
        '--tta'
    ]


def test_slurm_scripts_run_the_tools(tmp_path: Path) -> None:
    train = recorded_call('slurm_train.sh',
                          ['part', 'job', 'cfg.py', 'work', '--amp'],
                          tmp_path, 'srun', env=dict(GPUS='16'))
    assert train[:2] == ['-p', 'part'] and '--ntasks=16' in train
    assert train[-6:] == [
        '-u', f'{TOOLS}/train.py', 'cfg.py', '--work-dir=work',
        '--launcher=slurm', '--amp'
    ]
    test = recorded_call('slurm_test.sh',
                         ['part', 'job', 'cfg.py', 'ckpt.pth', '--tta'],
                         tmp_path, 'srun')
    assert test[-6:] == [
        '-u', f'{TOOLS}/test.py', 'cfg.py', 'ckpt.pth', '--launcher=slurm',
        '--tta'
    ]
