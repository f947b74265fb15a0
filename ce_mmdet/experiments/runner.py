"""Run a plan: its state, its printed plan, each step, the progress lines.

:func:`assess` computes every step's fingerprint, state and estimate;
:func:`format_plan` prints them (``--dry-run`` prints only that); then
:func:`run_plan` runs the steps that are not done, in order, one line as
each starts and ends, and :func:`run_step` runs one (also the entry point
of a Slurm job). A step's toolbox process writes its output to
``<work_dir>/<step>.log`` and MMEngine's logs under its work directory.

Interrupted (Ctrl-C, SIGTERM, SIGKILL of this process, a crash), a rerun
finds what was done by the markers (see :mod:`.steps`): finished steps are
skipped, an interrupted training resumes from its last complete checkpoint,
and nothing half-written is taken for finished. A toolbox process dies with
this one (Linux: ``PR_SET_PDEATHSIG``), and a lock per work directory keeps
two runs of one step apart.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

import ce_mmdet
from ce_mmdet.analysis.output_files import write_json

from . import steps as step_files
from .estimates import Estimate, probe_estimate, published_estimate
from .steps import Step, StepState

__all__ = ['PlannedStep', 'StepFailedError', 'assess', 'format_plan',
           'run_plan', 'run_step']

LOCK_SUFFIX = '.ce_mmdet_step.lock'


class StepFailedError(RuntimeError):
    """A step's toolbox command failed; the message has its log's end."""


@dataclass
class PlannedStep:
    """A step with what the plan knows about it.

    Attributes:
        step: the step.
        fingerprint: its SHA-256, or '' while an input is not there yet.
        state: see :class:`~.steps.StepState`.
        estimate: ``(seconds, source)``.
        waits_for: why the fingerprint is not known yet.
        config: the merged config (an MMEngine ``Config``), train and
            test steps.
    """
    step: Step
    fingerprint: str
    state: StepState
    estimate: Estimate
    waits_for: str = ''
    config: Optional[Any] = None


def say(message: str) -> None:
    """One progress line."""
    print(f'[table3 {time.strftime("%H:%M:%S")}] {message}', flush=True)


def minutes(seconds: Optional[float]) -> str:
    """``'1 h 02 min'``, ``'12 min 05 s'`` or ``'?'``."""
    if seconds is None:
        return '?'
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f'{seconds // 3600} h {seconds % 3600 // 60:02d} min'
    return f'{seconds // 60} min {seconds % 60:02d} s'


# ------------------------------------------------------------ assessment
def _generate_outputs(step: Step) -> list[str]:
    out_dir = step.option('out_dir')
    if step.option('generator') == 'detection':
        return [osp.join(out_dir, 'annotations', f'instances_{split}.json')
                for split in ('train', 'val')]
    return [osp.join(out_dir, split) for split in ('train', 'val')]


def _final_checkpoint(planned: dict[str, PlannedStep],
                      name: str) -> Optional[dict]:
    """The output record of a done train step's final checkpoint."""
    upstream = planned.get(name)
    if upstream is None or upstream.state.state != 'done':
        return None
    return upstream.state.marker['outputs']['checkpoint']


def _fingerprint_parts(step: Step, planned: dict[str, PlannedStep],
                       config_text: str,
                       hashes: dict[str, str]) -> tuple[Optional[dict], str]:
    """What a step's fingerprint hashes, or ``(None, what it waits for)``.

    ``hashes`` holds the inputs already hashed in this assessment (several
    steps read the same data)."""
    inputs = {}
    for path in step.inputs:
        try:
            if path not in hashes:
                hashes[path] = step_files.input_sha256(path)
            inputs[path] = hashes[path]
        except FileNotFoundError:
            producer = [p.step.name for p in planned.values()
                        if p.step.kind == 'generate'
                        and any(path.startswith(out) or out.startswith(path)
                                for out in _generate_outputs(p.step))]
            return None, (f'after {producer[0]}' if producer else
                          f'input missing: {path}')
    checkpoint = None
    if step.checkpoint_from:
        record = _final_checkpoint(planned, step.checkpoint_from)
        if record is None:
            return None, f'after {step.checkpoint_from}'
        checkpoint = record['sha256']
    parts = dict(kind=step.kind, toolbox=step.toolbox,
                 config=config_text, inputs=inputs, checkpoint=checkpoint,
                 ce_mmdet=ce_mmdet.__version__)
    if step.kind == 'train':
        parts['processes'] = step.gpus
    return parts, ''


