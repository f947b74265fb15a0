"""CE layers, registered in MMDetection's and MMEngine's MODELS registries."""
from .batch_norm_ce import BatchNormCE
from .channel_equilibrium import (ChannelEquilibrium, InstanceReweighting,
                                  is_frozen_batch_norm, newton_whitening,
                                  resolve_group_size)
from .sync_channel_equilibrium import (SyncChannelEquilibrium,
                                       convert_sync_channel_equilibrium)

__all__ = [
    'BatchNormCE', 'ChannelEquilibrium', 'InstanceReweighting',
    'SyncChannelEquilibrium', 'convert_sync_channel_equilibrium',
    'is_frozen_batch_norm', 'newton_whitening', 'resolve_group_size'
]
