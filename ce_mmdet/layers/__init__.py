"""CE layers (CE, SyncCE, BN+CE as ``'BNCE'``, any norm + CE as
``'NormCE'``) and the blocks CE is compared with (SE, Gather-Excite, Network
Deconvolution), each registered once, in MMEngine's root MODELS registry
(MMCV's pattern for its norm layers): MMDetection's and MMPretrain's MODELS
fall back to it, and MMCV's ``build_norm_layer``, ``build_conv_layer`` and
``build_plugin_layer`` build from it."""
from .batch_norm_ce import BatchNormCE
from .batch_norm_folding import (
    BatchNormFold,
    is_foldable_batch_norm,
    is_frozen_batch_norm,
)
from .channel_equilibrium import (
    ChannelEquilibrium,
    InstanceReweighting,
    newton_whitening,
    resolve_group_size,
)
from .gather_excite import (
    DepthwiseGather,
    GatherExcite,
    GETheta,
    GEThetaMinus,
    GEThetaPlus,
)
from .network_deconvolution import FastDeconv, newton_schulz_isqrt
from .norm_ce import NormCE
from .squeeze_excitation import SqueezeExcitation
from .sync_channel_equilibrium import (
    SyncChannelEquilibrium,
    convert_sync_channel_equilibrium,
)

__all__ = [
    'BatchNormCE', 'BatchNormFold', 'ChannelEquilibrium', 'DepthwiseGather',
    'FastDeconv', 'GETheta', 'GEThetaMinus', 'GEThetaPlus', 'GatherExcite',
    'InstanceReweighting', 'NormCE', 'SqueezeExcitation',
    'SyncChannelEquilibrium',
    'convert_sync_channel_equilibrium', 'is_foldable_batch_norm',
    'is_frozen_batch_norm',
    'newton_schulz_isqrt', 'newton_whitening', 'resolve_group_size'
]
