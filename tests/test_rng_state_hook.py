"""RNGStateHook: the global RNG states saved in checkpoints, restored on
resume.

With fake runners: what is saved, that a resumed run draws what the run that
saved drew next (after the data replay of an iteration-based loop, at the
first epoch of an epoch-based one), that validation leaves the training RNGs
alone, that a checkpoint without the states or a run that does not resume
leaves them as seeded, and that a malformed entry is refused with an error
that names its key. The real resume of a detector with MMDetection's
``RandomSampler`` is in test_tools.py.
"""
import copy
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop

from ce_mmdet.engine import RNGStateHook
from ce_mmdet.engine.rng_state_hook import (
    RNG_STATE_KEY,
    RNGStateError,
    capture_rng_states,
    restore_rng_states,
)
from crafted_checkpoints import without_safe_globals


def draws() -> tuple:
    """A few numbers from each global RNG (Python, NumPy, torch)."""
    return (random.random(), random.gauss(0, 1), np.random.rand(3).tolist(),
            np.random.normal(), torch.rand(3).tolist())


def fake_runner(loop_type: type = EpochBasedTrainLoop, iteration: int = 0,
                world_size: int = 1) -> SimpleNamespace:
    """A runner with a train loop of ``loop_type`` (not built) at ``iteration``
    and a logger that keeps its messages in ``runner.messages``."""
    messages: list[str] = []
    return SimpleNamespace(iter=iteration,
                           world_size=world_size,
                           train_loop=loop_type.__new__(loop_type),
                           messages=messages,
                           logger=SimpleNamespace(info=messages.append))


def saved_checkpoint() -> dict:
    """A checkpoint saved by the hook, after a draw (Python's ``gauss``
    keeps a second number for the next call: that is state too)."""
    draws()
    checkpoint: dict = {}
    RNGStateHook().before_save_checkpoint(fake_runner(), checkpoint)
    return checkpoint


def test_epoch_based_resume_draws_what_the_saving_run_drew_next() -> None:
    checkpoint = saved_checkpoint()
    expected = draws()  # the saving run, continuing
    random.seed(1), np.random.seed(1), torch.manual_seed(1)  # fresh process
    hook = RNGStateHook()
    runner = fake_runner(EpochBasedTrainLoop, iteration=8)
    hook.after_load_checkpoint(runner, checkpoint)
    hook.before_train(runner)
    draws()  # whatever runs between, e.g. another hook's before_train
    hook.before_train_epoch(runner)
    assert draws() == expected
    assert runner.messages == [
        'Restored the RNG states saved at iteration 8 (python random, '
        'numpy, torch CPU).'
    ]
    hook.before_train_epoch(runner)  # restored once, not every epoch
    assert draws() != expected


def test_iteration_based_resume_restores_after_the_data_replay() -> None:
    checkpoint = saved_checkpoint()
    expected = draws()  # the saving run fetches its next batch
    # a dataloader whose pipeline draws in this process (num_workers=0)
    batches = (draws() for _ in range(10))
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    hook = RNGStateHook()
    runner = fake_runner(IterBasedTrainLoop, iteration=2)
    runner.train_loop.dataloader_iterator = batches
    hook.after_load_checkpoint(runner, checkpoint)
    hook.before_train(runner)
    hook.before_train_epoch(runner)
    loop = runner.train_loop
    # MMEngine's "Advance dataloader 2 steps", then the first new batch
    replayed = [next(loop.dataloader_iterator) for _ in range(2)]
    assert not runner.messages
    assert next(loop.dataloader_iterator) == expected
    assert replayed[0] != expected
    assert len(runner.messages) == 1
    assert loop.dataloader_iterator is batches  # the stand-in is gone


def test_validation_leaves_the_training_rngs_alone() -> None:
    hook = RNGStateHook()
    runner = fake_runner()
    state = copy.deepcopy(capture_rng_states())
    expected = draws()
    # restart from ``state``: validate (with a best-checkpoint save), train
    restore_rng_states(state)
    hook.before_val(runner)
    draws()
    best: dict = {}
    hook.before_save_checkpoint(runner, best)
    hook.after_val(runner)
    assert draws() == expected
    # the checkpoint saved during validation holds the state before it
    resumed = fake_runner(iteration=4)
    hook.after_load_checkpoint(resumed, best)
    hook.before_train(resumed)
    hook.before_train_epoch(resumed)
    assert draws() == expected


