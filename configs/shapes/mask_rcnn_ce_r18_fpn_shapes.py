# Mask R-CNN + FPN with CE-ResNet-18 on the synthetic shapes set: the main
# job of tools/run_demo.sh. Everything (data, heads, schedule) comes from the
# plain ResNet-18 config; only the backbone type changes, with CE placed as
# in the paper's release (after the stem BN and after the last BN of every
# block of stages 1-3).
_base_ = './mask_rcnn_r18_fpn_shapes.py'

model = dict(
    backbone=dict(
        type='CEResNet',
        stage_with_ce=(True, True, True, False),
        ce_cfg=dict(type='CE', group_size=16),
        stem_ce_cfg=dict(type='CE', group_size=64),
        # CE uses batch statistics in training (the BN layers do too:
        # norm_eval=False in the base config).
        ce_eval=False))