def _collect_parts(step: Step,
                   planned: dict[str, PlannedStep]) -> tuple[Optional[dict],
                                                             str]:
    results = {}
    for need in step.needs:
        upstream = planned[need]
        if upstream.state.state != 'done':
            return None, f'after {need}'
        results[need] = upstream.state.marker['outputs']['metrics']['sha256']
    return dict(kind='collect', results=results,
                ce_mmdet=ce_mmdet.__version__), ''


def assess(steps: list[Step], preset: str, published: dict[str, Any],
           probe_cache: Optional[str] = None,
           images: Optional[dict[str, int]] = None) -> list[PlannedStep]:
    """Fingerprint, state and estimate of every step, in plan order.

    Args:
        steps: the plan.
        preset: ``'coco'`` (published estimates) or ``'shapes'`` (probe).
        published: ``configs/published_results.yml`` parsed.
        probe_cache: the probe cache file; None: no probe (no estimate).
        images: shapes: images of each split, ``{'shapes/train': ...}``.
    """
    planned: dict[str, PlannedStep] = {}
    hashes: dict[str, str] = {}
    for step in steps:
        config = None
        if step.kind == 'generate':
            outputs = _generate_outputs(step)
            done = all(osp.exists(path) for path in outputs)
            state = StepState('done' if done else 'to do',
                              'present' if done else '')
            planned[step.name] = PlannedStep(step, '', state,
                                             (None, 'not probed'))
            continue
        if step.kind == 'collect':
            parts, waits = _collect_parts(step, planned)
            estimate: Estimate = (0.0, 'negligible')
        else:
            config = step_files.merged_config(step.config, step.cfg_options)
            config_text = step_files.config_text(config)
            parts, waits = _fingerprint_parts(step, planned, config_text,
                                              hashes)
            if preset == 'coco':
                estimate = published_estimate(step, config, published)
            elif probe_cache is None:
                estimate = (None, 'not probed (--no-probe)')
            else:
                split = 'train' if step.kind == 'train' else 'val'
                data = 'shapes' if step.toolbox == 'mmdet' else 'shapes_cls'
                estimate = probe_estimate(
                    step, config, step_files.fingerprint(
                        dict(config=config_text, kind=step.kind)),
                    images[f'{data}/{split}'], probe_cache)
        if parts is None:
            fingerprint = ''
            state = StepState('to do', waits)
        else:
            fingerprint = step_files.fingerprint(parts)
            state = step_files.step_state(step, fingerprint)
        planned[step.name] = PlannedStep(step, fingerprint, state, estimate,
                                         waits, config)
    return list(planned.values())


def expected_seconds(planned: PlannedStep) -> float:
    """The seconds a step still needs (0 when done, its estimate else)."""
    if planned.state.state == 'done':
        return 0.0
    return planned.estimate[0] or 0.0


