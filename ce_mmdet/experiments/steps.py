"""One step of an experiment: what it runs, its fingerprint, its state.

A step is one MMEngine job of an OpenMMLab toolbox (``train`` or ``test``
of MMDetection or MMPretrain), or a job of ce_mmdet's own (``generate`` a
data set, ``collect`` the table). Its **fingerprint** is the SHA-256 of
everything its result depends on:

* the config's content after merging (``Config.fromfile`` + the step's
  ``--cfg-options``, as MMEngine will build it), not the file names;
* the content hashes of its inputs: the data's annotation files, the
  checkpoint it starts from or evaluates (the SHA-256 its producing step
  recorded, or of the file itself);
* the ce_mmdet version and the options that change the result (the number
  of processes: it sets the total batch size).

Where it runs (one process, torchrun, Slurm), its work directory and how
often it checkpoints do not enter it.

**State**, from what the work directory holds:

* ``done``: ``ce_mmdet_step.json`` exists (written atomically after the
  outputs were complete), its fingerprint is the step's, and every output
  it lists exists with the recorded size and SHA-256;
* ``partial``: a run with this fingerprint started (``ce_mmdet_step.started
  .json``) and left a checkpoint: a rerun resumes it (``--resume``);
* ``stale``: the work directory holds a run of another fingerprint (the
  config or an input changed): it is moved aside and the step redone;
* ``to do``: nothing yet.

MMEngine writes its checkpoints in place (not atomically): a run killed
while saving leaves a truncated ``.pth`` or ``last_checkpoint`` file.
:func:`repair_checkpoints` runs before every resume: it keeps the newest
checkpoint that is a complete archive and renames the others
``*.incomplete``.
"""
from __future__ import annotations

import hashlib
import json
import os
import os.path as osp
import re
import time
import zipfile
from dataclasses import dataclass, field
from typing import Any, Optional

from ce_mmdet.analysis.output_files import write_json, write_text

__all__ = [
    'MARKER', 'STARTED', 'STATES', 'Step', 'StepState', 'file_sha256',
    'config_text', 'merged_config', 'read_marker', 'repair_checkpoints',
    'resolve_config', 'step_state',
    'write_marker', 'write_started'
]

MARKER = 'ce_mmdet_step.json'
"""The file in a step's work directory that says it is done."""
STARTED = 'ce_mmdet_step.started.json'
"""The file that says a run of a fingerprint started in the directory."""
STATES = ('done', 'partial', 'stale', 'to do')

KINDS = ('generate', 'train', 'test', 'collect')
_CHECKPOINT = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


@dataclass(frozen=True)
class Step:
    """One step of a plan.

    Attributes:
        name: unique in the plan, e.g. ``'detect-ce-r50'``.
        kind: ``'generate'``, ``'train'``, ``'test'`` or ``'collect'``.
        toolbox: ``'mmdet'`` (``tools/train.py``, ``tools/test.py``),
            ``'mmpretrain'`` (``tools/pretrain/...``) or ``''``.
        config: the config file (train and test).
        work_dir: where the step writes (``--work-dir``).
        cfg_options: ``KEY=VALUE`` overrides, as ``--cfg-options`` takes
            them, in order.
        needs: the steps whose outputs it reads.
        checkpoint_from: a train step: a test evaluates its final
            checkpoint; a train step initialises ``checkpoint_key`` with it.
        checkpoint_key: the config key that receives that checkpoint
            (``model.backbone.init_cfg.checkpoint``).
        inputs: files (or folders) whose content the result depends on.
        gpus: processes it runs on (1 = one process).
        row: the table row it belongs to.
        label: what it does, for the plan.
        estimate: ``(seconds, source)`` of its expected time.
    """
    name: str
    kind: str
    work_dir: str
    toolbox: str = ''
    config: str = ''
    cfg_options: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    checkpoint_from: str = ''
    checkpoint_key: str = ''
    inputs: tuple[str, ...] = ()
    gpus: int = 1
    row: str = ''
    label: str = ''
    estimate: tuple[Optional[float], str] = (None, '')
    extra: tuple[tuple[str, Any], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f'step {self.name!r}: kind {self.kind!r} is not '
                             f'one of {KINDS}')
        for option in self.cfg_options:
            if '=' not in option:
                raise ValueError(f'step {self.name!r}: --cfg-options entry '
                                 f'{option!r} is not KEY=VALUE')

    def option(self, name: str, default: Any = None) -> Any:
        """A value of :attr:`extra` by name."""
        return dict(self.extra).get(name, default)


