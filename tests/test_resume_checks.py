"""A resume loads only optimizer and scheduler states that fit the run.

``import ce_mmdet`` makes ``Runner.resume`` and ``FlexibleRunner.resume``
check a checkpoint's ``optimizer`` and ``param_schedulers`` before anything
is loaded: their types and finite values in the file
(:func:`ce_mmdet.utils.checkpoint_loading.check_resume_file_states`), then
against the run's optimizer and schedulers
(:mod:`ce_mmdet.utils.resume_checks`). A plain load (``load_from``,
``load_checkpoint``) reads the weights and leaves those states alone. It
also guards loaders registered after it. The runs here are MMEngine runners
of a toy model on the CPU: two iterations saved, then resumed.
"""
from __future__ import annotations

import copy
import itertools
import re
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import FlexibleRunner, Runner, load_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader, load_from_local

import crafted_checkpoints
from ce_mmdet.utils import (
    CheckpointRefusedError,
    check_optimizer_state,
    guard_mmengine_checkpoint_loaders,
    guard_mmengine_resume,
)

pytestmark = pytest.mark.usefixtures('single_thread')

OPTIMIZERS = {
    'sgd': dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4),
    'adamw': dict(type='AdamW', lr=0.001, weight_decay=0.05),
}
SCHEDULERS = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=100,
         milestones=[1], gamma=0.5),
]
_RUN_NAMES = itertools.count()


class ToyModel(BaseModel):
    """A conv, a BN and a linear head: parameters of 4, 1 and 2 dims."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.bn = torch.nn.BatchNorm2d(4)
        self.head = torch.nn.Linear(4, 2)

    def forward(self, inputs: torch.Tensor, data_samples: Any = None,
                mode: str = 'tensor') -> Any:
        out = self.head(self.bn(self.conv(inputs)).mean((2, 3)))
        return dict(loss=out.pow(2).mean()) if mode == 'loss' else out


class ToyDataset(torch.utils.data.Dataset):

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> dict:
        generator = torch.Generator().manual_seed(index)
        return dict(inputs=torch.randn(3, 8, 8, generator=generator))


class CountIterations(Hook):
    """Counts the training iterations run."""

    def __init__(self) -> None:
        self.iterations = 0

    def after_train_iter(self, runner: Runner, **kwargs: Any) -> None:
        self.iterations += 1


def toy_runner(work_dir: Path, optimizer: str = 'sgd', max_iters: int = 2,
               resume_from: Path | None = None,
               schedulers: list | None = None, hooks: tuple = (),
               flexible: bool = False) -> Runner | FlexibleRunner:
    """A runner of :class:`ToyModel`, saving at iteration 2; a
    ``FlexibleRunner`` of MMEngine's single-device strategy if
    ``flexible``."""
    name = f'resume-checks-{next(_RUN_NAMES)}'
    extra = dict(strategy=dict(type='SingleDeviceStrategy')) if flexible \
        else {}
    return (FlexibleRunner if flexible else Runner)(
        **extra,
        model=ToyModel(),
        work_dir=str(work_dir),
        experiment_name=name,
        train_dataloader=dict(
            dataset=ToyDataset(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            batch_size=2,
            num_workers=0),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(OPTIMIZERS[optimizer])),
        param_scheduler=SCHEDULERS if schedulers is None else schedulers,
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2,
                            by_epoch=False),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=list(hooks),
        load_from=None if resume_from is None else str(resume_from),
        resume=resume_from is not None,
        randomness=dict(seed=0),
        default_scope='mmengine',
        log_level='WARNING')


@pytest.fixture(scope='module', autouse=True)
def default_scope_restored() -> Iterator[None]:
    """The runners here set MMEngine's default scope to ``'mmengine'``;
    put the scopes back, so that the next tests of this process build
    from MMDetection's registry as before."""
    from mmengine.registry import DefaultScope

    saved = copy.copy(DefaultScope._instance_dict)
    yield
    DefaultScope._instance_dict = saved


