"""Utilities: MMEngine checkpoints under PyTorch >= 2.6, MMDetection's tools.

Importing this package (``import ce_mmdet`` does) allow-lists the globals of
MMEngine's checkpoints for ``torch.load(weights_only=True)``; see
:mod:`ce_mmdet.utils.checkpoint_safety`.
"""
from .checkpoint_safety import (HISTORY_BUFFER_STATISTICS,
                                allow_mmengine_checkpoint_globals,
                                mmengine_checkpoint_globals)
from .mmdet_tools import mmdet_tool_path, run_mmdet_tool

allow_mmengine_checkpoint_globals()

__all__ = [
    'HISTORY_BUFFER_STATISTICS', 'allow_mmengine_checkpoint_globals',
    'mmengine_checkpoint_globals', 'mmdet_tool_path', 'run_mmdet_tool'
]
