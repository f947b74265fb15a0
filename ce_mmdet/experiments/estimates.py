"""How long each step of a plan should take, and where that figure is from.

* ``coco`` steps: from the training and evaluation times others published
  (``training_times``, ``evaluation_times`` and ``dataset_images`` of
  ``configs/published_results.yml``, each with its source), scaled to the
  step's number of GPUs, images per GPU and epochs. The published figures
  are for the BN models; CE's cost on a GPU is not measured, so the CE
  steps get their BN counterpart's figure.
* ``shapes`` steps: from a probe measured on this machine: the step's model
  and optimizer built from its merged config, a few training (or
  inference) iterations on random inputs of the config's batch and image
  size, the median scaled to the step's iterations. Data loading and
  process start-up are not in it. Probes are cached by step fingerprint in
  ``probe.json`` beside the work directories.
"""
from __future__ import annotations

import copy
import json
import math
import os.path as osp
import statistics
import time
from typing import Any, Callable, Optional

from ce_mmdet.analysis.output_files import write_json

from .steps import Step

__all__ = ['Estimate', 'probe_estimate', 'published_estimate']

Estimate = tuple[Optional[float], str]
"""``(seconds or None, source)``."""

PROBE_WARMUP = 2
PROBE_ITERATIONS = 3


def _config_name(step: Step) -> str:
    return osp.splitext(osp.basename(step.config))[0]


def _figure_key(step: Step, published: dict) -> str:
    """The published model whose figure a step takes."""
    if step.toolbox == 'mmdet':
        baseline = published.get('mmdetection_baselines', {}).get(
            _config_name(step), {})
        return str(baseline.get('model', '')).replace('_2x_', '_1x_')
    name = _config_name(step)
    return name[3:] if name.startswith('ce-') else name


def _classification_throughput(key: str, times: dict) -> tuple[float, str]:
    """Training images per second per GPU of a published classifier."""
    figure = times[key]
    scale = 1.0
    if 'scale_of' in figure:
        base = times[figure['scale_of']]
        scale = base['gflops'] / figure['gflops']
        figure = base
    per_gpu = figure['images_per_second'] / figure['gpus'] * scale
    return per_gpu, f'{key}: {per_gpu:.0f} images/s per {figure["gpu"]}'


def published_estimate(step: Step, cfg: dict[str, Any],
                       published: dict[str, Any]) -> Estimate:
    """The expected time of a ``coco`` step from published figures.

    Args:
        step: the step.
        cfg: its merged config (as a dict).
        published: ``configs/published_results.yml`` parsed.

    Returns:
        ``(seconds, source)``; ``(None, why)`` where no figure applies.
    """
    if step.kind in ('generate', 'collect'):
        return 0.0, 'negligible'
    times = published.get('training_times', {})
    images = published.get('dataset_images', {})
    key = _figure_key(step, published)
    sources = 'configs/published_results.yml'
    if step.toolbox == 'mmdet':
        if step.kind == 'train':
            figure = times.get(key)
            if figure is None:
                return None, f'no published training time for {key!r}'
            per_gpu = cfg['train_dataloader']['batch_size']
            iterations = cfg['train_cfg']['max_epochs'] * math.ceil(
                images['coco_train2017'] / (per_gpu * step.gpus))
            per_iter = figure['seconds_per_iter'] * per_gpu / (
                figure['images_per_iter'] / figure['gpus'])
            return iterations * per_iter, (
                f'{key}: {figure["seconds_per_iter"]} s/iter at '
                f'{figure["images_per_iter"]} images on {figure["gpus"]} '
                f'{figure["gpu"]} ({sources} training_times), x '
                f'{iterations} iterations')
        figure = published.get('evaluation_times', {}).get(key)
        if figure is None:
            return None, f'no published inference time for {key!r}'
        speed = figure['images_per_second'] * step.gpus / figure['gpus']
        return images['coco_val2017'] / speed, (
            f'{key}: {figure["images_per_second"]} images/s on one '
            f'{figure["gpu"]} ({sources} evaluation_times)')
    if key not in times:
        return None, f'no published training time for {key!r}'
    per_gpu, source = _classification_throughput(key, times)
    if step.kind == 'train':
        epochs = cfg['train_cfg']['max_epochs']
        return epochs * images['imagenet_train'] / (per_gpu * step.gpus), (
            f'{source} ({sources} training_times), x {epochs} epochs')
    return images['imagenet_val'] / (per_gpu * step.gpus), (
        f'{source}: at most the training speed (no published inference '
        'figure)')


