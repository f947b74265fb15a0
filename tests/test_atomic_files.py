"""Atomic writes (every file the project writes) and the pretrained-weight
checks' clean-up: a failure leaves the old file, or the old weights, and
nothing half-done behind."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from ce_mmdet.backbones.pretrained_checks import require_loaded
from ce_mmdet.utils.atomic_files import current_umask, write_atomically


def test_writes_through_a_temporary_file_with_the_target_suffix(tmp_path):
    seen = []

    def write(tmp: str) -> None:
        seen.append(tmp)
        assert not (tmp_path / 'sub' / 'report.png').exists()  # not yet
        Path(tmp).write_bytes(b'new')

    result = write_atomically(tmp_path / 'sub' / 'report.png', write)
    assert result == str(tmp_path / 'sub' / 'report.png')
    assert (tmp_path / 'sub' / 'report.png').read_bytes() == b'new'
    assert Path(seen[0]).parent == tmp_path / 'sub'  # same file system
    assert seen[0].endswith('.png')  # matplotlib picks the format from it
    assert os.listdir(tmp_path / 'sub') == ['report.png']


def test_the_file_gets_the_permissions_of_a_plain_open(tmp_path):
    previous = os.umask(0o027)
    try:
        write_atomically(tmp_path / 'a.json',
                         lambda t: Path(t).write_text('1'))
        with open(tmp_path / 'b.json', 'w') as plain:
            plain.write('1')
        assert current_umask() == 0o027
    finally:
        os.umask(previous)
    mode = (tmp_path / 'a.json').stat().st_mode & 0o777
    assert mode == (tmp_path / 'b.json').stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize('failure', ['write', 'validate', 'interrupt'])
def test_a_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path,
                                                              failure):
    target = tmp_path / 'model.pth'
    target.write_bytes(b'old')

    def write(tmp: str) -> None:
        Path(tmp).write_bytes(b'half')
        if failure == 'write':
            raise OSError('disk full')
        if failure == 'interrupt':
            raise KeyboardInterrupt

    def validate(tmp: str) -> None:
        assert Path(tmp).read_bytes() == b'half'
        if failure == 'validate':
            raise ValueError('does not load back')

    expected = dict(write=OSError, validate=ValueError,
                    interrupt=KeyboardInterrupt)[failure]
    with pytest.raises(expected):
        write_atomically(target, write, validate=validate, fsync=True)
    assert target.read_bytes() == b'old'
    assert os.listdir(tmp_path) == ['model.pth']


def test_require_loaded_restores_the_weights_when_the_load_fails():
    """A load that raises inside the block (a corrupt file, a shape error)
    must not leave the NaN / -1 sentinels in the network."""
    weight = torch.arange(4.0)
    counter = torch.tensor([3])
    markers = dict(weight=weight, counter=counter)
    with pytest.raises(RuntimeError, match='corrupt'):
        with require_loaded(markers, 'x.pth', 'CEResNet-50', 'fix it'):
            assert torch.isnan(weight).all() and (counter == -1).all()
            raise RuntimeError('corrupt file')
    assert torch.equal(weight, torch.arange(4.0))
    assert torch.equal(counter, torch.tensor([3]))
    # a load that sets only some markers: the rest get their values back
    # and the error names them
    with pytest.raises(ValueError, match=r'lacks 1 of its tensors: counter'):
        with require_loaded(markers, 'x.pth', 'CEResNet-50', 'fix it'):
            weight.copy_(torch.ones(4))
    assert torch.equal(weight, torch.ones(4))
    assert torch.equal(counter, torch.tensor([3]))
