"""MMEngine checkpoint loading that treats a checkpoint as data, never code.

``torch.load(weights_only=True)`` (with the stand-ins of
:mod:`ce_mmdet.utils.checkpoint_safety`) decides which *objects* a
checkpoint can make. What MMEngine then does with them is a second matter:

* ``Runner.resume`` passes ``checkpoint['meta']['config']``, a plain string,
  to ``Config.fromstring(..., '.py')``, which executes it as Python, to read
  the GPU ids of the run that wrote it. MMEngine's own checkpoints have no
  such key (they keep the config text as ``meta['cfg']``, which resume never
  parses); checkpoints of MMCV 1.x and crafted ones do.
* A message hub whose state holds something else than MMEngine writes makes
  a resumed run fail minutes later with an unrelated error (or skip the
  value with a warning).
* ``Runner.resume`` hands ``checkpoint['optimizer']`` to the optimizer's
  ``load_state_dict`` (torch checks the numbers of parameter groups and
  parameters only) and each entry of ``checkpoint['param_schedulers']`` to
  a scheduler's ``load_state_dict``, which copies it into the scheduler's
  ``__dict__`` as it is: a string learning rate, a NaN moment or a list of
  strings as milestones fails later, inside torch, or trains on wrong
  values.

:func:`check_mmengine_checkpoint` checks a loaded checkpoint and replaces
``meta['config']`` by ``gpu_ids = [...]`` read from it without executing it
(``ast.literal_eval`` of its top-level ``gpu_ids`` assignment), so that
MMEngine's check of the number of GPUs still runs; a text whose ``gpu_ids``
cannot be read so is dropped with a warning.

:func:`check_resume_file_states` checks the optimizer and parameter-scheduler
states for the types MMEngine and torch write, with finite values: what can
be checked without the model. It runs only when a run resumes
(:mod:`ce_mmdet.utils.resume_checks` runs it through
:func:`check_next_load`, then checks the states against the run). A plain
load (``load_from``, ``tools/test.py``, ``init_cfg`` ``Pretrained``) reads
the weights only and leaves those states alone: a diverged run, with NaN
moments, can still be evaluated. Nothing in them is dangerous unless read:
a stride-0 tensor claims many elements with a few bytes of storage, and
only a check of its values would allocate for every one (the resume check
refuses it before reading them).

:func:`guard_mmengine_checkpoint_loaders` wraps every loader that MMEngine's
``CheckpointLoader`` has registered (local files, URLs, ...) with it, and
re-raises any failure to unpickle as :class:`CheckpointRefusedError` naming
the file (other errors get a note that names it). It also wraps
``CheckpointLoader.register_scheme``, so that a loader registered later (a
new URL scheme, by a direct call or as a decorator, ``force=True``
included) is guarded as it is registered. ``Runner.load_checkpoint``,
``Runner.resume``, ``load_from`` and ``mmengine.runner.load_checkpoint``
(``tools/test.py``, ``init_cfg`` ``Pretrained``) all go through it;
``import ce_mmdet`` installs it. :func:`check_next_load` adds a check of
the caller's own to the next load of a given file, run before the loader
returns (the resume checks use it).
"""
from __future__ import annotations

import ast
import contextlib
import contextvars
import functools
import logging
import math
import pickle
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch
from mmengine.logging import HistoryBuffer, print_log
from mmengine.runner.checkpoint import CheckpointLoader, load_from_local

__all__ = [
    'CheckpointRefusedError', 'PendingCheck', 'check_mmengine_checkpoint',
    'check_next_load', 'check_resume_file_states',
    'guard_mmengine_checkpoint_loaders',
    'gpu_ids_from_config_text', 'is_local_checkpoint'
]

_MAX_CONFIG_TEXT = 10 * 2**20
_MAX_NESTING = 8
_INT64_LIMIT = 2**63
_RESUME_ADVICE = ('resume from another checkpoint, or start without '
                  '--resume (load_from loads its weights only)')
