"""Tests of the synthetic shapes generator (ce_mmdet.datasets)."""
import contextlib
import importlib.util
import io
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from ce_mmdet.datasets import (
    SHAPES_CLASSES,
    SHAPES_METAINFO,
    generate_shapes_dataset,
    synthetic_shapes,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(num_train=3, num_val=2, image_size=(64, 80), show_progress=False)


def load_coco(ann_file: str) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(ann_file)


def all_files(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob('*')) if path.is_file()
    }


def tight_box(mask: np.ndarray) -> list[int]:
    rows, cols = np.nonzero(mask)
    return [
        int(cols.min()),
        int(rows.min()),
        int(cols.max() - cols.min() + 1),
        int(rows.max() - rows.min() + 1)
    ]


def test_layout_and_categories(tiny_shapes_dataset):
    paths = tiny_shapes_dataset
    root = Path(paths['data_root'])
    assert set(paths) == {
        'data_root', 'train_img_dir', 'val_img_dir', 'train_ann_file',
        'val_ann_file'
    }
    assert paths['train_ann_file'] == str(
        root / 'annotations' / 'instances_train.json')
    assert paths['val_img_dir'] == str(root / 'val')
    assert sorted(p.name for p in (root / 'annotations').iterdir()) == [
        'instances_train.json', 'instances_val.json'
    ]
    for split, num_images in (('train', 8), ('val', 4)):
        coco = load_coco(paths[f'{split}_ann_file'])
        assert [(c['id'], c['name']) for c in coco.dataset['categories']
                ] == [(1, 'circle'), (2, 'square'), (3, 'triangle'),
                      (4, 'star')]
        assert len(coco.imgs) == num_images
        assert sorted(p.name for p in Path(paths[f'{split}_img_dir']).iterdir()
                      ) == sorted(img['file_name']
                                  for img in coco.imgs.values())
        for image_id, info in coco.imgs.items():
            assert coco.getAnnIds(imgIds=[image_id]), 'image without objects'
            image = cv2.imread(
                str(Path(paths[f'{split}_img_dir']) / info['file_name']))
            assert image.shape == (info['height'], info['width'], 3) == (96,
                                                                         96,
                                                                         3)
    assert SHAPES_CLASSES == SHAPES_METAINFO['classes'] == (
        'circle', 'square', 'triangle', 'star')
    assert len(SHAPES_METAINFO['palette']) == len(SHAPES_CLASSES)


def test_masks_are_visible_parts_with_tight_boxes(tiny_shapes_dataset):
    categories_seen = set()
    num_instances = 0
    for split in ('train', 'val'):
        coco = load_coco(tiny_shapes_dataset[f'{split}_ann_file'])
        for image_id, info in coco.imgs.items():
            covered = np.zeros((info['height'], info['width']), dtype=int)
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=[image_id])):
                assert isinstance(ann['segmentation']['counts'], str)
                mask = coco.annToMask(ann).astype(bool)
                assert mask.shape == covered.shape
                assert ann['area'] == mask.sum() >= 20
                assert ann['bbox'] == tight_box(mask)
                assert ann['iscrowd'] == 0
                covered += mask
                categories_seen.add(ann['category_id'])
                num_instances += 1
            # Occlusion: every pixel belongs to at most one visible instance.
            assert covered.max() == 1
    assert categories_seen == {1, 2, 3, 4}
    assert num_instances >= 12


def test_objects_are_painted_inside_their_masks(tiny_shapes_dataset):
    """The background under an object's mask is replaced by the object."""
    coco = load_coco(tiny_shapes_dataset['train_ann_file'])
    ann = coco.loadAnns(coco.getAnnIds(imgIds=[1]))[0]
    mask = coco.annToMask(ann).astype(bool)
    image = cv2.imread(
        str(Path(tiny_shapes_dataset['train_img_dir']) / '000001.png'))
    inside = image[mask].astype(float).mean(axis=0)
    ring = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8))
    outside = image[(ring > 0) & ~mask].astype(float).mean(axis=0)
    assert np.abs(inside - outside).sum() > 20


def test_same_seed_gives_byte_identical_files(tmp_path):
    first = generate_shapes_dataset(tmp_path / 'a', seed=3, **SMALL)
    second = generate_shapes_dataset(tmp_path / 'b', seed=3, **SMALL)
    files = all_files(Path(first['data_root']))
    assert len(files) == 3 + 2 + 2
    assert files == all_files(Path(second['data_root']))

    other_seed = generate_shapes_dataset(tmp_path / 'c', seed=4, **SMALL)
    other_files = all_files(Path(other_seed['data_root']))
    assert other_files.keys() == files.keys()
    assert all(other_files[name] != files[name] for name in files)


def test_an_image_does_not_depend_on_the_split_length(tmp_path):
    longer = generate_shapes_dataset(tmp_path / 'long', **SMALL)
    shorter = generate_shapes_dataset(
        tmp_path / 'short', **{**SMALL, 'num_train': 1, 'num_val': 1})
    for split in ('train', 'val'):
        name = f'{split}/000001.png'
        assert (Path(longer['data_root']) / name).read_bytes() == (
            Path(shorter['data_root']) / name).read_bytes()
    # Same split index, different split: different images.
    root = Path(longer['data_root'])
    assert (root / 'train/000001.png').read_bytes() != (
        root / 'val/000001.png').read_bytes()


