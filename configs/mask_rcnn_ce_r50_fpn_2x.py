"""``mask_rcnn_ce_r50_fpn.py`` with MMDetection's 2x schedule.

24 epochs, learning rate x0.1 at epochs 16 and 22 (MMDetection's
``schedule_2x.py``); everything else as in the 1x config.
"""
_base_ = './mask_rcnn_ce_r50_fpn.py'

train_cfg = dict(max_epochs=24)
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(
        type='MultiStepLR',
        begin=0,
        end=24,
        by_epoch=True,
        milestones=[16, 22],
        gamma=0.1)
]
