"""Convert the authors' CENet ImageNet checkpoints to CE-ResNet weights.

The release (layout: docs/en/advanced_guides/design.md, "The released
checkpoint") is a ``torch.save`` of
``{'epoch', 'model', 'state_dict', 'best_prec1', 'optimizer'}``; its
``state_dict`` uses torchvision's names for the plain ResNet parts (which
MMDetection's ResNet shares) and, for each CE layer (``ce1`` in the stem,
``layerS.B.ce`` in blocks)::

    x_weight [1]            -> gate_logit
    running_mean [G, g, 1]  -> running_mean [G, g]
    running_wm [G, g, g]    -> running_whitening
    AR.running_scale [1]    -> running_scale
    AR.fc.0.weight          -> reweighting.squeeze.weight
    AR.fc.1.weight / bias   -> reweighting.norm.weight / bias
    AR.fc.3.weight          -> reweighting.excite.weight

The stem CE ``ce1`` becomes ``stem_ce``; the classifier ``fc`` is dropped.
"""
import hashlib
import os
import re
from collections import OrderedDict
from typing import Optional

import torch

from ce_mmdet.utils.atomic_files import write_atomically

_CE_PARAMETERS = {
    'x_weight': 'gate_logit',
    'running_mean': 'running_mean',
    'running_wm': 'running_whitening',
    'AR.running_scale': 'running_scale',
    'AR.fc.0.weight': 'reweighting.squeeze.weight',
    'AR.fc.1.weight': 'reweighting.norm.weight',
    'AR.fc.1.bias': 'reweighting.norm.bias',
    'AR.fc.3.weight': 'reweighting.excite.weight',
}
_CE_KEY = re.compile(r'^(ce1|layer\d+\.\d+\.ce)\.(.+)$')
_PLAIN_KEY = re.compile(
    r'^(conv1\.weight|bn1\.\w+|layer\d+\.\d+\.(conv\d|bn\d)\.\w+'
    r'|layer\d+\.\d+\.downsample\.[01]\.\w+)$')
_CLASSIFIER_KEY = re.compile(r'^fc\.(weight|bias)$')
# Blocks per stage and block type (Bottleneck has conv3) -> depth.
_DEPTHS = {
    ((2, 2, 2, 2), False): 18,
    ((3, 4, 6, 3), False): 34,
    ((3, 4, 6, 3), True): 50,
    ((3, 4, 23, 3), True): 101,
    ((3, 8, 36, 3), True): 152,
}


class CENetCheckpointError(ValueError):
    """The file is not a usable CENet (CE-ResNet) checkpoint."""


def load_cenet_state_dict(path: str) -> 'OrderedDict[str, torch.Tensor]':
    """The ``state_dict`` of a released checkpoint (``module.`` stripped).

    Loads with ``weights_only=True``: the release holds only tensors,
    numbers and strings. Raises :class:`CENetCheckpointError` with the reason
    (missing, truncated or not a checkpoint, no ``state_dict``).
    """
    if not os.path.isfile(path):
        raise CENetCheckpointError(f'{path}: no such file')
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # truncated zip, pickle of foreign objects...
        raise CENetCheckpointError(
            f'{path}: cannot be read as a PyTorch checkpoint (truncated '
            f'download or not a checkpoint?): {error}') from error
    if isinstance(checkpoint, dict) and 'state_dict' in checkpoint:
        state_dict = checkpoint['state_dict']
    elif isinstance(checkpoint, dict) and all(
            isinstance(v, torch.Tensor) for v in checkpoint.values()):
        state_dict = checkpoint  # a bare state dict
    else:
        raise CENetCheckpointError(
            f'{path}: expected a dict with a "state_dict" entry (the CENet '
            'release layout)')
    return OrderedDict(
        (key[len('module.'):] if key.startswith('module.') else key, value)
        for key, value in state_dict.items())


def infer_depth(state_dict: dict) -> int:
    """ResNet depth from the number of blocks per stage."""
    blocks = {}
    for key in state_dict:
        match = re.match(r'^layer(\d)\.(\d+)\.', key)
        if match:
            stage, block = int(match[1]), int(match[2])
            blocks[stage] = max(blocks.get(stage, 0), block + 1)
    counts = tuple(blocks.get(stage, 0) for stage in (1, 2, 3, 4))
    bottleneck = any('.conv3.' in key for key in state_dict)
    if (counts, bottleneck) not in _DEPTHS:
        raise CENetCheckpointError(
            f'not a ResNet layout: blocks per stage {counts} '
            f'({"Bottleneck" if bottleneck else "BasicBlock"})')
    return _DEPTHS[(counts, bottleneck)]


