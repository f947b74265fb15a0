"""A synthetic COCO-format instance segmentation set: the embedded default
data.

:func:`generate_shapes_dataset` draws images of circles, squares, triangles and
stars with random size, rotation, colour and texture on textured backgrounds,
and writes them with exact instance masks in the COCO layout that
MMDetection's ``CocoDataset`` reads::

    out_dir/
        train/000001.png ...
        val/000001.png ...
        annotations/instances_train.json
        annotations/instances_val.json

Objects are painted in order, so later objects occlude earlier ones: every
instance's mask is its *visible* part, and instances left with too little of
themselves visible are removed from the image altogether (they are neither
annotated nor painted, so no pixel of an object is unlabelled). The masks come
from the same label map that paints the image, so they are pixel exact; they
are stored as compressed COCO RLE, which ``LoadAnnotations`` decodes with its
default ``poly2mask=True``.

Every image is drawn from its own random generator seeded with
``(seed, split, index)``, so a fixed seed gives byte-identical files and an
image does not depend on how many images come before or after it.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import cv2
import numpy as np
from mmengine.logging import print_log
from mmengine.utils import ProgressBar
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from ce_mmdet.utils.atomic_files import write_atomically

__all__ = [
    'EMBEDDED_DEFAULT_SET', 'SHAPES_CLASSES', 'SHAPES_METAINFO',
    'generate_shapes_dataset'
]

SHAPES_CLASSES = ('circle', 'square', 'triangle', 'star')
"""Class names in category-id order (ids 1..4), for configs' ``metainfo``."""

SHAPES_METAINFO = dict(
    classes=SHAPES_CLASSES,
    palette=[(220, 20, 60), (0, 128, 255), (0, 200, 80), (255, 190, 0)])
"""``metainfo`` for ``CocoDataset``: the classes plus a fixed drawing
palette."""

EMBEDDED_DEFAULT_SET = dict(num_train=1000, num_val=100, image_size=(160, 160),
                            objects_per_image=(2, 6), seed=0)
"""The embedded default: the set ``tools/run_demo.sh`` and the comparison
command train on (the configs in ``configs/shapes/`` are sized for it), and
the defaults of ``tools/generate_shapes_dataset.py``."""

SPLITS = ('train', 'val')
# MMDetection's default ``filter_cfg`` drops smaller images.
MIN_IMAGE_SIDE = 32
# Circumradius of an object as a fraction of the shorter image side.
OBJECT_RADIUS_RANGE = (0.08, 0.24)
MIN_OBJECT_RADIUS_PX = 4.0
# Object colours are redrawn until this far (L1, 0..765) from the background.
MIN_COLOUR_CONTRAST = 120.0
PNG_OPTIONS = [cv2.IMWRITE_PNG_COMPRESSION, 3]
MAX_LAYOUT_ATTEMPTS = 100

PathLike = Union[str, os.PathLike]


@dataclass
class _PaintedObject:
    """One object before occlusion: its full mask and texture in a window."""

    category_id: int
    rows: slice
    cols: slice
    mask: np.ndarray  # bool (h, w) over the window
    texture: np.ndarray  # float32 (h, w, 3) RGB over the window

    @property
    def full_area(self) -> int:
        return int(self.mask.sum())


# --------------------------------------------------------------------------
# Textures: float32 RGB in [0, 255] over a grid of pixel centres.
# --------------------------------------------------------------------------


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 255, size=3).astype(np.float32)


def _contrasting_colour(rng: np.random.Generator,
                        avoid: np.ndarray) -> np.ndarray:
    """A random colour, redrawn a few times while it is close to ``avoid``."""
    colour = _random_colour(rng)
    for _ in range(10):
        if np.abs(colour - avoid).sum() >= MIN_COLOUR_CONTRAST:
            break
        colour = _random_colour(rng)
    return colour


def _projection(ys: np.ndarray, xs: np.ndarray, angle: float) -> np.ndarray:
    """Coordinate of each pixel centre along the direction ``angle``."""
    return (np.cos(angle) * xs[None, :] + np.sin(angle) * ys[:, None]).astype(
        np.float32)


def _blend(colour_a: np.ndarray, colour_b: np.ndarray,
           weight_b: np.ndarray) -> np.ndarray:
    weight_b = weight_b[..., None]
    return colour_a * (1 - weight_b) + colour_b * weight_b