# ------------------------------------------------------------------ probe
def _median_seconds(run: Callable[[], Any]) -> float:
    for _ in range(PROBE_WARMUP):
        run()
    times = []
    for _ in range(PROBE_ITERATIONS):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _detection_batch(batch: int, size: tuple[int, int],
                     num_classes: int) -> dict:
    from mmdet.testing import demo_mm_inputs

    return demo_mm_inputs(batch_size=batch, image_shapes=(3, *size),
                          num_items=[4] * batch, num_classes=num_classes,
                          with_mask=True)


def _classification_batch(batch: int, size: int, num_classes: int) -> dict:
    import torch
    from mmpretrain.structures import DataSample

    generator = torch.Generator().manual_seed(0)
    inputs = [torch.randint(0, 256, (3, size, size), dtype=torch.uint8,
                            generator=generator) for _ in range(batch)]
    samples = [DataSample().set_gt_label(index % num_classes)
               for index in range(batch)]
    return dict(inputs=inputs, data_samples=samples)


def _probe_seconds(step: Step, cfg: dict[str, Any]) -> tuple[float, int]:
    """Seconds per iteration (train) or per batch (test) of ``step``'s
    model on random inputs, and the batch size."""
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope

    import ce_mmdet  # noqa: F401  (the CE backbones)

    loader = cfg['train_dataloader' if step.kind == 'train' else
                 'test_dataloader']
    batch = loader['batch_size']
    scope = 'mmdet' if step.toolbox == 'mmdet' else 'mmpretrain'
    with DefaultScope.overwrite_default_scope(scope):
        if scope == 'mmdet':
            from mmdet.registry import MODELS
            model_cfg = cfg['model']
            classes = model_cfg['roi_head']['bbox_head']['num_classes']
            resize = [t for t in loader['dataset']['pipeline']
                      if t['type'] == 'Resize'][0]['scale']
            data = _detection_batch(batch, (resize[1], resize[0]), classes)
        else:
            from mmpretrain.registry import MODELS
            classes = cfg['model']['head']['num_classes']
            size = cfg.get('image_size', 224)
            data = _classification_batch(batch, size, classes)
        model = MODELS.build(copy.deepcopy(cfg['model']))
        if step.kind == 'train':
            model.train()
            wrapper = build_optim_wrapper(model,
                                          copy.deepcopy(cfg['optim_wrapper']))
            seconds = _median_seconds(lambda: model.train_step(data, wrapper))
        else:
            model.eval()
            with torch.no_grad():
                seconds = _median_seconds(lambda: model.test_step(data))
    return seconds, batch


def _iterations(step: Step, cfg: dict[str, Any], images: int) -> int:
    """Training iterations or test batches of ``step``."""
    if step.kind == 'train':
        train_cfg = cfg['train_cfg']
        if 'max_iters' in train_cfg:
            return train_cfg['max_iters']
        loader = cfg['train_dataloader']
        indices = loader['dataset'].get('indices')
        count = min(images, indices) if isinstance(indices, int) else images
        return train_cfg['max_epochs'] * math.ceil(count /
                                                   loader['batch_size'])
    loader = cfg['test_dataloader']
    indices = loader['dataset'].get('indices')
    count = min(images, indices) if isinstance(indices, int) else images
    return math.ceil(count / loader['batch_size'])


def probe_estimate(step: Step, cfg: dict[str, Any], step_fingerprint: str,
                   images: int, cache_file: str) -> Estimate:
    """The expected time of a ``shapes`` step, from a probe run here.

    Args:
        step: a train or test step.
        cfg: its merged config.
        step_fingerprint: the key of the probe in the cache.
        images: images of the split it reads (train or val).
        cache_file: ``probe.json``; read, and written atomically.
    """
    if step.kind in ('generate', 'collect'):
        return None, 'not probed (seconds to a minute)'
    cache: dict[str, Any] = {}
    if osp.isfile(cache_file):
        try:
            with open(cache_file, encoding='utf-8') as f:
                cache = json.load(f)
        except (OSError, json.JSONDecodeError):
            cache = {}
    entry = cache.get(step_fingerprint)
    if not isinstance(entry, dict):
        seconds, batch = _probe_seconds(step, cfg)
        entry = dict(seconds=seconds, batch=batch, step=step.name,
                     measured=time.strftime('%Y-%m-%d %H:%M'))
        cache[step_fingerprint] = entry
        write_json(cache_file, cache)
    iterations = _iterations(step, cfg, images)
    what = 'iteration' if step.kind == 'train' else 'test batch'
    return iterations * entry['seconds'], (
        f'probe here ({entry["measured"]}): {entry["seconds"]:.2f} s per '
        f'{what} of {entry["batch"]} random images x {iterations}; no data '
        'loading or start-up')
