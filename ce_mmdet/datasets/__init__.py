"""Datasets: the embedded synthetic shapes set (COCO instance segmentation)."""
from .synthetic_shapes import (EMBEDDED_DEFAULT_SET, SHAPES_CLASSES,
                               SHAPES_METAINFO, generate_shapes_dataset)

__all__ = [
    'EMBEDDED_DEFAULT_SET', 'SHAPES_CLASSES', 'SHAPES_METAINFO',
    'generate_shapes_dataset'
]
