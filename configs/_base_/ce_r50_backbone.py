"""The CE-ResNet-50 backbone of the detector configs in ``configs/detectors``.

The authors' ImageNet CE-ResNet-50, converted by
``tools/model_converters/cenet2mmdet.py``, as in
``../mask_rcnn_ce_r50_fpn.py``.
A config lists this file in its ``_base_`` and takes the backbone with
``model = dict(backbone=_base_.pop('ce_r50_backbone'))``: popped, so that the
merged config has no extra top-level key.
"""
custom_imports = dict(imports=['ce_mmdet'], allow_failed_imports=False)

ce_r50_backbone = dict(
    # CEResNet's defaults place CE as in the release (stem + stages 1-3);
    # BN stays frozen as in MMDetection's bases (frozen_stages=1,
    # norm_eval=True), CE uses batch statistics (ce_eval=False).
    type='CEResNet',
    ce_eval=False,
    init_cfg=dict(
        type='Pretrained', checkpoint='checkpoints/ce_resnet50_mmdet.pth'))
