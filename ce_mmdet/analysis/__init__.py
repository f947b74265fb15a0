"""Evidence tools: inhibited channels, beta signs, CE gates, result tables.

Not imported by ``import ce_mmdet`` (nothing here registers a module);
import ``ce_mmdet.analysis`` explicitly. Command lines:
``tools/analysis_tools/inhibited_channels.py``,
``tools/analysis_tools/compare_blocks.py`` and
``tools/analysis_tools/collect_results.py``.
"""
from .activation_magnitudes import (DEFAULT_TAU, ActivationMagnitudeRecorder,
                                    inhibited_mask, inhibited_share)
from .beta_signs import NormLayerBeta, norm_layer_betas, pooled_share
from .ce_gates import (CELayerStatistics, CEStatisticsRecorder, ce_gate,
                       instance_reweighting_weights)
from .inhibited_channels import (ModelAnalysis, analyze_backbone,
                                 layer_table, summary_table)
from .model_structure import (ActivationCall, UnreadableModelError,
                              find_backbone, trace_activation_calls)

__all__ = [
    'DEFAULT_TAU', 'ActivationCall', 'ActivationMagnitudeRecorder',
    'CELayerStatistics', 'CEStatisticsRecorder', 'ModelAnalysis',
    'NormLayerBeta', 'UnreadableModelError', 'analyze_backbone', 'ce_gate',
    'find_backbone', 'inhibited_mask', 'inhibited_share',
    'instance_reweighting_weights', 'layer_table', 'norm_layer_betas',
    'pooled_share', 'summary_table', 'trace_activation_calls'
]
