"""Write a synthetic shapes classification set (MMPretrain folder layout).

Two named sets (``--set``); other options override their values:

* ``pretrain`` (default): what ``tools/run_demo.sh pretrain`` pretrains on,
  4 shapes, 4000 train / 400 val images of 64x64, seed 0::

      python tools/generate_shapes_classification_set.py \\
          --out-dir data/shapes_cls

* ``cifar``: the Fig. 1 classifiers' CIFAR-scale set, 10 shapes, 20000 train
  / 2000 val images of 32x32, seed 0::

      python tools/generate_shapes_classification_set.py --set cifar \
          --out-dir data/shapes10

Configs then read it with MMPretrain's ``ImageNet`` dataset
(``data_root='data/shapes_cls'``, ``split='train'`` / ``'val'``), as
``configs/pretrain/shapes/`` do.
"""
import argparse
import json

from mmengine.logging import MMLogger

from ce_mmdet.datasets import (
    CIFAR_SCALE_SET,
    EMBEDDED_CLASSIFICATION_SET,
    generate_shapes_classification_set,
)

NAMED_SETS = dict(pretrain=EMBEDDED_CLASSIFICATION_SET, cifar=CIFAR_SCALE_SET)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Generate a synthetic shapes classification set (one '
        'shape per image) in the folder layout of MMPretrain\'s ImageNet '
        'dataset.')
    parser.add_argument('--set', choices=sorted(NAMED_SETS),
                        default='pretrain',
                        help='pretrain: 4 shapes, 4000 + 400 images of 64x64;'
                        ' cifar: 10 shapes, 20000 + 2000 images of 32x32 '
                        '(default: %(default)s)')
    parser.add_argument('--out-dir', default='data/shapes_cls',
                        help='root folder of the set (default: %(default)s)')
    parser.add_argument('--num-train', type=int,
                        help='training images (default: the set\'s)')
    parser.add_argument('--num-val', type=int,
                        help='validation images (default: the set\'s)')
    parser.add_argument('--image-size', type=int,
                        help='side of the square images (default: the '
                        'set\'s)')
    parser.add_argument('--seed', type=int,
                        help='seed; equal arguments give identical files '
                        '(default: the set\'s, 0)')
    parser.add_argument('--no-progress', action='store_true',
                        help='hide the progress bar')
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    MMLogger.get_instance('ce_mmdet')  # INFO to stdout
    values = dict(NAMED_SETS[args.set])
    for key in ('num_train', 'num_val', 'image_size', 'seed'):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    try:
        paths = generate_shapes_classification_set(
            args.out_dir, show_progress=not args.no_progress, **values)
    except ValueError as error:  # a bad argument: usage, message, exit 2
        parser.error(str(error))
    print(json.dumps(paths, indent=2))


if __name__ == '__main__':
    main()
