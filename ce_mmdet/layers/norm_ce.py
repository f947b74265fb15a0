"""Any norm layer followed by CE, as one norm layer (``norm_cfg``)."""
from typing import Optional

from mmcv.cnn import build_norm_layer
from mmengine.registry import MODELS
from torch import Tensor, nn


@MODELS.register_module('NormCE')
class NormCE(nn.Module):
    """``CE(norm(x))`` for any norm layer MMCV builds, registered as
    ``'NormCE'`` (in MMEngine's root registry: found from every scope, so
    MMDetection's and MMPretrain's backbones take it as ``norm_cfg``).

    The paper's Fig. 1 puts CE after LayerNorm as well as after BN; in a
    convolutional network LayerNorm over (C, H, W) is ``GN`` with one group::

        norm_cfg = dict(type='NormCE', norm_cfg=dict(type='GN', num_groups=1))
        norm_cfg = dict(type='NormCE', norm_cfg=dict(type='IN', affine=True),
                        ce_cfg=dict(type='CE', group_size=8))

    Input and output: (N, C, H, W). The norm is ``self.norm`` and CE
    ``self.ce``: state-dict keys ``<name>.norm.*`` and ``<name>.ce.*``. CE
    applies the norm itself (``CE.forward(x, preceding_norm=norm)``), so a
    frozen ``BatchNorm2d`` is folded into CE's map as in ``'BNCE'``; for BN
    prefer ``'BNCE'``, whose BN keys are a plain BN's and whose BN part
    follows ``norm_eval``.

    Args:
        num_features: C (``build_norm_layer`` passes it).
        norm_cfg: the norm layer, as any ``norm_cfg`` (default ``GN`` with
            one group: LayerNorm over C, H, W).
        ce_cfg: config of the CE part (``in_channels`` is filled in);
            ``dict(type='SyncCE')`` synchronises CE's statistics.
        eps: the norm's eps when ``norm_cfg`` gives none
            (``build_norm_layer`` passes 1e-5 by default).
    """

    _abbr_ = 'norm_ce'  # not 'norm': ConvModule has a property of that name

    def __init__(self, num_features: int, norm_cfg: Optional[dict] = None,
                 ce_cfg: Optional[dict] = None,
                 eps: Optional[float] = None) -> None:
        super().__init__()
        norm_cfg = (dict(type='GN', num_groups=1) if norm_cfg is None
                    else dict(norm_cfg))
        if norm_cfg.get('type') in ('NormCE', 'BNCE', NormCE):
            raise ValueError(
                f"NormCE: norm_cfg is the norm before CE, got "
                f"{norm_cfg['type']!r}, which already ends with CE; give a "
                "plain norm such as dict(type='GN', num_groups=1)")
        if eps is not None:
            norm_cfg.setdefault('eps', eps)
        _, self.norm = build_norm_layer(norm_cfg, num_features)
        ce_cfg = dict(type='CE') if ce_cfg is None else dict(ce_cfg)
        ce_cfg['in_channels'] = num_features
        self.ce = MODELS.build(ce_cfg)

    def forward(self, x: Tensor) -> Tensor:
        return self.ce(x, preceding_norm=self.norm)
