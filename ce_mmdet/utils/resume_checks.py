"""Resume only what fits: optimizer and scheduler states checked, in the
file and against the run, before anything is loaded.

MMEngine's ``Runner.resume`` loads a checkpoint (the model's weights with
it), then hands ``checkpoint['optimizer']`` to the optimizer's
``load_state_dict`` and each of ``checkpoint['param_schedulers']`` to a
scheduler's ``load_state_dict``. torch checks only the numbers of parameter
groups and of parameters per group, and casts each state tensor to its
parameter's dtype: a momentum buffer of another shape (a checkpoint of
another config) fails at the first training step, or broadcasts into wrong
values. MMEngine pairs the schedulers with the saved states with ``zip``
(extra ones on either side are dropped) and copies each state into the
scheduler's ``__dict__``, whichever scheduler wrote it.

:func:`check_optimizer_state` and :func:`check_param_scheduler_states` check
those states against the optimizer and schedulers of the run;
:func:`check_resume_states` runs, for a runner and what its ``resume`` would
load, the checks of the file alone
(:func:`ce_mmdet.utils.checkpoint_loading.check_resume_file_states`: types,
finite values, tensors that fit their storage) and then both of those.
:func:`guard_mmengine_resume` (``import ce_mmdet`` calls it) wraps
``Runner.resume`` and ``FlexibleRunner.resume`` so that the checkpoint
they load is checked inside MMEngine's guarded loader
(:func:`ce_mmdet.utils.checkpoint_loading.check_next_load`): after the
checks that every load runs (``meta``, ``message_hub``), before the model's
weights, the train loop's counters, the message hub, the optimizer or a
scheduler change. A refusal raises
:class:`~ce_mmdet.utils.checkpoint_loading.CheckpointRefusedError` naming
the file and the key. MMDetection's and MMPretrain's tools use MMEngine's
``Runner``, so their resumes are checked too. Only resumes: a plain load
(``load_from``, ``tools/test.py``, ``init_cfg`` ``Pretrained``) uses the
weights and never reads these states, so a diverged run's checkpoint (NaN
moments) can still be evaluated.
"""
from __future__ import annotations

import functools
import inspect
import logging
from typing import Any, Callable, Mapping

import torch
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.runner import FlexibleRunner, Runner

from .checkpoint_loading import (
    CheckpointRefusedError,
    check_next_load,
    check_resume_file_states,
)

__all__ = [
    'check_optimizer_state', 'check_param_scheduler_states',
    'check_resume_states', 'guard_mmengine_resume'
]

_ADVICE = ('resume from a checkpoint of this config, or start without '
           '--resume (load_from loads its weights only)')

_FACTORED_STATE_OPTIMIZERS = ('Adafactor', )
"""Optimizers whose per-parameter states may have size 1 in a dimension
where the parameter has more (torch's Adafactor keeps row and column
statistics); for them, a state's shape must equal the parameter's or be 1
in each dimension."""


def _refuse(source: str, key: str, problem: str) -> CheckpointRefusedError:
    return CheckpointRefusedError(
        f'checkpoint {source}: {key} {problem}; {_ADVICE}')


def _shape(tensor: torch.Tensor) -> tuple[int, ...]:
    return tuple(tensor.shape)


def _shape_fits(state: torch.Tensor, param: torch.Tensor,
                factored: bool) -> bool:
    if state.shape == param.shape:
        return True
    return factored and state.dim() == param.dim() and all(
        size in (1, param_size)
        for size, param_size in zip(state.shape, param.shape))


def _param_names(model: torch.nn.Module | None) -> dict[int, str]:
    if model is None:
        return {}
    if is_model_wrapper(model):
        model = model.module
    return {id(param): name for name, param in model.named_parameters()}