def test_polygon_rasterisation_is_exact_at_pixel_centres():
    centres = np.arange(10) + 0.5
    square = np.array([[2.0, 2.0], [6.0, 2.0], [6.0, 6.0], [2.0, 6.0]])
    mask = synthetic_shapes._polygon_mask(square, centres, centres)
    expected = np.zeros((10, 10), dtype=bool)
    expected[2:6, 2:6] = True
    np.testing.assert_array_equal(mask, expected)

    # A star is concave: its centre is inside, the notch between tips is not.
    star = synthetic_shapes._regular_vertices(
        50.0, 50.0, np.tile([40.0, 15.0], 5), rotation=0.0)
    centres = np.arange(100) + 0.5
    star_mask = synthetic_shapes._polygon_mask(star, centres, centres)
    notch = 50 + 30 * np.array([np.cos(np.pi / 5), np.sin(np.pi / 5)])
    assert star_mask[49, 49] and star_mask[50, 85]  # centre, tip at angle 0
    assert not star_mask[int(notch[1]), int(notch[0])]


@pytest.mark.parametrize(
    'kwargs, message',
    [
        (dict(num_train=0), r'num_train must be a positive integer.*got 0'),
        (dict(num_val=-2), r'num_val must be a positive integer.*got -2'),
        (dict(num_train=2.5), r'num_train must be a positive integer'),
        (dict(image_size=(16, 64)), r'image_size must be at least 32x32'),
        (dict(image_size=(64, )), r'image_size must be a pair of integers'),
        (dict(seed=-1), r'seed must be a non-negative integer'),
        (dict(objects_per_image=(4, 2)),
         r'objects_per_image must be a pair \(min, max\).*1 <= min <= max'),
        (dict(min_visible_fraction=1.5),
         r'min_visible_fraction must be within \[0, 1\]'),
        (dict(min_visible_area=0), r'min_visible_area must be a positive'),
    ])
def test_bad_arguments_are_refused_before_writing(tmp_path, kwargs, message):
    arguments = {**SMALL, **kwargs}
    with pytest.raises(ValueError, match=message):
        generate_shapes_dataset(tmp_path / 'out', **arguments)
    assert not (tmp_path / 'out').exists()


def test_interrupted_annotation_write_leaves_no_annotation_file(
        tmp_path, monkeypatch):
    # A complete earlier set must not survive next to the new images either.
    generate_shapes_dataset(tmp_path, **SMALL)

    def interrupted_dump(*args, **kwargs):
        raise KeyboardInterrupt('simulated interruption while writing')

    monkeypatch.setattr(synthetic_shapes.json, 'dump', interrupted_dump)
    with pytest.raises(KeyboardInterrupt):
        generate_shapes_dataset(tmp_path, seed=1, **SMALL)
    assert list((tmp_path / 'annotations').iterdir()) == []
    assert not list(tmp_path.rglob('*.tmp*'))


def test_annotations_failing_validation_are_not_written(tmp_path, monkeypatch):
    real_annotation = synthetic_shapes._annotation

    def annotation_with_loose_box(*args, **kwargs):
        ann = real_annotation(*args, **kwargs)
        ann['bbox'][2] += 1
        return ann

    monkeypatch.setattr(synthetic_shapes, '_annotation',
                        annotation_with_loose_box)
    with pytest.raises(RuntimeError, match=r'bbox .* != tight box'):
        generate_shapes_dataset(tmp_path, **SMALL)
    assert list((tmp_path / 'annotations').iterdir()) == []


def load_command_line_tool():
    spec = importlib.util.spec_from_file_location(
        'generate_shapes_dataset_tool',
        REPO_ROOT / 'tools' / 'generate_shapes_dataset.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_command_line_tool(tmp_path, monkeypatch, capsys):
    tool = load_command_line_tool()
    monkeypatch.setattr('sys.argv', [
        'generate_shapes_dataset.py', '--out-dir',
        str(tmp_path), '--num-train', '2', '--num-val', '1', '--image-size',
        '48', '64', '--seed', '5', '--no-progress'
    ])
    tool.main()
    # The paths are printed as JSON last. The log lines may go to another
    # stream: MMLogger keeps the handler of the first 'ce_mmdet' instance.
    output = capsys.readouterr().out
    paths = json.loads(re.search(r'^\{.*\}', output, re.M | re.S).group())
    coco = load_coco(paths['train_ann_file'])
    assert len(coco.imgs) == 2
    assert (coco.imgs[1]['height'], coco.imgs[1]['width']) == (48, 64)

    monkeypatch.setattr(
        'sys.argv',
        ['generate_shapes_dataset.py', '--out-dir',
         str(tmp_path), '--num-val', '0'])
    with pytest.raises(SystemExit) as exit_info:
        tool.main()
    assert exit_info.value.code == 2
    assert 'num_val must be a positive integer' in capsys.readouterr().err
