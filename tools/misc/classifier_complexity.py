#!/usr/bin/env python
"""Parameters and FLOPs of MMPretrain classifier configs, as the
metafiles list them (``Metadata: Parameters, FLOPs``).

    python tools/misc/classifier_complexity.py configs/pretrain/*.py \\
        configs/pretrain/shapes/*.py configs/fig1/vgg_*.py

MMEngine's ``get_model_complexity_info`` on the built classifier (backbone,
neck and head; CE's matrix products counted) for one image of the config's
test crop size (224 for ImageNet, 64 for the shapes classification set, 32
for shapes10), in eval mode.
"""
import argparse
import os.path as osp
import sys

try:
    import ce_mmdet  # noqa: F401
except ImportError:  # not installed: use the checkout this script is in
    sys.path.insert(
        0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from ce_mmdet.analysis.checkpoint_analysis import load_config  # noqa: E402


def crop_size(cfg) -> int:
    """The square input size of the config's test pipeline (its
    ``image_size`` where the test images are used as they are)."""
    if 'image_size' in cfg:
        return cfg.image_size
    pipeline = cfg.test_dataloader.dataset.pipeline
    for key in ('crop_size', 'scale'):  # a crop decides; else the resize
        for step in pipeline:
            if key in step:
                value = step[key]
                return value if isinstance(value, int) else value[0]
    raise SystemExit('classifier_complexity.py: no crop or resize size in '
                     'the test pipeline')


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('configs', nargs='+', metavar='CONFIG')
    args = parser.parse_args()
    import torch
    from mmengine.analysis import get_model_complexity_info
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    print('| config | input | Parameters | FLOPs |\n|---|---|---|---|')
    for path in args.configs:
        cfg = load_config(path)
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            model = MODELS.build(cfg.model).eval()
        size = crop_size(cfg)
        with torch.no_grad():
            info = get_model_complexity_info(
                model, inputs=(torch.zeros(1, 3, size, size),),
                show_table=False, show_arch=False)
        print(f'| {osp.splitext(osp.basename(path))[0]} | {size} | '
              f'{info["params"]} | {info["flops"]} |')


if __name__ == '__main__':
    main()
