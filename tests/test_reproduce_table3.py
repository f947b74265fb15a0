"""Table 3 in one resumable command (``tools/reproduce_table3.py``).

The ``shapes`` preset runs end to end with a few iterations per step
(``--quick``) in a stand-in checkout with tiny generated sets: the table,
a rerun that does nothing, a changed config that redoes exactly the steps
downstream of it, and a run killed during a training and after a cut
checkpoint write that ends with the same table. The ``coco`` preset is
planned (``--dry-run``) on this machine without COCO, and submitted to a
fake Slurm whose ``sbatch`` records its arguments.
"""
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ce_mmdet.experiments import PlanOptions, build_plan
from ce_mmdet.experiments.command_line import main
from ce_mmdet.experiments.steps import (
    MARKER,
    complete_checkpoints,
    repair_checkpoints,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
QUICK = ['--preset', 'shapes', '--models', 'ce', '--quick']
QUICK_ROOT = Path('work_dirs') / 'table3_shapes_quick'


def _stand_in(root: Path) -> Path:
    """A checkout of links to the code, with its own copy of the configs
    (a test may change one), data and work dirs."""
    root.mkdir(parents=True)
    for name in ('tools', 'ce_mmdet', 'setup.py'):
        os.symlink(REPO_ROOT / name, root / name)
    shutil.copytree(REPO_ROOT / 'configs', root / 'configs')
    from ce_mmdet.datasets import (
        generate_shapes_classification_set,
        generate_shapes_dataset,
    )
    generate_shapes_classification_set(root / 'data' / 'shapes_cls',
                                       num_train=8, num_val=4, image_size=32,
                                       show_progress=False)
    generate_shapes_dataset(root / 'data' / 'shapes', num_train=32, num_val=4,
                            image_size=(64, 64), show_progress=False)
    return root


def _command(cwd: Path, *arguments: str, timeout: float = 400) -> str:
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}
    result = subprocess.run(
        [sys.executable, 'tools/reproduce_table3.py', *arguments], cwd=cwd,
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=timeout)
    assert result.returncode == 0, result.stdout[-5000:]
    return result.stdout


def _table(cwd: Path) -> dict:
    path = cwd / QUICK_ROOT / 'table3' / 'table3.json'
    return json.loads(path.read_text())


def _ran(output: str) -> list[str]:
    """The steps a run started, in order."""
    return [line.split()[4] for line in output.splitlines()
            if line.startswith('[table3 ') and line.split()[2] == 'start']


