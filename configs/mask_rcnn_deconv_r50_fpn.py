"""Mask R-CNN + FPN with a Network Deconvolution ResNet-50, 1x.

``DeconvResNet`` as the authors' ImageNet ResNet: every block convolution a
FastDeconv with bias, no block BNs, a 7x7 deconvolution stem (15
Newton-Schulz iterations, frozen statistics), projection shortcuts with
their BN. Everything else is ``mask_rcnn_r50_fpn.py``; ``frozen_stages=1``
and ``norm_eval=True`` mean, for this backbone, that the stem and stage 1
are frozen completely and that no statistics move (the deconvolutions use
their ImageNet running statistics, their weights and biases train), the
counterpart of MMDetection's frozen BN.

ImageNet weights: this network has no BN in its blocks, so torchvision's
ResNet-50 does not fit it; it needs its own ImageNet training (the authors
publish no ResNet-50; their ResNet-18 reaches top-1 71.24 vs 69.76 with BN).
Train DeconvResNet-50 on ImageNet and save its backbone weights (MMDetection
names) to ``checkpoints/deconv_resnet50_imagenet.pth``. Training stops at
weight initialisation with an error naming this fix when the file is
missing, or when ``init_cfg`` points to plain ResNet weights.
"""
_base_ = './mask_rcnn_r50_fpn.py'

model = dict(
    backbone=dict(
        type='DeconvResNet',
        deconv_cfg=dict(
            type='FastDeconv', block=64, n_iter=5, sampling_stride=3),
        stem_deconv_cfg=dict(
            type='FastDeconv', n_iter=15, sampling_stride=3,
            freeze_after=100),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='checkpoints/deconv_resnet50_imagenet.pth')))
