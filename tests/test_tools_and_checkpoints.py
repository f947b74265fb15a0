"""Tests of tools/ and of MMEngine checkpoints under ``weights_only=True``.

A tiny Mask R-CNN (``tiny_detector.py``) is trained for 2 iterations with
``tools/train.py``, resumed for 2 more with ``--resume`` and evaluated with
``tools/test.py``, all with PyTorch's ``weights_only=True`` ``torch.load``
default. The shell launchers are checked with stand-ins for ``python`` and
``srun`` that record their command lines (a real two-process run on CPU is
in ``test_distributed_training.py``).
"""
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

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

from ce_mmdet.utils import (allow_mmengine_checkpoint_globals,
                            mmdet_tool_path, run_mmdet_tool)
from tiny_detector import write_tiny_mask_rcnn_config

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


def test_checkpoint_globals_are_exactly_covered(tiny_run: dict) -> None:
    checkpoint = str(tiny_run['work_dir'] / 'iter_4.pth')
    numpy_core = 'numpy._core' if int(np.__version__.split('.')[0]) >= 2 \
        else 'numpy.core'
    saved = torch.serialization.get_safe_globals()
    try:
        # without ce_mmdet's allow-list (as with plain MMEngine)
        torch.serialization.clear_safe_globals()
        unsafe = set(
            torch.serialization.get_unsafe_globals_in_checkpoint(checkpoint))
        assert unsafe == {
            'builtins.getattr',
            'mmengine.logging.history_buffer.HistoryBuffer',
            f'{numpy_core}.multiarray._reconstruct',
            f'{numpy_core}.multiarray.scalar', 'numpy.dtype', 'numpy.ndarray'
        }
        with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer'):
            torch.load(checkpoint)
        # with it
        assert unsafe <= set(allow_mmengine_checkpoint_globals())
        assert torch.serialization.get_unsafe_globals_in_checkpoint(
            checkpoint) == []
        assert torch.load(checkpoint)['meta']['iter'] == 4
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(saved)


class ForeignPayload:
    """A class no allow-list knows about."""

    def __init__(self) -> None:
        self.value = 42


class GetattrPayload:
    """Pickles as ``getattr(obj, name)``."""

    def __init__(self, obj: object, name: str) -> None:
        self.obj, self.name = obj, name

    def __reduce__(self) -> tuple:
        return getattr, (self.obj, self.name)


def save_to_buffer(obj: object) -> io.BytesIO:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return buffer


@pytest.mark.parametrize(
    'payload, name', [(ForeignPayload(), 'ForeignPayload'),
                      (functools.partial(os.getcwd), 'functools.partial'),
                      (np.array([1, 'a'], dtype=object), 'ObjectDType')])
def test_foreign_globals_are_still_refused(payload: object,
                                          name: str) -> None:
    buffer = save_to_buffer(dict(state_dict={}, meta=dict(payload=payload)))
    with pytest.raises(pickle.UnpicklingError, match=name):
        torch.load(buffer)


@pytest.mark.parametrize('obj, name', [
    (HistoryBuffer, '__init__'),
    (HistoryBuffer.mean, '__globals__'),
    (np.ndarray, 'tofile'),
    (torch.nn.Parameter, '__reduce_ex__'),
])
def test_getattr_is_limited_to_history_buffer_methods(obj: object,
                                                      name: str) -> None:
    buffer = save_to_buffer(dict(meta=GetattrPayload(obj, name)))
    with pytest.raises(pickle.UnpicklingError, match='is refused'):
        torch.load(buffer)


def test_numpy_values_round_trip() -> None:
    buffer = HistoryBuffer([1.5, 2.5], [1, 2])
    values = dict(
        arrays={
            dtype: np.arange(3).astype(dtype)
            for dtype in ('bool', 'int8', 'int32', 'int64', 'uint8',
                          'float16', 'float32', 'float64')
        },
        scalars=[np.float64(0.5), np.float32(0.25), np.int64(3)],
        buffer=buffer)
    loaded = torch.load(save_to_buffer(values))
    for dtype, array in values['arrays'].items():
        assert loaded['arrays'][dtype].dtype == array.dtype
        np.testing.assert_array_equal(loaded['arrays'][dtype], array)
    assert loaded['scalars'] == values['scalars']
    assert [type(s) for s in loaded['scalars']] == [
        np.float64, np.float32, np.int64
    ]
    assert loaded['buffer'].mean() == buffer.mean()
    assert loaded['buffer'].current() == 2.5


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
