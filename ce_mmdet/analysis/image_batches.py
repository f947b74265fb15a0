"""Preprocessed images for the activation analysis: the config's val split,
or image files from a folder (for a backbone-only checkpoint).

Both go through the config's own test pipeline (resize, pack) and the
detector's ``data_preprocessor`` (normalise, pad), one image per batch, so
the backbone sees exactly what it sees in evaluation.
"""
from __future__ import annotations

import copy
import os
import os.path as osp
from typing import Iterator

from mmengine.config import Config
from torch import Tensor, nn

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def val_split_images(cfg: Config, model: nn.Module, num_images: int,
                     evenly_spaced: bool = False) -> Iterator[Tensor]:
    """The first ``num_images`` images of the config's ``val_dataloader``
    (``test_dataloader`` if it has none), preprocessed: (1, 3, H, W) each.
    ``evenly_spaced``: ``num_images`` images evenly spaced over the split
    instead (a classification split is listed class by class).

    Raises:
        FileNotFoundError: if the split's annotation file is missing.
    """
    from mmengine.runner import Runner

    loader_cfg = cfg.get('val_dataloader') or cfg.get('test_dataloader')
    if not loader_cfg:
        raise ValueError('the config has no val_dataloader/test_dataloader; '
                         'pass an image folder instead')
    loader_cfg = copy.deepcopy(loader_cfg)
    dataset_cfg = loader_cfg['dataset']
    ann_file = dataset_cfg.get('ann_file')
    if ann_file:
        path = ann_file if osp.isabs(ann_file) else osp.join(
            dataset_cfg.get('data_root') or '', ann_file)
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'the val split\'s annotations {path!r} are missing: '
                'generate the data set (for the shapes configs: '
                'tools/generate_shapes_dataset.py or tools/run_demo.sh), '
                'or pass a folder of images instead (--image-dir)')
    dataset_cfg['indices'] = subset_indices(dataset_cfg, num_images,
                                            evenly_spaced)
    loader_cfg.update(batch_size=1, num_workers=0, persistent_workers=False)
    loader_cfg.pop('batch_sampler', None)
    loader_cfg['sampler'] = dict(type='DefaultSampler', shuffle=False)
    loader = Runner.build_dataloader(loader_cfg)
    for batch in loader:
        yield model.data_preprocessor(batch, False)['inputs']


def subset_indices(dataset_cfg: dict, num_images: int,
                   evenly_spaced: bool) -> int | list[int]:
    """The ``indices`` of a dataset config that keep ``num_images`` images:
    the first ones, or ``evenly_spaced`` over the split (then the dataset is
    built once to learn its length; its scope must be current)."""
    if not evenly_spaced:
        return num_images
    from mmengine.registry import DATASETS
    length = len(DATASETS.build(copy.deepcopy(dataset_cfg)))
    count = min(num_images, length)
    return sorted({round(i * (length - 1) / max(count - 1, 1))
                   for i in range(count)})


def folder_images(cfg: Config, model: nn.Module, image_dir: str,
                  num_images: int) -> Iterator[Tensor]:
    """The first ``num_images`` image files of ``image_dir`` (sorted by
    name), through the config's test pipeline: (1, 3, H, W) each."""
    from mmcv.transforms import Compose
    from mmdet.utils import get_test_pipeline_cfg

    if not osp.isdir(image_dir):
        raise FileNotFoundError(f'image folder {image_dir!r} not found')
    files = sorted(
        f for f in os.listdir(image_dir)
        if f.lower().endswith(IMAGE_EXTENSIONS))[:num_images]
    if not files:
        raise FileNotFoundError(
            f'no image files ({", ".join(IMAGE_EXTENSIONS)}) in {image_dir!r}')
    steps = [
        step for step in get_test_pipeline_cfg(cfg)
        if 'LoadAnnotations' not in str(step.get('type', ''))
    ]
    pipeline = Compose(steps)
    for index, name in enumerate(files):
        data = pipeline(dict(img_path=osp.join(image_dir, name), img_id=index))
        batch = dict(inputs=[data['inputs']],
                     data_samples=[data['data_samples']])
        yield model.data_preprocessor(batch, False)['inputs']
