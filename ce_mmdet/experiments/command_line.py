"""``tools/reproduce_table3.py``: Table 3 in one resumable command.

The command builds the preset's plan (:mod:`.presets`), prints it with each
step's state and estimate, then runs what is not done on the chosen engine
(:mod:`.engines`) and writes the table (:mod:`.report`). Rerun it after an
interruption, or after changing a config: it redoes exactly what changed.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import shlex
import sys
from typing import Optional

from ce_mmdet.analysis.output_files import write_json

from .engines import ENGINES, SlurmOptions, submit_jobs
from .presets import PRESETS, PlanOptions, build_plan
from .runner import (
    PlannedStep,
    StepFailedError,
    assess,
    format_plan,
    install_signal_handlers,
    run_plan,
    run_step,
    say,
)
from .steps import Step

__all__ = ['build_parser', 'main']


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(',') if name.strip())


def build_parser() -> argparse.ArgumentParser:
    """The command's arguments."""
    parser = argparse.ArgumentParser(
        prog='reproduce_table3.py',
        description='Table 3 of the CE paper in one resumable command: '
        'pretrain (MMPretrain), detect (MMDetection, from the pretrained '
        'checkpoint), evaluate (box and mask AP), collect. Prints the plan '
        'first; a rerun skips every finished step.')
    parser.add_argument('--preset', choices=PRESETS, required=True,
                        help='coco: the paper\'s experiment (ImageNet, '
                        'COCO, GPUs); shapes: the same chain on the '
                        'embedded default (CPU)')
    parser.add_argument('--dry-run', action='store_true',
                        help='print the plan (commands, inputs, outputs, '
                        'fingerprints, states, estimates) and stop')
    parser.add_argument('--work-dirs', default='work_dirs',
                        help='root of the work directories (default: '
                        '%(default)s)')
    parser.add_argument('--models', type=_names,
                        help='rows: coco: ce,bn (default); shapes: ce,plain '
                        '(default)')
    parser.add_argument('--depths', type=lambda t: tuple(map(int, _names(t))),
                        default=(50, 101),
                        help='coco: ResNet depths (default: 50,101)')
    parser.add_argument('--schedules', type=_names, default=('1x', ),
                        help='coco: 1x and/or 2x (default: 1x)')
    parser.add_argument('--ce-weights', choices=('pretrain', 'release'),
                        default='pretrain',
                        help='coco: pretrain CE-ResNet here, or take the '
                        'authors\' released CE-ResNet-50 (checkpoints/'
                        'ce_resnet50_mmdet.pth from tools/model_converters/'
                        'cenet2mmdet.py) (default: %(default)s)')
    parser.add_argument('--bn-weights', choices=('pretrain', 'torchvision'),
                        default='pretrain',
                        help='coco: pretrain the BN ResNets here with the '
                        'same recipe, or take torchvision\'s as '
                        'MMDetection\'s baselines do (default: %(default)s)')
    parser.add_argument('--gpus', type=int,
                        default=int(os.environ.get('GPUS', 0)) or None,
                        help='coco: GPUs per training and test (GPUS; '
                        'default 8, the paper\'s, on torchrun and Slurm, 1 '
                        'on --engine local; the learning rate follows '
                        'auto_scale_lr when the total batch differs); '
                        'shapes: 1')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of every run (default: %(default)s)')
    parser.add_argument('--quick', action='store_true',
                        help='shapes: a few iterations per step in '
                        '<work-dirs>/table3_shapes_quick (checks the chain; '
                        'the numbers mean nothing)')
    parser.add_argument('--steps', type=_names,
                        help='run only these steps (comma-separated names '
                        'from the plan) and the steps they need')
    parser.add_argument('--show-logs', action='store_true',
                        help='print the toolboxes\' output as well as '
                        'writing it to <work_dir>/<step>.log')
    parser.add_argument('--no-probe', action='store_true',
                        help='shapes: no probe, no estimates')
    parser.add_argument('--engine', choices=ENGINES, default='local',
                        help='local: one process per step; torchrun: '
                        '--gpus processes on this machine (as '
                        'tools/dist_train.sh); slurm: one sbatch job per '
                        'step, chained by --dependency=afterok '
                        '(default: %(default)s)')
    slurm = parser.add_argument_group(
        'Slurm (named as MMDetection\'s tools/slurm_train.sh; the '
        'environment variables are the defaults)')
    slurm.add_argument('--partition', default=os.environ.get('PARTITION'),
                       help='partition of every job (PARTITION)')
    slurm.add_argument('--gpus-per-node', type=int,
                       default=int(os.environ.get('GPUS_PER_NODE', 8)),
                       help='GPUs per node (GPUS_PER_NODE, default 8)')
    slurm.add_argument('--cpus-per-task', type=int,
                       default=int(os.environ.get('CPUS_PER_TASK', 5)),
                       help='CPUs per task (CPUS_PER_TASK, default 5)')
    slurm.add_argument('--srun-args', default=os.environ.get('SRUN_ARGS', ''),
                       help='extra srun arguments (SRUN_ARGS)')
    slurm.add_argument('--sbatch-args',
                       default=os.environ.get('SBATCH_ARGS', ''),
                       help='extra sbatch arguments (SBATCH_ARGS), e.g. '
                       '"--time=3-00:00:00 --account=X"')
    slurm.add_argument('--sbatch', default=os.environ.get('SBATCH', 'sbatch'),
                       help='the sbatch command (default: sbatch)')
    parser.add_argument('--run-step', metavar='NAME',
                        help=argparse.SUPPRESS)  # a Slurm job's entry point
    return parser


