"""Keep the global RNG states in checkpoints, so that a resume is exact.

MMEngine 0.10 checkpoints the model, optimizer, schedulers and message hub,
but no global RNG state: a resumed run continues with its RNGs freshly
seeded. Whatever draws from them after the resume draws other numbers than
the uninterrupted run would have, first of all MMDetection's
``RandomSampler``, which picks the RPN and R-CNN proposals every Mask R-CNN
config trains on from the global torch RNG.

:class:`RNGStateHook` stores the states of Python's ``random``, NumPy's
legacy global ``RandomState``, torch's CPU generator and, once CUDA is
initialised, every CUDA device's generator under ``checkpoint['rng_state']``,
as plain tensors, ints, floats and strings, so that the checkpoint still
loads with ``torch.load(weights_only=True)`` and needs nothing added to
ce_mmdet's allow-list.

What is saved is the state at the save, i.e. after the iteration or epoch
that CheckpointHook saves after: the state training continues from. A
resumed run restores it at the latest moment before it fetches its first new
batch, where the uninterrupted run had it:

* ``IterBasedTrainLoop``: after MMEngine's ``Advance dataloader k steps``,
  which re-reads the k trained batches and so, with ``num_workers=0``,
  replays the data pipeline's draws (``RandomFlip``) in this process.
  Restoring before that replay shifts NumPy's state by k batches' draws
  (measured: the tiny detector's losses differ from the first resumed
  iteration on).
* other loops (``EpochBasedTrainLoop``): in ``before_train_epoch`` of the
  first resumed epoch, just before the dataloader's iterator is created
  (which draws its workers' base seed from the torch RNG).

Validation leaves the training RNGs as they were before it (states taken in
``before_val``, put back in ``after_val``): the uninterrupted run validates
after the saved iteration or epoch (the configs validate where they save),
the resumed run does not, and the val dataloader and model draw from the
same RNGs. A checkpoint saved during validation (``save_best``) stores the
state from before it.

Not covered: in a multi-process run MMEngine writes the checkpoint on rank 0
only, so it holds rank 0's states; a multi-process resume restores none of
them (logged). Dataloader workers keep RNGs of their own: an epoch-based run
with ``persistent_workers=True`` restarts them on resume with their initial
seeds, so its pipeline draws differ after a resume (iteration-based runs
replay them, see above).
"""
from __future__ import annotations

import random
from typing import Any, Callable, Optional

import numpy as np
import torch
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.runner import IterBasedTrainLoop, Runner

__all__ = [
    'RNGStateHook', 'RNGStateError', 'RNG_STATE_KEY', 'capture_rng_states',
    'checked_rng_states', 'restore_rng_states'
]

RNG_STATE_KEY = 'rng_state'
"""The checkpoint key under which :class:`RNGStateHook` stores the states."""

RNGStates = dict[str, Any]

_MT19937_WORDS = 624  # the Mersenne Twister's state, in uint32 words
_PYTHON_RANDOM_VERSION = 3  # random.getstate()'s format since Python 3.2


class RNGStateError(ValueError):
    """A checkpoint's RNG entry that is not what :class:`RNGStateHook`
    writes."""


def capture_rng_states() -> RNGStates:
    """The global RNG states, as tensors and plain Python values."""
    version, internal, gauss_next = random.getstate()
    numpy_state = np.random.get_state(legacy=False)
    states: RNGStates = dict(
        python=dict(version=version,
                    internal=torch.tensor(internal, dtype=torch.uint32),
                    gauss_next=gauss_next),
        numpy=dict(bit_generator=numpy_state['bit_generator'],
                   key=torch.from_numpy(numpy_state['state']['key'].copy()),
                   pos=int(numpy_state['state']['pos']),
                   has_gauss=int(numpy_state['has_gauss']),
                   gauss=float(numpy_state['gauss'])),
        torch=torch.get_rng_state())
    # initialising CUDA here only to read untouched generators would be waste
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['torch_cuda'] = torch.cuda.get_rng_state_all()
    return states


def _refuse(where: str, problem: str) -> RNGStateError:
    return RNGStateError(
        f"checkpoint['{RNG_STATE_KEY}']{where} {problem}, which RNGStateHook "
        f"never writes. To resume with freshly seeded RNGs instead, delete "
        f"the checkpoint's '{RNG_STATE_KEY}' entry (or remove RNGStateHook "
        'from custom_hooks).')


