"""Tests of the block comparison (compare_blocks.py, what ``run_demo.sh
compare`` runs) and of inhibited_channels.py on real, tiny trained models.

Two variants, ``ce`` and ``plain``, as tiny Mask R-CNNs (tiny_detector.py)
in a config folder of the test's own, trained for 2 iterations on the tiny
shapes set: the whole command (train, test, analysis, summary) runs in
about half a minute.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ce_mmdet.analysis.compare import (
    UnknownVariantError,
    available_variants,
    config_for,
    max_iters_option,
    resolve_variants,
)
from tiny_detector import write_tiny_mask_rcnn_config

REPO_ROOT = Path(__file__).resolve().parents[1]
TOOLS = REPO_ROOT / 'tools' / 'analysis_tools'
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def run(args: list, timeout: float = 400) -> subprocess.CompletedProcess:
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}
    return subprocess.run([sys.executable, *map(str, args)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)


def write_variant_configs(folder: Path, data_paths: dict) -> Path:
    """The two variants' configs, named as in configs/shapes/."""
    folder.mkdir()
    plain = write_tiny_mask_rcnn_config(
        folder / 'mask_rcnn_r18_fpn_shapes.py', data_paths, max_iters=50)
    (folder / 'mask_rcnn_ce_r18_fpn_shapes.py').write_text(
        f"_base_ = './{plain.name}'\n"
        "model = dict(backbone=dict(type='CEResNet'))\n")
    return folder


@pytest.fixture(scope='module')
def comparison(tmp_path_factory, tiny_shapes_dataset) -> dict:
    root = tmp_path_factory.mktemp('compare')
    config_dir = write_variant_configs(root / 'configs', tiny_shapes_dataset)
    out_dir = root / 'out'
    result = run([TOOLS / 'compare_blocks.py', 'ce', 'plain', '--config-dir',
                  config_dir, '--out-dir', out_dir, '--max-iters', 2,
                  '--num-images', 2])
    assert result.returncode == 0, result.stdout[-4000:]
    return dict(config_dir=config_dir, out_dir=out_dir, output=result.stdout)


def test_variants_map_to_configs_and_unknown_ones_list_the_available(
        tmp_path):
    assert config_for('plain', 'c') == 'c/mask_rcnn_r18_fpn_shapes.py'
    assert config_for('ge-minus', 'c') == \
        'c/mask_rcnn_ge-minus_r18_fpn_shapes.py'
    for name in ('mask_rcnn_r18_fpn_shapes.py',
                 'mask_rcnn_ce_r18_fpn_shapes.py',
                 'mask_rcnn_ge-plus_r18_fpn_shapes.py'):
        (tmp_path / name).write_text('')
    assert available_variants(str(tmp_path)) == ['plain', 'ce', 'ge-plus']
    assert list(resolve_variants(['ge-plus', 'plain'], str(tmp_path))) == [
        'ge-plus', 'plain']
    with pytest.raises(UnknownVariantError,
                       match=r'no config for variant\(s\) se .*'
                       r'available: plain, ce, ge-plus'):
        resolve_variants(['ce', 'se'], str(tmp_path))
    assert max_iters_option(3)['train_cfg.max_iters'] == 3


def test_unknown_variant_on_the_command_line(tmp_path):
    result = run([TOOLS / 'compare_blocks.py', 'nosuchblock', '--out-dir',
                  tmp_path])
    assert result.returncode == 2
    assert 'no config for variant(s) nosuchblock' in result.stdout
    assert 'available: plain, ce' in result.stdout
    assert not any(tmp_path.iterdir())  # nothing written


def test_compare_writes_one_summary_of_both_variants(comparison):
    out_dir = comparison['out_dir']
    output = comparison['output']
    assert 'estimated total' in output
    assert '[1/2] ce' in output and '[2/2] plain' in output
    summary = (out_dir / 'summary.md').read_text()
    rows = [line for line in summary.splitlines()
            if line.startswith('| ce ') or line.startswith('| plain ')]
    assert len(rows) == 2
    data = json.loads((out_dir / 'summary.json').read_text())
    variants = {v['variant']: v for v in data['variants']}
    assert list(variants) == ['ce', 'plain']
    for variant in variants.values():
        assert 0 <= variant['metrics']['coco/bbox_mAP'] <= 1
        assert 'coco/segm_mAP' in variant['metrics']
        assert 0 <= variant['inhibited'] <= 1
        assert 0 <= variant['beta_nonpositive_feeding'] <= 1
        assert variant['backbone_flops'] > 0
        assert variant['seconds_per_iter'] > 0
        assert Path(variant['checkpoint']).is_file()
    # CE adds parameters (gates, IR MLPs) and work to the backbone
    assert variants['ce']['params'] > variants['plain']['params']
    assert variants['ce']['backbone_flops'] > \
        variants['plain']['backbone_flops']
    for png in ('summary.png', 'inhibited_channels/beta_nonpositive.png',
                'inhibited_channels/inhibited_channels.png',
                'inhibited_channels/ce_layers.png'):
        assert (out_dir / png).read_bytes()[:8] == PNG_SIGNATURE, png
    analysis = json.loads(
        (out_dir / 'inhibited_channels/inhibited_channels.json').read_text())
    models = {m['name']: m for m in analysis['models']}
    assert len(models['ce']['ce_layers']) == 7
    assert models['plain']['ce_layers'] == []
    assert models['ce']['images'] == 2
    for name, variant in variants.items():
        # The summary is built from tools/test.py's own result file (not the
        # training's validation) and from the analysis of the same variant.
        results = sorted((out_dir / name / 'test').glob('2*/2*.json'))
        assert len(results) == 1, results
        evaluated = json.loads(results[0].read_text())
        assert variant['metrics'] == {
            k: v for k, v in evaluated.items() if k.startswith('coco/')}
        assert Path(variant['checkpoint']).parent == out_dir / name
        assert variant['config'].endswith(
            'mask_rcnn_ce_r18_fpn_shapes.py' if name == 'ce' else
            'mask_rcnn_r18_fpn_shapes.py')
        model = models[name]
        assert variant['inhibited'] == model['inhibited']['overall']
        # beta <= 0 among the norms that feed an activation, not all norms
        assert variant['beta_nonpositive_feeding'] == \
            model['beta_nonpositive_feeding']['overall']
        assert variant['beta_nonpositive'] == \
            model['beta_nonpositive']['overall']