def _texture(rng: np.random.Generator, ys: np.ndarray, xs: np.ndarray,
             colour_a: np.ndarray, colour_b: np.ndarray,
             scale: float) -> np.ndarray:
    """A random texture built from two colours.

    ``scale`` (pixels) sets the typical stripe period / checker cell size.
    """
    kind = rng.integers(5)
    angle = rng.uniform(0, np.pi)
    if kind == 0:  # flat colour
        texture = np.broadcast_to(colour_a, (len(ys), len(xs), 3))
    elif kind == 1:  # linear gradient across the region
        t = _projection(ys, xs, angle)
        span = max(float(t.max() - t.min()), 1.0)
        texture = _blend(colour_a, colour_b, (t - t.min()) / span)
    elif kind == 2:  # stripes
        period = rng.uniform(0.25, 1.0) * scale
        phase = _projection(ys, xs, angle) / period
        texture = _blend(colour_a, colour_b,
                         (np.floor(phase) % 2).astype(np.float32))
    elif kind == 3:  # checkerboard
        cell = rng.uniform(0.15, 0.5) * scale
        u = np.floor(_projection(ys, xs, angle) / cell)
        v = np.floor(_projection(ys, xs, angle + np.pi / 2) / cell)
        texture = _blend(colour_a, colour_b, ((u + v) % 2).astype(np.float32))
    else:  # smooth sinusoidal waves between the two colours
        period = rng.uniform(0.5, 2.0) * scale
        wave = 0.5 + 0.5 * np.sin(2 * np.pi * _projection(ys, xs, angle) /
                                  period)
        texture = _blend(colour_a, colour_b, wave)
    noise_sigma = rng.choice([0.0, rng.uniform(3, 12), rng.uniform(15, 35)])
    if noise_sigma > 0:
        texture = texture + rng.normal(
            0, noise_sigma, size=texture.shape).astype(np.float32)
    return np.clip(texture, 0, 255).astype(np.float32)


def _background(rng: np.random.Generator, height: int,
                width: int) -> np.ndarray:
    ys = np.arange(height, dtype=np.float32) + 0.5
    xs = np.arange(width, dtype=np.float32) + 0.5
    return _texture(rng, ys, xs, _random_colour(rng), _random_colour(rng),
                    scale=min(height, width) / 4)


# --------------------------------------------------------------------------
# Shapes: exact rasterisation at pixel centres.
# --------------------------------------------------------------------------


def _polygon_mask(vertices: np.ndarray, ys: np.ndarray,
                  xs: np.ndarray) -> np.ndarray:
    """Pixel centres inside a simple polygon (even-odd rule), shape (h, w)."""
    py = ys[:, None]
    px = xs[None, :]
    inside = np.zeros((len(ys), len(xs)), dtype=bool)
    for (x0, y0), (x1, y1) in zip(vertices, np.roll(vertices, -1, axis=0)):
        if y0 == y1:
            continue  # a horizontal edge never crosses a pixel-centre row
        crosses = (y0 > py) != (y1 > py)
        x_cross = x0 + (py - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (px < x_cross)
    return inside


def _regular_vertices(cx: float, cy: float, radii: np.ndarray,
                      rotation: float) -> np.ndarray:
    angles = rotation + 2 * np.pi * np.arange(len(radii)) / len(radii)
    return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)],
                    axis=1)


# Shapes beyond the detection set's four (the 10-class classification set):
# regular polygons by their number of sides, stars by their number of points
# and the range of their inner radius (a fraction of the outer one).
_POLYGON_SIDES = {'triangle': 3, 'square': 4, 'pentagon': 5, 'hexagon': 6}
_STAR_POINTS = {'four_point_star': (4, (0.3, 0.45)), 'star': (5, (0.38, 0.55)),
                'six_point_star': (6, (0.45, 0.6))}
CROSS_ARM_HALF_WIDTH = (0.22, 0.36)  # fraction of the circumradius
SHAPE_NAMES = ('circle', 'cross', 'four_point_star', 'hexagon', 'pentagon',
               'semicircle', 'six_point_star', 'square', 'star', 'triangle')
"""Every shape the generators draw, sorted."""


def _rotated(cx: float, cy: float, points: np.ndarray,
             rotation: float) -> np.ndarray:
    """``points`` (K, 2) around the origin, rotated and moved to (cx, cy)."""
    cos, sin = np.cos(rotation), np.sin(rotation)
    return np.stack([cx + cos * points[:, 0] - sin * points[:, 1],
                     cy + sin * points[:, 0] + cos * points[:, 1]], axis=1)