@dataclass
class StepState:
    """What a step's work directory holds.

    Attributes:
        state: one of :data:`STATES`.
        detail: why, for the plan (``'checkpoint iter_120.pth'``...).
        marker: the done marker's content when ``state == 'done'``.
    """
    state: str
    detail: str = ''
    marker: Optional[dict] = None


# ------------------------------------------------------------- hashing
def file_sha256(path: str, chunk: int = 2**22) -> str:
    """The SHA-256 of a file's content (hex)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def tree_sha256(folder: str) -> str:
    """The SHA-256 of a folder: every file's relative path and content."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = osp.join(root, name)
            digest.update(osp.relpath(path, folder).encode() + b'\0')
            digest.update(file_sha256(path).encode())
    return digest.hexdigest()


def input_sha256(path: str) -> str:
    """The content hash of an input: a file's, or a folder's
    (:func:`tree_sha256`).

    Raises:
        FileNotFoundError: the input does not exist.
    """
    if osp.isdir(path):
        return tree_sha256(path)
    if osp.isfile(path):
        return file_sha256(path)
    raise FileNotFoundError(path)


def resolve_config(config: str) -> str:
    """``config`` relative to the working directory if it is there, else
    the one ce_mmdet ships (``configs/...`` of the installed package)."""
    if osp.isfile(config):
        return config
    from ce_mmdet.utils import package_resource

    return package_resource(config)


def merged_config(config: str, cfg_options: tuple[str, ...]) -> Any:
    """The config as MMEngine will build it: ``Config.fromfile(config)``
    with ``cfg_options`` merged as ``--cfg-options`` does (MMEngine's
    ``DictAction`` parses the values)."""
    from mmengine.config import Config, DictAction

    cfg = Config.fromfile(resolve_config(config))
    if cfg_options:
        parsed: dict[str, Any] = {}
        for option in cfg_options:
            key, value = option.split('=', 1)
            parsed[key] = DictAction._parse_iterable(value)
        cfg.merge_from_dict(parsed)
    return cfg


def config_text(cfg: Any) -> str:
    """A merged config's content as canonical JSON (sorted keys): two files
    that merge to the same config give the same text."""
    return json.dumps(cfg.to_dict(), sort_keys=True, default=repr)