_WEIGHTS_ONLY_DETAIL = 'WeightsUnpickler error: '
_TORCH_DOCS_ADVICE = 'Check the documentation of torch.load'


class CheckpointRefusedError(pickle.UnpicklingError):
    """A checkpoint that holds something else than MMEngine writes."""


def _refuse(source: str, key: str, problem: str) -> CheckpointRefusedError:
    return CheckpointRefusedError(
        f'checkpoint {source}: {key} {problem}; ce_mmdet loads only what '
        'MMEngine writes (see ce_mmdet.utils.checkpoint_loading)')


def _refuse_state(source: str, key: str,
                  problem: str) -> CheckpointRefusedError:
    """A refusal of an optimizer or scheduler state, with what to do."""
    return CheckpointRefusedError(
        f'checkpoint {source}: {key} {problem}; MMEngine writes finite '
        f'optimizer and scheduler states of these types: {_RESUME_ADVICE}')


def _literal_gpu_ids(node: ast.expr) -> Any:
    """A literal, or ``range(...)`` of int literals (MMDetection 2.x wrote
    ``gpu_ids = range(0, 8)``)."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == 'range' and not node.keywords
            and 1 <= len(node.args) <= 3):
        args = [ast.literal_eval(arg) for arg in node.args]
        if all(type(arg) is int and abs(arg) < 2**16 for arg in args):
            return range(*args)
    return ast.literal_eval(node)


def gpu_ids_from_config_text(text: str) -> list[int] | None:
    """The ``gpu_ids`` a config text assigns, read without executing it.

    Args:
        text: a Python config text (MMCV 1.x checkpoints kept one in
            ``meta['config']``).

    Returns:
        The ints of its last top-level ``gpu_ids = ...`` (a literal list or
        tuple, or ``range`` of int literals), or None if it assigns none.

    Raises:
        ValueError: if the text does not parse as Python, is larger than
            10 MiB, or assigns ``gpu_ids`` anything else.
    """
    if len(text) > _MAX_CONFIG_TEXT:
        raise ValueError(f'is {len(text)} characters long')
    try:
        module = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        raise ValueError(f'is not Python ({type(error).__name__})') from None
    gpu_ids = None
    for node in module.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == 'gpu_ids'):
            try:
                gpu_ids = _literal_gpu_ids(node.value)
            except (ValueError, TypeError, SyntaxError, RecursionError,
                    MemoryError):
                raise ValueError('assigns gpu_ids an expression, not a '
                                 'literal') from None
    if gpu_ids is None:
        return None
    if not isinstance(gpu_ids, (list, tuple, range)) or not all(
            type(gpu) is int for gpu in gpu_ids):
        raise ValueError(f'assigns gpu_ids {gpu_ids!r:.80}, not ints')
    return list(gpu_ids)


def _defuse_config_text(meta: dict, source: str) -> None:
    """Replace ``meta['config']`` by the literal ``gpu_ids`` it assigns.

    MMEngine's ``Runner.resume`` executes that text to read ``gpu_ids``;
    what cannot be read as a literal is dropped, and with it MMEngine's
    check of the number of GPUs.
    """
    text = meta['config']
    try:
        if type(text) is not str:
            raise ValueError(f'is a {type(text).__name__}, not a str')
        gpu_ids = gpu_ids_from_config_text(text)
    except ValueError as error:
        del meta['config']
        print_log(
            f'checkpoint {source}: meta["config"] {error}; dropped, not '
            'executed (MMEngine\'s check of the number of GPUs of a '
            'resumed run is skipped)',
            logger='current',
            level=logging.WARNING)
        return
    if gpu_ids is None:
        del meta['config']
    else:
        meta['config'] = f'gpu_ids = {gpu_ids!r}\n'
    print_log(
        f'checkpoint {source}: meta["config"] was not executed (gpu_ids '
        f'read as a literal: {gpu_ids})',
        logger='current')


def _check_meta(meta: Any, source: str) -> None:
    """Check what ``Runner.resume`` reads of ``meta``; defuse ``config``."""
    if not isinstance(meta, dict):
        raise _refuse(source, "['meta']", f'is a {type(meta).__name__}')
    for key in ('epoch', 'iter'):
        if key in meta and not (type(meta[key]) is int and meta[key] >= 0):
            raise _refuse(source, f"['meta'][{key!r}]",
                          f'is {meta[key]!r:.40}, not an int >= 0')
    if meta.get('seed') is not None and type(meta['seed']) is not int:
        raise _refuse(source, "['meta']['seed']",
                      f'is {meta["seed"]!r:.40}, not an int')
    if 'config' in meta:
        _defuse_config_text(meta, source)


def _check_message_hub(hub: Any, source: str) -> None:
    """Check a message hub's ``state_dict`` as ``MessageHub`` loads it."""
    where = "['message_hub']"
    keys = ('log_scalars', 'runtime_info', 'resumed_keys')
    if not isinstance(hub, dict) or any(
            not isinstance(hub.get(key), dict) for key in keys):
        raise _refuse(source, where, f'is not a dict of dicts {list(keys)}')
    for key, value in hub['log_scalars'].items():
        if type(key) is not str or type(value) is not HistoryBuffer:
            raise _refuse(source, f"{where}['log_scalars'][{key!r:.80}]",
                          f'is a {type(value).__name__}, not a '
                          'HistoryBuffer')
    for key in hub['runtime_info']:
        if type(key) is not str:
            raise _refuse(source, f"{where}['runtime_info'] key {key!r:.80}",
                          'is not a str')
    for key, value in hub['resumed_keys'].items():
        if type(key) is not str or type(value) is not bool:
            raise _refuse(source, f"{where}['resumed_keys'][{key!r:.80}]",
                          f'is {value!r:.40}, not a bool')


