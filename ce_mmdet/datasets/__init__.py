"""Datasets the project generates: the embedded synthetic shapes sets, for
detection (COCO instance segmentation) and for classification (pretraining
and the Fig. 1 classifiers, in MMPretrain's folder layout)."""
from .shapes_classification import (
    CIFAR_SCALE_SET,
    EMBEDDED_CLASSIFICATION_SET,
    SHAPE_NAMES,
    SHAPES_CLASSIFICATION_CLASSES,
    SHAPES_CLASSIFICATION_METAINFO,
    generate_shapes_classification_set,
)
from .synthetic_shapes import (
    EMBEDDED_DEFAULT_SET,
    SHAPES_CLASSES,
    SHAPES_METAINFO,
    generate_shapes_dataset,
)

__all__ = [
    'CIFAR_SCALE_SET', 'EMBEDDED_CLASSIFICATION_SET', 'EMBEDDED_DEFAULT_SET',
    'SHAPE_NAMES', 'SHAPES_CLASSES', 'SHAPES_CLASSIFICATION_CLASSES',
    'SHAPES_CLASSIFICATION_METAINFO', 'SHAPES_METAINFO',
    'generate_shapes_classification_set', 'generate_shapes_dataset'
]