def check_optimizer_state(optimizer_state: dict,
                          optimizer: torch.optim.Optimizer,
                          source: str,
                          *,
                          model: torch.nn.Module | None = None,
                          key: str = "['optimizer']") -> None:
    """Check a saved optimizer state against the optimizer it is to load in.

    ``optimizer.load_state_dict(optimizer_state)`` pairs the saved
    parameter ids with the optimizer's parameters in the order of their
    ``param_groups`` (as its ``state_dict()`` numbers them). Checked:

    * the same number of parameter groups, and of parameters in each;
    * every saved state belongs to a parameter that a group lists;
    * every tensor of a parameter's state that is not 0-d has the
      parameter's shape and dtype (torch would cast another dtype
      silently; a tensor of another shape fails at the first step, or
      broadcasts into wrong values); 0-d tensors (``step``, ASGD's
      ``eta`` and ``mu``) have an integer or floating dtype. For
      Adafactor, a state may be 1 where the parameter's dimension is
      larger.

    Types and finite values are checked by
    :func:`ce_mmdet.utils.checkpoint_loading.check_resume_file_states`
    (:func:`check_resume_states` runs it first); this only reads what it
    needs and changes nothing.

    Args:
        optimizer_state: what ``optimizer.state_dict()`` returned when the
            checkpoint was saved (``checkpoint['optimizer']`` of an
            ``OptimWrapper``; MMEngine's extra keys are ignored).
        optimizer: the optimizer of the run that resumes.
        source: the checkpoint's file or URL, for the messages.
        model: names the parameters in the messages, if given.
        key: where ``optimizer_state`` is in the checkpoint.

    Raises:
        CheckpointRefusedError: naming ``source``, the key, what it holds
            and what the run expects.
    """
    groups = optimizer.param_groups
    saved_groups = optimizer_state.get('param_groups')
    states = optimizer_state.get('state')
    if not isinstance(saved_groups, list) or not isinstance(states, dict):
        raise _refuse(source, key,
                      "is not an optimizer's state_dict (of 'state' and "
                      "'param_groups')")
    if len(saved_groups) != len(groups):
        raise _refuse(
            source, f"{key}['param_groups']",
            f'has {len(saved_groups)} parameter groups but the optimizer '
            f'({type(optimizer).__name__}) has {len(groups)}')
    saved_ids: list[Any] = []
    params: list[torch.Tensor] = []
    for index, (saved, group) in enumerate(zip(saved_groups, groups)):
        saved_params = saved.get('params') if isinstance(saved,
                                                         dict) else None
        if not isinstance(saved_params, list):
            raise _refuse(source, f"{key}['param_groups'][{index}]",
                          "has no list 'params'")
        if len(saved_params) != len(group['params']):
            raise _refuse(
                source, f"{key}['param_groups'][{index}]['params']",
                f'lists {len(saved_params)} parameters but group {index} '
                f'of the optimizer has {len(group["params"])}')
        saved_ids += saved_params
        params += group['params']
    id_map = dict(zip(saved_ids, params))
    if len(id_map) != len(saved_ids):
        raise _refuse(source, f"{key}['param_groups']",
                      'lists a parameter id twice')
    names = _param_names(model)
    factored = type(optimizer).__name__ in _FACTORED_STATE_OPTIMIZERS
    for param_id, param_state in states.items():
        where = f'{key}[\'state\'][{param_id!r:.60}]'
        if param_id not in id_map:
            raise _refuse(source, where,
                          'is the state of no parameter that param_groups '
                          'lists')
        if not isinstance(param_state, dict):
            raise _refuse(source, where, 'is not a dict')
        param = id_map[param_id]
        name = names.get(id(param))
        described = f'parameter {param_id}' + (f' ({name})' if name else '')
        for state_name, value in param_state.items():
            if not isinstance(value, torch.Tensor):
                continue
            item = f'{where}[{state_name!r:.60}]'
            if value.dim() == 0:
                if value.dtype == torch.bool or value.is_complex():
                    raise _refuse(
                        source, item, f'is a 0-d {value.dtype} tensor, not '
                        'an integer or floating one')
                continue
            if not _shape_fits(value, param, factored):
                raise _refuse(
                    source, item, f'has shape {_shape(value)} but '
                    f'{described} has shape {_shape(param)}')
            if value.dtype != param.dtype:
                raise _refuse(
                    source, item, f'has dtype {value.dtype} but '
                    f'{described} has dtype {param.dtype}')


def _optimizers(optim_wrapper: OptimWrapper) -> dict[str, OptimWrapper]:
    if isinstance(optim_wrapper, OptimWrapperDict):
        return dict(optim_wrapper.items())
    return {'': optim_wrapper}