def plan_options(args: argparse.Namespace) -> PlanOptions:
    """The plan's choices from the arguments."""
    coco = args.preset == 'coco'
    models = args.models or (('ce', 'bn') if coco else ('ce', 'plain'))
    return PlanOptions(
        preset=args.preset, work_dirs=args.work_dirs, models=models,
        depths=args.depths, schedules=args.schedules,
        ce_weights=args.ce_weights, bn_weights=args.bn_weights,
        gpus=_gpus(args) if coco else 1, seed=args.seed,
        quick=args.quick)


def _gpus(args: argparse.Namespace) -> int:
    """GPUs per coco step: ``--gpus``, else 8 (the paper's) on torchrun
    and Slurm, 1 on one process.

    Raises:
        ValueError: ``--engine local`` with ``--gpus`` above 1.
    """
    if args.engine == 'local':
        if args.gpus and args.gpus > 1 and not args.run_step:
            raise ValueError(f'--engine local runs one process per step; for '
                             f'--gpus {args.gpus} use --engine torchrun (this '
                             'machine) or --engine slurm')
        return args.gpus or 1
    return args.gpus or 8


def plan_arguments(options: PlanOptions) -> list[str]:
    """The arguments that rebuild the same plan (a Slurm job's)."""
    arguments = ['--preset', options.preset, '--work-dirs', options.work_dirs,
                 '--models', ','.join(options.models), '--depths',
                 ','.join(map(str, options.depths)), '--schedules',
                 ','.join(options.schedules), '--ce-weights',
                 options.ce_weights, '--bn-weights', options.bn_weights,
                 '--gpus', str(options.gpus), '--seed', str(options.seed),
                 '--no-probe']
    return arguments + (['--quick'] if options.quick else [])


def select_steps(steps: list[Step],
                 names: Optional[tuple[str, ...]]) -> list[Step]:
    """``names`` and every step they need, transitively, in plan order
    (all steps without ``names``).

    Raises:
        ValueError: a name that is not in the plan.
    """
    if not names:
        return steps
    by_name = {step.name: step for step in steps}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise ValueError(f'--steps: no step {", ".join(unknown)} in this '
                         f'plan; its steps: {", ".join(by_name)}')
    selected: set[str] = set()
    stack = list(names)
    while stack:
        name = stack.pop()
        if name not in selected:
            selected.add(name)
            stack.extend(by_name[name].needs)
    return [step for step in steps if step.name in selected]


def _shapes_images() -> dict[str, int]:
    from ce_mmdet.datasets import (
        EMBEDDED_CLASSIFICATION_SET,
        EMBEDDED_DEFAULT_SET,
    )
    return {'shapes/train': EMBEDDED_DEFAULT_SET['num_train'],
            'shapes/val': EMBEDDED_DEFAULT_SET['num_val'],
            'shapes_cls/train': EMBEDDED_CLASSIFICATION_SET['num_train'],
            'shapes_cls/val': EMBEDDED_CLASSIFICATION_SET['num_val']}


