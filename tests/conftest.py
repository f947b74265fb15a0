"""Shared pytest fixtures, and the `slow` marker (skipped without
--run-slow)."""
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_SHAPES_NUM_TRAIN = 8
TINY_SHAPES_NUM_VAL = 4
TINY_SHAPES_IMAGE_SIZE = (96, 96)


@pytest.fixture(autouse=True)
def seeded_random_state() -> None:
    """Every test starts from one random state (Python, NumPy, torch), so
    that its draws do not depend on the tests before it or on the xdist
    worker that runs it."""
    import random

    import numpy as np
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope='module')
def single_thread():
    """Run a module's many tiny tensor ops on one intra-op thread (a shared
    machine's thread pool stalls on them); use with
    ``pytestmark = pytest.mark.usefixtures('single_thread')``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def run_quick_demo(tmp_path: Path) -> Callable[[str], str]:
    """Run ``tools/run_demo.sh <demo>`` with QUICK=1 in a stand-in checkout.

    ``tmp_path`` gets links to the code (tools, configs, ce_mmdet, setup.py);
    its ``data/`` and ``work_dirs/`` are the test's own, so a test generates
    the demo's tiny sets there first. The demo uses this test's environment
    and one thread. Returns the demo's output; fails the test on a non-zero
    exit with the output's end.
    """
    for name in ('tools', 'configs', 'ce_mmdet', 'setup.py'):
        os.symlink(REPO_ROOT / name, tmp_path / name)

    def run(demo: str) -> str:
        venv = Path(sys.executable).parents[1]
        env = {**os.environ, 'QUICK': '1', 'CE_MMDET_VENV': str(venv),
               'OMP_NUM_THREADS': '1'}
        result = subprocess.run(
            ['bash', str(tmp_path / 'tools' / 'run_demo.sh'), demo],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=600)
        assert result.returncode == 0, result.stdout[-4000:]
        return result.stdout

    return run


@pytest.fixture(scope='session')
def tiny_shapes_dataset(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny synthetic shapes set, generated once per test session.

    8 train and 4 val RGB PNG images of 96x96 (height x width) with 1-6
    instances each, classes ``ce_mmdet.datasets.SHAPES_CLASSES`` (COCO
    category ids 1..4), masks as COCO RLE. Treat it as read-only: it is
    shared by every test of the session.

    Returns:
        dict of absolute paths (str)::

            data_root       <tmp>/tiny_shapes0
            train_img_dir   <data_root>/train      (000001.png ... 000008.png)
            val_img_dir     <data_root>/val        (000001.png ... 000004.png)
            train_ann_file  <data_root>/annotations/instances_train.json
            val_ann_file    <data_root>/annotations/instances_val.json

        In an MMDetection dataset config: ``data_root=paths['data_root']``,
        ``ann_file='annotations/instances_train.json'``,
        ``data_prefix=dict(img='train/')``,
        ``metainfo=dict(classes=SHAPES_CLASSES)``.
    """
    # Imported here so that collecting tests does not depend on ce_mmdet.
    from ce_mmdet.datasets import generate_shapes_dataset

    out_dir = tmp_path_factory.mktemp('tiny_shapes')
    return generate_shapes_dataset(
        out_dir,
        num_train=TINY_SHAPES_NUM_TRAIN,
        num_val=TINY_SHAPES_NUM_VAL,
        image_size=TINY_SHAPES_IMAGE_SIZE,
        seed=0,
        show_progress=False)


@pytest.fixture(scope='session')
def tiny_run(tiny_shapes_dataset: dict,
             tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Train 2 iterations, then resume for 2 more, both with tools/train.py.

    Validation runs after every iteration of the first run, so that its
    checkpoint also holds the validation metrics' history buffers. Shared
    by the tools' and the checkpoint-safety tests: treat it as read-only and
    write new files under other names.
    """
    from tiny_detector import write_tiny_mask_rcnn_config
    from tool_runs import TOOLS, run_tool

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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        '--run-slow', action='store_true', default=False,
        help='also run the tests marked slow (minutes each on a CPU)')


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        'markers', 'slow: takes minutes on a CPU; runs only with --run-slow')


def pytest_collection_modifyitems(config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    if config.getoption('--run-slow'):
        return
    skip = pytest.mark.skip(reason='slow: pass --run-slow to run it')
    for item in items:
        if 'slow' in item.keywords:
            item.add_marker(skip)