def _shape_vertices(name: str, cx: float, cy: float, radius: float,
                    rotation: float,
                    rng: np.random.Generator) -> np.ndarray | None:
    """Polygon of the shape ``name`` (one of :data:`SHAPE_NAMES`) of
    circumradius ``radius``; None for the circle."""
    if name == 'circle':
        return None
    if name in _POLYGON_SIDES:
        return _regular_vertices(cx, cy, np.full(_POLYGON_SIDES[name], radius),
                                 rotation)
    if name in _STAR_POINTS:
        points, inner_range = _STAR_POINTS[name]
        inner = radius * rng.uniform(*inner_range)
        return _regular_vertices(cx, cy, np.tile([radius, inner], points),
                                 rotation)
    if name == 'cross':  # a plus sign whose arm corners lie on the circle
        w = radius * rng.uniform(*CROSS_ARM_HALF_WIDTH)
        arm = np.sqrt(radius**2 - w**2)
        quarter = np.array([[arm, -w], [arm, w], [w, w]])
        turns = [quarter @ np.array([[np.cos(a), np.sin(a)],
                                     [-np.sin(a), np.cos(a)]])
                 for a in np.arange(4) * np.pi / 2]
        return _rotated(cx, cy, np.concatenate(turns), rotation)
    if name == 'semicircle':  # the flat side through the centre
        angles = np.linspace(0, np.pi, 25)
        return _rotated(cx, cy, radius * np.stack(
            [np.cos(angles), np.sin(angles)], axis=1), rotation)
    raise ValueError(f'unknown shape {name!r}; known: {SHAPE_NAMES}')


def _random_object(
        rng: np.random.Generator,
        height: int,
        width: int,
        background_colour: np.ndarray,
        category_id: int | None = None,
        radius_range: tuple[float, float] = OBJECT_RADIUS_RANGE,
        shape: str | None = None) -> _PaintedObject:
    """A shape of random size, rotation, position and texture, of class
    ``category_id`` (1-based, in :data:`SHAPES_CLASSES`; random when None)
    and circumradius drawn from ``radius_range`` (fractions of the shorter
    image side). ``shape`` (one of :data:`SHAPE_NAMES`) draws that shape
    instead of ``category_id``'s; ``category_id`` is then 0."""
    if shape is not None:
        category_id = 0
    elif category_id is None:
        category_id = int(rng.integers(1, len(SHAPES_CLASSES) + 1))
    short_side = min(height, width)
    radius = max(rng.uniform(*radius_range) * short_side, MIN_OBJECT_RADIUS_PX)
    # The whole shape lies inside the image.
    cx = rng.uniform(radius + 1, width - radius - 1)
    cy = rng.uniform(radius + 1, height - radius - 1)
    rotation = rng.uniform(0, 2 * np.pi)
    if shape is None:
        shape = SHAPES_CLASSES[category_id - 1]
    vertices = _shape_vertices(shape, cx, cy, radius, rotation, rng)

    rows = slice(max(int(np.floor(cy - radius)) - 1, 0),
                 min(int(np.ceil(cy + radius)) + 1, height))
    cols = slice(max(int(np.floor(cx - radius)) - 1, 0),
                 min(int(np.ceil(cx + radius)) + 1, width))
    ys = np.arange(rows.start, rows.stop, dtype=np.float64) + 0.5
    xs = np.arange(cols.start, cols.stop, dtype=np.float64) + 0.5
    if vertices is None:
        mask = (ys[:, None] - cy)**2 + (xs[None, :] - cx)**2 <= radius**2
    else:
        mask = _polygon_mask(vertices, ys, xs)

    colour_a = _contrasting_colour(rng, background_colour)
    colour_b = _contrasting_colour(rng, background_colour)
    texture = _texture(rng, ys.astype(np.float32), xs.astype(np.float32),
                       colour_a, colour_b, scale=radius)
    return _PaintedObject(category_id, rows, cols, mask, texture)


# --------------------------------------------------------------------------
# One image: layout, occlusion and annotations.
# --------------------------------------------------------------------------


def _label_map(objects: list[_PaintedObject], height: int,
               width: int) -> np.ndarray:
    """Index (1-based) of the topmost object at every pixel, 0 for none."""
    labels = np.zeros((height, width), dtype=np.int32)
    for index, obj in enumerate(objects, start=1):
        labels[obj.rows, obj.cols][obj.mask] = index
    return labels


