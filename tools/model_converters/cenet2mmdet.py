"""Convert the authors' CENet ImageNet checkpoint for CE-ResNet backbones.

    python tools/model_converters/cenet2mmdet.py SRC DST [--depth 50]

DST is then used as ``init_cfg=dict(type='Pretrained', checkpoint=DST)``.
It prints the SHA-256 of SRC (also stored in DST's ``meta``), to compare
with the download.
"""
import argparse
import os
import sys

from ce_mmdet.converters import (
    CENetCheckpointError,
    convert_cenet_checkpoint,
    file_sha256,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='the released checkpoint (.pth.tar)')
    parser.add_argument('dst', help='where to write the converted weights')
    parser.add_argument('--depth', type=int, choices=(18, 34, 50, 101, 152),
                        help='refuse a checkpoint of another depth')
    args = parser.parse_args()
    if os.path.isfile(args.src):
        print(f'read {args.src} (sha256 {file_sha256(args.src)})')
    try:
        depth = convert_cenet_checkpoint(args.src, args.dst, args.depth)
    except CENetCheckpointError as error:
        print(f'cenet2mmdet: refused: {error}', file=sys.stderr)
        return 2
    print(f'wrote CE-ResNet-{depth} backbone weights to {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
