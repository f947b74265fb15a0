"""Checkpoint converters (library side of tools/model_converters/)."""
from .cenet import (
    CENetCheckpointError,
    convert_cenet_checkpoint,
    convert_cenet_state_dict,
    file_sha256,
    infer_depth,
    load_cenet_state_dict,
    save_atomically,
)

__all__ = [
    'CENetCheckpointError', 'convert_cenet_checkpoint',
    'convert_cenet_state_dict', 'file_sha256', 'infer_depth',
    'load_cenet_state_dict', 'save_atomically'
]
