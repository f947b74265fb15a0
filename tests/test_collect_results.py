"""Tests of collect_results.py on fabricated MMEngine work dirs, and of the
published baselines read from configs/published_results.yml."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ce_mmdet.analysis.baselines import (
    Baseline,
    load_baselines,
)
from ce_mmdet.analysis.results_collector import (
    NoResultsError,
    collect_run,
    table3_markdown,
)

REPO_ROOT = Path(__file__).resolve().parents[1]

METRICS = {'coco/bbox_mAP': 0.401, 'coco/bbox_mAP_50': 0.612,
           'coco/bbox_mAP_75': 0.437, 'coco/bbox_mAP_s': 0.2,
           'coco/segm_mAP': 0.362, 'coco/segm_mAP_50': 0.58,
           'coco/segm_mAP_75': 0.385}


def fabricate_work_dir(root: Path, config: str,
                       folder: str | None = None) -> Path:
    """A training run with a validation at the end (scalars.json), then a
    newer tools/test.py run (<timestamp>.json) with other numbers, then an
    even newer run that stopped before evaluating. The work dir is
    ``root/folder`` (default: named as the config)."""
    work_dir = root / (folder or config)
    train_run = work_dir / '20240101_120000' / 'vis_data'
    train_run.mkdir(parents=True)
    (work_dir / f'{config}.py').write_text('# dumped config\n')
    lines = [dict(loss=1.2, time=0.5, step=10),
             dict(**{k: v - 0.1 for k, v in METRICS.items()}, step=20),
             dict(loss=0.8, time=0.5, step=30)]
    (train_run / 'scalars.json').write_text(
        '\n'.join(json.dumps(line) for line in lines) + '\n{"cut')
    test_run = work_dir / 'test' / '20240102_080000'
    test_run.mkdir(parents=True)
    (test_run / '20240102_080000.json').write_text(json.dumps(METRICS))
    (work_dir / '20240103_090000' / 'vis_data').mkdir(parents=True)
    return work_dir


def test_newest_evaluated_run_wins_and_table3_has_the_difference(tmp_path):
    work_dir = fabricate_work_dir(tmp_path, 'mask_rcnn_ce_r50_fpn')
    result = collect_run(str(work_dir))
    assert result.name == 'mask_rcnn_ce_r50_fpn'
    assert result.source.endswith('20240102_080000.json')
    assert result.metrics['coco/bbox_mAP'] == 0.401
    table = table3_markdown(
        [result], {'mask_rcnn_ce_r50_fpn': Baseline(38.2, 34.7, '(R-50)')})
    row = table.splitlines()[2]
    assert row == ('| mask_rcnn_ce_r50_fpn | 40.1 | 61.2 | 43.7 | 36.2 | '
                   '58.0 | 38.5 | 38.2 / 34.7 (R-50) | +1.9 / +1.5 |')


def test_scalars_and_log_are_read_when_there_is_no_test_json(tmp_path):
    work_dir = fabricate_work_dir(tmp_path, 'a')
    (work_dir / 'test' / '20240102_080000' / '20240102_080000.json').unlink()
    result = collect_run(str(work_dir))
    assert result.source.endswith('scalars.json')
    assert result.metrics['coco/segm_mAP'] == pytest.approx(0.262)

    log_run = tmp_path / 'b' / '20240105_000000'
    log_run.mkdir(parents=True)
    (log_run / '20240105_000000.log').write_text(
        '... Iter(test) [500/500]    coco/bbox_mAP: 0.3820  coco/bbox_mAP_50:'
        ' 0.5880  coco/bbox_mAP_75: 0.4140  coco/segm_mAP: 0.3470  '
        'data_time: 0.0100\n')
    result = collect_run(str(tmp_path / 'b'), name='mask_rcnn_r50_fpn')
    assert result.metrics == {'coco/bbox_mAP': 0.382,
                              'coco/bbox_mAP_50': 0.588,
                              'coco/bbox_mAP_75': 0.414,
                              'coco/segm_mAP': 0.347}
    row = table3_markdown([result], load_baselines()).splitlines()[2]
    assert row.endswith('| 38.2 / 34.7 | +0.0 / +0.0 |')
    assert '| 38.2 | 58.8 | 41.4 | 34.7 | – | – |' in row


def test_work_dir_without_results_is_a_clear_error(tmp_path):
    (tmp_path / 'empty' / '20240101_000000').mkdir(parents=True)
    with pytest.raises(NoResultsError, match='tools/test.py'):
        collect_run(str(tmp_path / 'empty'))
    with pytest.raises(FileNotFoundError):
        collect_run(str(tmp_path / 'missing'))


def test_baselines_come_from_the_published_results_file(tmp_path):
    baselines = load_baselines()
    assert baselines['mask_rcnn_r50_fpn'] == Baseline(38.2, 34.7, '')
    assert baselines['mask_rcnn_ce_r101_fpn'].box == 40.0
    assert baselines['retinanet_ce_r50_fpn'] == Baseline(36.5, None, '')
    path = tmp_path / 'published.yml'
    path.write_text('mmdetection_baselines:\n'
                    '  x: {box: 1.5, mask: null, note: (note)}\n')
    assert load_baselines(str(path)) == {'x': Baseline(1.5, None, '(note)')}
    # A malformed entry is refused by name, not read as a wrong number.
    path.write_text('mmdetection_baselines:\n  x: {box: 38.2 / 34.7}\n')
    with pytest.raises(ValueError, match=r'mmdetection_baselines\.x\.box'):
        load_baselines(str(path))
    path.write_text('mmdetection_baselines:\n  y: {mask: 30.0}\n')
    with pytest.raises(ValueError, match='mmdetection_baselines.y: expected'):
        load_baselines(str(path))
    with pytest.raises(FileNotFoundError, match='published baselines'):
        load_baselines(str(tmp_path / 'missing.yml'))


def test_every_detection_config_with_a_bn_counterpart_has_a_baseline():
    """The data file names configs that exist, and every COCO Mask R-CNN
    config here has MMDetection's baseline beside it."""
    configs = {path.stem for path in (REPO_ROOT / 'configs').glob('*.py')}
    configs |= {path.stem for path in
                (REPO_ROOT / 'configs' / 'detectors').glob('*.py')}
    baselines = load_baselines()
    assert set(baselines) <= configs, set(baselines) - configs
    assert configs <= set(baselines), configs - set(baselines)