@pytest.fixture(scope='module')
def saved_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``iter_2.pth`` of a 2-iteration toy run, per optimizer."""
    paths = {}
    for optimizer in OPTIMIZERS:
        work_dir = tmp_path_factory.mktemp(f'toy_{optimizer}')
        toy_runner(work_dir, optimizer).train()
        paths[optimizer] = work_dir / 'iter_2.pth'
    return paths


def tampered(saved: Path, folder: Path,
             change: Callable[[dict], None]) -> Path:
    """A copy of the checkpoint ``saved`` with ``change`` applied."""
    checkpoint = torch.load(saved)
    change(checkpoint)
    path = folder / 'tampered.pth'
    torch.save(checkpoint, path)
    return path


# ------------------------------------------------ real checkpoints resume


@pytest.mark.parametrize('optimizer', sorted(OPTIMIZERS))
def test_real_checkpoint_resumes(optimizer: str, saved_runs: dict,
                                 tmp_path: Path) -> None:
    saved = torch.load(saved_runs[optimizer])
    # what the checks must accept: the states MMEngine and torch write
    state = saved['optimizer']['state']
    assert len(state) == 6
    expected = ({'momentum_buffer'} if optimizer == 'sgd' else
                {'step', 'exp_avg', 'exp_avg_sq'})
    assert all(set(entry) == expected for entry in state.values())
    linear, multistep = saved['param_schedulers']
    assert linear['start_factor'] == 0.1
    assert multistep['milestones'] == Counter({1: 1})

    counter = CountIterations()
    runner = toy_runner(tmp_path, optimizer, max_iters=3,
                        resume_from=saved_runs[optimizer], hooks=(counter, ))
    runner.train()
    assert counter.iterations == 1 and runner.iter == 3
    # the states were loaded (and advanced by the one step)
    assert len(runner.optim_wrapper.optimizer.state) == 6
    assert runner.param_schedulers[1].last_step == 3


# ------------------------------------------------ refused against the run


def test_wrong_shape_is_refused_before_anything_is_loaded(
        saved_runs: dict, tmp_path: Path) -> None:

    def shrink(checkpoint: dict) -> None:
        state = checkpoint['optimizer']['state'][0]
        state['momentum_buffer'] = state['momentum_buffer'][:, :, 0, 0]

    path = tampered(saved_runs['sgd'], tmp_path, shrink)
    counter = CountIterations()
    runner = toy_runner(tmp_path / 'resumed', 'sgd', max_iters=3,
                        resume_from=path, hooks=(counter, ))
    weights = {k: v.clone() for k, v in runner.model.state_dict().items()}
    saved_weights = torch.load(path)['state_dict']
    assert not torch.equal(weights['conv.weight'],
                           saved_weights['conv.weight'])
    with pytest.raises(CheckpointRefusedError) as refused:
        runner.train()
    assert str(refused.value).startswith(
        f"checkpoint {path}: ['optimizer']['state'][0]['momentum_buffer'] "
        'has shape (4, 3) but parameter 0 (conv.weight) has shape '
        '(4, 3, 3, 3); resume from a checkpoint of this config, or start '
        'without --resume')
    # nothing was loaded and nothing trained
    assert counter.iterations == 0 and runner.iter == 0
    for key, value in runner.model.state_dict().items():
        assert torch.equal(value, weights[key]), key
    assert len(runner.optim_wrapper.optimizer.state) == 0
    assert runner.param_schedulers[1].last_step == 0


def test_flexible_runner_resume_is_checked(saved_runs: dict,
                                           tmp_path: Path) -> None:
    runner = toy_runner(tmp_path / 'real', 'sgd', max_iters=3,
                        resume_from=saved_runs['sgd'], flexible=True)
    runner.train()
    assert runner.iter == 3

    def shrink(checkpoint: dict) -> None:
        state = checkpoint['optimizer']['state'][4]
        state['momentum_buffer'] = state['momentum_buffer'].t()

    path = tampered(saved_runs['sgd'], tmp_path, shrink)
    runner = toy_runner(tmp_path / 'tampered', 'sgd', max_iters=3,
                        resume_from=path, flexible=True)
    weights = {k: v.clone() for k, v in runner.model.state_dict().items()}
    with pytest.raises(CheckpointRefusedError,
                       match=r"\['optimizer'\]\['state'\]\[4\]"
                       r"\['momentum_buffer'\] has shape \(4, 2\) but "
                       r'parameter 4 \(head\.weight\) has shape \(2, 4\)'):
        runner.train()
    assert runner.iter == 0
    for key, value in runner.model.state_dict().items():
        assert torch.equal(value, weights[key]), key


def _retype(checkpoint: dict) -> None:
    state = checkpoint['optimizer']['state'][2]
    state['momentum_buffer'] = state['momentum_buffer'].double()


def _drop_a_group_param(checkpoint: dict) -> None:
    optimizer = checkpoint['optimizer']
    optimizer['param_groups'][0]['params'].pop()
    del optimizer['state'][5]


def _two_groups(checkpoint: dict) -> None:
    group = checkpoint['optimizer']['param_groups'][0]
    group['params'], ids = group['params'][:3], group['params'][3:]
    checkpoint['optimizer']['param_groups'].append(dict(group, params=ids))


def _swap_schedulers(checkpoint: dict) -> None:
    checkpoint['param_schedulers'].reverse()


def _drop_a_scheduler(checkpoint: dict) -> None:
    checkpoint['param_schedulers'].pop()


@pytest.mark.parametrize('change, key, problem', [
    (_retype, "['optimizer']['state'][2]['momentum_buffer']",
     'has dtype torch.float64 but parameter 2 (bn.weight) has dtype '
     'torch.float32'),
    (_drop_a_group_param, "['optimizer']['param_groups'][0]['params']",
     'lists 5 parameters but group 0 of the optimizer has 6'),
    (_two_groups, "['optimizer']['param_groups']",
     'has 2 parameter groups but the optimizer (SGD) has 1'),
    (_swap_schedulers, "['param_schedulers'][0]",
     "is not the state of a LinearLR (fields ['gamma', 'milestones'] are "
     "not its own, ['end_factor', 'start_factor', 'total_iters'] are "
     'missing)'),
    (_drop_a_scheduler, "['param_schedulers']",
     "holds 1 scheduler states but the run has 2 schedulers ['LinearLR', "
     "'MultiStepLR']"),
],
                         ids=['dtype', 'group-size', 'groups',
                              'scheduler-class', 'scheduler-count'])
def test_state_of_another_run_is_refused(change: Callable, key: str,
                                         problem: str, saved_runs: dict,
                                         tmp_path: Path) -> None:
    path = tampered(saved_runs['sgd'], tmp_path, change)
    runner = toy_runner(tmp_path / 'resumed', 'sgd', max_iters=3,
                        resume_from=path)
    with pytest.raises(CheckpointRefusedError) as refused:
        runner.train()
    assert str(refused.value).startswith(
        f'checkpoint {path}: {key} {problem}; resume from a checkpoint of '
        'this config'), str(refused.value)
    assert runner.iter == 0


def test_resume_checks_what_it_is_asked_to_load(saved_runs: dict,
                                                tmp_path: Path) -> None:

    def shrink(checkpoint: dict) -> None:
        state = checkpoint['optimizer']['state'][0]
        state['momentum_buffer'] = state['momentum_buffer'][0]

    path = tampered(saved_runs['sgd'], tmp_path, shrink)
    # called directly, before train(): the optimizer is built for the check,
    # as Runner.resume builds it to load the state
    runner = toy_runner(tmp_path / 'direct', 'sgd', max_iters=3)
    assert isinstance(runner.optim_wrapper, dict)
    with pytest.raises(CheckpointRefusedError,
                       match=r"\['momentum_buffer'\] has shape \(3, 3, 3\)"):
        runner.resume(str(path))
    assert runner.iter == 0
    # without the optimizer's state, its check is skipped
    runner = toy_runner(tmp_path / 'no-optimizer', 'sgd', max_iters=3)
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    runner.resume(str(path), resume_optimizer=False)
    assert runner.iter == 2
    assert len(runner.optim_wrapper.optimizer.state) == 0
    assert runner.param_schedulers[1].last_step == 2


def test_check_optimizer_state_numbers_and_names_parameters() -> None:
    model = ToyModel()
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.ones(2, 3, 8, 8), mode='loss')['loss'].backward()
    optimizer.step()
    state = copy.deepcopy(optimizer.state_dict())
    check_optimizer_state(state, optimizer, 'x.pth', model=model)
    state['state'][4]['exp_avg'] = torch.zeros(4, 2)  # head.weight is (2, 4)
    with pytest.raises(CheckpointRefusedError,
                       match=r"checkpoint x\.pth: \['optimizer'\]\['state'\]"
                       r"\[4\]\['exp_avg'\] has shape \(4, 2\) but parameter"
                       r' 4 \(head\.weight\) has shape \(2, 4\)'):
        check_optimizer_state(state, optimizer, 'x.pth', model=model)
    # a 0-d tensor is a step; a bool one is not
    state['state'][4]['exp_avg'] = torch.zeros(2, 4)
    state['state'][4]['step'] = torch.tensor(True)
    with pytest.raises(CheckpointRefusedError, match=r"\['step'\] is a 0-d "
                       'torch.bool tensor'):
        check_optimizer_state(state, optimizer, 'x.pth')


# ------------------------------- refused in the file itself, when resuming


def _set_state(name: str, index: int, value: Callable) -> Callable:

    def change(checkpoint: dict) -> None:
        state = checkpoint['optimizer']['state'][index]
        state[name] = value(state[name])

    return change


def _nan_at_first(tensor: torch.Tensor) -> torch.Tensor:
    tensor = tensor.clone()
    tensor.view(-1)[0] = float('nan')
    return tensor


def _set_group(name: str, value: Any) -> Callable:

    def change(checkpoint: dict) -> None:
        checkpoint['optimizer']['param_groups'][0][name] = value

    return change


def _set_scheduler(index: int, name: str, value: Any) -> Callable:

    def change(checkpoint: dict) -> None:
        checkpoint['param_schedulers'][index][name] = value

    return change


FILE_REFUSALS = {
    'nan-exp-avg': ('adamw', _set_state('exp_avg', 1, _nan_at_first),
                    "['optimizer']['state'][1]['exp_avg'] holds non-finite "
                    'values'),
    'nan-momentum-buffer':
    ('sgd', _set_state('momentum_buffer', 0, _nan_at_first),
     "['optimizer']['state'][0]['momentum_buffer'] holds non-finite"),
    # a few bytes in the file, a billion elements to read
    'stride-0-moment':
    ('sgd', _set_state('momentum_buffer', 0,
                       lambda _: torch.zeros(1).expand(10**9)),
     "['optimizer']['state'][0]['momentum_buffer'] is a tensor of shape "
     '(1000000000,) and strides (0,) whose elements overlap in 4 bytes'),
    'inf-lr': ('sgd', _set_group('lr', float('inf')),
               "['optimizer']['param_groups'][0]['lr'] is inf, not a finite "
               'number'),
    'str-lr': ('sgd', _set_group('lr', '0.01'),
               "['optimizer']['param_groups'][0]['lr'] is '0.01', not a "
               'number'),
    'nan-beta': ('adamw', _set_group('betas', (0.9, float('nan'))),
                 "['optimizer']['param_groups'][0]['betas'][1] is nan"),
    'step-str': ('adamw', _set_state('step', 0, lambda step: 'two'),
                 "['optimizer']['state'][0]['step'] is 'two', not a number"),
    'state-of-no-param':
    ('sgd', lambda c: c['optimizer']['state'].__setitem__(
        9, c['optimizer']['state'][0]),
     "['optimizer']['state'][9] is the state of no parameter"),
    'param-listed-twice': ('sgd', _set_group('params', [0, 1, 2, 3, 4, 0]),
                           "['optimizer']['param_groups'][0]['params'] lists"
                           ' parameter 0 again'),
    'last-step-str': ('sgd', _set_scheduler(0, 'last_step', '2'),
                      "['param_schedulers'][0]['last_step'] is '2', not an "
                      'int >= -1'),
    'milestones-of-str': ('sgd', _set_scheduler(1, 'milestones', ['1']),
                          "['param_schedulers'][1]['milestones'] is ['1'], "
                          'not a Counter'),
    'base-values-nan':
    ('sgd', _set_scheduler(0, 'base_values', [float('nan')]),
     "['param_schedulers'][0]['base_values'][0] is nan, not a finite"),
    'gamma-none': ('sgd', _set_scheduler(1, 'gamma', None),
                   "['param_schedulers'][1]['gamma'] is None, not a number"),
    'by-epoch-int': ('sgd', _set_scheduler(0, 'by_epoch', 0),
                     "['param_schedulers'][0]['by_epoch'] is 0, not a bool"),
    'unknown-field-tensor':
    ('sgd', _set_scheduler(0, 'extra', torch.zeros(2)),
     "['param_schedulers'][0]['extra'] is a Tensor, not None"),
    'schedulers-not-a-list':
    ('sgd', lambda c: c.__setitem__('param_schedulers', 'linear'),
     "['param_schedulers'] is a str, not a list"),
}


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_weights(model: torch.nn.Module,
                    weights: dict[str, torch.Tensor]) -> None:
    assert model.state_dict().keys() == weights.keys()
    for key, value in model.state_dict().items():
        assert torch.equal(value, weights[key]), key


@pytest.mark.parametrize('name', sorted(FILE_REFUSALS))
def test_malformed_state_is_refused_naming_file_and_key(
        name: str, saved_runs: dict, tmp_path: Path) -> None:
    optimizer, change, message = FILE_REFUSALS[name]
    path = tampered(saved_runs[optimizer], tmp_path, change)
    runner = toy_runner(tmp_path / 'resumed', optimizer, max_iters=3)
    weights = _weights(runner.model)
    with pytest.raises(CheckpointRefusedError) as refused:
        runner.resume(str(path))
    assert str(refused.value).startswith(f'checkpoint {path}: {message}'), (
        str(refused.value))
    assert 'start without --resume' in str(refused.value)
    # refused before anything was loaded
    assert runner.iter == 0
    _assert_weights(runner.model, weights)


def test_plain_load_uses_the_weights_resume_refuses_the_states(
        saved_runs: dict, tmp_path: Path) -> None:
    """A diverged run's checkpoint (a NaN moment, and a str last_step) can
    be evaluated: load_from, tools/test.py and init_cfg Pretrained read the
    weights. Resuming from it is refused."""

    def diverge(checkpoint: dict) -> None:
        _set_state('exp_avg', 1, _nan_at_first)(checkpoint)
        _set_scheduler(0, 'last_step', '2')(checkpoint)

    path = tampered(saved_runs['adamw'], tmp_path, diverge)
    saved_weights = torch.load(path)['state_dict']
    loaded = CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    assert torch.isnan(loaded['optimizer']['state'][1]['exp_avg']).any()
    assert loaded['param_schedulers'][0]['last_step'] == '2'
    # mmengine.runner.load_checkpoint: tools/test.py, init_cfg Pretrained
    model = ToyModel()
    assert not torch.equal(model.conv.weight, saved_weights['conv.weight'])
    load_checkpoint(model, str(path), map_location='cpu', strict=True)
    _assert_weights(model, saved_weights)
    # load_from: Runner.load_checkpoint
    runner = toy_runner(tmp_path / 'load-from', 'adamw')
    runner.load_checkpoint(str(path))
    _assert_weights(runner.model, saved_weights)

    runner = toy_runner(tmp_path / 'resumed', 'adamw', max_iters=3)
    weights = _weights(runner.model)
    with pytest.raises(CheckpointRefusedError) as refused:
        runner.resume(str(path))
    assert str(refused.value).startswith(
        f"checkpoint {path}: ['optimizer']['state'][1]['exp_avg'] holds "
        'non-finite values'), str(refused.value)
    # the schedulers' states, if it loads them
    with pytest.raises(CheckpointRefusedError) as refused:
        runner.resume(str(path), resume_optimizer=False)
    assert str(refused.value).startswith(
        f"checkpoint {path}: ['param_schedulers'][0]['last_step'] is '2', "
        'not an int >= -1'), str(refused.value)
    assert runner.iter == 0
    _assert_weights(runner.model, weights)
    # what it does not load is not checked
    runner.resume(str(path), resume_optimizer=False,
                  resume_param_scheduler=False)
    assert runner.iter == 2
    _assert_weights(runner.model, saved_weights)


def test_malformed_state_is_refused_at_resume(saved_runs: dict,
                                              tmp_path: Path) -> None:
    path = tampered(saved_runs['adamw'], tmp_path,
                    _set_state('exp_avg', 1, _nan_at_first))
    counter = CountIterations()
    runner = toy_runner(tmp_path / 'resumed', 'adamw', max_iters=3,
                        resume_from=path, hooks=(counter, ))
    with pytest.raises(CheckpointRefusedError,
                       match=r"\['optimizer'\]\['state'\]\[1\]\['exp_avg'\] "
                       'holds non-finite'):
        runner.train()
    assert counter.iterations == 0
    assert len(runner.optim_wrapper.optimizer.state) == 0


# -------------------------------------------- loaders registered later


@pytest.fixture
def test_scheme() -> Iterator[str]:
    """A URL scheme of the test's own, unregistered afterwards."""
    prefix = 'ce-mmdet-test://'
    yield prefix
    CheckpointLoader._schemes.pop(prefix, None)