def test_a_checkpoint_without_states_leaves_the_rngs_as_seeded() -> None:
    hook = RNGStateHook()
    runner = fake_runner(iteration=8)
    hook.after_load_checkpoint(runner, {'meta': {}})
    expected = copy.deepcopy(capture_rng_states())
    hook.before_train(runner)
    hook.before_train_epoch(runner)
    assert len(runner.messages) == 1
    assert "has no 'rng_state'" in runner.messages[0]
    assert_same_states(capture_rng_states(), expected)


@pytest.mark.parametrize('runner', [
    fake_runner(iteration=0),  # load_from: a new run from loaded weights
    fake_runner(iteration=8, world_size=2),  # rank 0's states only
], ids=['load_from', 'multi-process'])
def test_states_are_restored_only_on_a_single_process_resume(
        runner: SimpleNamespace) -> None:
    checkpoint = saved_checkpoint()
    hook = RNGStateHook()
    hook.after_load_checkpoint(runner, checkpoint)
    expected = copy.deepcopy(capture_rng_states())
    hook.before_train(runner)
    hook.before_train_epoch(runner)
    assert_same_states(capture_rng_states(), expected)
    assert len(runner.messages) == (runner.world_size > 1)


def assert_same_states(states: dict, expected: dict) -> None:
    assert states.keys() == expected.keys()
    for name in ('python', 'numpy'):
        for key, value in states[name].items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, expected[name][key]), (name, key)
            else:
                assert value == expected[name][key], (name, key)
    assert torch.equal(states['torch'], expected['torch'])


def test_states_load_with_weights_only_and_no_allowed_global(
        tmp_path) -> None:
    path = tmp_path / 'checkpoint.pth'
    torch.save(saved_checkpoint(), path)
    expected = draws()
    with without_safe_globals():
        assert torch.serialization.get_unsafe_globals_in_checkpoint(
            str(path)) == []
        checkpoint = torch.load(path, weights_only=True)
    hook = RNGStateHook()
    runner = fake_runner(iteration=4)
    hook.after_load_checkpoint(runner, checkpoint)
    hook.before_train(runner)
    hook.before_train_epoch(runner)
    assert draws() == expected


def _set(entry: dict, path: tuple, value: object) -> dict:
    node = entry
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return entry


MALFORMED = {
    'not a dict': ((), [1, 2], "checkpoint['rng_state'] is a list"),
    'unknown key': (('cuda', ), [], "checkpoint['rng_state'] has the keys"),
    'missing key': (('python', ), None, "checkpoint['rng_state'] has the"),
    'torch state size': (('torch', ), torch.zeros(16, dtype=torch.uint8),
                         "['torch'] is a torch.uint8 tensor of shape [16]"),
    'torch state dtype': (('torch', ), torch.zeros(5056),
                          "['torch'] is a torch.float32 tensor"),
    'numpy key as array': (('numpy', 'key'), np.zeros(624, np.uint32),
                           "['numpy']['key'] is a ndarray"),
    'numpy position': (('numpy', 'pos'), 625, "['numpy']['pos'] is 625"),
    'numpy bit generator': (('numpy', 'bit_generator'), 'PCG64',
                            "['numpy']['bit_generator'] is 'PCG64'"),
    'numpy gauss': (('numpy', 'gauss'), '0.5', "['numpy']['gauss'] is '0.5'"),
    'python position': (('python', 'internal'),
                        torch.full((625, ), 700, dtype=torch.uint32),
                        "['python']['internal'][-1] is 700"),
    'python version': (('python', 'version'), 2,
                       "['python']['version'] is 2"),
    'cuda states': (('torch_cuda', ), torch.zeros(16, dtype=torch.uint8),
                    "['torch_cuda'] is a Tensor, not a list"),
}


@pytest.mark.parametrize('path,value,message', MALFORMED.values(),
                         ids=MALFORMED.keys())
def test_a_malformed_entry_is_refused_naming_its_key(path: tuple,
                                                     value: object,
                                                     message: str) -> None:
    checkpoint = saved_checkpoint()
    if path:
        if value is None:
            del checkpoint[RNG_STATE_KEY][path[0]]
        else:
            _set(checkpoint[RNG_STATE_KEY], path, value)
    else:
        checkpoint[RNG_STATE_KEY] = value
    expected = copy.deepcopy(capture_rng_states())
    with pytest.raises(RNGStateError) as error:
        RNGStateHook().after_load_checkpoint(fake_runner(iteration=4),
                                             checkpoint)
    assert message in str(error.value)
    assert "delete the checkpoint's 'rng_state' entry" in str(error.value)
    assert_same_states(capture_rng_states(), expected)
