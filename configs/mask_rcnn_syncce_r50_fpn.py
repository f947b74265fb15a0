"""Mask R-CNN + FPN, CE-ResNet-50 with cross-GPU synchronized CE (SyncCE).

As ``mask_rcnn_ce_r50_fpn.py`` except that every CE layer computes its batch
statistics (the covariance of batch decorrelation and the variance scale of
instance reweighting) over the images of all GPUs instead of the 2 per GPU.
The checkpoint is the same: SyncCE has CE's parameters and buffers. Without
a process group (one GPU or CPU) SyncCE behaves as CE.
"""
_base_ = './mask_rcnn_ce_r50_fpn.py'

model = dict(
    backbone=dict(
        ce_cfg=dict(type='SyncCE'),
        stem_ce_cfg=dict(type='SyncCE')))