def _crafted_file(tmp_path: Path) -> Path:
    path = tmp_path / 'crafted.pth'
    path.write_bytes(crafted_checkpoints.checkpoint_bytes(
        crafted_checkpoints.checkpoint(meta=dict(iter='2'))))
    return path


def test_loader_registered_later_is_guarded(test_scheme: str,
                                            tmp_path: Path) -> None:
    path = _crafted_file(tmp_path)

    def load_from_test_scheme(filename: str, map_location: Any = None
                              ) -> Any:
        return load_from_local(filename[len(test_scheme):], map_location)

    CheckpointLoader.register_scheme(test_scheme, load_from_test_scheme)
    url = f'{test_scheme}{path}'
    with pytest.raises(CheckpointRefusedError,
                       match=re.escape(
                           f"checkpoint {url}: ['meta']['iter']")):
        CheckpointLoader.load_checkpoint(url, map_location='cpu')
    # as through the local loader
    with pytest.raises(CheckpointRefusedError, match=r"\['meta'\]\['iter'\]"):
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    loader = CheckpointLoader._schemes[test_scheme]
    assert loader.__wrapped__ is load_from_test_scheme


def test_loader_registered_later_by_decorator_is_guarded(
        test_scheme: str, tmp_path: Path) -> None:
    path = _crafted_file(tmp_path)
    CheckpointLoader.register_scheme(test_scheme, load_from_local)

    @CheckpointLoader.register_scheme(prefixes=[test_scheme], force=True)
    def load_from_test_scheme(filename: str, map_location: Any = None
                              ) -> Any:
        return load_from_local(filename[len(test_scheme):], map_location)

    # the decorator returns the loader itself, as MMEngine's does
    assert not getattr(load_from_test_scheme, 'ce_mmdet_guarded', False)
    assert (CheckpointLoader._schemes[test_scheme].__wrapped__ is
            load_from_test_scheme)
    url = f'{test_scheme}{path}'
    with pytest.raises(CheckpointRefusedError,
                       match=re.escape(
                           f"checkpoint {url}: ['meta']['iter']")):
        CheckpointLoader.load_checkpoint(url, map_location='cpu')


