#!/usr/bin/env python
"""Measure the trained Fig. 1 classifiers and write the figure and table.

For each model label (``BN``, ``BN+CE``, ``LN``, ``LN+CE``, ``ELU``,
``CE+ELU``, ``LeakyReLU``, ``CE+LeakyReLU``; configs in ``configs/fig1/``)
and seed, reads the checkpoint MMEngine last wrote in
``<work-root>/<config>_seed<S>/``, and measures inhibited channels (relative
tau, dead, small) and the cumulative ablation (top-1 as channels are zeroed).
Each measurement is kept in the model's work dir (``fig1_measurement.json``)
and reused while its checkpoint and the settings stay the same;
``--measure-only`` measures without writing the report.
Writes ``fig1.md`` (the tables printed: the channel criteria, and the share
of the above-chance top-1 each order of ablation keeps), ``fig1.json`` and
``fig1.png`` into --out-dir; ``--from-json`` redraws them from a
``fig1.json`` written before, without measuring. ``tools/fig1_demo.sh``
(``bash tools/run_demo.sh fig1``) trains the models and runs this::

    python tools/analysis_tools/fig1_report.py --models BN BN+CE --seeds 0 1 \\
        --work-root work_dirs/fig1 --out-dir work_dirs/fig1/report
    python tools/analysis_tools/fig1_report.py \\
        --from-json work_dirs/fig1/report/fig1.json --out-dir new_report
"""
import argparse
import os.path as osp
import sys

try:
    import ce_mmdet  # noqa: F401
except ImportError:  # not installed: use the checkout this script is in
    sys.path.insert(
        0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    import ce_mmdet  # noqa: F401

from mmengine.config import DictAction  # noqa: E402

from ce_mmdet.analysis import DEFAULT_EPSILON, DEFAULT_TAU  # noqa: E402
from ce_mmdet.analysis.channel_ablation import (  # noqa: E402
    DEFAULT_FRACTIONS,
    DEFAULT_SEEDS,
)
from ce_mmdet.analysis.fig1 import (  # noqa: E402
    FIG1_MODELS,
    MEASUREMENT_FILE,
    ablation_table,
    fig1_table,
    load_fig1_json,
    measure_work_dir,
    plot_fig1,
)
from ce_mmdet.analysis.output_files import write_json, write_text  # noqa: E402

CONFIG_DIR = osp.join(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))), 'configs', 'fig1')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', nargs='+', choices=list(FIG1_MODELS),
                        default=list(FIG1_MODELS), metavar='MODEL',
                        help=f'labels among {list(FIG1_MODELS)} (default: '
                        'all)')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0],
                        help='training seeds of every model (default: 0)')
    parser.add_argument('--extra-seeds', nargs='+', type=int, default=[],
                        help='more training seeds for BN and BN+CE only')
    parser.add_argument('--work-root', default='work_dirs/fig1',
                        help='holds <config>_seed<S>/ (default: '
                        '%(default)s)')
    parser.add_argument('--config-dir', default=CONFIG_DIR,
                        help='the Fig. 1 configs (default: configs/fig1)')
    parser.add_argument('--analysis-images', type=int, default=500,
                        help='val images of the inhibited-channel analysis '
                        '(default: %(default)s)')
    parser.add_argument('--ablation-images', type=int, default=1000,
                        help='val images per ablation evaluation (default: '
                        '%(default)s)')
    parser.add_argument('--fractions', nargs='+', type=float,
                        default=list(DEFAULT_FRACTIONS),
                        help='ablated fractions (default: 0 0.1 ... 0.9)')
    parser.add_argument('--ablation-seeds', nargs='+', type=int,
                        default=list(DEFAULT_SEEDS),
                        help='seeds of the random ablation order (default: '
                        '%(default)s)')
    parser.add_argument('--tau', type=float, default=DEFAULT_TAU)
    parser.add_argument('--epsilon', type=float, default=DEFAULT_EPSILON)
    parser.add_argument('--out-dir', default='work_dirs/fig1/report')
    parser.add_argument('--measure-only', action='store_true',
                        help='measure (and keep in each work dir) without '
                        'writing the report')
    parser.add_argument('--from-json', metavar='FIG1_JSON',
                        help='redraw the tables and the figure from this '
                        'fig1.json instead of measuring (the model options '
                        'are ignored)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, default=None,
        help='overrides applied to every config (e.g. another data root)')
    return parser


def measure_results(args: argparse.Namespace) -> list:
    """Measure every trained model the arguments name (or reuse the
    measurement kept in its work dir, see ``measure_work_dir``)."""
    results = []
    for name in args.models:
        stem = FIG1_MODELS[name][0]
        seeds = list(args.seeds)
        if name in ('BN', 'BN+CE'):
            seeds += [s for s in args.extra_seeds if s not in seeds]
        for seed in seeds:
            work_dir = osp.join(args.work_root, f'{stem}_seed{seed}')
            try:
                result, reused = measure_work_dir(
                    name, seed, osp.join(args.config_dir, f'{stem}.py'),
                    work_dir, tau=args.tau, epsilon=args.epsilon,
                    analysis_images=args.analysis_images,
                    ablation_images=args.ablation_images,
                    fractions=args.fractions,
                    ablation_seeds=args.ablation_seeds,
                    cfg_options=args.cfg_options)
            except (FileNotFoundError, ValueError) as error:
                sys.exit(f'fig1_report.py: {name} seed {seed}: {error}')
            print(f'{name} seed {seed}: '
                  f'{"measured already" if reused else "measured"} '
                  f'({osp.join(work_dir, MEASUREMENT_FILE)})')
            results.append(result)
    return results


def main() -> None:
    args = build_parser().parse_args()
    if args.from_json:
        try:
            results = load_fig1_json(args.from_json)
        except ValueError as error:
            sys.exit(f'fig1_report.py: {error}')
    else:
        results = measure_results(args)
        if args.measure_only:
            return
    table = fig1_table(results) + '\n\n' + ablation_table(results)
    print(table)
    paths = dict(
        markdown=write_text(osp.join(args.out_dir, 'fig1.md'),
                            '## Fig. 1 on the shapes classifiers\n\n'
                            + table + '\n'),
        json=write_json(osp.join(args.out_dir, 'fig1.json'),
                        dict(models=[r.to_dict() for r in results])),
        figure=plot_fig1(results, osp.join(args.out_dir, 'fig1.png')))
    print()
    for what, path in paths.items():
        print(f'{what:10s} {path}')


if __name__ == '__main__':
    main()
