"""Parameters of a config's detector and FLOPs of its backbone.

Counted with MMEngine's ``FlopAnalyzer`` and ``parameter_count`` (what
MMDetection's ``tools/analysis_tools/get_flops.py`` runs through
``get_model_complexity_info``), in eval mode and without gradients (so CE
runs as plain matrix products the counter sees). One multiply-add counts as
one FLOP, as in MMEngine.

FLOPs are the backbone's, on the first preprocessed image of the val split:
the blocks under comparison live there, and a whole detector's count
depends on how many proposals its RoI heads process, which changes with the
weights (two untrained Mask R-CNNs of the same config differed by 25% on a
64x64 image), so it would blur the comparison.
"""
from __future__ import annotations

import copy

import torch
from mmengine.config import Config

from .model_loading import build_detector
from .model_structure import find_backbone


def detector_cost(cfg: Config, device: str = 'cpu') -> dict:
    """``{'params': detector parameters, 'backbone_params': int,
    'backbone_flops': int, 'input_shape': [H, W]}``."""
    from mmengine.analysis import FlopAnalyzer, parameter_count
    from mmengine.runner import Runner

    model = build_detector(cfg, device=device)
    model.eval()
    loader_cfg = copy.deepcopy(cfg.val_dataloader)
    loader_cfg.update(batch_size=1, num_workers=0, persistent_workers=False)
    loader_cfg['dataset']['indices'] = 1
    batch = next(iter(Runner.build_dataloader(loader_cfg)))
    inputs = model.data_preprocessor(batch, False)['inputs']
    backbone = find_backbone(model)
    analyzer = FlopAnalyzer(backbone, inputs=inputs)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    with torch.no_grad():
        flops = analyzer.total()
    return dict(params=int(parameter_count(model)['']),
                backbone_params=int(parameter_count(backbone)['']),
                backbone_flops=int(flops),
                input_shape=list(inputs.shape[-2:]))
