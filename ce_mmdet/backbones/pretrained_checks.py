"""Refuse to start a backbone from weights trained for another one.

CE-ResNets check the checkpoint of a ``Pretrained`` ``init_cfg`` against
their own tensors (:func:`check_ce_backbone_checkpoint`). Network
Deconvolution and proportional-ReLU ResNets have the tensor names
(and, for the latter, the shapes) of a plain ResNet, so MMEngine's
``Pretrained`` initialisation (``strict=False``) would load plain ResNet
weights into them without a word. These helpers make that an error that
names the fix.
"""
import os.path as osp
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import torch
from torch import Tensor, nn

from ce_mmdet.utils.checkpoint_loading import is_local_checkpoint

MODEL_ZOO_PREFIXES = ('torchvision://', 'open-mmlab://', 'openmmlab://',
                      'mmcls://', 'mmpretrain://', 'modelzoo://')
"""Checkpoint names of MMEngine's model zoos: plain (BN, ReLU) networks."""


def _pretrained_entry(init_cfg) -> dict:
    """The ``Pretrained`` entry of ``init_cfg`` (a dict or a list), or {}."""
    cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    for cfg in cfgs:
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            return cfg
    return {}


def pretrained_checkpoint(init_cfg) -> Optional[str]:
    """The checkpoint of a ``Pretrained`` entry of ``init_cfg``, if any."""
    return _pretrained_entry(init_cfg).get('checkpoint')


def check_pretrained_source(init_cfg, network: str, fix: str) -> None:
    """Raise before loading when ``init_cfg`` cannot hold ``network``'s
    weights: a model-zoo name (a plain ResNet) or a missing local file.

    Raises:
        ValueError: a model-zoo checkpoint.
        FileNotFoundError: a local checkpoint that does not exist.
    """
    checkpoint = pretrained_checkpoint(init_cfg)
    if isinstance(checkpoint, str) and checkpoint.startswith(
            MODEL_ZOO_PREFIXES):
        raise ValueError(
            f'{network}: init_cfg loads {checkpoint!r}, the weights of a '
            f'plain ResNet, which do not fit this network. {fix}')
    check_local_checkpoint_exists(init_cfg, network, fix)