def convert_cenet_state_dict(
        state_dict: dict,
        depth: Optional[int] = None) -> 'OrderedDict[str, torch.Tensor]':
    """Map a release ``state_dict`` to :class:`CEResNet` names and shapes.

    Args:
        state_dict: as returned by :func:`load_cenet_state_dict`.
        depth: the depth the caller expects; a checkpoint of another depth
            is refused.
    """
    if not any(_CE_KEY.match(key) for key in state_dict):
        raise CENetCheckpointError(
            'no CE layers (ce1.*, layerS.B.ce.*) in the checkpoint: not a '
            'CE-ResNet checkpoint. For a plain ResNet use '
            "init_cfg=dict(type='Pretrained', checkpoint='torchvision://"
            "resnet50') directly.")
    found_depth = infer_depth(state_dict)
    if depth is not None and depth != found_depth:
        raise CENetCheckpointError(
            f'the checkpoint is a CE-ResNet-{found_depth}, not -{depth}')
    converted = OrderedDict()
    unknown = []
    for key, value in state_dict.items():
        ce_match = _CE_KEY.match(key)
        if ce_match and ce_match[2] in _CE_PARAMETERS:
            layer = 'stem_ce' if ce_match[1] == 'ce1' else ce_match[1]
            if (ce_match[2] == 'running_mean' and value.dim() == 3
                    and value.shape[-1] == 1):
                value = value[..., 0]  # [G, g, 1] -> [G, g]; else refused
            converted[f'{layer}.{_CE_PARAMETERS[ce_match[2]]}'] = value
        elif _PLAIN_KEY.match(key):
            converted[key] = value
        elif not _CLASSIFIER_KEY.match(key):
            unknown.append(key)
    if unknown:
        raise CENetCheckpointError(
            f'{len(unknown)} keys of unknown meaning, e.g. {unknown[:5]}')
    check_complete(converted, found_depth)
    return converted


def check_complete(converted: dict, depth: int) -> None:
    """Refuse converted weights that do not fill ``CEResNet(depth)``
    (default CE settings: the release's) exactly: a missing tensor (a
    truncated or edited file), a tensor of another shape (another CE group
    size or reduction), or a tensor the backbone lacks.

    BN's ``num_batches_tracked`` may be missing (older PyTorch did not save
    it; MMEngine's loading leaves it at 0).

    Raises:
        CENetCheckpointError: naming the tensors.
    """
    # Imported here: the converter needs the architecture only to check.
    from ce_mmdet.backbones import CEResNet
    from ce_mmdet.backbones.pretrained_checks import shown_keys

    with torch.device('meta'):  # shapes only: no memory, no initialisation
        expected = CEResNet(depth=depth, init_cfg=None).state_dict()
    missing = [k for k in expected if k not in converted
               and not k.endswith('num_batches_tracked')]
    if missing:
        raise CENetCheckpointError(
            f'incomplete CE-ResNet-{depth} checkpoint: {len(missing)} '
            f'tensors missing: {shown_keys(missing)}. Download the release '
            'again; nothing was written.')
    mismatched = [
        f'{k} {tuple(v.shape)} (CE-ResNet-{depth}: '
        f'{tuple(expected[k].shape)})' for k, v in converted.items()
        if k in expected and v.shape != expected[k].shape]
    if mismatched:
        raise CENetCheckpointError(
            f'tensors of the wrong shape: {shown_keys(mismatched)}. The '
            'checkpoint was not saved by the CENet release code with its '
            'default CE settings; nothing was written.')
    extra = [k for k in converted if k not in expected]
    if extra:
        raise CENetCheckpointError(
            f'tensors CE-ResNet-{depth} does not have: {shown_keys(extra)}; '
            'nothing was written.')


def save_atomically(obj: object, path: str) -> None:
    """``torch.save`` so that ``path`` is either the complete new file,
    flushed to disk, or untouched."""
    write_atomically(path, lambda tmp: torch.save(obj, tmp), fsync=True)


def file_sha256(path: str, chunk_bytes: int = 1 << 20) -> str:
    """The hex SHA-256 of the file at ``path``, read in chunks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(chunk_bytes), b''):
            digest.update(chunk)
    return digest.hexdigest()


def convert_cenet_checkpoint(src: str, dst: str,
                             depth: Optional[int] = None) -> int:
    """Convert the release file ``src`` into ``dst`` for
    ``init_cfg=dict(type='Pretrained', checkpoint=dst)``; returns the depth.

    ``dst``'s ``meta`` records the source's file name and SHA-256, so a
    converted file can be traced to the download it came from."""
    state_dict = load_cenet_state_dict(src)
    converted = convert_cenet_state_dict(state_dict, depth)
    found_depth = infer_depth(state_dict)
    save_atomically(
        dict(state_dict=converted,
             meta=dict(source=os.path.basename(src),
                       source_sha256=file_sha256(src),
                       architecture=f'CEResNet-{found_depth}')), dst)
    return found_depth
