"""Runner hooks, registered in MMDetection's HOOKS registry."""
from .training_duration_hook import TrainingDurationHook

__all__ = ['TrainingDurationHook']
