"""Installing ce_mmdet into an OpenMMLab environment leaves it alone."""
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_editable_install_changes_nothing_but_ce_mmdet(tmp_path):
    """``pip install -e .`` with mmcv/mmdet/mmengine/torch present would
    install ce_mmdet only: no rebuild or replacement of mmcv (offline, so any
    other package pip wanted would make it fail)."""
    report_file = tmp_path / 'report.json'
    result = subprocess.run(
        [sys.executable, '-m', 'pip', 'install', '--dry-run', '--no-index',
         '--no-build-isolation', '--disable-pip-version-check', '--report',
         str(report_file), '-e', str(REPO)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(report_file.read_text())
    assert [item['metadata']['name']
            for item in report['install']] == ['ce_mmdet']
    requirements = report['install'][0]['metadata'].get('requires_dist', [])
    # mmcv is installed here, so it is not even asked for (see setup.py),
    # except through the opt-in extra ``[mim]``
    assert not any(r.startswith('mmcv') and 'extra ==' not in r
                   for r in requirements)
    assert any(r.startswith('mmdet') for r in requirements)


def test_wheel_ships_configs_and_tools_for_the_analysis(tmp_path):
    """Installed from its wheel (no checkout anywhere), ce_mmdet finds its
    own tools and configs as OpenMMLab packages do (``ce_mmdet/.mim/``):
    the baselines, the compare variants and the tool scripts."""
    import shutil
    source = tmp_path / 'src'
    source.mkdir()
    for name in ('setup.py', 'README.md', 'MANIFEST.in'):
        shutil.copy(REPO / name, source / name)
    for name in ('ce_mmdet', 'configs', 'tools'):
        shutil.copytree(REPO / name, source / name,
                        ignore=shutil.ignore_patterns('__pycache__'))
    def pip(*arguments: str) -> None:
        done = subprocess.run(
            [sys.executable, '-m', 'pip', '--disable-pip-version-check',
             *arguments], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr

    pip('wheel', '--no-deps', '--no-index', '--no-build-isolation', '-w',
        str(tmp_path / 'dist'), str(source))
    wheel, = (tmp_path / 'dist').glob('ce_mmdet-*.whl')
    pip('install', '--no-deps', '--no-index', '--target',
        str(tmp_path / 'site'), str(wheel))
    site = tmp_path / 'site'
    shipped = site / 'ce_mmdet' / '.mim'
    assert (shipped / 'configs' / 'mask_rcnn_ce_r50_fpn.py').is_file()
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    check = f'''
import os
import ce_mmdet
from ce_mmdet.analysis.baselines import load_baselines
from ce_mmdet.analysis.compare import available_variants, shapes_config_dir
from ce_mmdet.utils import openmmlab_tool_path
assert ce_mmdet.__file__.startswith({str(site)!r}), ce_mmdet.__file__
assert openmmlab_tool_path('train.py', 'ce_mmdet') == \\
    os.path.join({str(shipped)!r}, 'tools', 'train.py')
assert shapes_config_dir() == os.path.join({str(shipped)!r}, 'configs',
                                           'shapes')
assert {{'ce', 'plain'}} <= set(available_variants())
assert load_baselines()['mask_rcnn_ce_r50_fpn'].box == 38.2
'''
    environment = dict(os.environ, PYTHONPATH=str(site))
    done = subprocess.run([sys.executable, '-c', check], cwd=elsewhere,
                          env=environment, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    done = subprocess.run(
        [sys.executable, str(shipped / 'tools' / 'analysis_tools' /
                             'compare_blocks.py'), '--list'],
        cwd=elsewhere, env=environment, capture_output=True, text=True,
        timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert 'plain' in done.stdout.split() and 'ce' in done.stdout.split()