def format_plan(planned: list[PlannedStep], engine: str,
                gpus: Optional[int] = None) -> str:
    """The plan as text: one block per step (command, inputs, outputs,
    fingerprint, state, estimate), then the total and the sources."""
    from .engines import tool_command

    lines = []
    for index, item in enumerate(planned, 1):
        step = item.step
        state = item.state.state
        detail = item.state.detail or item.waits_for
        lines.append(f'{index:2d}. {step.name} [{state}'
                     f'{": " + detail if detail else ""}]  {step.label}')
        if step.kind in ('train', 'test'):
            checkpoint = (f'<final checkpoint of {step.checkpoint_from}>'
                          if step.checkpoint_from else None)
            command = tool_command(step, 'srun' if engine == 'slurm' else
                                   engine, checkpoint)
            lines.append('      command:     ' + ' '.join(map(_shown,
                                                              command)))
        inputs = list(step.inputs) + ([f'checkpoint of {step.checkpoint_from}']
                                      if step.checkpoint_from else [])
        if step.kind == 'collect':
            inputs = [f'metrics of {need}' for need in step.needs]
        if inputs:
            lines.append('      inputs:      ' + ', '.join(inputs))
        lines.append('      outputs:     ' + ', '.join(_outputs_of(step)))
        lines.append('      fingerprint: ' + (item.fingerprint[:16] or
                                              f'({item.waits_for})'))
        seconds, source = item.estimate
        if state == 'done' and item.state.marker:
            measured = item.state.marker.get('seconds')
            lines.append(f'      time:        done (took {minutes(measured)})')
        else:
            gpu_hours = ''
            if seconds and gpus and step.kind in ('train', 'test'):
                hours = seconds * step.gpus / 3600
                gpu_hours = (f' = {hours:.1f} GPU-hours' if hours >= 0.1
                             else ' = <0.1 GPU-hours') + f' on {step.gpus}'
            lines.append(f'      estimate:    {minutes(seconds)}{gpu_hours}'
                         f'  ({source})')
    left = sum(expected_seconds(item) for item in planned)
    unknown = [item.step.name for item in planned
               if item.state.state != 'done' and item.estimate[0] is None
               and item.step.kind in ('train', 'test')]
    to_do = sum(item.state.state != 'done' for item in planned)
    lines.append(f'{to_do} of {len(planned)} steps to run, expected '
                 f'{minutes(left)} one after another'
                 + (f' (+ {", ".join(unknown)}: no estimate)' if unknown
                    else ''))
    if gpus:
        gpu_hours = sum(expected_seconds(item) * item.step.gpus
                        for item in planned) / 3600
        lines.append(f'{gpu_hours:.0f} GPU-hours; with the independent '
                     'steps side by side (--engine slurm), '
                     f'{minutes(critical_path(planned))} (the longest chain)')
    return '\n'.join(lines)


def critical_path(planned: list[PlannedStep]) -> float:
    """The expected seconds of the longest chain of steps that wait for
    each other (what a scheduler that runs independent steps side by side
    needs)."""
    finish: dict[str, float] = {}
    for item in planned:
        start = max((finish[need] for need in item.step.needs
                     if need in finish), default=0.0)
        finish[item.step.name] = start + expected_seconds(item)
    return max(finish.values(), default=0.0)


def _shown(argument: str) -> str:
    """A command's argument as the plan shows it: ``python`` for this
    interpreter, paths below the working directory relative to it."""
    if argument == sys.executable:
        return 'python'
    if osp.isabs(argument):
        relative = osp.relpath(argument)
        if not relative.startswith(os.pardir):
            return relative
    return argument


def _outputs_of(step: Step) -> list[str]:
    if step.kind == 'generate':
        return _generate_outputs(step)
    if step.kind == 'train':
        return [f'{step.work_dir}/<final checkpoint>']
    if step.kind == 'test':
        return [osp.join(step.work_dir, 'metrics.json')]
    return [osp.join(step.work_dir, name)
            for name in ('table3.md', 'table3.json', 'table3.png')]


# -------------------------------------------------------------- running
@contextlib.contextmanager
def _locked(work_dir: str) -> Iterator[int]:
    """An exclusive lock on ``work_dir``, held in ``.<name>.lock`` beside
    it (so that moving a stale directory aside keeps it), released when
    this process and the toolbox process that inherits it end."""
    parent = osp.dirname(osp.abspath(work_dir))
    os.makedirs(parent, exist_ok=True)
    handle = open(osp.join(parent, f'.{osp.basename(osp.abspath(work_dir))}'
                           f'{LOCK_SUFFIX}'), 'a+')
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise RuntimeError(
            f'{work_dir} is in use by another run of this step (an earlier '
            'command still running, or its toolbox process): wait for it or '
            'stop it, then rerun') from None
    try:
        yield handle.fileno()
    finally:
        handle.close()


