"""Multi-process training and testing on machines without GPUs (gloo).

MMEngine 0.10's ``pytorch`` launcher assumes one CUDA device per process:
``mmengine.dist.init_dist('pytorch')`` calls ``torch.cuda.set_device`` before
it initialises the process group, and ``Runner.wrap_model`` builds
``MMDistributedDataParallel(model, device_ids=[LOCAL_RANK])``, which
``DistributedDataParallel`` refuses for a model on the CPU (``device_ids``
must be None there). So ``tools/dist_train.sh CONFIG N`` (torchrun plus
``--launcher pytorch``) fails on a CPU-only machine.

:func:`setup_cpu_distributed`, called by ``tools/train.py`` and
``tools/test.py`` before they run MMDetection's script, works around both
without touching MMEngine, and only when MMEngine's device is the CPU (no
CUDA/NPU/MLU/MUSA/MPS device, or ``CUDA_VISIBLE_DEVICES=''`` on a GPU
machine) and the launcher is ``pytorch`` under torchrun:

1. it initialises the default process group with the ``gloo`` backend from
   torchrun's environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
   ``MASTER_PORT``), with the config's ``env_cfg.dist_cfg.timeout``;
   ``Runner.setup_env`` then finds the process group initialised and skips
   ``init_dist``;
2. it appends ``--cfg-options`` that give the model wrapper
   ``device_ids=None``. (``model_wrapper_cfg.type=...`` alone is not enough:
   ``Runner.wrap_model`` passes ``device_ids=[LOCAL_RANK]`` to any
   ``DistributedDataParallel`` subclass as a default argument, which only an
   explicit ``device_ids=None`` in the config overrides.) Without a
   ``model_wrapper_cfg`` in the config, the options rebuild exactly the
   wrapper MMEngine builds by default (``MMDistributedDataParallel`` with
   ``broadcast_buffers=False`` and the config's ``find_unused_parameters``)
   minus the device ids; with one, only ``device_ids=None`` is added, and
   only to a ``DistributedDataParallel`` subclass that sets no
   ``device_ids`` itself.

With a CUDA device, or any other launcher, it does nothing: MMEngine's own
path (NCCL, one GPU per process) is unchanged.
"""
from __future__ import annotations

import atexit
import datetime
import inspect
import os
import sys
from typing import Any, Optional

__all__ = [
    'cpu_model_wrapper_options', 'needs_cpu_distributed',
    'setup_cpu_distributed'
]

TORCHRUN_ENV_VARS = ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'MASTER_ADDR',
                     'MASTER_PORT')
"""Environment variables torchrun sets for every process it launches."""

CPU_BACKEND = 'gloo'
"""The torch.distributed backend of the CPU fallback."""


def needs_cpu_distributed() -> bool:
    """Whether this process may need the CPU/gloo fallback.

    True when torchrun's environment variables are set, MMEngine's device is
    the CPU and no process group is initialised yet. Whether the launcher is
    ``pytorch`` is up to the command line (see :func:`setup_cpu_distributed`).
    """
    import torch.distributed as dist
    from mmengine.device import get_device

    if not all(name in os.environ for name in TORCHRUN_ENV_VARS):
        return False
    if not dist.is_available() or dist.is_initialized():
        return False
    return get_device() == 'cpu'


def cpu_model_wrapper_options(cfg: Any) -> dict[str, Any]:
    """``--cfg-options`` that make the runner's model wrapper CPU-ready.

    Args:
        cfg: the (merged) ``mmengine.Config`` the tool will run.

    Returns:
        Options (dotted key -> value) to merge into ``cfg``; empty when the
        config's wrapper needs none (it sets ``device_ids`` or is no
        ``DistributedDataParallel``).
    """
    import mmengine.model  # noqa: F401  (registers MMEngine's wrappers)
    from mmengine.registry import MODEL_WRAPPERS
    from torch.nn.parallel import DistributedDataParallel

    wrapper_cfg = cfg.get('model_wrapper_cfg', None)
    if wrapper_cfg is None:
        # what Runner.wrap_model builds without model_wrapper_cfg, minus
        # device_ids=[LOCAL_RANK]
        return {
            'model_wrapper_cfg.type': 'MMDistributedDataParallel',
            'model_wrapper_cfg.device_ids': None,
            'model_wrapper_cfg.broadcast_buffers': False,
            'model_wrapper_cfg.find_unused_parameters':
            bool(cfg.get('find_unused_parameters', False)),
        }
    if 'device_ids' in wrapper_cfg:
        return {}
    wrapper_type = wrapper_cfg.get('type', 'MMDistributedDataParallel')
    if isinstance(wrapper_type, str):
        with MODEL_WRAPPERS.switch_scope_and_registry(
                cfg.get('default_scope', None)) as registry:
            wrapper_type = registry.get(wrapper_type)
    if inspect.isclass(wrapper_type) and issubclass(wrapper_type,
                                                    DistributedDataParallel):
        # Runner.wrap_model passes device_ids=[LOCAL_RANK] as a default
        # argument: an explicit None in the config wins
        return {'model_wrapper_cfg.device_ids': None}
    return {}


