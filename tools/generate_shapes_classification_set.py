"""Write the synthetic shapes classification set (MMPretrain folder layout).

Example (the defaults are the embedded default that ``tools/run_demo.sh
pretrain`` pretrains on: 4000 train / 400 val images of 64x64, seed 0)::

    python tools/generate_shapes_classification_set.py --out-dir data/shapes_cls

Configs then read it with MMPretrain's ``ImageNet`` dataset
(``data_root='data/shapes_cls'``, ``split='train'`` / ``'val'``), as
``configs/pretrain/shapes/`` do.
"""
import argparse
import json

from mmengine.logging import MMLogger

from ce_mmdet.datasets import EMBEDDED_CLASSIFICATION_SET as DEFAULT
from ce_mmdet.datasets import generate_shapes_classification_set


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Generate the synthetic shapes classification set '
        '(circle, square, star, triangle; one per image) in the folder '
        'layout of MMPretrain\'s ImageNet dataset.')
    parser.add_argument('--out-dir', default='data/shapes_cls',
                        help='root folder of the set (default: %(default)s)')
    parser.add_argument('--num-train', type=int, default=DEFAULT['num_train'],
                        help='training images (default: %(default)s)')
    parser.add_argument('--num-val', type=int, default=DEFAULT['num_val'],
                        help='validation images (default: %(default)s)')
    parser.add_argument('--image-size', type=int,
                        default=DEFAULT['image_size'],
                        help='side of the square images (default: '
                        '%(default)s)')
    parser.add_argument('--seed', type=int, default=DEFAULT['seed'],
                        help='seed; equal arguments give identical files '
                        '(default: %(default)s)')
    parser.add_argument('--no-progress', action='store_true',
                        help='hide the progress bar')
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    MMLogger.get_instance('ce_mmdet')  # INFO to stdout
    try:
        paths = generate_shapes_classification_set(
            args.out_dir, num_train=args.num_train, num_val=args.num_val,
            image_size=args.image_size, seed=args.seed,
            show_progress=not args.no_progress)
    except ValueError as error:  # a bad argument: usage, message, exit 2
        parser.error(str(error))
    print(json.dumps(paths, indent=2))


if __name__ == '__main__':
    main()
