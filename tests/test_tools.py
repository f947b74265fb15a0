"""Tests of tools/: training, exact resume, testing and the launchers.

A tiny Mask R-CNN (``tiny_detector.py``) is trained for 2 iterations with
``tools/train.py``, resumed for 2 more with ``--resume`` and evaluated with
``tools/test.py`` (the ``tiny_run`` fixture of ``conftest.py``), all with
PyTorch's ``weights_only=True`` ``torch.load`` default. With a CE-ResNet-18
backbone, MMDetection's ``RandomSampler``s and ``RNGStateHook``, 2
iterations, a stop and a resume for 2 more reproduce an uninterrupted
4-iteration run bit for bit (losses, weights, CE and BN running statistics,
optimizer). What resume loads from a checkpoint (the allow-list, crafted and
tampered checkpoints) is tested in ``test_checkpoint_safety.py``. The shell
launchers are checked with stand-ins for ``python`` and ``srun`` that record
their command lines (a real two-process run on CPU is in
``test_distributed_training.py``).
"""
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

from ce_mmdet.engine.rng_state_hook import RNG_STATE_KEY
from ce_mmdet.utils import openmmlab_tool_path, run_openmmlab_tool
from crafted_checkpoints import MMENGINE_GLOBALS, without_safe_globals
from tiny_detector import tiny_ce_backbone, write_tiny_mask_rcnn_config
from tool_runs import TOOLS, run_tool

# LinearLR(start_factor=0.1, end=4) and MultiStepLR(milestones=[3]) on lr
# 0.01: the lr used by iterations 1..4
EXPECTED_LRS = [0.001, 0.004, 0.007, 0.001]


def load_scalars(run_dir: Path) -> list[dict]:
    """The records of ``<run_dir>/vis_data/scalars.json``.

    ``run_dir`` is the ``<work_dir>/<timestamp>`` directory of one run.
    """
    scalars = run_dir / 'vis_data' / 'scalars.json'
    return [json.loads(line) for line in scalars.read_text().splitlines()]


def log_history(checkpoint: dict, key: str) -> np.ndarray:
    """The logged values of message-hub scalar ``key`` in a checkpoint."""
    return checkpoint['message_hub']['log_scalars'][key].data[0]


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
    pipeline's numpy draws (``RandomFlip``); it saves no global RNG state,
    from which MMDetection's ``RandomSampler`` draws the proposals the RPN
    and R-CNN heads train on. ``RNGStateHook`` saves and restores those
    states, so the samplers stay the base config's ``RandomSampler``s.
    Validation is off (fewer processes to wait for).
    """
    write_tiny_mask_rcnn_config(root / 'tiny_mask_rcnn.py',
                                data_paths,
                                max_iters=RESUME_TO,
                                checkpoint_interval=RESUME_AT)
    model = dict(backbone=tiny_ce_backbone('CE'))
    config = root / 'tiny_ce_mask_rcnn_exact_resume.py'
    config.write_text(
        "_base_ = './tiny_mask_rcnn.py'\n"
        f'model = {model!r}\n'
        "custom_hooks = [dict(type='RNGStateHook')]\n"
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
    # (and the CUDA generators' where the run used a GPU)
    assert (f'Restored the RNG states saved at iteration {RESUME_AT} '
            '(python random, numpy, torch CPU') in output
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
    stop_checkpoint = exact_resume['interrupted'] / f'iter_{RESUME_AT}.pth'
    stop = torch.load(stop_checkpoint, weights_only=True)
    at_stop = stop['state_dict']
    # RNGStateHook's entry: plain tensors and values, no global to allow
    assert stop[RNG_STATE_KEY].keys() >= {'python', 'numpy', 'torch'}
    with without_safe_globals():
        assert set(torch.serialization.get_unsafe_globals_in_checkpoint(
            str(stop_checkpoint))) <= MMENGINE_GLOBALS
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
    assert output.count(
        'Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all') == 2
    # --show-dir: one drawn image per val image, under <work_dir>/<timestamp>/
    drawn = list(work_dir.glob('*/vis/*.png'))
    assert len(drawn) == len(COCO(tiny_run['val_ann_file']).getImgIds())
    # MMEngine writes the test metrics to
    # <work_dir>/<timestamp>/<timestamp>.json
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


@pytest.mark.parametrize('tool', ['train.py', 'test.py'])
def test_tools_take_mmdetection_arguments(tool: str,
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture
                                          ) -> None:
    helps = []
    for script in (TOOLS / tool, openmmlab_tool_path(tool)):
        monkeypatch.setattr(sys, 'argv', [str(script), '--help'])
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_path(str(script), run_name='__main__')
        assert exit_info.value.code == 0
        helps.append(capsys.readouterr().out)
    assert helps[0] == helps[1]
    assert '--cfg-options' in helps[0] and '--local_rank' in helps[0]


def test_run_openmmlab_tool_reports_missing_tool() -> None:
    with pytest.raises(FileNotFoundError, match='no_such_tool.py'):
        run_openmmlab_tool('no_such_tool.py')


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
                   'slurm_train.sh', 'slurm_test.sh', 'pretrain/train.py',
                   'pretrain/test.py', 'pretrain/dist_train.sh'):
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
        '--master_addr=10.0.0.1', '--nproc_per_node=4',
        f'--master_port={port}',
        f'{TOOLS}/train.py', 'cfg.py', '--launcher', 'pytorch', '--amp',
        '--cfg-options', 'a.b=1 2'
    ]


def test_pretrain_dist_train_sh_runs_mmpretrains_tool(tmp_path: Path) -> None:
    args = recorded_call('pretrain/dist_train.sh',
                         ['cfg.py', '8', '--auto-scale-lr'], tmp_path,
                         'python')
    assert args[-5:] == [
        f'{TOOLS}/pretrain/train.py', 'cfg.py', '--launcher', 'pytorch',
        '--auto-scale-lr'
    ]
    assert '--nproc_per_node=8' in args


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
    pretrain = recorded_call(
        'slurm_train.sh', ['part', 'job', 'cfg.py', 'work'], tmp_path, 'srun',
        env=dict(TRAIN_SCRIPT=f'{TOOLS}/pretrain/train.py'))
    assert pretrain[-5:] == [
        '-u', f'{TOOLS}/pretrain/train.py', 'cfg.py', '--work-dir=work',
        '--launcher=slurm'
    ]
    test = recorded_call('slurm_test.sh',
                         ['part', 'job', 'cfg.py', 'ckpt.pth', '--tta'],
                         tmp_path, 'srun')
    assert test[-6:] == [
        '-u', f'{TOOLS}/test.py', 'cfg.py', 'ckpt.pth', '--launcher=slurm',
        '--tta'
    ]
