"""ce_mmdet: Channel Equilibrium (ICML 2020) for MMDetection 3.x.

Importing the package registers its modules: the layers in MMEngine's root
MODELS, found from every scope (the CE layer, its synchronized variant, the
BN+CE and norm+CE norm layers, the comparison blocks: the SE and
Gather-Excite plugins, the FastDeconv conv layer), and in MMDetection's
registries the backbones (CE-ResNet, PluginResNet, DeconvResNet,
ProportionalReLUResNet) and the UpscaledDetVisualizer that draws the shapes
demo's pictures; it allow-lists restricted stand-ins for the classes that
MMEngine's own checkpoints carry for ``torch.load(weights_only=True)``,
and makes MMEngine's checkpoint loaders check what they load (a resume never
executes a config text stored in a checkpoint). Configs import it through
``custom_imports=dict(imports=['ce_mmdet'], allow_failed_imports=False)``.
"""
from . import (  # noqa: F401
    backbones,
    converters,
    datasets,
    engine,
    layers,
    utils,
    visualization,
)

__version__ = '0.1.0'
