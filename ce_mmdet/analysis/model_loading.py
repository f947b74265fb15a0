"""Build a model from its config and load a checkpoint into it, checked.

The model is an MMDetection detector, or any model of another OpenMMLab
scope (e.g. an MMPretrain ``ImageClassifier`` of ``configs/pretrain/``):
:func:`build_model` reads the config's ``default_scope``.

MMDetection's ``init_detector`` loads checkpoints with ``strict=False``: a
checkpoint of another architecture (a plain ResNet's into a CE-ResNet
config, or the reverse) loads silently with random layers left over, and an
analysis of that model would measure nothing real. Here the backbone's keys
must match exactly, and a mismatch is an error that names the keys.

Two kinds of checkpoint are accepted:

* a whole model's (MMEngine's ``state_dict`` with ``backbone.``,
  ``neck.``... keys: a detector's or a classifier's): loaded into the whole
  model;
* a backbone's alone (e.g. a CENet checkpoint converted by
  ``tools/model_converters/cenet2mmdet.py``: ``conv1.weight``,
  ``stem_ce.*``...): loaded into ``model.backbone``.
"""
from __future__ import annotations

import os.path as osp
import warnings
from typing import Optional

import torch
from mmengine.config import Config
from mmengine.runner.checkpoint import CheckpointLoader
from torch import nn

MAX_KEYS_SHOWN = 6


class CheckpointMismatchError(ValueError):
    """The checkpoint does not fit the config's model."""


def load_config(config: str, cfg_options: Optional[dict] = None) -> Config:
    """Read a config file and apply ``--cfg-options``-style overrides."""
    if not osp.isfile(config):
        raise FileNotFoundError(
            f'config {config!r} not found (resolved to {osp.abspath(config)!r})')
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def drop_backbone_init_cfg(model_cfg) -> None:
    """Set the backbone's ``init_cfg`` of a model config to None, in place:
    the weights come from the checkpoint analysed, not from pretraining."""
    backbone_cfg = model_cfg.get('backbone')
    if backbone_cfg is not None and 'init_cfg' in backbone_cfg:
        backbone_cfg.init_cfg = None


def build_model(cfg: Config, device: str = 'cpu') -> nn.Module:
    """The config's model, in eval mode, without pretrained weights: a
    detector (:func:`build_detector`) when the config's ``default_scope`` is
    ``mmdet`` or unset, else the model of that scope (e.g. ``mmpretrain``),
    built as MMEngine's Runner builds it (``custom_imports`` imported)."""
    scope = cfg.get('default_scope') or 'mmdet'
    if scope == 'mmdet':
        return build_detector(cfg, device=device)
    import importlib

    from mmengine.registry import DefaultScope
    from mmengine.utils import import_modules_from_strings
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    model_cfg = cfg.model.copy()
    drop_backbone_init_cfg(model_cfg)
    registry = importlib.import_module(f'{scope}.registry')
    with DefaultScope.overwrite_default_scope(scope):
        model = registry.MODELS.build(model_cfg)
    return model.to(device).eval()


def build_detector(cfg: Config, device: str = 'cpu') -> nn.Module:
    """The config's detector, in eval mode, without pretrained weights.

    Uses ``mmdet.apis.init_detector``; the backbone's ``init_cfg`` is
    dropped (the weights come from the checkpoint).
    """
    from mmdet.apis import init_detector

    cfg = cfg.copy()
    drop_backbone_init_cfg(cfg.model)
    # record=True swallows init_detector's own "checkpoint is None, use COCO
    # classes by default" (it resets the filters itself): we load it below.
    with warnings.catch_warnings(record=True):
        model = init_detector(cfg, checkpoint=None, device=device)
    return model


def read_state_dict(checkpoint: str) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file (``state_dict`` entry or bare dict),
    ``module.`` prefixes stripped."""
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(
            f'checkpoint {checkpoint!r} not found (resolved to '
            f'{osp.abspath(checkpoint)!r})')
    try:
        loaded = CheckpointLoader.load_checkpoint(checkpoint,
                                                  map_location='cpu')
    except Exception as error:  # torch/pickle raise many kinds
        raise CheckpointMismatchError(
            f'{checkpoint}: not a readable PyTorch checkpoint '
            f'({type(error).__name__}: {error})') from error
    state = loaded.get('state_dict', loaded) if isinstance(loaded,
                                                           dict) else None
    if not isinstance(state, dict) or not state or not all(
            isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointMismatchError(
            f'{checkpoint}: expected a dict of tensors or a dict with a '
            '"state_dict" entry (an MMEngine or PyTorch checkpoint)')
    return {
        (key[len('module.'):] if key.startswith('module.') else key): value
        for key, value in state.items()
    }


def load_checked_checkpoint(model: nn.Module, checkpoint: str,
                            config_name: str = 'the config') -> str:
    """Load ``checkpoint`` into ``model`` (a detector or a classifier); the
    backbone's keys and shapes must match exactly.

    Returns:
        ``'whole model'`` or ``'backbone'``: what the checkpoint held.

    Raises:
        FileNotFoundError, CheckpointMismatchError: with the keys at fault.
    """
    state = read_state_dict(checkpoint)
    backbone = getattr(model, 'backbone', None)
    whole = any(key.startswith('backbone.') for key in state)
    if whole or backbone is None:
        target, kind, prefix = model, 'whole model', 'backbone.'
    else:
        target, kind, prefix = backbone, 'backbone', ''
    expected = target.state_dict()
    if backbone is None:
        prefix = ''
    missing = [k for k in expected if k.startswith(prefix) and k not in state]
    unexpected = [k for k in state if k.startswith(prefix) and k not in expected]
    wrong_shape = [
        f'{k} {tuple(state[k].shape)} vs {tuple(v.shape)}'
        for k, v in expected.items()
        if k in state and k.startswith(prefix) and state[k].shape != v.shape
    ]
    if missing or unexpected or wrong_shape:
        problems = []
        for label, keys in (('missing from the checkpoint', missing),
                            ('not in the model', unexpected),
                            ('with other shapes', wrong_shape)):
            if keys:
                shown = ', '.join(keys[:MAX_KEYS_SHOWN])
                more = (f' and {len(keys) - MAX_KEYS_SHOWN} more'
                        if len(keys) > MAX_KEYS_SHOWN else '')
                problems.append(f'{len(keys)} keys {label} ({shown}{more})')
        raise CheckpointMismatchError(
            f'{checkpoint} does not fit the backbone of {config_name}: '
            + '; '.join(problems) + '. Pass the config the checkpoint was '
            'trained with (e.g. a CE-ResNet checkpoint needs a CEResNet '
            'config, a plain ResNet checkpoint a ResNet one).')
    others = [k for k in expected if not k.startswith(prefix)
              and k not in state]
    if others and kind == 'whole model':
        warnings.warn(
            f'{checkpoint}: {len(others)} weights outside the backbone are '
            'not in the checkpoint (only the backbone is analysed).')
    target.load_state_dict(
        {k: v for k, v in state.items() if k in expected}, strict=False)
    return kind
