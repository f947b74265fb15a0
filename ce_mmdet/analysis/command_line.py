"""Command-line arguments shared by the analysis tools: the models to read.

``tools/analysis_tools/inhibited_channels.py`` and ``channel_ablation.py``
both take a first model (config, checkpoint), more through ``--compare`` and
their labels through ``--names``.
"""
import argparse
import os.path as osp


def add_model_arguments(parser: argparse.ArgumentParser,
                        verb: str = 'analyse') -> None:
    """Add ``config``, ``checkpoint``, ``--compare`` and ``--names``."""
    parser.add_argument('config', help='config of the (first) model')
    parser.add_argument('checkpoint', help='its checkpoint')
    parser.add_argument(
        '--compare', nargs=2, action='append', default=[],
        metavar=('CONFIG', 'CHECKPOINT'),
        help=f'another model to {verb} alongside (repeatable)')
    parser.add_argument(
        '--names', nargs='+', default=None,
        help='labels of the models, in order (default: config file names)')


def labelled_models(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """The models of ``add_model_arguments`` as (label, config, checkpoint).

    Labels default to the config file names; repeated labels are numbered
    (``1:name``, ``2:name``) so that reports keep every model apart.

    Raises:
        ValueError: ``--names`` gives another number of labels than models.
    """
    models = ([(args.config, args.checkpoint)]
              + [tuple(m) for m in args.compare])
    names = args.names or [osp.splitext(osp.basename(c))[0] for c, _ in models]
    if len(names) != len(models):
        raise ValueError(f'--names gives {len(names)} labels for '
                         f'{len(models)} models')
    if len(set(names)) != len(names):
        names = [f'{i + 1}:{name}' for i, name in enumerate(names)]
    return [(name, config, checkpoint)
            for name, (config, checkpoint) in zip(names, models)]
