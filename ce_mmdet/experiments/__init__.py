"""Experiments as plans of resumable steps: Table 3 in one command.

:mod:`.presets` builds a plan (``coco``, ``shapes``), :mod:`.steps` gives
each step its fingerprint and state, :mod:`.estimates` its expected time,
:mod:`.engines` the command and where it runs (one process, torchrun,
Slurm), :mod:`.runner` runs the plan, :mod:`.report` writes the table.
``tools/reproduce_table3.py`` (or ``python -m ce_mmdet.experiments``) is the
command line (:mod:`.command_line`).
"""
from .command_line import build_parser, main
from .presets import PRESETS, PlanOptions, build_plan
from .steps import Step

__all__ = ['PRESETS', 'PlanOptions', 'Step', 'build_parser', 'build_plan',
           'main']