def _is_real(value: Any) -> bool:
    """An int or a float (numpy's included), not a bool."""
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, (bool, np.bool_)))


def _real_problem(value: Any, allow_inf: bool = False) -> str | None:
    """Why ``value`` is not a finite real (int64 for ints), or None."""
    if not _is_real(value):
        return f'is {value!r:.60}, not a number'
    if isinstance(value, (int, np.integer)):
        if not -_INT64_LIMIT <= int(value) < _INT64_LIMIT:
            return f'is {value!r:.60}, not an int64'
        return None
    if math.isnan(value) or (not allow_inf and math.isinf(value)):
        return f'is {value!r}, not a finite number'
    return None


def _check_real(value: Any, source: str, key: str,
                allow_inf: bool = False) -> None:
    problem = _real_problem(value, allow_inf)
    if problem is not None:
        raise _refuse_state(source, key, problem)


def _check_int(value: Any, source: str, key: str, minimum: int = -2**63
               ) -> None:
    if type(value) is not int or not minimum <= value < _INT64_LIMIT:
        raise _refuse_state(source, key,
                            f'is {value!r:.60}, not an int >= {minimum}')


def _check_tensor(value: torch.Tensor, source: str, key: str) -> None:
    """A dense tensor of plain values, finite if floating.

    Its elements must fit in its storage: a view with stride 0 can claim a
    billion elements with a few bytes in the file, and reading it (the
    check of finite values among others) would allocate for every one.
    """
    if (value.layout != torch.strided or value.is_quantized
            or value.device.type == 'meta'):
        raise _refuse_state(
            source, key, f'is a {value.layout} tensor on {value.device}, '
            'not a dense tensor with data')
    if value.numel() * value.element_size() > (
            value.untyped_storage().nbytes()):
        raise _refuse_state(
            source, key, f'is a tensor of shape {tuple(value.shape)} and '
            f'strides {value.stride()} whose elements overlap in '
            f'{value.untyped_storage().nbytes()} bytes of storage')
    if value.dtype == torch.bool:
        return
    if (value.is_floating_point() or value.is_complex()) and not bool(
            torch.isfinite(value).all()):
        raise _refuse_state(
            source, key, f'holds non-finite values (nan or inf) in a tensor '
            f'of shape {tuple(value.shape)}')


