"""Utilities: MMEngine checkpoints under PyTorch >= 2.6, MMDetection's tools.

Importing this package (``import ce_mmdet`` does) allow-lists the globals of
MMEngine's checkpoints for ``torch.load(weights_only=True)`` through
restricted stand-ins (:mod:`ce_mmdet.utils.checkpoint_safety`) and makes
MMEngine's checkpoint loaders check what they load, so that a resume never
executes a config text stored in a checkpoint
(:mod:`ce_mmdet.utils.checkpoint_loading`; loaders registered later are
guarded too), and makes MMEngine's runners check a resumed checkpoint's
optimizer and scheduler states against the run before anything is loaded
(:mod:`ce_mmdet.utils.resume_checks`).
"""
from .checkpoint_loading import (
                                 CheckpointRefusedError,
                                 check_mmengine_checkpoint,
                                 guard_mmengine_checkpoint_loaders,
)
from .checkpoint_safety import (
                                 HISTORY_BUFFER_STATISTICS,
                                 CheckpointArray,
                                 allow_mmengine_checkpoint_globals,
                                 mmengine_checkpoint_globals,
)
from .openmmlab_tools import (
                                 openmmlab_tool_path,
                                 package_resource,
                                 run_openmmlab_tool,
)
from .resume_checks import (
                                 check_optimizer_state,
                                 check_param_scheduler_states,
                                 check_resume_states,
                                 guard_mmengine_resume,
)

allow_mmengine_checkpoint_globals()
guard_mmengine_checkpoint_loaders()
guard_mmengine_resume()

__all__ = [
    'HISTORY_BUFFER_STATISTICS', 'CheckpointArray', 'CheckpointRefusedError',
    'allow_mmengine_checkpoint_globals', 'check_mmengine_checkpoint',
    'check_optimizer_state', 'check_param_scheduler_states',
    'check_resume_states', 'guard_mmengine_checkpoint_loaders',
    'guard_mmengine_resume', 'mmengine_checkpoint_globals',
    'openmmlab_tool_path', 'package_resource', 'run_openmmlab_tool'
]
