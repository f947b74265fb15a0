#!/usr/bin/env python
"""Export a detector's backbone + neck to ONNX and check it with onnxruntime.

    python tools/deployment/export_onnx.py CONFIG CHECKPOINT OUT.onnx \
        [--input-shape H W] [--batch-size N] [--part backbone_neck|backbone] \
        [--opset N] [--tolerance T] [--cfg-options KEY=VALUE ...]

Builds the detector of CONFIG (``mmdet.apis.init_detector``, on the CPU,
backbone ``init_cfg`` dropped), loads CHECKPOINT (a detector's, or a
backbone's alone with ``--part backbone``; ``none`` exports random weights),
exports ``neck(backbone(x))`` with torch's default ONNX exporter
(``dynamo=True``, needs ``onnxscript``) for an (N, 3, H, W) input that the
detector's data preprocessor has already normalised and padded, runs the
file with onnxruntime on a random input and prints the largest differences
to PyTorch per output. OUT.onnx is written only when they are within
``--tolerance`` (relative to each output's largest value); otherwise the
tool exits with an error and leaves no file.

The whole detector does not export: see ``tools/deployment/README.md``.
"""
import argparse
import os
import os.path as osp
import sys

try:
    import ce_mmdet  # noqa: F401
except ImportError:  # not installed: use the checkout this script is in
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))

from mmengine.config import DictAction  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402

from ce_mmdet.analysis.checkpoint_analysis import (  # noqa: E402
    build_detector,
    load_checked_checkpoint,
    load_config,
)
from ce_mmdet.deployment import (  # noqa: E402
    EXPORT_PARTS,
    OnnxMismatchError,
    detector_part,
    export_and_check_onnx,
)
from ce_mmdet.deployment.onnx_export import DEFAULT_TOLERANCE  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Export a detector\'s backbone (+ neck) to ONNX, checked '
        'with onnxruntime against PyTorch.')
    parser.add_argument('config', help='detector config file')
    parser.add_argument(
        'checkpoint',
        help='checkpoint to load (a detector\'s; a backbone\'s alone with '
        '--part backbone), or "none" for random weights')
    parser.add_argument('out', help='the .onnx file to write')
    parser.add_argument('--input-shape', type=int, nargs=2, metavar=('H', 'W'),
                        default=[800, 1344],
                        help='input height and width, after the data '
                        'preprocessor\'s padding (default: 800 1344)')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--part', choices=EXPORT_PARTS,
                        default='backbone_neck')
    parser.add_argument('--opset', type=int, default=None,
                        help='ONNX opset (default: torch\'s)')
    parser.add_argument('--tolerance', type=float, default=DEFAULT_TOLERANCE,
                        help='largest accepted |onnx - torch| / max|torch| '
                        'per output')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    logger = MMLogger.get_instance('export_onnx')
    cfg = load_config(args.config, args.cfg_options)
    detector = build_detector(cfg)
    if args.checkpoint.lower() == 'none':
        logger.warning('no checkpoint: exporting random weights')
    else:
        kind = load_checked_checkpoint(detector, args.checkpoint,
                                       args.config)
        if kind == 'backbone' and args.part != 'backbone':
            sys.exit(f'{args.checkpoint} holds a backbone only: pass '
                     '--part backbone, or a detector checkpoint')
    channels = cfg.model.get('data_preprocessor', {}).get('mean')
    shape = (args.batch_size, len(channels) if channels else 3,
             *args.input_shape)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    try:
        check = export_and_check_onnx(detector_part(detector, args.part),
                                      shape, args.out, opset=args.opset,
                                      tolerance=args.tolerance)
    except OnnxMismatchError as error:
        sys.exit(f'export_onnx: {error}')
    print(f'wrote {args.out}: {args.part} of {args.config}, input {shape}')
    print(f'onnxruntime vs PyTorch:\n{check.summary()}')


if __name__ == '__main__':
    main()
