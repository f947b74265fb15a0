"""Runner hooks, registered in MMDetection's HOOKS registry."""
from .rng_state_hook import RNGStateHook
from .training_duration_hook import TrainingDurationHook

__all__ = ['RNGStateHook', 'TrainingDurationHook']