def _visible_objects(objects: list[_PaintedObject], height: int, width: int,
                     min_visible_fraction: float,
                     min_visible_area: int) -> list[_PaintedObject]:
    """The objects that stay visible enough under the ones drawn after them.

    Removing an object only uncovers the objects below it, so one pass
    suffices: the survivors are still visible enough without the removed ones.
    """
    labels = _label_map(objects, height, width)
    visible_area = np.bincount(labels.ravel(), minlength=len(objects) + 1)
    return [
        obj for index, obj in enumerate(objects, start=1)
        if visible_area[index] >= max(min_visible_area,
                                      min_visible_fraction * obj.full_area)
    ]


def _tight_bbox(mask: np.ndarray) -> list[int]:
    """COCO ``[x, y, w, h]`` of the pixels set in a 2-D mask."""
    row_hits = np.flatnonzero(mask.any(axis=1))
    col_hits = np.flatnonzero(mask.any(axis=0))
    x, y = int(col_hits[0]), int(row_hits[0])
    return [x, y, int(col_hits[-1]) - x + 1, int(row_hits[-1]) - y + 1]


def _draw_image(
    rng: np.random.Generator, height: int, width: int,
    objects_per_image: tuple[int, int], min_visible_fraction: float,
    min_visible_area: int
) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """An RGB uint8 image and its instances as (category_id, visible mask)."""
    background = _background(rng, height, width)
    background_colour = background.reshape(-1, 3).mean(axis=0)
    for _ in range(MAX_LAYOUT_ATTEMPTS):
        num_objects = int(
            rng.integers(objects_per_image[0], objects_per_image[1] + 1))
        objects = [
            _random_object(rng, height, width, background_colour)
            for _ in range(num_objects)
        ]
        objects = _visible_objects(objects, height, width,
                                   min_visible_fraction, min_visible_area)
        if objects:
            break
    else:  # pragma: no cover - the topmost object is always fully visible
        raise RuntimeError('could not place a visible object; '
                           'lower min_visible_area')

    image = background.copy()
    for obj in objects:
        image[obj.rows, obj.cols][obj.mask] = obj.texture[obj.mask]
    labels = _label_map(objects, height, width)
    instances = [(obj.category_id, labels == index)
                 for index, obj in enumerate(objects, start=1)]
    return np.rint(image).astype(np.uint8), instances


def _annotation(mask: np.ndarray, category_id: int, image_id: int,
                annotation_id: int) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {
        'id': annotation_id,
        'image_id': image_id,
        'category_id': category_id,
        'segmentation': {
            'size': [int(s) for s in rle['size']],
            'counts': rle['counts'].decode('ascii'),
        },
        'area': int(mask.sum()),
        'bbox': _tight_bbox(mask),
        'iscrowd': 0,
    }


# --------------------------------------------------------------------------
# Files: self-validation (written with ce_mmdet.utils.atomic_files).
# --------------------------------------------------------------------------


def _png_size(path: Path) -> tuple[int, int]:
    """(height, width) read from a PNG's IHDR chunk."""
    with open(path, 'rb') as f:
        header = f.read(24)
    if header[:8] != b'\x89PNG\r\n\x1a\n':
        raise ValueError(f'{path} is not a PNG file')
    width = int.from_bytes(header[16:20], 'big')
    height = int.from_bytes(header[20:24], 'big')
    return height, width


def _validate_coco_file(ann_file: Path, img_dir: Path) -> None:
    """Check a written annotation file with pycocotools; raise if it is bad.

    The file must load with ``COCO``, carry the four shape categories, name
    existing images of the recorded size, and every annotation's mask must
    decode to that size with its ``bbox`` the tight box of the mask and its
    ``area`` the mask's pixel count.
    """

    def fail(reason: str) -> None:
        raise RuntimeError(
            f'generated annotations failed validation ({ann_file.name}): '
            f'{reason}')

    with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints progress
        coco = COCO(str(ann_file))
    categories = {cat['id']: cat['name'] for cat in coco.dataset['categories']}
    expected = dict(enumerate(SHAPES_CLASSES, start=1))
    if categories != expected:
        fail(f'categories {categories} != {expected}')
    for image_id, image in coco.imgs.items():
        image_path = img_dir / image['file_name']
        if not image_path.is_file():
            fail(f'image {image_path} is missing')
        if _png_size(image_path) != (image['height'], image['width']):
            fail(f'image {image_path} size differs from the annotation')
        if not coco.getAnnIds(imgIds=[image_id]):
            fail(f'image {image_id} has no instances')
    for ann in coco.anns.values():
        image = coco.imgs[ann['image_id']]
        mask = coco.annToMask(ann)
        if mask.shape != (image['height'], image['width']):
            fail(f'annotation {ann["id"]}: mask shape {mask.shape}')
        if ann['iscrowd'] != 0 or ann['category_id'] not in expected:
            fail(f'annotation {ann["id"]}: iscrowd/category_id')
        if not mask.any() or ann['area'] != int(mask.sum()):
            fail(f'annotation {ann["id"]}: area {ann["area"]} != '
                 f'mask area {int(mask.sum())}')
        if ann['bbox'] != _tight_bbox(mask):
            fail(f'annotation {ann["id"]}: bbox {ann["bbox"]} != tight box '
                 f'{_tight_bbox(mask)} of its mask')