def _check_optim_wrapper_state(state: dict, optim_wrapper: OptimWrapper,
                               source: str,
                               model: torch.nn.Module | None) -> None:
    """``checkpoint['optimizer']`` against an ``OptimWrapper`` (one
    optimizer) or an ``OptimWrapperDict`` (a state per name)."""
    key = "['optimizer']"
    wrappers = _optimizers(optim_wrapper)
    single = 'param_groups' in state or 'state' in state
    if list(wrappers) == ['']:
        if not single:
            raise _refuse(
                source, key, f'holds the states of optimizers named '
                f'{sorted(map(str, state))} but the run has one optimizer')
        check_optimizer_state(state, optim_wrapper.optimizer, source,
                              model=model, key=key)
        return
    if single or set(state) != set(wrappers):
        saved = 'one optimizer' if single else sorted(map(str, state))
        raise _refuse(
            source, key, f'holds the state of {saved} but the run has the '
            f'optimizers {sorted(wrappers)}')
    for name, wrapper in wrappers.items():
        check_optimizer_state(state[name], wrapper.optimizer, source,
                              model=model, key=f'{key}[{name!r}]')


def _check_scheduler_list(states: Any, schedulers: list, source: str,
                          key: str) -> None:
    if not isinstance(states, list):
        raise _refuse(source, key,
                      f'is a {type(states).__name__}, not a list of '
                      'scheduler states')
    kinds = [type(scheduler).__name__ for scheduler in schedulers]
    if len(states) != len(schedulers):
        raise _refuse(
            source, key, f'holds {len(states)} scheduler states but the run '
            f'has {len(schedulers)} schedulers {kinds}')
    for index, (state, scheduler) in enumerate(zip(states, schedulers)):
        where = f'{key}[{index}]'
        expected = scheduler.state_dict()
        if not isinstance(state, dict):
            raise _refuse(source, where, 'is not a dict')
        extra = sorted(map(str, state.keys() - expected.keys()))
        missing = sorted(map(str, expected.keys() - state.keys()))
        if extra or missing:
            raise _refuse(
                source, where, f'is not the state of a {kinds[index]} '
                f'(fields {extra} are not its own, {missing} are missing)')
        if state['param_name'] != expected['param_name']:
            raise _refuse(
                source, f"{where}['param_name']",
                f"is {state['param_name']!r:.60} but scheduler {index} "
                f"({kinds[index]}) schedules {expected['param_name']!r}")
        for field in ('base_values', '_last_value', 'min_values'):
            if (field in expected and isinstance(state[field], list)
                    and len(state[field]) != len(expected[field])):
                raise _refuse(
                    source, f'{where}[{field!r}]',
                    f'has {len(state[field])} values but scheduler '
                    f'{index} ({kinds[index]}) has '
                    f'{len(expected[field])} (one per parameter group)')


def check_param_scheduler_states(states: Any, schedulers: list | dict,
                                 source: str) -> None:
    """Check saved scheduler states against the schedulers of the run.

    MMEngine's ``Runner.resume`` pairs them with ``zip`` and copies each
    state into its scheduler's ``__dict__``. Checked: the same layout (a
    list, or a dict of lists by optimizer name), the same number of
    schedulers, each state with exactly the fields of its scheduler's own
    ``state_dict()`` (a state of another scheduler class has others) and
    the same ``param_name``, and as many ``base_values`` and
    ``_last_value`` (one per parameter group) as the scheduler has.
    Types and finite values are checked by
    :func:`ce_mmdet.utils.checkpoint_loading.check_resume_file_states`.

    Args:
        states: ``checkpoint['param_schedulers']``.
        schedulers: the run's built schedulers (``runner.param_schedulers``).
        source: the checkpoint's file or URL, for the messages.

    Raises:
        CheckpointRefusedError: naming ``source`` and the key.
    """
    key = "['param_schedulers']"
    if isinstance(schedulers, dict):
        if not isinstance(states, dict) or set(states) != set(schedulers):
            saved = (sorted(map(str, states))
                     if isinstance(states, dict) else 'one list')
            raise _refuse(
                source, key, f'holds the schedulers of {saved} but the run '
                f'has schedulers for the optimizers {sorted(schedulers)}')
        for name, name_schedulers in schedulers.items():
            _check_scheduler_list(states[name], name_schedulers, source,
                                  f'{key}[{name!r}]')
    else:
        _check_scheduler_list(states, list(schedulers), source, key)


def _built_schedulers(schedulers: Any) -> bool:
    """Whether ``schedulers`` are built (a config still holds dicts)."""
    from mmengine.optim.scheduler import _ParamScheduler

    if isinstance(schedulers, dict):
        lists = list(schedulers.values())
    else:
        lists = [schedulers]
    return all(
        isinstance(group, (list, tuple)) and all(
            isinstance(scheduler, _ParamScheduler) for scheduler in group)
        for group in lists)