@pytest.fixture(scope='module')
def shapes_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The quick shapes preset from nothing."""
    cwd = _stand_in(tmp_path_factory.mktemp('table3') / 'checkout')
    start = time.perf_counter()
    output = _command(cwd, *QUICK, '--no-probe')
    seconds = time.perf_counter() - start
    return dict(cwd=cwd, output=output, table=_table(cwd),
                seconds=seconds)


def test_shapes_preset_end_to_end(shapes_run: dict) -> None:
    output, table = shapes_run['output'], shapes_run['table']
    assert _ran(output) == ['pretrain-ce', 'top1-ce', 'detect-ce-pretrained',
                            'eval-ce-pretrained', 'detect-ce-scratch',
                            'eval-ce-scratch', 'collect']
    # the plan first
    plan = output[:output.index('] start ')]
    assert plan.count('command:') == 6 and plan.count('fingerprint:') == 9
    rows = {row['row']: row for row in table['rows']}
    assert set(rows) == {'ce-pretrained', 'ce-scratch'}
    assert rows['ce-pretrained']['weights'] == 'pretrained here (pretrain-ce)'
    assert rows['ce-scratch']['weights'] == 'from scratch'
    assert 0 <= rows['ce-pretrained']['top1'] <= 100
    assert rows['ce-scratch']['top1'] is None
    for row in rows.values():
        assert all(0 <= row['metrics'][key] <= 100
                   for key in ('box AP', 'mask AP')), row
    assert set(table['step_seconds']) == {
        'pretrain-ce', 'top1-ce', 'detect-ce-pretrained',
        'eval-ce-pretrained', 'detect-ce-scratch', 'eval-ce-scratch'}
    assert all(seconds > 0 for seconds in table['step_seconds'].values())
    out = shapes_run['cwd'] / QUICK_ROOT / 'table3'
    assert (out / 'table3.png').read_bytes()[:4] == b'\x89PNG'
    markdown = (out / 'table3.md').read_text()
    assert '| CE-ResNet-18 (mask_rcnn_ce_r18_fpn_shapes_pretrained) |' in \
        markdown
    assert markdown in output  # printed at the end


def test_rerun_does_nothing(shapes_run: dict) -> None:
    cwd = shapes_run['cwd']
    markers = sorted(cwd.glob(f'{QUICK_ROOT}/**/{MARKER}'))
    assert len(markers) == 7
    before = [marker.stat().st_mtime_ns for marker in markers]
    output = _command(cwd, *QUICK, '--no-probe')
    assert _ran(output) == []
    assert 'nothing to do: every step is done' in output
    skipped = [line for line in output.splitlines() if '] skip ' in line]
    assert len(skipped) == 9  # 2 data sets + 7 steps
    assert [marker.stat().st_mtime_ns for marker in markers] == before


def _wait_for(ready, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, process.stdout.read()[-4000:]
        assert time.monotonic() < deadline, 'timed out'
        time.sleep(0.1)


def test_changed_config_killed_run_resumes_to_the_same_table(
        shapes_run: dict) -> None:
    """A config changed (in a way that leaves the numbers alone): exactly
    the steps downstream of it are redone. That run is killed (SIGKILL)
    during the training, then a checkpoint write is cut short; the rerun
    resumes from the last complete checkpoint and ends with the table of
    the uninterrupted run."""
    cwd = shapes_run['cwd']
    config = cwd / 'configs' / 'shapes' / \
        'mask_rcnn_ce_r18_fpn_shapes_pretrained.py'
    config.write_text(config.read_text() + "\nlog_level = 'DEBUG'\n")
    dry = _command(cwd, *QUICK, '--dry-run', '--no-probe')
    stale = [line.split()[1] for line in dry.splitlines()
             if line[:4].strip().rstrip('.').isdigit() and '[done' not in line]
    assert stale == ['detect-ce-pretrained', 'eval-ce-pretrained', 'collect']
    assert 'detect-ce-pretrained [stale: done with another fingerprint' in dry

    work_dir = cwd / QUICK_ROOT / 'detect-ce-pretrained'
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}
    process = subprocess.Popen(
        [sys.executable, 'tools/reproduce_table3.py', *QUICK, '--no-probe'],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
        # the old run moved aside, then the new one's first checkpoint
        _wait_for(lambda: list((cwd / QUICK_ROOT).glob(
            'detect-ce-pretrained.superseded-*')) and (
                work_dir / 'last_checkpoint').exists(), process, timeout=300)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert list((cwd / QUICK_ROOT).glob('detect-ce-pretrained.superseded-*'))
    (first, ) = complete_checkpoints(str(work_dir))
    assert first.endswith('iter_2.pth')
    assert not (work_dir / MARKER).exists()
    # what a kill while MMEngine writes the next checkpoint leaves
    data = Path(first).read_bytes()
    (work_dir / 'iter_4.pth').write_bytes(data[:len(data) // 2])
    (work_dir / 'last_checkpoint').write_text('')

    output = _command(cwd, *QUICK, '--no-probe')
    assert _ran(output) == ['detect-ce-pretrained', 'eval-ce-pretrained',
                            'collect']
    assert (f'resuming from {QUICK_ROOT}/detect-ce-pretrained/iter_2.pth'
            in output)
    assert (work_dir / 'iter_4.pth.incomplete').exists()
    def numbers(table: dict) -> list[dict]:
        return [{key: value for key, value in row.items() if key != 'seconds'}
                for row in table['rows']]

    assert numbers(_table(cwd)) == numbers(shapes_run['table'])


def test_repair_keeps_the_newest_complete_checkpoint(tmp_path: Path) -> None:
    import torch

    for step in (2, 4):
        torch.save({'step': step}, tmp_path / f'iter_{step}.pth')
    data = (tmp_path / 'iter_4.pth').read_bytes()
    (tmp_path / 'iter_6.pth').write_bytes(data[:-10])
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_6.pth'))
    assert repair_checkpoints(str(tmp_path)) == str(tmp_path / 'iter_4.pth')
    assert (tmp_path / 'last_checkpoint').read_text() == str(
        tmp_path / 'iter_4.pth')
    assert (tmp_path / 'iter_6.pth.incomplete').exists()
    for name in ('iter_2.pth', 'iter_4.pth'):
        (tmp_path / name).write_bytes(b'not a zip')
    assert repair_checkpoints(str(tmp_path)) is None
    assert not (tmp_path / 'last_checkpoint').exists()


def test_probe_measures_here_and_is_cached(tmp_path: Path) -> None:
    from ce_mmdet.experiments.estimates import probe_estimate
    from ce_mmdet.experiments.steps import merged_config

    steps = build_plan(PlanOptions(preset='shapes', models=('ce', ),
                                   quick=True, work_dirs=str(tmp_path)))
    step = next(step for step in steps if step.name == 'pretrain-ce')
    cfg = merged_config(step.config, step.cfg_options)
    cache = tmp_path / 'probe.json'
    seconds, source = probe_estimate(step, cfg, 'key', 4000, str(cache))
    entry = json.loads(cache.read_text())['key']
    assert entry['batch'] == 32 and entry['seconds'] > 0
    # --quick: 64 images of 32 per iteration, one epoch
    assert seconds == pytest.approx(2 * entry['seconds'])
    assert source.startswith('probe here (')
    cache.write_text(json.dumps({'key': {**entry, 'seconds': 1.5}}))
    assert probe_estimate(step, cfg, 'key', 4000, str(cache))[0] == 3.0


def test_run_demo_forwards_to_the_shapes_preset(tmp_path: Path) -> None:
    """``run_demo.sh pretrain plain`` (QUICK=1, SEED=3) is the shapes
    preset's plain rows; a wrong model is refused."""
    for name in ('tools', 'ce_mmdet', 'setup.py', 'configs'):
        os.symlink(REPO_ROOT / name, tmp_path / name)
    env = {**os.environ, 'QUICK': '1', 'SEED': '3',
           'CE_MMDET_VENV': str(Path(sys.executable).parents[1])}

    def demo(*arguments: str) -> subprocess.CompletedProcess:
        return subprocess.run(['bash', 'tools/run_demo.sh', *arguments],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              timeout=300)

    result = demo('pretrain', 'plain', '--dry-run', '--no-probe')
    assert result.returncode == 0, result.stdout[-3000:]
    assert 'Plan of preset shapes' in result.stdout
    assert 'pretrain-plain [to do' in result.stdout
    assert 'pretrain-ce' not in result.stdout
    assert 'randomness.seed=3' in result.stdout
    assert 'work_dirs/table3_shapes_quick/' in result.stdout
    refused = demo('pretrain', 'vgg')
    assert refused.returncode == 2
    assert "usage: bash tools/run_demo.sh pretrain [ce|plain]  (got 'vgg')" \
        in refused.stdout