def _option_text(key: str, value: Any) -> str:
    """``key=value`` as ``mmengine.config.DictAction`` parses it back."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return f'{key}={value}'
    raise TypeError(f'cannot pass {key}={value!r} on a command line')


def _dist_timeout(cfg: Any) -> Optional[datetime.timedelta]:
    """The config's ``env_cfg.dist_cfg.timeout`` (seconds) as a timedelta."""
    dist_cfg = (cfg.get('env_cfg', None) or {}).get('dist_cfg', None) or {}
    timeout = dist_cfg.get('timeout', None)
    return None if timeout is None else datetime.timedelta(seconds=timeout)


def _destroy_process_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        # Leave together: a rank that tears gloo down while another still
        # evaluates was seen to abort (SIGABRT) at exit.
        dist.barrier()
        dist.destroy_process_group()


def setup_cpu_distributed(tool: str,
                          argv: Optional[list[str]] = None,
                          package: str = 'mmdet') -> bool:
    """Prepare a torchrun-launched OpenMMLab tool for CPU-only machines.

    Call it before running the tool with
    :func:`ce_mmdet.utils.run_openmmlab_tool`. When
    :func:`needs_cpu_distributed` and the tool's own argument parser gives
    ``--launcher pytorch``, it initialises the default process group with
    ``gloo`` and appends ``--cfg-options`` from
    :func:`cpu_model_wrapper_options` to ``argv``, then logs one line (on
    rank 0). Otherwise it does nothing.

    Args:
        tool: the tool, ``'train.py'`` or ``'test.py'``; its
            ``parse_args()`` reads the command line, so that the config, the
            launcher and the ``--cfg-options`` are those the tool will see.
        argv: the command line to read and extend; ``sys.argv`` by default.
        package: whose tool: ``'mmdet'`` or ``'mmpretrain'``.

    Returns:
        True if the CPU/gloo fallback is in use.
    """
    if not needs_cpu_distributed():
        return False

    import runpy

    import torch.distributed as dist
    from mmengine.config import Config
    from mmengine.logging import print_log

    from .openmmlab_tools import openmmlab_tool_path

    argv = sys.argv if argv is None else argv
    tool_globals = runpy.run_path(openmmlab_tool_path(tool, package),
                                  run_name='ce_mmdet_cpu_distributed')
    saved_argv = sys.argv
    sys.argv = argv
    try:
        args = tool_globals['parse_args']()
    finally:
        sys.argv = saved_argv
    if args.launcher != 'pytorch':
        return False

    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    # init_method env:// reads RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT
    timeout = _dist_timeout(cfg)
    init_kwargs = {} if timeout is None else {'timeout': timeout}
    dist.init_process_group(backend=CPU_BACKEND, **init_kwargs)
    # MMDetection's tools never destroy the group; gloo's threads alive at
    # interpreter exit can abort it ("terminate called without an active
    # exception", seen with tools/test.py).
    atexit.register(_destroy_process_group)

    options = cpu_model_wrapper_options(cfg)
    if options:
        argv += [
            '--cfg-options',
            *(_option_text(key, value) for key, value in options.items())
        ]
    if dist.get_rank() == 0:
        added = ' '.join(argv[len(argv) - len(options):]) if options else ''
        print_log(
            f'ce_mmdet: no GPU, CPU/gloo fallback for --launcher pytorch: '
            f'{dist.get_world_size()} processes on the gloo backend'
            + (f', model wrapper options {added}' if added else ''),
            logger='current')
    return True
