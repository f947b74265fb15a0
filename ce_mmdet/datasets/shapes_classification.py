"""Synthetic image classification sets: the embedded defaults for
pretraining and for the classifiers of the paper's Fig. 1.

:func:`generate_shapes_classification_set` draws one shape per image, with
the random size, rotation, colour and texture of the detection set
(:mod:`.synthetic_shapes`) on a textured background, and writes the images
in the folder layout MMPretrain's ``ImageNet`` dataset reads for ImageNet
itself (one folder per class, labels in sorted folder order). Two sets are
named here:

* :data:`EMBEDDED_CLASSIFICATION_SET` (pretraining): the detection set's
  four shapes (circle, square, star, triangle), 64x64;
* :data:`CIFAR_SCALE_SET` (Fig. 1): ten shapes (:data:`SHAPE_NAMES`: also
  pentagon, hexagon, four- and six-pointed stars, cross, semicircle), 32x32,
  20000 + 2000 images; at 32 px the polygons and the circle are close, as
  CIFAR-10's classes are.

The layout, for the four shapes::

    out_dir/
        train/circle/000001.png ...
        train/square/... train/star/... train/triangle/...
        val/circle/... ...

A config reads it with ``dict(type='ImageNet', data_root=out_dir,
split='train', metainfo=SHAPES_CLASSIFICATION_METAINFO, ...)``: the same
dataset class and pipeline code as ImageNet. Classes are balanced; image
``i`` of a split shows class ``i % K`` (K classes) and is drawn from its own
generator seeded with ``(seed, split, i)``, so a fixed seed gives
byte-identical files.

The set is written into a temporary sibling folder and renamed into place
when complete: ``out_dir`` either holds a whole set or nothing of this run.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from mmengine.logging import print_log
from mmengine.utils import ProgressBar

from .synthetic_shapes import (
    PNG_OPTIONS,
    SHAPE_NAMES,
    SHAPES_CLASSES,
    SPLITS,
    PathLike,
    _background,
    _random_object,
)

__all__ = [
    'CIFAR_SCALE_SET', 'EMBEDDED_CLASSIFICATION_SET', 'SHAPE_NAMES',
    'SHAPES_CLASSIFICATION_CLASSES', 'SHAPES_CLASSIFICATION_METAINFO',
    'generate_shapes_classification_set'
]

SHAPES_CLASSIFICATION_CLASSES = tuple(sorted(SHAPES_CLASSES))
"""Class names in label order: MMPretrain numbers class folders sorted."""

SHAPES_CLASSIFICATION_METAINFO = dict(classes=SHAPES_CLASSIFICATION_CLASSES)
"""``metainfo`` for MMPretrain's ``ImageNet`` / ``CustomDataset``."""

EMBEDDED_CLASSIFICATION_SET = dict(num_train=4000, num_val=400,
                                   image_size=64, seed=0,
                                   classes=SHAPES_CLASSIFICATION_CLASSES)
"""The set ``tools/run_demo.sh pretrain`` pretrains on (the configs in
``configs/pretrain/shapes/`` are sized for it)."""

CIFAR_SCALE_SET = dict(num_train=20000, num_val=2000, image_size=32, seed=0,
                       classes=SHAPE_NAMES)
"""The CIFAR-scale set of the Fig. 1 classifiers (10 classes, 32x32)."""

# Circumradius as a fraction of the image side: objects of 10-29 px radius
# at 64 px, the sizes of the detection set's objects (13-38 px at 160 px).
OBJECT_RADIUS_RANGE = (0.15, 0.45)
MIN_IMAGE_SIDE = 32


def _check_arguments(num_train: int, num_val: int, image_size: int,
                     seed: int, classes: tuple[str, ...]) -> None:
    """Raise ``ValueError`` naming the bad argument and how to fix it."""
    unknown = sorted(set(classes) - set(SHAPE_NAMES))
    if unknown or len(classes) < 2 or list(classes) != sorted(set(classes)):
        raise ValueError(
            f'classes must be at least two distinct shapes of {SHAPE_NAMES} '
            f'in sorted order (MMPretrain labels the class folders sorted), '
            f'got {tuple(classes)!r}' +
            (f'; unknown: {unknown}' if unknown else ''))

    def is_int(value: object) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(
            value, bool)

    for name, count in (('num_train', num_train), ('num_val', num_val)):
        if not is_int(count) or count < len(classes):
            raise ValueError(
                f'{name} must be an integer >= {len(classes)} (at least one '
                f'image per class), got {count!r}')
    if not is_int(image_size) or image_size < MIN_IMAGE_SIDE:
        raise ValueError(f'image_size must be an integer >= {MIN_IMAGE_SIDE}'
                         f' (the side of the square images), got '
                         f'{image_size!r}')
    if not is_int(seed) or seed < 0:
        raise ValueError(f'seed must be a non-negative integer, got {seed!r}')


