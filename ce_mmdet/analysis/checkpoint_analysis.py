"""Analyse trained checkpoints and write the report (table, JSON, PNGs).

The library side of ``tools/analysis_tools/inhibited_channels.py``.
"""
from __future__ import annotations

import os.path as osp
from typing import Optional

from mmengine.logging import MMLogger

from .image_batches import folder_images, val_split_images
from .inhibited_channels import (ModelAnalysis, analyze_backbone, layer_table,
                                 summary_table)
from .model_loading import build_detector, load_checked_checkpoint, load_config
from .model_structure import find_backbone
from .output_files import write_json, write_text
from .plots import plot_beta_shares, plot_ce_layers, plot_inhibited_shares

DEFAULT_NUM_IMAGES = 20
"""Images per model: enough for stable per-channel means on the shapes set
(the per-channel means average H*W positions of every image) and a minute
or less per model on a CPU."""


def analyze_checkpoint(config: str,
                       checkpoint: str,
                       tau: float,
                       num_images: int = DEFAULT_NUM_IMAGES,
                       image_dir: Optional[str] = None,
                       cfg_options: Optional[dict] = None,
                       device: str = 'cpu',
                       name: Optional[str] = None) -> ModelAnalysis:
    """Build ``config``'s detector, load ``checkpoint`` (a detector's or a
    backbone's) and analyse its backbone on ``num_images`` images of the
    config's val split, or of ``image_dir`` when given.

    Raises:
        FileNotFoundError: config, checkpoint, data or image folder missing.
        CheckpointMismatchError: the checkpoint does not fit the backbone.
        UnreadableModelError: the backbone has no norm layer or activation.
    """
    if num_images < 1:
        raise ValueError(f'num_images must be >= 1, got {num_images}')
    name = name or osp.splitext(osp.basename(config))[0]
    cfg = load_config(config, cfg_options)
    model = build_detector(cfg, device=device)
    kind = load_checked_checkpoint(model, checkpoint, config_name=config)
    model.eval()
    if image_dir is not None:
        images = folder_images(cfg, model, image_dir, num_images)
        source = image_dir
    else:
        images = val_split_images(cfg, model, num_images)
        source = 'val split'
    MMLogger.get_current_instance().info(
        f'{name}: analysing the backbone of {checkpoint} ({kind} checkpoint) '
        f'on {num_images} images of the {source}')
    return analyze_backbone(
        find_backbone(model), images, tau, name=name,
        meta=dict(config=config, checkpoint=checkpoint, checkpoint_kind=kind,
                  images_from=source))


def write_report(analyses: list[ModelAnalysis], out_dir: str) -> dict[str, str]:
    """Write ``summary.md`` (summary and per-layer tables),
    ``inhibited_channels.json``, ``beta_nonpositive.png``,
    ``inhibited_channels.png`` and, with CE layers, ``ce_layers.png``.

    Returns:
        ``{what: path}`` of the files written.
    """
    paths = dict(
        markdown=write_text(
            osp.join(out_dir, 'summary.md'),
            '\n\n'.join(['## Inhibited channels', summary_table(analyses)]
                        + [layer_table(a) for a in analyses]) + '\n'),
        json=write_json(osp.join(out_dir, 'inhibited_channels.json'),
                        dict(models=[a.to_dict() for a in analyses])),
        beta_plot=plot_beta_shares(
            analyses, osp.join(out_dir, 'beta_nonpositive.png')),
        inhibited_plot=plot_inhibited_shares(
            analyses, osp.join(out_dir, 'inhibited_channels.png')),
    )
    ce_plot = plot_ce_layers(analyses, osp.join(out_dir, 'ce_layers.png'))
    if ce_plot:
        paths['ce_plot'] = ce_plot
    return paths