def test_guards_are_installed_once() -> None:
    register_scheme = CheckpointLoader.register_scheme
    resume = Runner.resume
    schemes = dict(CheckpointLoader._schemes)
    guard_mmengine_checkpoint_loaders()
    guard_mmengine_resume()
    assert CheckpointLoader.register_scheme == register_scheme
    assert Runner.resume is resume
    assert CheckpointLoader._schemes == schemes
    assert not hasattr(Runner.resume.__wrapped__, '__wrapped__')


# ------------------------------------------------ through tools/train.py


def test_train_tool_refuses_the_optimizer_state_of_another_model(
        tiny_run: dict) -> None:
    from tool_runs import TOOLS, run_tool

    root = tiny_run['root']
    checkpoint = torch.load(tiny_run['work_dir'] / 'iter_2.pth')
    # the first conv that trains (the stem is frozen: it has no state)
    param_id, state = next(
        (param_id, state)
        for param_id, state in sorted(checkpoint['optimizer']['state'].items())
        if state['momentum_buffer'].dim() == 4)
    shape = tuple(state['momentum_buffer'].shape)
    state['momentum_buffer'] = state['momentum_buffer'][:, :, 0, 0]
    path = root / 'other-model-optimizer.pth'
    torch.save(checkpoint, path)
    output = run_tool([
        TOOLS / 'train.py', tiny_run['config'], '--work-dir',
        root / 'work_other_optimizer', '--resume', path
    ], cwd=root, expect_failure=True)
    assert re.search(
        re.escape(f"CheckpointRefusedError: checkpoint {path}: ['optimizer']"
                  f"['state'][{param_id}]['momentum_buffer'] has shape "
                  f'{shape[:2]} but parameter {param_id} (') +
        r'backbone\.[\w.]+' + re.escape(f') has shape {shape}'), output)
    assert 'Iter(train)' not in output
