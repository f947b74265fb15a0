"""``mask_rcnn_ce_r18_fpn_shapes.py`` with its CE-ResNet-18 initialised from
a classifier pretrained on the shapes classification set by MMPretrain
(``python tools/pretrain/train.py
configs/pretrain/shapes/ce-resnet18_shapes-cls.py``, which writes the
checkpoint below): step 2 of ``tools/run_demo.sh pretrain``. The checkpoint
must be a CE-ResNet-18's: another depth, a plain ResNet's or an incomplete
one is refused before anything is loaded. Another checkpoint:
``--cfg-options model.backbone.init_cfg.checkpoint=<path>``.
"""
_base_ = './mask_rcnn_ce_r18_fpn_shapes.py'

model = dict(
    backbone=dict(
        init_cfg=dict(
            _delete_=True,
            type='Pretrained',
            checkpoint='work_dirs/ce-resnet18_shapes-cls/epoch_8.pth',
            prefix='backbone.')))