def fingerprint(parts: dict[str, Any]) -> str:
    """SHA-256 of ``parts`` as canonical JSON."""
    text = json.dumps(parts, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


# ------------------------------------------------------ markers, state
def read_marker(work_dir: str, name: str = MARKER) -> Optional[dict]:
    """The marker ``name`` of ``work_dir``, or None (missing or unreadable:
    markers are written atomically, so an unreadable one was not ours)."""
    path = osp.join(work_dir, name)
    try:
        with open(path, encoding='utf-8') as f:
            marker = json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
    return marker if isinstance(marker, dict) else None


def write_started(work_dir: str, step: Step, step_fingerprint: str) -> None:
    """Record that a run of ``step_fingerprint`` starts in ``work_dir``."""
    write_json(osp.join(work_dir, STARTED), dict(
        step=step.name, fingerprint=step_fingerprint,
        started=time.strftime('%Y-%m-%d %H:%M:%S')))


def output_record(path: str) -> dict[str, Any]:
    """``{path, size, sha256}`` of an output file; the path relative to
    the working directory when it is below it (MMEngine writes absolute
    ones), so that the whole tree can move."""
    relative = osp.relpath(path)
    if osp.isabs(path) and not relative.startswith(os.pardir):
        path = relative
    return dict(path=path, size=os.path.getsize(path),
                sha256=file_sha256(path))


def write_marker(work_dir: str, step: Step, step_fingerprint: str,
                 outputs: dict[str, str], seconds: float,
                 results: Optional[dict] = None) -> dict:
    """Mark ``step`` done: its outputs (name -> path) with size and hash,
    its measured time and results. Written atomically, after the outputs.

    Returns:
        The marker's content.
    """
    marker = dict(
        step=step.name, kind=step.kind, fingerprint=step_fingerprint,
        outputs={name: output_record(path) for name, path in outputs.items()},
        seconds=round(seconds, 1), results=results or {},
        finished=time.strftime('%Y-%m-%d %H:%M:%S'))
    write_json(osp.join(work_dir, MARKER), marker)
    return marker


def _outputs_intact(marker: dict) -> Optional[str]:
    """None if every output of ``marker`` is as recorded, else the
    problem."""
    outputs = marker.get('outputs')
    if not isinstance(outputs, dict):
        return 'the marker lists no outputs'
    for name, record in outputs.items():
        path = record.get('path', '') if isinstance(record, dict) else ''
        if not osp.isfile(path):
            return f'output {name} ({path}) is missing'
        if os.path.getsize(path) != record.get('size'):
            return f'output {name} ({path}) changed size'
        if file_sha256(path) != record.get('sha256'):
            return f'output {name} ({path}) changed content'
    return None


def latest_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``last_checkpoint`` names, if it exists."""
    pointer = osp.join(work_dir, 'last_checkpoint')
    try:
        with open(pointer, encoding='utf-8') as f:
            path = f.read().strip()
    except OSError:
        return None
    return path if path and osp.isfile(path) else None


def step_state(step: Step, step_fingerprint: str) -> StepState:
    """The state of ``step`` from its work directory (see the module
    docstring)."""
    marker = read_marker(step.work_dir)
    if marker is not None:
        if marker.get('fingerprint') != step_fingerprint:
            return StepState('stale', 'done with another fingerprint '
                             '(config or inputs changed)')
        problem = _outputs_intact(marker)
        if problem is None:
            return StepState('done', f'in {marker.get("seconds", "?")} s',
                             marker)
        return StepState('stale', problem)
    started = read_marker(step.work_dir, STARTED)
    if started is None:
        if osp.isdir(step.work_dir) and any(
                _CHECKPOINT.match(name) for name in os.listdir(step.work_dir)):
            return StepState('stale', 'checkpoints of a run without a '
                             'fingerprint')
        return StepState('to do')
    if started.get('fingerprint') != step_fingerprint:
        return StepState('stale', 'a run of another fingerprint started '
                         'here (config or inputs changed)')
    if step.kind == 'train' and complete_checkpoints(step.work_dir):
        newest = complete_checkpoints(step.work_dir)[0]
        return StepState('partial', f'resumes from {osp.basename(newest)}')
    return StepState('partial', 'started, nothing to resume from: reruns')


# ----------------------------------------------------------- checkpoints
def _is_complete_archive(path: str) -> bool:
    """Whether ``path`` is a whole ``torch.save`` zip archive (a write cut
    short lacks the central directory at the end, or fails a CRC)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (zipfile.BadZipFile, OSError, EOFError):
        return False


def _checkpoint_files(work_dir: str) -> list[str]:
    """``epoch_N.pth`` / ``iter_N.pth`` of ``work_dir``, newest first."""
    if not osp.isdir(work_dir):
        return []
    found = []
    for name in os.listdir(work_dir):
        match = _CHECKPOINT.match(name)
        if match:
            found.append((int(match.group(2)), osp.join(work_dir, name)))
    return [path for _, path in sorted(found, reverse=True)]


def complete_checkpoints(work_dir: str) -> list[str]:
    """The complete checkpoints of ``work_dir``, newest first."""
    return [path for path in _checkpoint_files(work_dir)
            if _is_complete_archive(path)]


def repair_checkpoints(work_dir: str) -> Optional[str]:
    """Make ``work_dir`` resumable after a kill during a checkpoint write.

    Renames every checkpoint that is not a complete archive to
    ``<name>.incomplete`` (kept, never taken for a checkpoint) and points
    ``last_checkpoint`` (rewritten atomically) at the newest complete one.

    Returns:
        The checkpoint a resume starts from, or None (none complete: the
        run starts over; ``last_checkpoint`` is removed).
    """
    for path in _checkpoint_files(work_dir):
        if not _is_complete_archive(path):
            os.replace(path, path + '.incomplete')
    complete = complete_checkpoints(work_dir)
    pointer = osp.join(work_dir, 'last_checkpoint')
    if not complete:
        if osp.exists(pointer):
            os.unlink(pointer)
        return None
    newest = complete[0]
    if latest_checkpoint(work_dir) != newest:
        write_text(pointer, newest)
    return newest
