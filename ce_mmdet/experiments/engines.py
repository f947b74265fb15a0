"""Where a step's toolbox command runs: one process, torchrun, Slurm.

The commands are the toolboxes' own (``tools/train.py``, ``tools/test.py``
and ``tools/pretrain/...``, which run MMDetection's and MMPretrain's scripts
with ce_mmdet registered), launched as ``tools/dist_train.sh`` and
``tools/slurm_train.sh`` launch them:

* ``local``: ``python TOOL ...`` (one GPU, or the CPU);
* ``torchrun``: ``python -m torch.distributed.run --nproc_per_node=N TOOL
  ... --launcher pytorch`` on the GPUs of this machine;
* ``slurm``: every step that is not done becomes a batch job
  (``sbatch``) whose script runs ``srun ... python -u TOOL ... --launcher
  slurm`` through ``tools/reproduce_table3.py --run-step NAME``, and each
  job waits for the jobs of the steps it needs with Slurm's own
  ``--dependency=afterok:ID[:ID...]``: the cluster's scheduler runs the
  plan. Resources are named as in MMDetection's ``slurm_train.sh``:
  ``PARTITION``, ``GPUS``, ``GPUS_PER_NODE``, ``CPUS_PER_TASK``,
  ``SRUN_ARGS`` (and ``SBATCH_ARGS`` for the job itself).
"""
from __future__ import annotations

import os
import os.path as osp
import shlex
import subprocess
import sys
from dataclasses import dataclass
from typing import Optional

from ce_mmdet.analysis.output_files import write_text

from .steps import Step, resolve_config

__all__ = ['ENGINES', 'SlurmOptions', 'slurm_job_script', 'submit_jobs',
           'tool_command']

ENGINES = ('local', 'torchrun', 'slurm')

TOOLS = {
    ('mmdet', 'train'): 'tools/train.py',
    ('mmdet', 'test'): 'tools/test.py',
    ('mmpretrain', 'train'): 'tools/pretrain/train.py',
    ('mmpretrain', 'test'): 'tools/pretrain/test.py',
}


@dataclass(frozen=True)
class SlurmOptions:
    """Slurm resources, named as MMDetection's ``slurm_train.sh`` names
    them.

    Attributes:
        partition: ``-p`` of every job (``PARTITION``).
        gpus_per_node: ``--gres=gpu:N`` and ``--ntasks-per-node``
            (``GPUS_PER_NODE``); a job of ``GPUS`` tasks spans
            ``GPUS / GPUS_PER_NODE`` nodes.
        cpus_per_task: ``--cpus-per-task`` (``CPUS_PER_TASK``).
        srun_args: extra ``srun`` arguments (``SRUN_ARGS``).
        sbatch_args: extra ``sbatch`` arguments (``SBATCH_ARGS``), e.g.
            ``--time=3-00:00:00 --account=...``.
        sbatch: the ``sbatch`` command.
    """
    partition: str
    gpus_per_node: int = 8
    cpus_per_task: int = 5
    srun_args: str = ''
    sbatch_args: str = ''
    sbatch: str = 'sbatch'


def tool_script(step: Step) -> str:
    """The path of the tool a train or test step runs (from the installed
    package or the checkout)."""
    from ce_mmdet.utils import package_resource

    return package_resource(TOOLS[(step.toolbox, step.kind)])


