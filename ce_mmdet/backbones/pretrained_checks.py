"""Refuse to start a changed ResNet from weights trained for another one.

Network Deconvolution and proportional-ReLU ResNets have the tensor names
(and, for the latter, the shapes) of a plain ResNet, so MMEngine's
``Pretrained`` initialisation (``strict=False``) would load plain ResNet
weights into them without a word. These helpers make that an error that
names the fix.
"""
import os.path as osp
from contextlib import contextmanager
from typing import Dict, Iterator, Optional

import torch
from torch import Tensor

from ce_mmdet.utils.checkpoint_loading import is_local_checkpoint

MODEL_ZOO_PREFIXES = ('torchvision://', 'open-mmlab://', 'openmmlab://',
                      'mmcls://', 'mmpretrain://', 'modelzoo://')
"""Checkpoint names of MMEngine's model zoos: plain (BN, ReLU) networks."""


def pretrained_checkpoint(init_cfg) -> Optional[str]:
    """The checkpoint of a ``Pretrained`` entry of ``init_cfg``, if any."""
    cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    for cfg in cfgs:
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            return cfg.get('checkpoint')
    return None


def check_pretrained_source(init_cfg, network: str, fix: str) -> None:
    """Raise before loading when ``init_cfg`` cannot hold ``network``'s
    weights: a model-zoo name (a plain ResNet) or a missing local file.

    Raises:
        ValueError: a model-zoo checkpoint.
        FileNotFoundError: a local checkpoint that does not exist.
    """
    checkpoint = pretrained_checkpoint(init_cfg)
    if not isinstance(checkpoint, str):
        return
    if checkpoint.startswith(MODEL_ZOO_PREFIXES):
        raise ValueError(
            f'{network}: init_cfg loads {checkpoint!r}, the weights of a '
            f'plain ResNet, which do not fit this network. {fix}')
    if is_local_checkpoint(checkpoint) \
            and not osp.isfile(osp.expanduser(checkpoint)):
        raise FileNotFoundError(
            f'{network}: pretrained checkpoint {checkpoint!r} not found '
            f'(resolved to {osp.abspath(osp.expanduser(checkpoint))!r}). '
            f'{fix}')


@contextmanager
def require_loaded(markers: Dict[str, Tensor], checkpoint: str,
                   network: str, fix: str) -> Iterator[None]:
    """Check that loading ``checkpoint`` inside the block sets ``markers``.

    ``markers`` are tensors (by name) that only a checkpoint of ``network``
    holds. They are filled with a sentinel (NaN, or -1 for integers) before
    the block; any still holding it afterwards was not in the checkpoint:
    their values are restored and a ``ValueError`` names them and ``fix``.
    """
    saved = {name: tensor.clone() for name, tensor in markers.items()}
    for tensor in markers.values():
        tensor.fill_(float('nan') if tensor.is_floating_point() else -1)
    yield
    missing = []
    for name, tensor in markers.items():
        sentinel = (torch.isnan(tensor) if tensor.is_floating_point() else
                    tensor == -1)
        if bool(sentinel.all()):
            missing.append(name)
            tensor.copy_(saved[name])
    if missing:
        shown = ', '.join(missing[:3]) + (', ...' if len(missing) > 3 else '')
        raise ValueError(
            f'{network}: {checkpoint!r} is not a checkpoint of this network '
            f'(it lacks {len(missing)} of its tensors: {shown}); a plain '
            f'ResNet\'s weights would load silently and wrongly. {fix}')