def check_resume_states(checkpoint: Any,
                        runner: Runner | FlexibleRunner,
                        source: str,
                        resume_optimizer: bool = True,
                        resume_param_scheduler: bool = True) -> None:
    """Check what ``runner.resume`` would load of ``checkpoint``.

    What it loads: the optimizer state if ``resume_optimizer`` and the
    checkpoint has one, the scheduler states if ``resume_param_scheduler``,
    the checkpoint has them and the runner has schedulers. First in the
    file alone
    (:func:`ce_mmdet.utils.checkpoint_loading.check_resume_file_states`:
    types, finite values, tensors that fit their storage), then against the
    run: the optimizer state by :func:`check_optimizer_state` (per
    optimizer of an ``OptimWrapperDict``), the scheduler states by
    :func:`check_param_scheduler_states` if the runner's schedulers are
    built. A ``Runner`` whose optimizer wrapper is still a config gets it
    built, as its ``resume`` builds it; a wrapper other than MMEngine's
    ``OptimWrapper`` (DeepSpeed's) is not checked against.

    Args:
        checkpoint: the loaded checkpoint, checked by
            :func:`ce_mmdet.utils.check_mmengine_checkpoint`.
        runner: the runner that resumes.
        source: the checkpoint's file or URL.
        resume_optimizer: ``resume``'s argument.
        resume_param_scheduler: ``resume``'s argument.

    Raises:
        CheckpointRefusedError: naming ``source`` and the key.
    """
    if not isinstance(checkpoint, dict):
        return
    schedulers = getattr(runner, 'param_schedulers', None)
    # as Runner.resume: no schedulers of its own, none loaded
    resume_param_scheduler = resume_param_scheduler and schedulers is not None
    check_resume_file_states(checkpoint, source, resume_optimizer,
                             resume_param_scheduler)
    if resume_optimizer and 'optimizer' in checkpoint:
        optim_wrapper = getattr(runner, 'optim_wrapper', None)
        if isinstance(runner, Runner) and isinstance(optim_wrapper, dict):
            # what Runner.resume does right after loading
            runner.optim_wrapper = runner.build_optim_wrapper(optim_wrapper)
            optim_wrapper = runner.optim_wrapper
        if isinstance(optim_wrapper, OptimWrapper):
            _check_optim_wrapper_state(checkpoint['optimizer'],
                                       optim_wrapper, source,
                                       getattr(runner, 'model', None))
    if (resume_param_scheduler and 'param_schedulers' in checkpoint
            and _built_schedulers(schedulers)):
        check_param_scheduler_states(checkpoint['param_schedulers'],
                                     schedulers, source)


def _guarded_resume(resume: Callable) -> Callable:
    """``resume`` whose checkpoint passes :func:`check_resume_states`."""
    signature = inspect.signature(resume)

    @functools.wraps(resume)
    def guarded_resume(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(self, *args, **kwargs)
        except TypeError:
            return resume(self, *args, **kwargs)  # resume raises it
        bound.apply_defaults()
        arguments: Mapping[str, Any] = bound.arguments
        filename = str(arguments['filename'])

        def check(checkpoint: Any, source: str) -> None:
            check_resume_states(
                checkpoint, self, source,
                arguments.get('resume_optimizer', True),
                arguments.get('resume_param_scheduler', True))

        with check_next_load(filename, check) as pending:
            result = resume(self, *args, **kwargs)
        if not pending.done:
            print_log(
                f'checkpoint {filename} was not loaded through MMEngine\'s '
                'CheckpointLoader: its optimizer and scheduler states were '
                'not checked',
                logger='current',
                level=logging.WARNING)
        return result

    guarded_resume.ce_mmdet_guarded = True  # type: ignore[attr-defined]
    return guarded_resume


def guard_mmengine_resume() -> list[str]:
    """Make ``Runner.resume`` and ``FlexibleRunner.resume`` check the
    checkpoint's optimizer and scheduler states against the run.

    Wraps each class's own ``resume``: subclasses that do not override it
    (MMDetection's and MMPretrain's tools use ``Runner`` itself) are
    covered, and so is an override that calls ``super().resume``.
    Idempotent.

    Returns:
        The names of the classes whose ``resume`` is guarded.
    """
    for cls in (Runner, FlexibleRunner):
        resume = cls.__dict__['resume']
        if not getattr(resume, 'ce_mmdet_guarded', False):
            cls.resume = _guarded_resume(resume)  # type: ignore[method-assign]
    return [cls.__name__ for cls in (Runner, FlexibleRunner)]