def _check_plain(value: Any, source: str, key: str, tensors: bool = False,
                 depth: int = 0) -> None:
    """Builtins only: None, bool, str, finite numbers, and lists, tuples and
    dicts (str or int keys) of them; with ``tensors``, finite tensors."""
    if depth > _MAX_NESTING:
        raise _refuse_state(source, key,
                            f'is nested more than {_MAX_NESTING} deep')
    if value is None or type(value) in (bool, str, np.bool_):
        return
    if _is_real(value):
        _check_real(value, source, key)
    elif tensors and isinstance(value, torch.Tensor):
        _check_tensor(value, source, key)
    elif type(value) in (list, tuple):
        for index, item in enumerate(value):
            _check_plain(item, source, f'{key}[{index}]', tensors, depth + 1)
    elif type(value) in (dict, OrderedDict, Counter):
        for item_key, item in value.items():
            if type(item_key) not in (str, int):
                raise _refuse_state(source, f'{key} key {item_key!r:.60}',
                                    'is not a str or an int')
            _check_plain(item, source, f'{key}[{item_key!r:.60}]', tensors,
                         depth + 1)
    else:
        raise _refuse_state(
            source, key, f'is a {type(value).__name__}, not None, a bool, '
            'a str, a number or a list, tuple or dict of them' +
            (' or a tensor' if tensors else ''))


# param-group hyper-parameters torch's optimizers keep: numbers (or 0-d
# tensors, which torch accepts as learning rates) and flags
_GROUP_NUMBERS = ('lr', 'initial_lr', 'momentum', 'weight_decay',
                  'dampening')
_GROUP_FLAGS = ('nesterov', 'amsgrad', 'maximize', 'capturable',
                'differentiable', 'decoupled_weight_decay', 'centered')
_GROUP_OPTIONAL_FLAGS = ('foreach', 'fused')


def _check_param_group(group: Any, source: str, key: str) -> list[int]:
    """One of ``param_groups``; returns its parameter ids."""
    if not isinstance(group, dict) or type(group.get('params')) is not list:
        raise _refuse_state(source, key,
                            "is not a dict with a list 'params'")
    params = group['params']
    for index, param_id in enumerate(params):
        _check_int(param_id, source, f"{key}['params'][{index}]", minimum=0)
    for name, value in group.items():
        where = f'{key}[{name!r:.60}]'
        if type(name) is not str:
            raise _refuse_state(source, f'{key} key {name!r:.60}',
                                'is not a str')
        if name == 'params':
            continue
        if name == 'param_names':
            if type(value) is not list or len(value) != len(params) or any(
                    type(item) is not str for item in value):
                raise _refuse_state(
                    source, where,
                    f'is not a list of {len(params)} str (one per param)')
        elif name in _GROUP_NUMBERS:
            if isinstance(value, torch.Tensor) and value.dim() == 0:
                _check_tensor(value, source, where)
            else:
                _check_real(value, source, where)
        elif name in _GROUP_FLAGS and type(value) is not bool:
            raise _refuse_state(source, where,
                                f'is {value!r:.60}, not a bool')
        elif name in _GROUP_OPTIONAL_FLAGS and value is not None and type(
                value) is not bool:
            raise _refuse_state(source, where,
                                f'is {value!r:.60}, not a bool or None')
        else:
            _check_plain(value, source, where, tensors=True)
    return params


