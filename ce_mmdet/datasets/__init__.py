"""Datasets: the embedded synthetic shapes set (COCO instance segmentation)."""
from .synthetic_shapes import (SHAPES_CLASSES, SHAPES_METAINFO,
                               generate_shapes_dataset)

__all__ = ['SHAPES_CLASSES', 'SHAPES_METAINFO', 'generate_shapes_dataset']