def check_local_checkpoint_exists(init_cfg, network: str, fix: str) -> None:
    """Fail early, and clearly, on a ``Pretrained`` local file that is
    missing (MMEngine would raise ``'<file> can not be found.'`` from deep
    inside the initialisation, without saying how to make the file).

    Raises:
        FileNotFoundError: naming the file, its absolute path and ``fix``.
    """
    checkpoint = pretrained_checkpoint(init_cfg)
    # The loader MMEngine would pick: local only for plain paths.
    if isinstance(checkpoint, str) and is_local_checkpoint(checkpoint) \
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
    If the block raises, every marker gets its value back.
    """
    saved = {name: tensor.clone() for name, tensor in markers.items()}
    for tensor in markers.values():
        tensor.fill_(float('nan') if tensor.is_floating_point() else -1)
    try:
        yield
    except BaseException:
        # The load failed: no sentinel may stay in the weights.
        for name, tensor in markers.items():
            tensor.copy_(saved[name])
        raise
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


def pretrained_prefix(init_cfg) -> Optional[str]:
    """The ``prefix`` of a ``Pretrained`` entry of ``init_cfg``, if any."""
    return _pretrained_entry(init_cfg).get('prefix')


def load_pretrained_state_dict(
        checkpoint: str,
        prefix: Optional[str]) -> Tuple[Dict[str, Tensor], dict]:
    """The tensors MMEngine's ``Pretrained`` initialisation would load,
    and the file's ``meta`` ({} when it has none).

    As ``PretrainedInit``: the ``state_dict`` of the file (or the file
    itself), with a leading ``module.`` removed, or, with ``prefix``, the
    tensors under ``prefix`` with it removed (a classifier's or a detector's
    ``backbone.``). Loaded on the CPU through MMEngine's checkpoint loaders,
    which ``import ce_mmdet`` guards (see
    docs/en/advanced_guides/trust_model.md).
    """
    from mmengine.runner.checkpoint import CheckpointLoader

    loaded = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    state = loaded.get('state_dict', loaded) if isinstance(loaded, dict) \
        else loaded
    if not isinstance(state, dict):
        raise ValueError(f'{checkpoint!r} holds no state dict (a '
                         f'{type(state).__name__})')
    meta = loaded.get('meta') if isinstance(loaded, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    if prefix is None:
        return {(k[len('module.'):] if k.startswith('module.') else k): v
                for k, v in state.items()}, meta
    prefix = prefix if prefix.endswith('.') else prefix + '.'
    return {k[len(prefix):]: v for k, v in state.items()
            if k.startswith(prefix)}, meta


def shown_keys(keys: List[str]) -> str:
    """The first three of ``keys`` and their count, for error messages."""
    return ', '.join(keys[:3]) + (f', ... ({len(keys)} in all)'
                                  if len(keys) > 3 else '')


def check_ce_backbone_checkpoint(model: nn.Module, checkpoint: str,
                                 prefix: Optional[str],
                                 is_ce_key: Callable[[str], bool],
                                 new_by_design: Callable[[str], bool],
                                 network: str) -> List[str]:
    """Refuse a checkpoint that does not fit a CE backbone; return the CE
    tensors that stay new.

    What ``Pretrained`` (``strict=False``) would load silently and wrongly is
    an error naming the mismatch:

    * a tensor of another shape (another architecture, CE group size or
      reduction);
    * a tensor the network lacks (another depth or architecture; a
      torchvision classifier's ``fc.*`` without ``prefix`` is ignored, as
      the release converter drops it), e.g. a detector's weights loaded
      without ``prefix='backbone.'``;
    * a non-CE tensor the checkpoint lacks (another depth or block type);
      ``new_by_design`` tensors (plugins, DCN offsets) may be missing;
    * some but not all CE tensors (an incomplete CE checkpoint), or none
      in a file whose ``meta`` names a CE-ResNet (the converter's);
    * no CE tensor under a ``prefix``: the backbone of a classifier or
      detector of a plain ResNet. Without ``prefix`` a checkpoint without CE
      tensors is a plain ResNet (torchvision names, e.g.
      ``torchvision://resnet50``): CE starts new, by design.

    Args:
        model: the backbone, before loading.
        checkpoint, prefix: of the ``Pretrained`` ``init_cfg``.
        is_ce_key: whether a state-dict key belongs to a CE layer.
        new_by_design: whether a non-CE key may be missing.
        network: the network's name, for messages.

    Returns:
        The CE keys that keep their initial values (the checkpoint is a
        plain ResNet's), or ``[]``.

    Raises:
        ValueError: the checkpoint does not fit; the message names the
            tensors and the fix.
    """
    state, meta = load_pretrained_state_dict(checkpoint, prefix)
    expected = model.state_dict()
    source = f'{checkpoint!r}' + (f' (prefix {prefix!r})' if prefix else '')

    def refuse(problem: str, fix: str) -> ValueError:
        return ValueError(f'{network}: {source} {problem}. {fix} Nothing was '
                          'loaded.')

    if prefix is not None and not state:
        raise refuse('holds no tensor under this prefix',
                     "An MMPretrain classifier's and an MMDetection "
                     "detector's backbone are both under 'backbone.'.")
    ignored_head = ('fc.weight', 'fc.bias') if prefix is None else ()
    unexpected = sorted(k for k in state
                        if k not in expected and k not in ignored_head)
    if unexpected:
        hint = ("Add prefix='backbone.' to the init_cfg to load a "
                "classifier's or detector's backbone."
                if prefix is None and any(
                    k.startswith('backbone.') for k in unexpected) else
                'It was trained for another depth or architecture: use a '
                'checkpoint of this one.')
        raise refuse(
            f'holds {len(unexpected)} tensors this network does not have: '
            f'{shown_keys(unexpected)}', hint)
    mismatched = sorted(
        f'{k} {tuple(state[k].shape)} (this network: '
        f'{tuple(expected[k].shape)})' for k in state
        if k in expected and state[k].shape != expected[k].shape)
    if mismatched:
        raise refuse(f'has tensors of other shapes: {shown_keys(mismatched)}',
                     'It was trained for another architecture or CE '
                     'configuration: use a checkpoint of this one.')
    missing = [k for k in expected if k not in state
               and not k.endswith('num_batches_tracked')]
    missing_plain = [k for k in missing
                     if not is_ce_key(k) and not new_by_design(k)]
    if missing_plain:
        raise refuse(
            f'lacks {len(missing_plain)} tensors of this network: '
            f'{shown_keys(missing_plain)}',
            'It was trained for another depth or block type: use a '
            'checkpoint of this one.')
    missing_ce = [k for k in missing if is_ce_key(k)]
    all_ce = [k for k in expected if is_ce_key(k)]
    if missing_ce and len(missing_ce) < len(all_ce):
        raise refuse(
            f'lacks {len(missing_ce)} of the {len(all_ce)} CE tensors of this '
            f'network: {shown_keys(missing_ce)}',
            'The CE checkpoint is incomplete: convert or save it again.')
    claimed = str(meta.get('architecture', ''))
    if missing_ce and claimed.startswith('CEResNet'):
        raise refuse(
            f'says it holds a {claimed} (its meta) but has none of the '
            f'{len(all_ce)} CE tensors',
            'The file was edited or saved incompletely: convert the CENet '
            'release again (tools/model_converters/cenet2mmdet.py).')
    if missing_ce and prefix is not None:
        raise refuse(
            'is the backbone of a plain ResNet (it has no CE tensors)',
            'Pretrain the CE-ResNet (configs/pretrain/ce-resnet*.py) and use '
            'its checkpoint, or use this one with a plain ResNet config.')
    return missing_ce