def _dict_with(value: Any, keys: set[str], where: str,
               optional: frozenset[str] = frozenset()) -> dict:
    if type(value) is not dict:
        raise _refuse(where, f'is a {type(value).__name__}, not a dict')
    if not keys <= value.keys() <= keys | optional:
        raise _refuse(where, f'has the keys {sorted(map(str, value))}, not '
                      f'{sorted(keys)}' +
                      (f' (and optionally {sorted(optional)})'
                       if optional else ''))
    return value


def _tensor(value: Any, dtype: torch.dtype, where: str,
            numel: Optional[int] = None) -> torch.Tensor:
    if (type(value) is not torch.Tensor or value.dtype != dtype
            or value.dim() != 1 or value.is_meta
            or numel is not None and value.numel() != numel):
        shape = f'[{numel}]' if numel is not None else '1-D'
        found = (f'a {value.dtype} tensor of shape {list(value.shape)}'
                 if isinstance(value, torch.Tensor) else
                 f'a {type(value).__name__}')
        raise _refuse(where, f'is {found}, not a {shape} {dtype} tensor')
    return value.cpu()  # resume may map the checkpoint to a GPU


def _int_in(value: Any, low: int, high: int, where: str) -> int:
    if type(value) is not int or not low <= value <= high:
        raise _refuse(where, f'is {value!r:.40}, not an int in {low}..{high}')
    return value


def _float(value: Any, where: str, none_allowed: bool = False) -> Any:
    if not (type(value) is float or none_allowed and value is None):
        raise _refuse(where, f'is {value!r:.40}, not a float' +
                      (' or None' if none_allowed else ''))
    return value


def checked_rng_states(entry: Any) -> RNGStates:
    """``entry`` if it is what :func:`capture_rng_states` returns.

    Raises:
        RNGStateError: naming the key at fault and how to resume anyway.
    """
    _dict_with(entry, {'python', 'numpy', 'torch'}, '',
               optional=frozenset({'torch_cuda'}))
    python = _dict_with(entry['python'], {'version', 'internal', 'gauss_next'},
                        "['python']")
    numpy_state = _dict_with(entry['numpy'],
                             {'bit_generator', 'key', 'pos', 'has_gauss',
                              'gauss'}, "['numpy']")
    _int_in(python['version'], _PYTHON_RANDOM_VERSION, _PYTHON_RANDOM_VERSION,
            "['python']['version']")
    internal = _tensor(python['internal'], torch.uint32,
                       "['python']['internal']", _MT19937_WORDS + 1)
    # the last word is the position in the state
    _int_in(int(internal[-1]), 0, _MT19937_WORDS, "['python']['internal'][-1]")
    checked = dict(
        python=dict(version=python['version'], internal=internal,
                    gauss_next=_float(python['gauss_next'],
                                      "['python']['gauss_next']",
                                      none_allowed=True)))
    if numpy_state['bit_generator'] != 'MT19937':
        raise _refuse("['numpy']['bit_generator']",
                      f"is {numpy_state['bit_generator']!r:.40}, not "
                      "'MT19937'")
    checked['numpy'] = dict(
        bit_generator='MT19937',
        key=_tensor(numpy_state['key'], torch.uint32, "['numpy']['key']",
                    _MT19937_WORDS),
        pos=_int_in(numpy_state['pos'], 0, _MT19937_WORDS,
                    "['numpy']['pos']"),
        has_gauss=_int_in(numpy_state['has_gauss'], 0, 1,
                          "['numpy']['has_gauss']"),
        gauss=_float(numpy_state['gauss'], "['numpy']['gauss']"))
    checked['torch'] = _tensor(entry['torch'], torch.uint8, "['torch']",
                               torch.get_rng_state().numel())
    if 'torch_cuda' in entry:
        cuda = entry['torch_cuda']
        if type(cuda) is not list:
            raise _refuse("['torch_cuda']",
                          f'is a {type(cuda).__name__}, not a list')
        checked['torch_cuda'] = [
            _tensor(state, torch.uint8, f"['torch_cuda'][{index}]")
            for index, state in enumerate(cuda)
        ]
    return checked