def _die_with_parent() -> None:  # pragma: no cover (runs in the child)
    """Ask Linux to send SIGTERM to this process when its parent dies."""
    try:
        import ctypes

        ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _run_command(command: list[str], log_path: str, name: str,
                 lock_fd: int, show: bool = False) -> None:
    """Run ``command``, its output appended to ``log_path`` (and printed
    with ``show``); raise :class:`StepFailedError` with the log's end if it
    fails.

    The process inherits the work directory's lock (``lock_fd``): a rerun
    cannot start the step while it is still running."""
    with open(log_path, 'a', encoding='utf-8') as log:
        log.write(f'\n===== {time.strftime("%Y-%m-%d %H:%M:%S")} '
                  f'{" ".join(command)}\n')
        log.flush()
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE if show else log,
            stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
            pass_fds=(lock_fd, ), text=show or None)
        try:
            if show:
                for line in process.stdout:
                    log.write(line)
                    sys.stdout.write(line)
                    sys.stdout.flush()
            status = process.wait()
        except BaseException:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
            raise
    if status != 0:
        with open(log_path, encoding='utf-8', errors='replace') as log:
            tail = ''.join(log.readlines()[-25:])
        raise StepFailedError(
            f'step {name} failed (exit status {status}); the end of '
            f'{log_path}:\n{tail}')


def _newest_test_metrics(work_dir: str, started: float) -> tuple[str, dict]:
    """The metrics JSON of the newest toolbox test run in ``work_dir``."""
    from ce_mmdet.analysis.results_collector import _run_folders

    for folder in _run_folders(work_dir):
        stamp = osp.basename(osp.normpath(folder))
        path = osp.join(folder, f'{stamp}.json')
        if osp.isfile(path) and osp.getmtime(path) >= started - 1:
            with open(path, encoding='utf-8') as f:
                metrics = json.load(f)
            return path, {key: value for key, value in metrics.items()
                          if isinstance(value, (int, float))}
    raise StepFailedError(f'no <timestamp>/<timestamp>.json of this run in '
                          f'{work_dir}: the test wrote no metrics')


def _supersede(work_dir: str) -> str:
    """Move a stale work directory aside (kept, never reused)."""
    stamp = time.strftime('%Y%m%d-%H%M%S')
    target = f'{work_dir.rstrip("/")}.superseded-{stamp}'
    os.replace(work_dir, target)
    return target


def _generate(step: Step) -> None:
    from ce_mmdet.datasets import (
        EMBEDDED_CLASSIFICATION_SET,
        EMBEDDED_DEFAULT_SET,
        generate_shapes_classification_set,
        generate_shapes_dataset,
    )

    out_dir = step.option('out_dir')
    if step.option('generator') == 'detection':
        generate_shapes_dataset(out_dir, show_progress=False,
                                **EMBEDDED_DEFAULT_SET)
    else:
        settings = {key: value for key, value in
                    EMBEDDED_CLASSIFICATION_SET.items()}
        generate_shapes_classification_set(out_dir, show_progress=False,
                                           **settings)