# --------------------------------------------------------------------------
# Public entry point.
# --------------------------------------------------------------------------


def _check_arguments(num_train: int, num_val: int,
                     image_size: tuple[int, int], seed: int,
                     objects_per_image: tuple[int, int],
                     min_visible_fraction: float,
                     min_visible_area: int) -> None:
    """Raise ``ValueError`` naming the bad argument and how to fix it."""

    def is_int(value: object) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(
            value, bool)

    for name, count in (('num_train', num_train), ('num_val', num_val)):
        if not is_int(count) or count < 1:
            raise ValueError(f'{name} must be a positive integer (the number '
                             f'of images in the split), got {count!r}')
    if (not isinstance(image_size, (tuple, list)) or len(image_size) != 2
            or not all(is_int(side) for side in image_size)):
        raise ValueError('image_size must be a pair of integers (height, '
                         f'width), e.g. (320, 320); got {image_size!r}')
    if min(image_size) < MIN_IMAGE_SIDE:
        raise ValueError(
            f'image_size must be at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} '
            '(MMDetection drops smaller images with its default '
            f'filter_cfg min_size=32); got {tuple(image_size)}')
    if not is_int(seed) or seed < 0:
        raise ValueError(f'seed must be a non-negative integer, got {seed!r}')
    if (not isinstance(objects_per_image, (tuple, list))
            or len(objects_per_image) != 2
            or not all(is_int(n) for n in objects_per_image)
            or not 1 <= objects_per_image[0] <= objects_per_image[1]):
        raise ValueError(
            'objects_per_image must be a pair (min, max) of integers with '
            f'1 <= min <= max, e.g. (2, 6); got {objects_per_image!r}')
    if (not isinstance(min_visible_fraction, (int, float, np.floating))
            or not 0 <= min_visible_fraction <= 1):
        raise ValueError('min_visible_fraction must be within [0, 1] (the '
                         'part of an object that must stay visible), got '
                         f'{min_visible_fraction!r}')
    if not is_int(min_visible_area) or min_visible_area < 1:
        raise ValueError('min_visible_area must be a positive integer number '
                         f'of pixels, got {min_visible_area!r}')


def _generate_split(split: str, num_images: int, image_dir: Path,
                    ann_file: Path, image_size: tuple[int, int], seed: int,
                    objects_per_image: tuple[int, int],
                    min_visible_fraction: float, min_visible_area: int,
                    show_progress: bool) -> int:
    """Write one split's images and annotation file; return #instances."""
    height, width = image_size
    split_code = SPLITS.index(split)
    images, annotations = [], []
    progress = ProgressBar(num_images, file=sys.stdout) if show_progress \
        else None
    for index in range(num_images):
        rng = np.random.default_rng([seed, split_code, index])
        image, instances = _draw_image(rng, height, width, objects_per_image,
                                       min_visible_fraction, min_visible_area)
        image_id = index + 1
        file_name = f'{image_id:06d}.png'
        ok, png = cv2.imencode('.png', image[..., ::-1], PNG_OPTIONS)
        if not ok:  # pragma: no cover - encoding a uint8 array cannot fail
            raise RuntimeError(f'could not encode {file_name} as PNG')
        write_atomically(image_dir / file_name,
                         lambda tmp: Path(tmp).write_bytes(png.tobytes()))
        images.append({
            'id': image_id,
            'file_name': file_name,
            'height': height,
            'width': width,
        })
        for category_id, mask in instances:
            annotations.append(
                _annotation(mask, category_id, image_id,
                            len(annotations) + 1))
        if progress is not None:
            progress.update()
    if progress is not None:
        sys.stdout.write('\n')

    coco_dict = {
        'info': {
            'description': 'ce_mmdet synthetic shapes '
            f'({split} split of seed {seed})',
            'version': '1.0',
        },
        'licenses': [],
        'images': images,
        'annotations': annotations,
        'categories': [{
            'id': category_id,
            'name': name,
            'supercategory': 'shape'
        } for category_id, name in enumerate(SHAPES_CLASSES, start=1)],
    }
    written = {image['file_name'] for image in images}
    stray = sorted(p.name for p in image_dir.glob('*.png')
                   if p.name not in written)
    if stray:
        print_log(
            f'{image_dir} holds {len(stray)} PNG files this run did not '
            f'write (e.g. {stray[0]}); they are not in {ann_file.name}. '
            'Use an empty --out-dir to avoid them.',
            logger='current',
            level=logging.WARNING)
    def write_json(tmp: str) -> None:
        with open(tmp, 'w', encoding='utf-8') as f:
            json.dump(coco_dict, f, separators=(',', ':'))

    write_atomically(
        ann_file, write_json,
        validate=lambda tmp: _validate_coco_file(Path(tmp), image_dir))
    return len(annotations)


