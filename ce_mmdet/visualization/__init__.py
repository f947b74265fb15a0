"""Visualizers, registered in MMDetection's VISUALIZERS registry."""
from .upscaled_det_visualizer import UpscaledDetVisualizer

__all__ = ['UpscaledDetVisualizer']