def main(argv: Optional[list[str]] = None) -> int:
    """Run the command; returns the exit status."""
    from ce_mmdet.analysis.baselines import load_published_results
    from ce_mmdet.utils.benchmark import describe_machine

    from .report import write_table3

    args = build_parser().parse_args(argv)
    try:
        options = plan_options(args)
        steps = select_steps(build_plan(options), args.steps)
    except ValueError as error:
        print(f'reproduce_table3: {error}', file=sys.stderr)
        return 2
    published = load_published_results()
    root = osp.dirname(build_plan(options)[-1].work_dir)
    probe = (None if args.no_probe or options.preset != 'shapes'
             or args.run_step else osp.join(root, 'probe.json'))

    def reassess() -> list[PlannedStep]:
        return assess(steps, options.preset, published, probe,
                      _shapes_images())

    machine = describe_machine()

    def collect(item: PlannedStep) -> dict[str, str]:
        return write_table3(reassess(), published, item.step.work_dir,
                            options.preset, machine)

    if args.engine == 'slurm' and not args.partition and not args.dry_run:
        print('reproduce_table3: --engine slurm needs --partition (or '
              'PARTITION)', file=sys.stderr)
        return 2
    if probe:
        say('probing the steps\' speed on this machine (cached in '
            f'{probe})')
    planned = reassess()
    if args.run_step:  # inside a Slurm job
        by_name = {item.step.name: item for item in planned}
        if args.run_step not in by_name:
            print(f'reproduce_table3: no step {args.run_step!r}',
                  file=sys.stderr)
            return 2
        run_step(by_name[args.run_step], by_name, 'srun', collect,
                 args.srun_args)
        return 0
    print(f'Plan of preset {options.preset} on {args.engine} '
          f'({machine}):', flush=True)
    print(format_plan(planned, args.engine,
                      options.gpus if options.preset == 'coco' else None),
          flush=True)
    if args.dry_run:
        return 0
    if args.engine == 'slurm':
        return _submit(planned, options, args, root)
    install_signal_handlers()
    try:
        planned = run_plan(planned, args.engine, collect, reassess,
                           args.show_logs)
    except StepFailedError as error:
        say(str(error))
        say('fix the cause and rerun the same command: finished steps are '
            'kept')
        return 1
    except KeyboardInterrupt:
        say('interrupted: rerun the same command to continue (finished '
            'steps are kept, the interrupted training resumes)')
        return 130
    final = planned[-1]
    if final.state.state == 'done' and final.step.kind == 'collect':
        with open(final.state.marker['outputs']['table']['path'],
                  encoding='utf-8') as f:
            print(f.read())
        print('Written: ' + ', '.join(
            record['path'] for record in
            final.state.marker['outputs'].values()))
    return 0


def _submit(planned: list[PlannedStep], options: PlanOptions,
            args: argparse.Namespace, root: str) -> int:
    """Submit every step that is not done as a chained Slurm job."""
    to_run = {item.step.name for item in planned
              if item.state.state != 'done'}
    if not to_run:
        say('nothing to do: every step is done (fingerprints match)')
        return 0
    slurm = SlurmOptions(partition=args.partition,
                         gpus_per_node=args.gpus_per_node,
                         cpus_per_task=args.cpus_per_task,
                         srun_args=args.srun_args,
                         sbatch_args=args.sbatch_args, sbatch=args.sbatch)
    script = osp.abspath(sys.argv[0]) if sys.argv[0].endswith(
        'reproduce_table3.py') else None
    entry = ([sys.executable, '-u', script] if script else
             [sys.executable, '-u', '-m', 'ce_mmdet.experiments'])

    def run_step_command(step) -> list[str]:
        selection = (['--steps', ','.join(args.steps)] if args.steps else [])
        return [*entry, *plan_arguments(options), *selection,
                '--run-step', step.name, f'--srun-args={args.srun_args}']

    job_ids = submit_jobs([item.step for item in planned], to_run,
                          osp.join(root, 'slurm'), run_step_command, slurm)
    write_json(osp.join(root, 'slurm', 'jobs.json'), job_ids)  # atomic
    for name, job_id in job_ids.items():
        say(f'submitted {name}: job {job_id}')
    jobs_file = osp.join(root, 'slurm', 'jobs.json')
    say(f'{len(job_ids)} jobs submitted ({jobs_file}); '
        f'follow them with: squeue -u $USER; the table: '
        f'{shlex.quote(planned[-1].step.work_dir)}/table3.md when the collect '
        'job ends')
    return 0

