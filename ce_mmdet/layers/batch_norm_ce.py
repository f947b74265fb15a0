"""BN followed by CE as one norm layer, for any module that takes
``norm_cfg``."""
from typing import Optional

from mmengine.registry import MODELS
from torch import Tensor, nn

from .batch_norm_folding import BatchNormFold


class BatchNormCE(nn.BatchNorm2d):
    """``CE(BN(x))``, registered as norm layer ``'BNCE'``.

    Use it wherever MMDetection accepts a ``norm_cfg`` (ResNeXt, RegNet, FPN,
    heads)::

        norm_cfg = dict(type='BNCE', requires_grad=True,
                        ce_cfg=dict(type='CE', group_size=16))

    The BN part *is* this module (an ``nn.BatchNorm2d``), so its state-dict
    keys are a plain BN's (``bn1.weight``, ``bn1.running_mean``, ...) and
    torchvision/MMDetection BN weights load unchanged; CE's live under
    ``<name>.ce``. MMDetection's ``norm_eval`` calls ``.eval()`` on every BN
    layer: here that freezes the BN part only and CE keeps using batch
    statistics, as in CE-ResNet with ``ce_eval=False`` — unless no CE
    parameter trains (``frozen_stages`` sets ``requires_grad=False`` before
    the next ``model.train()``), then both parts. ``model.eval()`` (and
    ``.train(False)``) put both parts in eval mode. With the BN part
    frozen, its affine map is folded into CE's (one pass over the tensor).

    Args:
        num_features: C.
        eps, momentum, affine, track_running_stats: of the BN part.
        ce_cfg: config of the CE part (``in_channels`` is filled in);
            ``dict(type='SyncCE')`` synchronises CE's statistics.
    """

    _abbr_ = 'bn'

    def __init__(self, num_features: int, eps: float = 1e-5,
                 momentum: float = 0.1, affine: bool = True,
                 track_running_stats: bool = True,
                 ce_cfg: Optional[dict] = None) -> None:
        super().__init__(num_features, eps, momentum, affine,
                         track_running_stats)
        ce_cfg = dict(type='CE') if ce_cfg is None else dict(ce_cfg)
        ce_cfg['in_channels'] = num_features
        self.ce = MODELS.build(ce_cfg)

    def eval(self) -> 'BatchNormCE':
        """Freeze the BN part only (what ``norm_eval`` calls), unless the CE
        part is frozen too (no parameter trains: a frozen stage, or
        ``requires_grad=False`` in ``norm_cfg``), then the whole layer."""
        self.training = False
        if not any(p.requires_grad for p in self.ce.parameters()):
            self.ce.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        if not self.training and self.running_var is not None:
            return self.ce.forward_folded(x, BatchNormFold(self))
        return self.ce(super().forward(x))


MODELS.register_module('BNCE', module=BatchNormCE)