# ------------------------------------------------------------------ coco
COCO_STEPS = ['pretrain-ce-r50', 'top1-ce-r50', 'detect-ce-r50-1x',
              'eval-ce-r50-1x', 'pretrain-ce-r101', 'top1-ce-r101',
              'detect-ce-r101-1x', 'eval-ce-r101-1x', 'pretrain-bn-r50',
              'top1-bn-r50', 'detect-bn-r50-1x', 'eval-bn-r50-1x',
              'pretrain-bn-r101', 'top1-bn-r101', 'detect-bn-r101-1x',
              'eval-bn-r101-1x', 'collect']


def test_coco_dry_run_plans_every_step(tmp_path: Path, capsys) -> None:
    assert main(['--preset', 'coco', '--dry-run', '--engine', 'slurm',
                 '--work-dirs', str(tmp_path)]) == 0
    plan = capsys.readouterr().out
    for index, name in enumerate(COCO_STEPS, 1):
        assert f'{index:2d}. {name} [to do' in plan, name
    assert plan.count('command:     srun --kill-on-bad-exit=1 ') == 16
    assert plan.count('--launcher slurm') == 16
    assert 'input missing: data/imagenet/meta/train.txt' in plan
    estimates = [line for line in plan.splitlines() if 'estimate:' in line]
    assert len(estimates) == 17
    # every training and test estimate names its published source
    for line in estimates[:-1]:
        assert 'GPU-hours on 8' in line, line
        assert ('published_results.yml' in line
                or 'at most the training speed' in line), line
    assert 'mask-rcnn_r50_fpn_1x_coco: 0.265 s/iter at 16 images on 8 V100' \
        in plan
    assert '17 of 17 steps to run, expected' in plan
    assert 'GPU-hours; with the independent steps side by side' in plan
    assert not (tmp_path / 'table3_coco').exists()  # a plan writes nothing
    # one process per step cannot take 8 GPUs
    assert main(['--preset', 'coco', '--dry-run', '--gpus', '8']) == 2
    assert '--engine local runs one process' in capsys.readouterr().err


