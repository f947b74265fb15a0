"""Two-process training and testing on the CPU (torchrun, gloo, SyncCE).

``tools/train.py`` runs under ``python -m torch.distributed.run
--nproc_per_node=2`` with ``--launcher pytorch`` and no visible GPU, so
``ce_mmdet.utils.cpu_distributed`` initialises gloo and builds DDP without
device ids. The tiny Mask R-CNN gets a CE-ResNet-18 backbone with SyncCE;
the hook of ``ce_stats_dump_hook.py`` (imported through ``custom_imports``)
writes each rank's CE and BN buffers and the images it trained on. The
ranks must train on different images (and so end with different plain-BN
statistics) yet end with bitwise identical CE running statistics, which
moved away from their initial values: identical because SyncCE all-reduces
its batch statistics, not because the ranks saw the same data.
"""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from ce_mmdet.utils.cpu_distributed import (
    cpu_model_wrapper_options,
    needs_cpu_distributed,
    setup_cpu_distributed,
)
from tiny_detector import tiny_ce_backbone, write_tiny_mask_rcnn_config

REPO_ROOT = Path(__file__).resolve().parents[1]
TESTS_DIR = Path(__file__).resolve().parent
TOOLS = REPO_ROOT / 'tools'

NUM_PROCESSES = 2
MAX_ITERS = 3
BATCH_SIZE = 2  # the tiny config's train batch size per process
FALLBACK_LOG = 'ce_mmdet: no GPU, CPU/gloo fallback for --launcher pytorch'

CE_BACKBONE = tiny_ce_backbone('SyncCE')


def free_port() -> int:
    """A TCP port of 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def torchrun(script: Path, args: list, cwd: Path,
             timeout: float = 300) -> str:
    """Run ``script args --launcher pytorch`` in 2 processes on the CPU.

    ``CUDA_VISIBLE_DEVICES=''`` hides any GPU, so that MMEngine's device is
    the CPU; one OpenMP thread per process (busy machine). Returns the
    combined output, fails with its tail.
    """
    env = {
        **os.environ,
        'CUDA_VISIBLE_DEVICES': '',
        'OMP_NUM_THREADS': '1',
        'MKL_NUM_THREADS': '1',
        'PYTHONPATH': os.pathsep.join(
            filter(None, [str(TESTS_DIR),
                          str(REPO_ROOT),
                          os.environ.get('PYTHONPATH')])),
    }
    command = [
        sys.executable, '-m', 'torch.distributed.run',
        f'--nproc_per_node={NUM_PROCESSES}', '--master_addr=127.0.0.1',
        f'--master_port={free_port()}',
        str(script), *map(str, args), '--launcher', 'pytorch'
    ]
    result = subprocess.run(command,
                            cwd=cwd,
                            env=env,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT,
                            text=True,
                            timeout=timeout)
    assert result.returncode == 0, (
        f'{command} exited with {result.returncode}:\n'
        f'{result.stdout[-6000:]}')
    return result.stdout


@pytest.fixture(scope='module')
def dist_run(tiny_shapes_dataset: dict,
             tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Train the SyncCE tiny detector for 3 iterations in 2 CPU processes."""
    root = tmp_path_factory.mktemp('dist_run')
    write_tiny_mask_rcnn_config(
        root / 'tiny_mask_rcnn.py', tiny_shapes_dataset, max_iters=MAX_ITERS)
    dump_dir = root / 'ce_stats'
    dump_dir.mkdir()
    config = root / 'tiny_mask_rcnn_sync_ce.py'
    config.write_text(
        "_base_ = './tiny_mask_rcnn.py'\n"
        'custom_imports = dict(imports=["ce_mmdet", "ce_stats_dump_hook"], '
        'allow_failed_imports=False)\n'
        f'model = dict(backbone={CE_BACKBONE!r})\n'
        'custom_hooks = [dict(type="DumpCEStatsHook", '
        f'out_dir={str(dump_dir)!r})]\n',
        encoding='utf-8')
    work_dir = root / 'work'
    output = torchrun(TOOLS / 'train.py', [config, '--work-dir', work_dir],
                      cwd=root)
    dumps = [
        torch.load(dump_dir / f'rank{rank}.pth')
        for rank in range(NUM_PROCESSES)
    ]
    train_img_dir = Path(tiny_shapes_dataset['train_img_dir'])
    return dict(root=root,
                train_images=sorted(p.name for p in train_img_dir.iterdir()),
                config=config,
                work_dir=work_dir,
                output=output,
                dumps=dumps)


