"""Deployment: export a detector's tensor part to ONNX, checked by
onnxruntime."""
from .onnx_export import (
    EXPORT_PARTS,
    BackboneNeck,
    OnnxCheck,
    OnnxMismatchError,
    check_onnx,
    detector_part,
    export_and_check_onnx,
    export_onnx,
)

__all__ = [
    'EXPORT_PARTS', 'BackboneNeck', 'OnnxCheck', 'OnnxMismatchError',
    'check_onnx', 'detector_part', 'export_and_check_onnx', 'export_onnx'
]