def test_coco_configs_of_the_plan_build() -> None:
    """Every config the coco plan names builds through the registries."""
    from mmdet.registry import MODELS as DET_MODELS
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS as CLS_MODELS

    from ce_mmdet.experiments.steps import resolve_config

    steps = build_plan(PlanOptions(preset='coco', schedules=('1x', '2x')))
    configs = {(step.toolbox, step.config) for step in steps if step.config}
    assert len(configs) == 12
    for toolbox, config in sorted(configs):
        cfg = Config.fromfile(resolve_config(config))
        registry = DET_MODELS if toolbox == 'mmdet' else CLS_MODELS
        with DefaultScope.overwrite_default_scope(toolbox):
            model = registry.build(cfg.model)
        assert model is not None, config


def test_coco_weights_choices(tmp_path: Path, capsys) -> None:
    steps = build_plan(PlanOptions(preset='coco', ce_weights='release',
                                   bn_weights='torchvision', depths=(50, )))
    assert [step.name for step in steps] == [
        'detect-ce-r50-1x', 'eval-ce-r50-1x', 'detect-bn-r50-1x',
        'eval-bn-r50-1x', 'collect']
    assert 'checkpoints/ce_resnet50_mmdet.pth' in steps[0].inputs
    assert main(['--preset', 'coco', '--ce-weights', 'release',
                 '--dry-run']) == 2
    assert 'released CE-ResNet-50 only' in capsys.readouterr().err


def _fake_sbatch(folder: Path) -> Path:
    """An ``sbatch`` that records its arguments and prints job ids."""
    script = folder / 'sbatch'
    script.write_text(
        '#!/usr/bin/env bash\n'
        f'echo "$@" >> {folder}/sbatch.calls\n'
        f'n=$(wc -l < {folder}/sbatch.calls)\n'
        'echo $((1000 + n))\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_slurm_jobs_chained_by_afterok(tmp_path: Path, capsys) -> None:
    sbatch = _fake_sbatch(tmp_path)
    assert main(['--preset', 'coco', '--engine', 'slurm', '--work-dirs',
                 str(tmp_path / 'w'), '--partition', 'gpu', '--gpus', '16',
                 '--gpus-per-node', '8', '--cpus-per-task', '4',
                 '--srun-args=--quotatype=auto',
                 '--sbatch-args=--time=3-00:00:00', '--sbatch',
                 str(sbatch)]) == 0
    capsys.readouterr()
    calls = (tmp_path / 'sbatch.calls').read_text().splitlines()
    assert len(calls) == 17
    job_of = {}
    for number, call in enumerate(calls, 1001):
        arguments = call.split()
        script = Path(arguments[-1])
        name = script.stem
        job_of[name] = str(number)
        assert arguments[0] == '--parsable' and '--time=3-00:00:00' in call
        text = script.read_text()
        assert subprocess.run(['bash', '-n', str(script)]).returncode == 0
        assert '#SBATCH --partition=gpu' in text
        assert f'--run-step {name} --srun-args=--quotatype=auto' in text
        if name == 'collect':
            assert '#SBATCH --ntasks=1' in text and 'gres' not in text
        else:
            assert '#SBATCH --ntasks=16' in text
            assert '#SBATCH --gres=gpu:8' in text
            assert '#SBATCH --ntasks-per-node=8' in text
            assert '#SBATCH --cpus-per-task=4' in text
        dependency = [a for a in arguments if a.startswith('--dependency=')]
        steps = {step.name: step for step in build_plan(
            PlanOptions(preset='coco', work_dirs=str(tmp_path / 'w'),
                        gpus=16))}
        expected = [job_of[need] for need in steps[name].needs]
        if expected:
            assert dependency == ['--dependency=afterok:' +
                                  ':'.join(expected)], (name, call)
        else:
            assert dependency == [], name
    jobs = json.loads((tmp_path / 'w' / 'table3_coco' / 'slurm' /
                       'jobs.json').read_text())
    assert jobs == job_of