def generate_shapes_dataset(out_dir: PathLike,
                            num_train: int = 400,
                            num_val: int = 100,
                            image_size: tuple[int, int] = (320, 320),
                            seed: int = 0,
                            objects_per_image: tuple[int, int] = (2, 6),
                            min_visible_fraction: float = 0.3,
                            min_visible_area: int = 20,
                            show_progress: bool = True) -> dict[str, str]:
    """Write the synthetic shapes set in COCO instance-segmentation format.

    Args:
        out_dir: Root folder; created if needed. Files of an earlier run with
            the same names are replaced; the annotation files are deleted
            first and each is written last (atomically) for its split, so a
            run that stops early leaves no annotation file that could describe
            images it did not write.
        num_train: Number of training images (>= 1).
        num_val: Number of validation images (>= 1).
        image_size: ``(height, width)`` of every image, each side >= 32.
        seed: Seed of the whole set; the same arguments give byte-identical
            files.
        objects_per_image: ``(min, max)`` number of objects drawn per image
            before occlusion removes the hidden ones.
        min_visible_fraction: An object is dropped (neither drawn nor
            annotated) when less than this fraction of it stays visible
            under the objects drawn after it.
        min_visible_area: ... or when fewer than this many of its pixels stay
            visible.
        show_progress: Show an ``mmengine`` progress bar per split.

    Returns:
        Absolute paths (str) of what was written: ``data_root`` (=
        ``out_dir``), ``train_img_dir``, ``val_img_dir``, ``train_ann_file``
        and ``val_ann_file``.

    Raises:
        ValueError: An argument is out of range; the message names it.
        RuntimeError: The written annotations failed their pycocotools check
            (the annotation file is then not written).
    """
    _check_arguments(num_train, num_val, image_size, seed, objects_per_image,
                     min_visible_fraction, min_visible_area)
    image_size = (int(image_size[0]), int(image_size[1]))
    root = Path(out_dir).expanduser().resolve()
    paths = {'data_root': str(root)}
    ann_dir = root / 'annotations'
    ann_dir.mkdir(parents=True, exist_ok=True)
    # Delete the annotations of an earlier run first: if this run stops
    # half-way, no annotation file is left to describe a mix of old and new
    # images, and a complete set is one with both annotation files.
    for split in SPLITS:
        old_ann_file = ann_dir / f'instances_{split}.json'
        if old_ann_file.exists():
            print_log(f'replacing {old_ann_file}', logger='current')
            old_ann_file.unlink()
    for split, num_images in zip(SPLITS, (num_train, num_val)):
        image_dir = root / split
        image_dir.mkdir(parents=True, exist_ok=True)
        ann_file = ann_dir / f'instances_{split}.json'
        print_log(
            f'generating {num_images} {split} images of size '
            f'{image_size[0]}x{image_size[1]} in {image_dir}',
            logger='current')
        num_instances = _generate_split(split, num_images, image_dir,
                                        ann_file, image_size, seed,
                                        tuple(objects_per_image),
                                        min_visible_fraction,
                                        min_visible_area, show_progress)
        print_log(
            f'wrote {ann_file} ({num_images} images, {num_instances} '
            'instances, validated with pycocotools)',
            logger='current')
        paths[f'{split}_img_dir'] = str(image_dir)
        paths[f'{split}_ann_file'] = str(ann_file)
    return paths