def draw_classification_image(
        seed: int, split: str, index: int, image_size: int,
        classes: tuple[str, ...] = SHAPES_CLASSIFICATION_CLASSES
) -> tuple[np.ndarray, int]:
    """Image ``index`` of ``split``: an RGB uint8 array (H, W, 3) and its
    label (an index into ``classes``)."""
    rng = np.random.default_rng([seed, SPLITS.index(split), index])
    label = index % len(classes)
    image = _background(rng, image_size, image_size)
    background_colour = image.reshape(-1, 3).mean(axis=0)
    obj = _random_object(rng, image_size, image_size, background_colour,
                         radius_range=OBJECT_RADIUS_RANGE,
                         shape=classes[label])
    image[obj.rows, obj.cols][obj.mask] = obj.texture[obj.mask]
    return np.rint(image).astype(np.uint8), label


def generate_shapes_classification_set(
        out_dir: PathLike,
        num_train: int = EMBEDDED_CLASSIFICATION_SET['num_train'],
        num_val: int = EMBEDDED_CLASSIFICATION_SET['num_val'],
        image_size: int = EMBEDDED_CLASSIFICATION_SET['image_size'],
        seed: int = EMBEDDED_CLASSIFICATION_SET['seed'],
        show_progress: bool = True,
        classes: tuple[str, ...] = SHAPES_CLASSIFICATION_CLASSES
) -> dict[str, str]:
    """Write the shapes classification set in MMPretrain's folder layout.

    Args:
        out_dir: Root folder of the set. An existing one is replaced only
            once the new set is complete.
        num_train: Number of training images (>= one per class; balanced
            classes).
        num_val: Number of validation images (>= one per class).
        image_size: Side of the square images (>= 32).
        seed: Seed of the whole set; equal arguments give identical files.
        show_progress: Show an ``mmengine`` progress bar per split.
        classes: The shapes, sorted (their folder names; labels in this
            order): :data:`SHAPES_CLASSIFICATION_CLASSES` (default) or
            :data:`SHAPE_NAMES` (:data:`CIFAR_SCALE_SET`'s ten).

    Returns:
        Absolute paths (str): ``data_root``, ``train_dir`` and ``val_dir``.

    Raises:
        ValueError: An argument is out of range; the message names it.
    """
    classes = tuple(classes)
    _check_arguments(num_train, num_val, image_size, seed, classes)
    root = Path(out_dir).expanduser().resolve()
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f'.{root.name}.', dir=root.parent))
    try:
        for split, num_images in zip(SPLITS, (num_train, num_val)):
            print_log(
                f'generating {num_images} {split} images of size '
                f'{image_size}x{image_size} into {root / split}',
                logger='current')
            for name in classes:
                (staging / split / name).mkdir(parents=True)
            progress = (ProgressBar(num_images, file=sys.stdout)
                        if show_progress else None)
            for index in range(num_images):
                image, label = draw_classification_image(
                    seed, split, index, image_size, classes)
                path = (staging / split / classes[label]
                        / f'{index + 1:06d}.png')
                if not cv2.imwrite(str(path), image[..., ::-1], PNG_OPTIONS):
                    raise OSError(f'could not write {path}')
                if progress is not None:
                    progress.update()
            if progress is not None:
                sys.stdout.write('\n')
        # Swap the complete set in; an earlier one is removed only after.
        previous = None
        if root.exists():
            previous = Path(tempfile.mkdtemp(prefix=f'.{root.name}.old.',
                                             dir=root.parent))
            os.replace(root, previous / root.name)
        os.replace(staging, root)
        if previous is not None:
            shutil.rmtree(previous)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    print_log(f'wrote {root} ({num_train} train / {num_val} val images, '
              f'{len(classes)} classes)',
              logger='current')
    return dict(data_root=str(root), train_dir=str(root / 'train'),
                val_dir=str(root / 'val'))