def test_inhibited_channels_command_on_detector_and_backbone_checkpoints(
        comparison, tiny_shapes_dataset, tmp_path):
    """A detector checkpoint on the val split beside a backbone-only
    checkpoint (as a converted CENet one) on a folder of images."""
    config_dir = comparison['config_dir']
    out_dir = comparison['out_dir']
    ce_checkpoint = (out_dir / 'ce' / 'last_checkpoint').read_text().strip()
    plain_checkpoint = (out_dir / 'plain' /
                        'last_checkpoint').read_text().strip()
    state = torch.load(plain_checkpoint, map_location='cpu',
                       weights_only=True)['state_dict']
    backbone_only = tmp_path / 'plain_backbone.pth'
    torch.save({k[len('backbone.'):]: v for k, v in state.items()
                if k.startswith('backbone.')}, backbone_only)
    report = tmp_path / 'report'
    result = run([
        TOOLS / 'inhibited_channels.py',
        config_dir / 'mask_rcnn_ce_r18_fpn_shapes.py', ce_checkpoint,
        '--compare', config_dir / 'mask_rcnn_r18_fpn_shapes.py',
        backbone_only, '--names', 'CE', 'BN', '--num-images', 3,
        '--image-dir', tiny_shapes_dataset['val_img_dir'], '--tau', 0.2,
        '--out-dir', report
    ])
    assert result.returncode == 0, result.stdout[-4000:]
    assert '| CE |' in result.stdout and '| BN |' in result.stdout
    models = {m['name']: m for m in json.loads(
        (report / 'inhibited_channels.json').read_text())['models']}
    assert models['CE']['meta']['checkpoint_kind'] == 'whole model'
    assert models['BN']['meta']['checkpoint_kind'] == 'backbone'
    assert models['BN']['images'] == 3 and models['BN']['tau'] == 0.2
    assert sorted(p.name for p in report.iterdir()) == [
        'beta_nonpositive.png', 'ce_layers.png', 'inhibited_channels.json',
        'inhibited_channels.png', 'summary.md']


def test_inhibited_channels_command_refuses_a_mismatched_checkpoint(
        comparison, tmp_path):
    config_dir = comparison['config_dir']
    ce_checkpoint = (comparison['out_dir'] / 'ce' /
                     'last_checkpoint').read_text().strip()
    result = run([TOOLS / 'inhibited_channels.py',
                  config_dir / 'mask_rcnn_r18_fpn_shapes.py', ce_checkpoint,
                  '--out-dir', tmp_path / 'report'])
    assert result.returncode == 1
    assert 'does not fit the backbone' in result.stdout
    assert 'backbone.stem_ce.gate_logit' in result.stdout
    assert not (tmp_path / 'report').exists()


def test_cumulative_ablation_command_on_a_detector(comparison, tmp_path):
    """channel_ablation.py on the CE detector trained above: the detector's
    own evaluator scores it (bbox AP), --layers picks activation calls, and
    the report is written (a --layers matching nothing: test_fig1_tools)."""
    config = comparison['config_dir'] / 'mask_rcnn_ce_r18_fpn_shapes.py'
    checkpoint = (comparison['out_dir'] / 'ce' /
                  'last_checkpoint').read_text().strip()
    out_dir = tmp_path / 'ablation'
    result = run([TOOLS / 'channel_ablation.py', config, checkpoint,
                  '--fractions', 0, 0.5, '--seeds', 0, '--layers', 'layer4',
                  '--num-images', 2, '--out-dir', out_dir])
    assert result.returncode == 0, result.stdout[-4000:]
    curves = json.loads((out_dir / 'ablation.json').read_text())['curves']
    assert [c['order'] for c in curves] == ['random', 'magnitude']
    for curve in curves:
        assert curve['metric'] == 'coco/bbox_mAP'
        # ResNet-18's layer4: 2 blocks, each calling its relu twice
        assert curve['layers'] == ['layer4.0.relu#0', 'layer4.0.relu#1',
                                   'layer4.1.relu#0', 'layer4.1.relu#1']
        assert all(0.0 <= v <= 1.0 for v in curve['values'][0])
    assert (out_dir / 'ablation.png').is_file()