def test_command_line_prints_the_table(tmp_path):
    work_dir = fabricate_work_dir(tmp_path, 'mask_rcnn_ce_r50_fpn')
    out = tmp_path / 'table.md'
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / 'tools/analysis_tools/'
                             'collect_results.py'), str(work_dir),
         '--out', str(out)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert '| mask_rcnn_ce_r50_fpn | 40.1 |' in result.stdout
    assert out.read_text().startswith('| config | box AP |')


def test_work_dir_is_matched_by_the_dumped_config_not_its_folder_name(
        tmp_path):
    work_dir = fabricate_work_dir(tmp_path, 'mask_rcnn_ce_r50_fpn',
                                  folder='my_run_7')
    result = collect_run(str(work_dir))
    assert result.name == 'mask_rcnn_ce_r50_fpn'
    baselines = load_baselines()
    row = table3_markdown([result], baselines).splitlines()[2]
    baseline = baselines['mask_rcnn_ce_r50_fpn']
    assert row.startswith('| mask_rcnn_ce_r50_fpn | 40.1 |')
    assert f'{baseline.box:.1f} / {baseline.mask:.1f}' in row


def test_command_line_names_override_the_dumped_configs(tmp_path):
    """--names labels the work dirs in order and picks their baselines; a
    wrong count is a usage error."""
    first = fabricate_work_dir(tmp_path, 'x', folder='run_a')
    second = fabricate_work_dir(tmp_path, 'y', folder='run_b')
    tool = str(REPO_ROOT / 'tools/analysis_tools/collect_results.py')
    result = subprocess.run(
        [sys.executable, tool, str(first), str(second), '--names',
         'mask_rcnn_ce_r50_fpn', 'mask_rcnn_r50_fpn'],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines()
            if line.startswith('| mask_rcnn')]
    assert [row.split('|')[1].strip() for row in rows] == [
        'mask_rcnn_ce_r50_fpn', 'mask_rcnn_r50_fpn']
    baselines = load_baselines()
    for row, name in zip(rows, ['mask_rcnn_ce_r50_fpn', 'mask_rcnn_r50_fpn']):
        assert f'{baselines[name].box:.1f} / ' in row
    result = subprocess.run([sys.executable, tool, str(first), '--names',
                             'a', 'b'], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert '--names gives 2 names' in result.stderr