def run_step(item: PlannedStep, planned: dict[str, PlannedStep],
             engine: str, collect: Callable[[PlannedStep], dict[str, str]],
             srun_args: str = '', show_logs: bool = False) -> StepState:
    """Run one step unless it is done; mark it done.

    Args:
        item: the step, assessed.
        planned: the whole plan by name (its upstream checkpoints).
        engine: ``'local'``, ``'torchrun'`` or ``'srun'``.
        collect: writes the table of a collect step; returns its outputs.
        srun_args: extra ``srun`` arguments.
        show_logs: print the toolbox's output too.

    Returns:
        The step's new state (``done``).

    Raises:
        StepFailedError: its command failed.
        RuntimeError: another run holds its work directory, or an input
            is missing.
    """
    from .engines import tool_command

    step = item.step
    if item.state.state == 'done':
        return item.state
    if not item.fingerprint and step.kind != 'generate':
        raise RuntimeError(f'step {step.name} cannot run yet: '
                           f'{item.waits_for}')
    start = time.time()
    if step.kind == 'generate':
        _generate(step)
        return StepState('done', 'generated')
    with _locked(step.work_dir) as lock_fd:
        if item.state.state == 'stale':
            say(f'      {step.name}: {item.state.detail}; the old work '
                f'directory is kept as {_supersede(step.work_dir)}')
            os.makedirs(step.work_dir, exist_ok=True)
        step_files.write_started(step.work_dir, step, item.fingerprint)
        outputs: dict[str, str] = {}
        results: dict[str, Any] = {}
        if step.kind == 'collect':
            outputs = collect(item)
        else:
            checkpoint = None
            if step.checkpoint_from:
                checkpoint = _final_checkpoint(planned,
                                               step.checkpoint_from)['path']
            if step.kind == 'train':
                resumed = step_files.repair_checkpoints(step.work_dir)
                if resumed:
                    say(f'      {step.name}: resuming from {resumed}')
            command = tool_command(step, engine, checkpoint, srun_args)
            _run_command(command, osp.join(step.work_dir, f'{step.name}.log'),
                         step.name, lock_fd, show_logs)
            if step.kind == 'train':
                final = step_files.latest_checkpoint(step.work_dir)
                if final is None or not step_files._is_complete_archive(final):
                    raise StepFailedError(
                        f'step {step.name}: the training ended without a '
                        f'complete checkpoint in {step.work_dir}')
                outputs = dict(checkpoint=final)
            else:
                source, results = _newest_test_metrics(step.work_dir, start)
                metrics_file = write_json(
                    osp.join(step.work_dir, 'metrics.json'),
                    dict(source=source, metrics=results))
                outputs = dict(metrics=metrics_file)
        marker = step_files.write_marker(step.work_dir, step,
                                         item.fingerprint, outputs,
                                         time.time() - start, results)
    return StepState('done', f'in {marker["seconds"]} s', marker)


def run_plan(planned: list[PlannedStep], engine: str,
             collect: Callable[[PlannedStep], dict[str, str]],
             reassess: Callable[[], list[PlannedStep]],
             show_logs: bool = False) -> list[PlannedStep]:
    """Run the steps that are not done, in plan order.

    After each step the plan is assessed again (the next steps'
    fingerprints need its outputs). One line as a step starts and ends:
    elapsed time, and the estimate left for the whole plan.

    Args:
        planned: the assessed plan.
        engine: ``'local'`` or ``'torchrun'``.
        collect: see :func:`run_step`.
        reassess: the plan, assessed from the work directories again.
        show_logs: print the toolbox processes' output too.

    Returns:
        The plan as it stands at the end.
    """
    begin = time.time()
    names = [item.step.name for item in planned]
    total = len(names)
    ran = 0
    for index, name in enumerate(names, 1):
        current = {item.step.name: item for item in planned}
        item = current[name]
        if item.state.state == 'done':
            taken = (item.state.marker or {}).get('seconds')
            say(f'skip  {index}/{total} {name}: done'
                + (f' (took {minutes(taken)} when it ran)' if taken else
                   f' ({item.state.detail})'))
            continue
        left = sum(expected_seconds(p) for p in planned)
        say(f'start {index}/{total} {name} [{item.state.state}] '
            f'{item.step.label}; estimate {minutes(item.estimate[0])}, '
            f'plan left {minutes(left)}; log: '
            f'{osp.join(item.step.work_dir, name + ".log")}')
        started = time.time()
        run_step(item, current, engine, collect, show_logs=show_logs)
        ran += 1
        planned = reassess()
        left = sum(expected_seconds(p) for p in planned)
        say(f'done  {index}/{total} {name} in {minutes(time.time() - started)}'
            f'; elapsed {minutes(time.time() - begin)}, plan left '
            f'{minutes(left)}')
    if ran == 0:
        say('nothing to do: every step is done (fingerprints match)')
    return planned


def install_signal_handlers() -> None:
    """SIGTERM as Ctrl-C: the running toolbox process is stopped and no
    step is marked done."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f'signal {signum}')

    signal.signal(signal.SIGTERM, handler)
