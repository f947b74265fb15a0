"""Mask R-CNN + FPN, CE-ResNet-101 with synchronized CE (SyncCE), 1x.

``mask_rcnn_ce_r101_fpn.py`` with SyncCE; see ``mask_rcnn_syncce_r50_fpn.py``.
Needs a CE-ResNet-101 checkpoint of your own (the authors released R-50
only).
"""
_base_ = './mask_rcnn_ce_r101_fpn.py'

model = dict(
    backbone=dict(
        ce_cfg=dict(type='SyncCE'),
        stem_ce_cfg=dict(type='SyncCE')))