def restore_rng_states(states: RNGStates) -> list[str]:
    """Set the global RNGs to checked ``states``.

    Args:
        states: what :func:`checked_rng_states` returned.

    Returns:
        What was restored, for the log; the CUDA generators only where
        CUDA is available, as many as there are devices and states.
    """
    python = states['python']
    random.setstate((python['version'], tuple(python['internal'].tolist()),
                     python['gauss_next']))
    numpy_state = states['numpy']
    np.random.set_state(
        dict(bit_generator=numpy_state['bit_generator'],
             state=dict(key=numpy_state['key'].numpy(),
                        pos=numpy_state['pos']),
             has_gauss=numpy_state['has_gauss'],
             gauss=numpy_state['gauss']))
    torch.set_rng_state(states['torch'])
    restored = ['python random', 'numpy', 'torch CPU']
    cuda = states.get('torch_cuda', [])
    if cuda and torch.cuda.is_available():
        devices = min(len(cuda), torch.cuda.device_count())
        for device, state in enumerate(cuda[:devices]):
            torch.cuda.set_rng_state(state, device)
        restored.append(f'{devices} of {len(cuda)} saved CUDA devices')
    return restored


class _RestoreAfterReplay:
    """Stands in for ``IterBasedTrainLoop.dataloader_iterator`` on resume.

    Passes the loop's re-reading of the ``replayed`` trained batches
    through, then restores the RNG states and hands the real iterator back
    to the loop just before it fetches its first new batch.
    """

    def __init__(self, loop: IterBasedTrainLoop, replayed: int,
                 restore: Callable[[], None]) -> None:
        self._loop = loop
        self._iterator = loop.dataloader_iterator
        self._to_replay = replayed
        self._restore = restore

    def __iter__(self) -> '_RestoreAfterReplay':
        return self

    def __next__(self) -> Any:
        if self._to_replay > 0:
            self._to_replay -= 1
            return next(self._iterator)
        self._loop.dataloader_iterator = self._iterator
        self._restore()
        return next(self._iterator)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save the global RNG states in checkpoints and restore them on resume.

    See the module's documentation for what is saved, and when it is
    restored. Add it to a config with
    ``custom_hooks = [dict(type='RNGStateHook')]`` (and
    ``custom_imports = dict(imports=['ce_mmdet'])``). A resumed checkpoint
    without ``rng_state`` leaves the RNGs as seeded (logged once).
    """

    # after other hooks' draws in before_train_epoch and after_val
    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self._loaded: Optional[RNGStates] = None  # checked, not yet used
        self._checkpoint_loaded = False
        self._pending: Optional[RNGStates] = None  # for before_train_epoch
        self._before_val: Optional[RNGStates] = None

    def before_save_checkpoint(self, runner: Runner,
                               checkpoint: dict) -> None:
        # during validation (save_best) training continues from the state
        # it had before validating
        checkpoint[RNG_STATE_KEY] = (self._before_val if self._before_val
                                     is not None else capture_rng_states())

    def after_load_checkpoint(self, runner: Runner,
                              checkpoint: dict) -> None:
        # checked now, restored only if training resumes from it (load_from
        # and tools/test.py load checkpoints too)
        self._checkpoint_loaded = True
        entry = checkpoint.get(RNG_STATE_KEY)
        self._loaded = None if entry is None else checked_rng_states(entry)

    def before_train(self, runner: Runner) -> None:
        resumed = self._checkpoint_loaded and runner.iter > 0
        states, self._loaded = self._loaded, None
        if not resumed:
            return
        if states is None:
            runner.logger.info(
                f"The resumed checkpoint has no '{RNG_STATE_KEY}' (written "
                'without RNGStateHook): the RNGs stay as seeded, so random '
                'draws differ from the uninterrupted run.')
        elif runner.world_size > 1:
            runner.logger.info(
                "RNG states not restored: the checkpoint holds rank 0's "
                'only, and this run has several processes.')
        elif isinstance(runner.train_loop, IterBasedTrainLoop):
            loop = runner.train_loop
            loop.dataloader_iterator = _RestoreAfterReplay(
                loop, runner.iter, lambda: self._restore(runner, states))
        else:
            self._pending = states

    def before_train_epoch(self, runner: Runner) -> None:
        states, self._pending = self._pending, None
        if states is not None:
            self._restore(runner, states)

    def before_val(self, runner: Runner) -> None:
        self._before_val = capture_rng_states()

    def after_val(self, runner: Runner) -> None:
        states, self._before_val = self._before_val, None
        if states is not None:
            restore_rng_states(states)

    @staticmethod
    def _restore(runner: Runner, states: RNGStates) -> None:
        restored = restore_rng_states(states)
        runner.logger.info(f'Restored the RNG states saved at iteration '
                           f'{runner.iter} ({", ".join(restored)}).')