def tool_command(step: Step, engine: str, checkpoint: Optional[str] = None,
                 srun_args: str = '') -> list[str]:
    """The command line of a train or test step.

    Args:
        step: the step.
        engine: ``'local'``, ``'torchrun'`` or ``'srun'`` (inside a Slurm
            job).
        checkpoint: train: the checkpoint ``step.checkpoint_key`` takes;
            test: the checkpoint evaluated.
        srun_args: extra ``srun`` arguments.

    A train step always gets ``--resume``: MMEngine resumes from the work
    directory's ``last_checkpoint`` if there is one and starts afresh if
    not.
    """
    args = [tool_script(step), resolve_config(step.config)]
    if step.kind == 'test':
        if not checkpoint:
            raise ValueError(f'step {step.name}: a test needs a checkpoint')
        args.append(checkpoint)
    args += ['--work-dir', step.work_dir]
    options = list(step.cfg_options)
    if step.kind == 'train':
        args.append('--resume')
        if step.checkpoint_key:
            if not checkpoint:
                raise ValueError(f'step {step.name}: needs the checkpoint of '
                                 f'{step.checkpoint_from}')
            options.append(f'{step.checkpoint_key}={checkpoint}')
    if options:
        args += ['--cfg-options', *options]
    if engine == 'local':
        return [sys.executable, *args]
    if engine == 'torchrun':
        port = 29500 + (os.getpid() % 1000)
        return [sys.executable, '-m', 'torch.distributed.run',
                f'--nproc_per_node={step.gpus}', f'--master_port={port}',
                *args, '--launcher', 'pytorch']
    if engine == 'srun':
        return ['srun', '--kill-on-bad-exit=1', *shlex.split(srun_args),
                sys.executable, '-u', *args, '--launcher', 'slurm']
    raise ValueError(f'engine {engine!r} is not one of local, torchrun, '
                     'srun')


def slurm_job_script(step: Step, run_step_command: list[str],
                     slurm: SlurmOptions) -> str:
    """The batch script of one step: ``#SBATCH`` resources, then the
    command that runs the step inside the allocation."""
    tasks = step.gpus if step.kind in ('train', 'test') else 1
    lines = [
        '#!/usr/bin/env bash',
        f'#SBATCH --job-name={shlex.quote("table3-" + step.name)}',
        f'#SBATCH --partition={shlex.quote(slurm.partition)}',
        f'#SBATCH --ntasks={tasks}',
        f'#SBATCH --cpus-per-task={slurm.cpus_per_task}',
        f'#SBATCH --output={shlex.quote(osp.abspath(step.work_dir))}'
        '/slurm-%j.out',
    ]
    if step.kind in ('train', 'test'):
        per_node = min(slurm.gpus_per_node, tasks)
        lines += [f'#SBATCH --gres=gpu:{per_node}',
                  f'#SBATCH --ntasks-per-node={per_node}']
    lines += [
        'set -euo pipefail',
        f'cd {shlex.quote(os.getcwd())}',
        'exec ' + shlex.join(run_step_command),
        '',
    ]
    return '\n'.join(lines)


def _job_id(output: str) -> str:
    """The job id ``sbatch --parsable`` prints (``ID`` or ``ID;CLUSTER``)."""
    text = output.strip().splitlines()[-1] if output.strip() else ''
    job_id = text.split(';')[0].strip()
    if not job_id.isdigit():
        raise RuntimeError(f'sbatch --parsable printed {output!r}, not a job '
                           'id')
    return job_id


def submit_jobs(steps: list[Step], to_run: set[str], scripts_dir: str,
                run_step_command, slurm: SlurmOptions) -> dict[str, str]:
    """Submit the steps in ``to_run`` as Slurm jobs chained by
    ``--dependency=afterok``, in plan order.

    Args:
        steps: the plan.
        to_run: names of the steps that are not done.
        scripts_dir: where the job scripts are written.
        run_step_command: ``step -> argv`` that runs one step inside a job.
        slurm: the resources.

    Returns:
        step name -> job id.
    """
    job_ids: dict[str, str] = {}
    for step in steps:
        if step.name not in to_run:
            continue
        os.makedirs(step.work_dir, exist_ok=True)
        script = write_text(osp.join(scripts_dir, f'{step.name}.sh'),
                            slurm_job_script(step, run_step_command(step),
                                             slurm))
        command = [*shlex.split(slurm.sbatch), '--parsable']
        waits = [job_ids[need] for need in step.needs if need in job_ids]
        if waits:
            command.append('--dependency=afterok:' + ':'.join(waits))
        command += [*shlex.split(slurm.sbatch_args), script]
        result = subprocess.run(command, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        if result.returncode != 0:
            raise RuntimeError(
                f'{shlex.join(command)} failed ({result.returncode}) for step '
                f'{step.name}: {result.stdout.strip()[-2000:]}; jobs already '
                f'submitted: {job_ids or "none"}')
        job_ids[step.name] = _job_id(result.stdout)
    return job_ids
