"""Installing ce_mmdet into an OpenMMLab environment leaves it alone."""
import json
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
    assert [item['metadata']['name'] for item in report['install']] == ['ce_mmdet']
    requirements = report['install'][0]['metadata'].get('requires_dist', [])
    # mmcv is installed here, so it is not even asked for (see setup.py),
    # except through the opt-in extra ``[mim]``
    assert not any(r.startswith('mmcv') and 'extra ==' not in r
                   for r in requirements)
    assert any(r.startswith('mmdet') for r in requirements)