def _check_optimizer_state_dict(optimizer: Any, source: str,
                                key: str) -> None:
    """An ``OptimWrapper.state_dict()``: torch's ``state`` and
    ``param_groups``, MMEngine's ``base_param_settings``, and plain values
    (``loss_scaler``: ``GradScaler`` state of ``AmpOptimWrapper``)."""
    if type(optimizer.get('state')) not in (dict, OrderedDict) or type(
            optimizer.get('param_groups')) is not list:
        raise _refuse_state(
            source, key, "is not a dict with a dict 'state' and a list "
            "'param_groups' (an optimizer's state_dict)")
    seen: dict[int, int] = {}
    for index, group in enumerate(optimizer['param_groups']):
        where = f"{key}['param_groups'][{index}]"
        for param_id in _check_param_group(group, source, where):
            if param_id in seen:
                raise _refuse_state(
                    source, f"{where}['params']",
                    f'lists parameter {param_id} again (also in group '
                    f'{seen[param_id]})')
            seen[param_id] = index
    for param_id, param_state in optimizer['state'].items():
        where = f"{key}['state'][{param_id!r:.60}]"
        if type(param_id) is not int or param_id not in seen:
            raise _refuse_state(
                source, where,
                'is the state of no parameter that param_groups lists')
        if type(param_state) not in (dict, OrderedDict):
            raise _refuse_state(
                source, where, f'is a {type(param_state).__name__}, not a '
                'dict of tensors and numbers')
        for name, value in param_state.items():
            item = f'{where}[{name!r:.60}]'
            if type(name) is not str:
                raise _refuse_state(source, f'{where} key {name!r:.60}',
                                    'is not a str')
            if isinstance(value, torch.Tensor):
                _check_tensor(value, source, item)
            elif value is not None and type(value) is not bool:
                _check_real(value, source, item)
    for name, value in optimizer.items():
        if name in ('state', 'param_groups'):
            continue
        where = f'{key}[{name!r:.60}]'
        if name == 'base_param_settings' and value is not None:
            # MMEngine's record of the base learning rate: a group whose
            # 'params' is the tensor([0.])
            if not isinstance(value, dict) or not isinstance(
                    value.get('params'), torch.Tensor):
                raise _refuse_state(
                    source, where, "is not a dict with a tensor 'params'")
            _check_param_group(dict(value, params=[]), source, where)
            _check_tensor(value['params'], source, f"{where}['params']")
        else:
            _check_plain(value, source, where, tensors=True)


def _check_optimizer(optimizer: Any, source: str) -> None:
    """``checkpoint['optimizer']``: an ``OptimWrapper``'s state dict, or an
    ``OptimWrapperDict``'s (a dict of them by name)."""
    key = "['optimizer']"
    if not isinstance(optimizer, dict):
        raise _refuse_state(source, key,
                            f'is a {type(optimizer).__name__}, not a dict')
    if 'state' in optimizer or 'param_groups' in optimizer:
        _check_optimizer_state_dict(optimizer, source, key)
        return
    if not optimizer:
        raise _refuse_state(source, key,
                            "is empty (no 'state', no 'param_groups')")
    for name, state in optimizer.items():
        if type(name) is not str or not isinstance(state, dict):
            raise _refuse_state(
                source, f'{key}[{name!r:.60}]',
                "is not an optimizer's state_dict (of 'state' and "
                "'param_groups') named by a str")
        _check_optimizer_state_dict(state, source, f'{key}[{name!r}]')


def _check_milestones(value: Any, source: str, key: str) -> None:
    if type(value) not in (Counter, dict) or any(
            type(step) is not int or type(count) is not int
            for step, count in value.items()):
        raise _refuse_state(
            source, key,
            f'is {value!r:.80}, not a Counter of int steps to int counts')


def _check_reals(value: Any, source: str, key: str) -> None:
    if type(value) is not list:
        raise _refuse_state(source, key, f'is {value!r:.80}, not a list of '
                            'numbers (one per parameter group)')
    for index, item in enumerate(value):
        _check_real(item, source, f'{key}[{index}]')


def _check_ints(value: Any, source: str, key: str) -> None:
    if type(value) is not list:
        raise _refuse_state(source, key,
                            f'is {value!r:.80}, not a list of ints')
    for index, item in enumerate(value):
        _check_int(item, source, f'{key}[{index}]')


