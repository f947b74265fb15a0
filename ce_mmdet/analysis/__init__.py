"""Evidence tools: inhibited channels, beta signs, CE gates, result tables.

Not imported by ``import ce_mmdet`` (nothing here registers a module);
import ``ce_mmdet.analysis`` explicitly. Command lines:
``tools/analysis_tools/inhibited_channels.py``,
``tools/analysis_tools/compare_blocks.py``,
``tools/analysis_tools/collect_results.py``,
``tools/analysis_tools/channel_ablation.py`` (cumulative ablation) and
``tools/analysis_tools/fig1_report.py`` (the paper's Fig. 1 on classifiers).
"""
from .activation_magnitudes import (
    CRITERIA,
    DEFAULT_EPSILON,
    DEFAULT_TAU,
    ActivationMagnitudeRecorder,
    dead_mask,
    inhibited_mask,
    inhibited_share,
    small_mask,
)
from .beta_signs import NormLayerBeta, norm_layer_betas, pooled_share
from .ce_gates import (
    CELayerStatistics,
    CEStatisticsRecorder,
    ce_gate,
    instance_reweighting_weights,
)
from .inhibited_channels import (
    ModelAnalysis,
    analyze_backbone,
    layer_table,
    summary_table,
)
from .model_structure import (
    ActivationCall,
    UnreadableModelError,
    find_backbone,
    trace_activation_calls,
)

__all__ = [
    'CRITERIA', 'DEFAULT_EPSILON', 'DEFAULT_TAU', 'ActivationCall',
    'ActivationMagnitudeRecorder', 'CELayerStatistics',
    'CEStatisticsRecorder', 'ModelAnalysis',
    'NormLayerBeta', 'UnreadableModelError', 'analyze_backbone', 'ce_gate',
    'dead_mask', 'find_backbone', 'inhibited_mask', 'inhibited_share',
    'instance_reweighting_weights', 'layer_table', 'norm_layer_betas',
    'pooled_share', 'small_mask', 'summary_table', 'trace_activation_calls'
]
