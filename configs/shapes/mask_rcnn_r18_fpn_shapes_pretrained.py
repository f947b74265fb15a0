"""``mask_rcnn_r18_fpn_shapes.py`` with its ResNet-18 initialised from a
classifier pretrained on the shapes classification set by MMPretrain
(``python tools/pretrain/train.py
configs/pretrain/shapes/resnet18_shapes-cls.py``, which writes the
checkpoint below): step 2 of ``tools/run_demo.sh pretrain plain``. Schedule,
data and heads are the from-scratch config's, so the two compare
pretraining alone. Another checkpoint: ``--cfg-options
model.backbone.init_cfg.checkpoint=<path>``.
"""
_base_ = './mask_rcnn_r18_fpn_shapes.py'

model = dict(
    backbone=dict(
        init_cfg=dict(
            _delete_=True,
            type='Pretrained',
            checkpoint='work_dirs/resnet18_shapes-cls/epoch_8.pth',
            prefix='backbone.')))
