"""Mask R-CNN, CE-ResNet-50 backbone and an FPN normalised by BN + CE.

``../mask_rcnn_ce_r50_fpn.py`` with the ``BNCE`` norm layer (BN followed by
CE, registered by ce_mmdet) after every lateral and output convolution of the
FPN: CE beyond the backbone, where MMDetection's plain FPN has no
normalisation at all. The FPN is trained from scratch, so both parts of BNCE
train with batch statistics (``norm_eval`` only concerns the backbone); the
convolutions lose their bias (ConvModule's ``bias='auto'``). Set
``ce_cfg=dict(type='SyncCE')`` to synchronise CE's statistics across GPUs.

An extension, not in the paper: no reference number.
"""
_base_ = '../mask_rcnn_ce_r50_fpn.py'

model = dict(
    neck=dict(
        norm_cfg=dict(
            type='BNCE',
            requires_grad=True,
            ce_cfg=dict(type='CE', group_size=16))))