def _optional(check: Callable) -> Callable:
    def check_or_none(value: Any, source: str, key: str) -> None:
        if value is not None:
            check(value, source, key)

    return check_or_none


def _str(value: Any, source: str, key: str) -> None:
    if type(value) is not str:
        raise _refuse_state(source, key, f'is {value!r:.60}, not a str')


def _bool(value: Any, source: str, key: str) -> None:
    if type(value) is not bool:
        raise _refuse_state(source, key, f'is {value!r:.60}, not a bool')


def _int(value: Any, source: str, key: str) -> None:
    _check_int(value, source, key)


def _real(value: Any, source: str, key: str) -> None:
    _check_real(value, source, key)


def _real_or_inf(value: Any, source: str, key: str) -> None:
    _check_real(value, source, key, allow_inf=True)


_SCHEDULER_FIELDS: dict[str, Callable[[Any, str, str], None]] = {
    # _ParamScheduler (mmengine/optim/scheduler/param_scheduler.py)
    'param_name': _str,
    'begin': _int,
    'end': _int,
    'last_step': lambda value, source, key: _check_int(
        value, source, key, minimum=-1),
    '_global_step': _int,
    'by_epoch': _bool,
    'verbose': _bool,
    'base_values': _check_reals,
    '_last_value': _check_reals,
    # the schedulers' own
    'milestones': _check_milestones,
    'gamma': _real,
    'step_size': _real,
    'factor': _real,
    'total_iters': _int,
    'start_factor': _real,
    'end_factor': _real,
    'power': _real,
    'eta_min': _optional(_real),
    'eta_min_ratio': _optional(_real),
    'T_max': _real,
    'periods': _check_ints,
    'cumulative_periods': _check_ints,
    'restart_weights': _check_reals,
    'total_steps': _int,
    'div_factor': _real,
    'final_div_factor': _real,
    'use_betas': _bool,
    # ReduceOnPlateauParamScheduler: best and rule_worse start at +-INF
    'min_values': _check_reals,
    'best': _optional(_real_or_inf),
    'rule_worse': _optional(_real_or_inf),
    'patience': _int,
    'cooldown': _int,
    'cooldown_counter': _int,
    'num_bad_epochs': _int,
    'eps': _real,
    'threshold': _real,
    'monitor': _str,
    'rule': _str,
    'threshold_rule': _str,
}
"""Fields of MMEngine's scheduler ``state_dict`` s and their checks."""


def _check_scheduler_list(states: Any, source: str, key: str) -> None:
    if type(states) is not list:
        raise _refuse_state(
            source, key, f'is a {type(states).__name__}, not a list of '
            'scheduler states')
    for index, state in enumerate(states):
        where = f'{key}[{index}]'
        if type(state) not in (dict, OrderedDict):
            raise _refuse_state(
                source, where, f'is a {type(state).__name__}, not a '
                "scheduler's state_dict")
        for name, value in state.items():
            if type(name) is not str:
                raise _refuse_state(source, f'{where} key {name!r:.60}',
                                    'is not a str')
            field = f'{where}[{name!r:.60}]'
            check = _SCHEDULER_FIELDS.get(name)
            if check is None:
                _check_plain(value, source, field)
            else:
                check(value, source, field)


def _check_param_schedulers(schedulers: Any, source: str) -> None:
    """``checkpoint['param_schedulers']``: a list of scheduler states (what
    ``Runner.save_checkpoint`` writes), or a dict of such lists by
    optimizer name (for an ``OptimWrapperDict``)."""
    key = "['param_schedulers']"
    if type(schedulers) is dict:
        for name, states in schedulers.items():
            if type(name) is not str:
                raise _refuse_state(source, f'{key} key {name!r:.60}',
                                    'is not a str')
            _check_scheduler_list(states, source, f'{key}[{name!r}]')
    else:
        _check_scheduler_list(schedulers, source, key)


