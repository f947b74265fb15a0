"""``mask_rcnn_syncce_r101_fpn.py`` (SyncCE) with MMDetection's 2x schedule."""
_base_ = './mask_rcnn_ce_r101_fpn_2x.py'

model = dict(
    backbone=dict(ce_cfg=dict(type='SyncCE'), stem_ce_cfg=dict(type='SyncCE')))