def test_both_ranks_train_with_the_gloo_fallback(dist_run: dict) -> None:
    output = dist_run['output']
    assert output.count(FALLBACK_LOG) == 1  # logged once, by rank 0
    assert 'model_wrapper_cfg.device_ids=None' in output
    assert f'Iter(train) [{MAX_ITERS}/{MAX_ITERS}]' in output
    for rank, dump in enumerate(dist_run['dumps']):
        assert (dump['rank'], dump['world_size']) == (rank, NUM_PROCESSES)
        assert len(dump['img_paths']) == MAX_ITERS * BATCH_SIZE
    # rank 0 saved the checkpoint; the model is not wrapped in it
    checkpoint = torch.load(dist_run['work_dir'] / f'iter_{MAX_ITERS}.pth')
    assert checkpoint['meta']['iter'] == MAX_ITERS
    assert 'backbone.stem_ce.running_whitening' in checkpoint['state_dict']


def test_ranks_train_on_different_images(dist_run: dict) -> None:
    paths = [dump['img_paths'] for dump in dist_run['dumps']]
    for iteration in range(MAX_ITERS):
        batch = slice(iteration * BATCH_SIZE, (iteration + 1) * BATCH_SIZE)
        assert not set(paths[0][batch]) & set(paths[1][batch]), iteration
    # the first epoch (2 iterations) splits the 8 train images between them
    epoch = slice(0, len(dist_run['train_images']) // NUM_PROCESSES)
    first_epoch = sorted(paths[0][epoch] + paths[1][epoch])
    assert first_epoch == dist_run['train_images']
    # plain BN is not synchronised (and DDP broadcasts no buffers): every
    # BN running statistic of the backbone differs between the ranks
    bn = [dump['final_bn'] for dump in dist_run['dumps']]
    assert bn[0].keys() == bn[1].keys() and len(bn[0]) > 0
    for name in bn[0]:
        assert not torch.equal(bn[0][name], bn[1][name]), name


def test_sync_ce_statistics_are_identical_across_ranks(
        dist_run: dict) -> None:
    ce = [dump['final_ce'] for dump in dist_run['dumps']]
    # the stem and the 6 BasicBlocks of stages 1-3, 3 buffers each
    assert ce[0].keys() == ce[1].keys() and len(ce[0]) == 3 * 7
    for name in ce[0]:
        torch.testing.assert_close(ce[0][name], ce[1][name], rtol=0, atol=0)


def test_ce_statistics_were_updated(dist_run: dict) -> None:
    for dump in dist_run['dumps']:
        initial, final = dump['initial_ce'], dump['final_ce']
        assert initial.keys() == final.keys()
        for name in initial:
            if name.endswith('running_mean'):
                assert torch.count_nonzero(initial[name]) == 0, name
            assert not torch.equal(initial[name], final[name]), name
            assert torch.isfinite(final[name]).all(), name


def test_test_tool_runs_distributed_on_cpu(dist_run: dict) -> None:
    output = torchrun(TOOLS / 'test.py', [
        dist_run['config'], dist_run['work_dir'] / f'iter_{MAX_ITERS}.pth',
        '--work-dir', dist_run['root'] / 'test_work'
    ],
                      cwd=dist_run['root'])
    assert output.count(FALLBACK_LOG) == 1
    assert 'coco/bbox_mAP:' in output and 'coco/segm_mAP:' in output


# --- the fallback's pieces, in this (non-distributed) process ---


def test_no_fallback_outside_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'MASTER_ADDR',
                 'MASTER_PORT'):
        monkeypatch.delenv(name, raising=False)
    argv = ['train.py', 'config.py', '--launcher', 'pytorch']
    assert not needs_cpu_distributed()
    assert not setup_cpu_distributed('train.py', argv)
    assert argv == ['train.py', 'config.py', '--launcher', 'pytorch']
    assert not torch.distributed.is_initialized()


def test_wrapper_options_without_model_wrapper_cfg() -> None:
    assert cpu_model_wrapper_options(Config(dict())) == {
        'model_wrapper_cfg.type': 'MMDistributedDataParallel',
        'model_wrapper_cfg.device_ids': None,
        'model_wrapper_cfg.broadcast_buffers': False,
        'model_wrapper_cfg.find_unused_parameters': False,
    }
    options = cpu_model_wrapper_options(
        Config(dict(find_unused_parameters=True)))
    assert options['model_wrapper_cfg.find_unused_parameters'] is True


@pytest.mark.parametrize('wrapper_cfg, expected', [
    (dict(find_unused_parameters=True), {
        'model_wrapper_cfg.device_ids': None
    }),
    (dict(type='MMSeparateDistributedDataParallel'), {
        'model_wrapper_cfg.device_ids': None
    }),
    (dict(type='MMDistributedDataParallel', device_ids=None), {}),
    (dict(type='MMFullyShardedDataParallel'), {}),
])
def test_wrapper_options_keep_the_configs_wrapper(wrapper_cfg: dict,
                                                   expected: dict) -> None:
    cfg = Config(dict(default_scope='mmdet', model_wrapper_cfg=wrapper_cfg))
    assert cpu_model_wrapper_options(cfg) == expected
