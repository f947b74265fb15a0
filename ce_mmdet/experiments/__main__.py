"""``python -m ce_mmdet.experiments``: ``tools/reproduce_table3.py``."""
import sys

from .command_line import main

sys.exit(main())
