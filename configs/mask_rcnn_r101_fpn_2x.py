"""The BN baseline ``mask_rcnn_r101_fpn.py`` with MMDetection's 2x schedule.

It is MMDetection's own ``mask-rcnn_r101_fpn_2x_coco`` (24 epochs, learning
rate x0.1 at epochs 16 and 22), whose backbone settings are those of the 1x
BN baseline.
"""
_base_ = [
    'mmdet::mask_rcnn/mask-rcnn_r101_fpn_2x_coco.py',
    './_base_/exact_resume.py'
]

custom_imports = dict(imports=['ce_mmdet'], allow_failed_imports=False)
