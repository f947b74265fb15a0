"""Coverage-guided fuzzing of checkpoint loading (atheris / libFuzzer).

Each input is the pickle of a checkpoint (``archive/data.pkl``); it is
loaded as a ``torch.save`` archive with ``torch.load(weights_only=True)``
under ce_mmdet's allow-list, and what loads goes through
:func:`ce_mmdet.utils.check_mmengine_checkpoint`, as MMEngine's loaders do.
Any exception is an accepted outcome (a refusal). A finding is a crash
(signal), a hang or memory blow-up (libFuzzer's ``-timeout`` and
``-rss_limit_mb``), or an input after which the process's state differs
(``HistoryBuffer``'s class-level statistics, numpy's builtin dtypes, torch's
allow-list, MMEngine's loaders): this harness raises then, and libFuzzer
saves the input. Every tensor and array that loads is read in full, so a
dangling buffer is touched.

The seed corpus is the pickles of MMEngine message-hub checkpoints and of
every attack in ``crafted_checkpoints.py``. Instrumented for coverage:
ce_mmdet and torch's weights-only unpickler. Run::

    python tests/fuzz_checkpoint_loading.py -max_total_time=600 \\
        -rss_limit_mb=4096 -timeout=20 [CORPUS_DIR]

(``-runs=N`` for a fixed number of executions; the suite runs a short one.)
"""
from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

with atheris.instrument_imports(include=['ce_mmdet', 'crafted_checkpoints']):
    import torch
    from mmengine.logging import HistoryBuffer

    import ce_mmdet  # noqa: F401
    import crafted_checkpoints
    from ce_mmdet.utils import check_mmengine_checkpoint

atheris.instrument_func(torch._weights_only_unpickler.Unpickler.load)

# MMEngine registers its default statistics with the first HistoryBuffer of
# a process; what no checkpoint may change is the state after that
HistoryBuffer()
INITIAL_STATE = crafted_checkpoints.process_state()


def archive(pickle_data: bytes) -> io.BytesIO:
    """A ``torch.load``-able archive around ``pickle_data``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w', zipfile.ZIP_STORED) as zip_file:
        zip_file.writestr('archive/data.pkl', pickle_data)
        zip_file.writestr('archive/byteorder', 'little')
        zip_file.writestr('archive/version', '3\n')
    buffer.seek(0)
    return buffer


def seed_pickles() -> dict[str, bytes]:
    """Pickles of real MMEngine checkpoints and of the crafted attacks."""
    import numpy as np
    from mmengine.logging import MessageHub

    seeds = {}
    hub = MessageHub('ce_mmdet-fuzz-seed')
    for value in (1.25, 0.75):
        hub.update_scalar('train/loss', value, count=2)
    hub.update_scalar('val/coco/bbox_mAP', np.float64(0.5))
    hub.update_info('eta', np.float64(12.5))
    hub.update_info('val/classwise_AP', np.arange(4, dtype=np.float32))
    hub.update_info('empty', np.zeros((0, 2), np.int64))
    state = dict(meta=dict(epoch=0, iter=3, seed=0, cfg='a = 1'),
                 message_hub=hub.state_dict(),
                 empty_buffer=HistoryBuffer(),
                 scalars=[np.bool_(True), np.int64(3), np.float16(2)])
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with zipfile.ZipFile(buffer) as zip_file:
        seeds['message_hub'] = zip_file.read(
            next(name for name in zip_file.namelist()
                 if name.endswith('data.pkl')))
    for name, (build, _) in crafted_checkpoints.ATTACKS.items():
        if name == 'use-after-free-second-array-state':
            continue  # 40 MB: over libFuzzer's default -max_len
        with zipfile.ZipFile(
                io.BytesIO(
                    crafted_checkpoints.checkpoint_bytes(
                        build('/nonexistent')))) as zip_file:
            seeds[name] = zip_file.read('archive/data.pkl')
    return seeds


def test_one_input(data: bytes) -> None:
    try:
        loaded = torch.load(archive(data), weights_only=True)
        check_mmengine_checkpoint(loaded, 'fuzz input')
        crafted_checkpoints.read_everything(loaded)
    except Exception:  # noqa: BLE001  (a refusal: the expected outcome)
        pass
    if crafted_checkpoints.process_state() != INITIAL_STATE:
        raise RuntimeError('a checkpoint changed the process state')


def main() -> None:
    argv = list(sys.argv)
    corpus = [arg for arg in argv[1:] if not arg.startswith('-')]
    if corpus:
        folder = Path(corpus[0])
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in seed_pickles().items():
            (folder / f'seed-{name}').write_bytes(data)
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == '__main__':
    main()