def check_resume_file_states(checkpoint: Any,
                             source: str,
                             optimizer: bool = True,
                             param_schedulers: bool = True) -> None:
    """Check the optimizer and scheduler states of a checkpoint that a run
    resumes from, as far as the file alone tells.

    ``optimizer``: an optimizer's ``state_dict`` (or a dict of them, for an
    ``OptimWrapperDict``): ``state`` of int ids that ``param_groups`` list
    to dicts of tensors and numbers, ``param_groups`` of unique int ids and
    hyper-parameters of torch's types, every tensor dense with elements
    that fit its storage (no stride-0 view of a billion elements, refused
    before its values are read), every number and floating tensor finite.
    ``param_schedulers``: a list of scheduler ``state_dict`` s (or a dict
    of such lists), each field of the type MMEngine's schedulers write
    (``_SCHEDULER_FIELDS``), unknown fields plain builtins.
    Only on resume (:func:`ce_mmdet.utils.resume_checks.check_resume_states`
    runs it); a plain load does not read these states.

    Args:
        checkpoint: the loaded checkpoint; a key it lacks is not checked.
        source: the file or URL it came from, for the error messages.
        optimizer: whether to check ``checkpoint['optimizer']`` (what the
            resume loads: its ``resume_optimizer``).
        param_schedulers: whether to check ``checkpoint['param_schedulers']``.

    Raises:
        CheckpointRefusedError: naming ``source`` and the key at fault.
    """
    if not isinstance(checkpoint, dict):
        return
    if optimizer and 'optimizer' in checkpoint:
        _check_optimizer(checkpoint['optimizer'], source)
    if param_schedulers and 'param_schedulers' in checkpoint:
        _check_param_schedulers(checkpoint['param_schedulers'], source)


def check_mmengine_checkpoint(checkpoint: Any, source: str) -> Any:
    """Check what MMEngine reads of a loaded checkpoint; defuse ``config``.

    ``meta``: ``epoch`` and ``iter`` ints >= 0, ``seed`` an int or None,
    ``config`` replaced by the literal ``gpu_ids`` it assigns (or removed,
    never executed).
    ``message_hub``: ``log_scalars`` of ``HistoryBuffer`` objects (their
    histories were checked while unpickling), ``runtime_info`` with ``str``
    keys, ``resumed_keys`` of bools.
    ``optimizer`` and ``param_schedulers`` are not read here: a resume
    checks them (:func:`check_resume_file_states`), a plain load uses the
    weights only. Other checkpoints (a bare state dict, a converted
    backbone) pass unchanged.

    Args:
        checkpoint: what ``torch.load`` returned.
        source: the file or URL it came from, for the error messages.

    Returns:
        ``checkpoint``, changed in place.

    Raises:
        CheckpointRefusedError: naming ``source`` and the key at fault.
    """
    if isinstance(checkpoint, dict):
        if 'meta' in checkpoint:
            _check_meta(checkpoint['meta'], source)
        if 'message_hub' in checkpoint:
            _check_message_hub(checkpoint['message_hub'], source)
    return checkpoint


@dataclass
class PendingCheck:
    """A check that the next load of ``filename`` runs (see
    :func:`check_next_load`); ``done`` once it ran."""
    filename: str
    check: Callable[[Any, str], None]
    done: bool = False


_PENDING_CHECK: contextvars.ContextVar[PendingCheck | None] = (
    contextvars.ContextVar('ce_mmdet_pending_check', default=None))


@contextlib.contextmanager
def check_next_load(
        filename: str, check: Callable[[Any, str],
                                       None]) -> Iterator[PendingCheck]:
    """Run ``check(checkpoint, filename)`` in the next guarded load of
    ``filename`` within the block.

    The check runs inside the loader, after :func:`check_mmengine_checkpoint`
    and before the loader returns: before MMEngine does anything with the
    checkpoint (``Runner.load_checkpoint`` loads the model's weights right
    after). Once only; loads of other files are not checked.

    Args:
        filename: the file or URL as MMEngine's ``CheckpointLoader`` is
            given it.
        check: raises (:class:`CheckpointRefusedError`) to refuse.

    Yields:
        The :class:`PendingCheck`, whose ``done`` says whether it ran.
    """
    pending = PendingCheck(str(filename), check)
    token = _PENDING_CHECK.set(pending)
    try:
        yield pending
    finally:
        _PENDING_CHECK.reset(token)


