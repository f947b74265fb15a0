"""ResNet with a chosen subset of the ReLUs inside each residual block.

"Rethink ReLU to Training Better CNNs" (Zhao et al., 2017) claims that
keeping the ratio of convolutions to ReLUs at N:M with N > M generalises
better than pairing every convolution with a ReLU. Which ReLUs the paper
removes is not known to us: the option below and its presets are OUR
design, not the paper's. The stem ReLU and the ReLU after the residual
addition always stay; ``kept_relus`` chooses, per block, which of the ReLUs
between the block's convolutions stay:

* Bottleneck (3 convs): ReLUs after bn1 and bn2. Preset ``'proportional'``
  = ``(False, True)`` (drop the one after bn1): 3 convs : 2 ReLUs,
  counting the one after the addition.
* BasicBlock (2 convs): the ReLU after bn1. Preset ``'proportional'`` =
  ``(False,)``: 2 convs : 1 ReLU.
* ``'all'`` keeps every ReLU (MMDetection's ResNet).

(A related paper, EraseReLU 2017, reports that removing the last ReLU inside
every module usually helps; ``kept_relus=(True, False)`` is that variant for
a Bottleneck.)
"""
from typing import Any, Dict, Sequence, Tuple, Union

import torch
from mmdet.models.backbones.resnet import BasicBlock, Bottleneck
from mmdet.registry import MODELS
from torch import Tensor

from .plugin_resnet import PluginBasicBlock, PluginResNet
from .pretrained_checks import (
    check_pretrained_source,
    pretrained_checkpoint,
    require_loaded,
)
from .residual_steps import StepsBottleneck

PRESETS = {
    'proportional': {Bottleneck: (False, True), BasicBlock: (False,)},
    'all': {Bottleneck: (True, True), BasicBlock: (True,)},
}
INNER_RELUS = {Bottleneck: 2, BasicBlock: 1}


class _KeptReLUs:
    """Mixin for a :class:`~ce_mmdet.backbones.residual_steps.
    ResidualSteps` block: the ReLU after inner norm K only if
    ``kept_relus[K - 1]``.

    MMDetection's blocks call one shared ``self.relu`` after bn1, bn2 and
    the addition, so it cannot be replaced; the step between the
    convolutions calls it conditionally instead.
    """

    kept_relus: Tuple[bool, ...]

    def __init__(self, *args, kept_relus: Sequence[bool], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.kept_relus = tuple(bool(k) for k in kept_relus)

    def between_convs(self, index: int, x: Tensor) -> Tensor:
        return self.relu(x) if self.kept_relus[index - 1] else x


class ProportionalReLUBasicBlock(_KeptReLUs, PluginBasicBlock):
    """BasicBlock (with plugins) keeping the ReLU after bn1 or not."""

    def __init__(self, *args, kept_relus: Sequence[bool] = (False,),
                 **kwargs) -> None:
        super().__init__(*args, kept_relus=kept_relus, **kwargs)


class ProportionalReLUBottleneck(_KeptReLUs, StepsBottleneck):
    """MMDetection's Bottleneck keeping the ReLUs after bn1/bn2 or not."""

    def __init__(self, *args, kept_relus: Sequence[bool] = (False, True),
                 **kwargs) -> None:
        super().__init__(*args, kept_relus=kept_relus, **kwargs)


def weights_fix(kept_relus: Tuple[bool, ...]) -> str:
    return (
        'Removing ReLUs changes the function every weight was trained for: '
        'a ResNet with fewer ReLUs needs its own ImageNet training. Train '
        'ProportionalReLUResNet on ImageNet with the same kept_relus and '
        'point init_cfg.checkpoint at it (its checkpoints carry '
        f'kept_relus_record = tensor({list(map(int, kept_relus))}); add it '
        'to weights of the same network trained elsewhere), or set '
        'model.backbone.init_cfg=None to train from scratch.')


@MODELS.register_module()
class ProportionalReLUResNet(PluginResNet):
    """ResNet keeping only some ReLUs inside each block (our design).

    See the module docstring for the presets. Every option of MMDetection's
    ResNet works (``plugins`` for every depth, as in :class:`PluginResNet`).
    The chosen pattern is saved with the weights (buffer
    ``kept_relus_record``, 1 = kept): a ``Pretrained`` checkpoint without
    it (a plain ResNet) or with another pattern is refused in
    ``init_weights``.

    Args:
        depth: 18, 34, 50, 101 or 152.
        kept_relus: ``'proportional'`` (3:2 Bottleneck / 2:1 BasicBlock),
            ``'all'``, or one flag per inner ReLU of the depth's block (2 for
            a Bottleneck: after bn1, after bn2; 1 for a BasicBlock).
        **kwargs: MMDetection ResNet's arguments.
    """

    block_classes = {BasicBlock: ProportionalReLUBasicBlock,
                     Bottleneck: ProportionalReLUBottleneck}

    def __init__(self, depth: int,
                 kept_relus: Union[str, Sequence[bool]] = 'proportional',
                 **kwargs) -> None:
        if depth not in self.arch_settings:
            raise KeyError(f'invalid depth {depth} for resnet')
        block = self.arch_settings[depth][0]
        if isinstance(kept_relus, str):
            if kept_relus not in PRESETS:
                raise ValueError(
                    f'kept_relus preset {kept_relus!r} unknown; use one of '
                    f'{sorted(PRESETS)} or a tuple of flags.')
            kept_relus = PRESETS[kept_relus][block]
        kept_relus = tuple(bool(k) for k in kept_relus)
        if len(kept_relus) != INNER_RELUS[block]:
            raise ValueError(
                f'kept_relus needs {INNER_RELUS[block]} flag(s) for the '
                f'{block.__name__} of ResNet-{depth} (ReLUs after '
                f'{"bn1, bn2" if block is Bottleneck else "bn1"}), got '
                f'{kept_relus}')
        self.kept_relus = kept_relus
        super().__init__(depth, **kwargs)
        self.register_buffer('kept_relus_record',
                             torch.tensor(kept_relus, dtype=torch.long))

    def stage_block_args(self, stage: int) -> Dict[str, Any]:
        return {'kept_relus': self.kept_relus}

    def init_weights(self) -> None:
        """Initialise as MMDetection's ResNet; refuse a ``Pretrained``
        checkpoint of another ReLU pattern (e.g. any plain ResNet).

        Raises:
            ValueError: a model-zoo checkpoint, one without
                ``kept_relus_record`` or with another pattern.
            FileNotFoundError: a missing local checkpoint.
        """
        checkpoint = pretrained_checkpoint(self.init_cfg)
        if self.is_init or checkpoint is None:
            return super().init_weights()
        network = f'{type(self).__name__}(kept_relus={self.kept_relus})'
        fix = weights_fix(self.kept_relus)
        check_pretrained_source(self.init_cfg, network, fix)
        with require_loaded({'kept_relus_record': self.kept_relus_record},
                            checkpoint, network, fix):
            super().init_weights()
        loaded = tuple(bool(k) for k in self.kept_relus_record.tolist())
        self.kept_relus_record.copy_(
            torch.tensor(self.kept_relus, dtype=torch.long))
        if loaded != self.kept_relus:
            raise ValueError(
                f'{network}: {checkpoint!r} was trained with '
                f'kept_relus={loaded}. {fix}')
