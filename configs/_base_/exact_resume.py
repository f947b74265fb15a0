"""Exact resume: the global RNG states saved in checkpoints, restored on
resume.

Listed in the ``_base_`` of every detection config. MMEngine 0.10 saves no
RNG state, so after ``--resume`` MMDetection's ``RandomSampler`` would draw
other RPN and R-CNN proposals than the uninterrupted run (see
``ce_mmdet/engine/rng_state_hook.py``). A config that sets ``custom_hooks``
itself replaces this list: keep the hook with
``custom_hooks = [*_base_.custom_hooks, dict(...)]``. The configs that list
this file import ``ce_mmdet`` (``custom_imports``), which registers the hook.
"""
custom_hooks = [dict(type='RNGStateHook')]