def _run_pending_check(checkpoint: Any, filename: str) -> None:
    pending = _PENDING_CHECK.get()
    if (pending is not None and not pending.done
            and pending.filename == filename):
        pending.done = True
        pending.check(checkpoint, filename)


def _guarded(loader: Callable) -> Callable:
    """``loader`` whose checkpoints pass :func:`check_mmengine_checkpoint`
    (``loader`` itself if it is guarded already)."""
    if getattr(loader, 'ce_mmdet_guarded', False):
        return loader

    @functools.wraps(loader)
    def guarded_loader(filename: str, *args: Any, **kwargs: Any) -> Any:
        try:
            checkpoint = loader(filename, *args, **kwargs)
        except pickle.UnpicklingError as error:
            # torch wraps the unpickler's reason in advice to load with
            # weights_only=False; keep the reason
            detail = str(error).split(_WEIGHTS_ONLY_DETAIL)[-1].split(
                _TORCH_DOCS_ADVICE)[0].strip()
            raise CheckpointRefusedError(
                f'checkpoint {filename} refused while unpickling: '
                f'{detail}') from error
        except Exception as error:
            error.add_note(f'(while loading checkpoint {filename})')
            raise
        checkpoint = check_mmengine_checkpoint(checkpoint, str(filename))
        _run_pending_check(checkpoint, str(filename))
        return checkpoint

    guarded_loader.ce_mmdet_guarded = True  # type: ignore[attr-defined]
    return guarded_loader


def _guard_register_scheme() -> None:
    """Make ``CheckpointLoader.register_scheme`` guard what it registers.

    Both of its forms: ``register_scheme(prefixes, loader, force=...)`` and
    the decorator ``@register_scheme(prefixes=..., force=...)``, which
    still returns the undecorated loader, as MMEngine's does. Idempotent.
    """
    register_scheme = CheckpointLoader.__dict__['register_scheme'].__func__
    if getattr(register_scheme, 'ce_mmdet_guarded', False):
        return

    @functools.wraps(register_scheme)
    def guarded_register_scheme(cls: type,
                                prefixes: Any,
                                loader: Callable | None = None,
                                force: bool = False) -> Any:
        if loader is not None:
            return register_scheme(cls, prefixes, _guarded(loader),
                                   force=force)
        register = register_scheme(cls, prefixes, None, force=force)

        @functools.wraps(register)
        def guarded_register(loader_function: Callable) -> Callable:
            register(_guarded(loader_function))
            return loader_function

        return guarded_register

    guarded_register_scheme.ce_mmdet_guarded = True  # type: ignore
    CheckpointLoader.register_scheme = classmethod(  # type: ignore
        guarded_register_scheme)


def guard_mmengine_checkpoint_loaders() -> list[str]:
    """Wrap every MMEngine checkpoint loader with the checks.

    The loaders registered now, and (through ``register_scheme``) every
    loader registered later. Idempotent.

    Returns:
        The prefixes whose loaders are guarded.
    """
    _guard_register_scheme()
    for prefix, loader in list(CheckpointLoader._schemes.items()):
        if not getattr(loader, 'ce_mmdet_guarded', False):
            CheckpointLoader.register_scheme(
                prefix, _guarded(loader), force=True)
    return list(CheckpointLoader._schemes)


def is_local_checkpoint(checkpoint: str) -> bool:
    """Whether MMEngine loads ``checkpoint`` as a local file (no URL scheme).

    Args:
        checkpoint: what ``init_cfg``/``load_from`` names.
    """
    loader = CheckpointLoader._get_checkpoint_loader(checkpoint)
    return getattr(loader, '__wrapped__', loader) is load_from_local
