"""Write the synthetic shapes set (COCO instance segmentation) to disk.

Example (the defaults are the embedded default that tools/run_demo.sh
trains on: 1000 train / 100 val images of 192x192, seed 0)::

    python tools/generate_shapes_dataset.py --out-dir data/shapes

Configs then read ``data/shapes/annotations/instances_{train,val}.json`` with
images under ``data/shapes/{train,val}/`` and
``metainfo=dict(classes=('circle', 'square', 'triangle', 'star'))``.
"""
import argparse
import json

from mmengine.logging import MMLogger

from ce_mmdet.datasets import EMBEDDED_DEFAULT_SET as DEFAULT
from ce_mmdet.datasets import generate_shapes_dataset


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Generate the synthetic shapes instance segmentation set '
        '(circle, square, triangle, star) in COCO format.')
    parser.add_argument(
        '--out-dir', default='data/shapes',
        help='root folder of the set (default: %(default)s)')
    parser.add_argument(
        '--num-train', type=int, default=DEFAULT['num_train'],
        help='number of training images (default: %(default)s)')
    parser.add_argument(
        '--num-val', type=int, default=DEFAULT['num_val'],
        help='number of validation images (default: %(default)s)')
    parser.add_argument(
        '--image-size', type=int, nargs=2, default=DEFAULT['image_size'],
        metavar=('H', 'W'),
        help='image height and width (default: %d %d)' % DEFAULT['image_size'])
    parser.add_argument(
        '--seed', type=int, default=DEFAULT['seed'],
        help='seed; equal arguments give byte-identical files '
        '(default: %(default)s)')
    parser.add_argument(
        '--objects-per-image', type=int, nargs=2,
        default=DEFAULT['objects_per_image'],
        metavar=('MIN', 'MAX'),
        help='objects drawn per image before occlusion drops the hidden ones '
        '(default: 2 6)')
    parser.add_argument(
        '--no-progress', action='store_true', help='hide the progress bar')
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    MMLogger.get_instance('ce_mmdet')  # INFO to stdout
    try:
        paths = generate_shapes_dataset(
            args.out_dir,
            num_train=args.num_train,
            num_val=args.num_val,
            image_size=tuple(args.image_size),
            seed=args.seed,
            objects_per_image=tuple(args.objects_per_image),
            show_progress=not args.no_progress)
    except ValueError as error:  # a bad argument: usage, message, exit 2
        parser.error(str(error))
    print(json.dumps(paths, indent=2))


if __name__ == '__main__':
    main()
