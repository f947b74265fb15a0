"""Export a detector's backbone (and neck) to ONNX and check it with
onnxruntime.

CE runs as plain ops while a graph is captured (see
:mod:`ce_mmdet.layers.grouped_map`), so a CE backbone exports like any other.
The exporter is PyTorch's default one (``torch.onnx.export(...,
dynamo=True)``, built on ``torch.export``; it needs ``onnxscript``). The
legacy TorchScript exporter (``dynamo=False``) stops at CE's
``aten::diag_embed``, which it cannot translate.

What is exported is the tensor part of a detector: ``neck(backbone(x))``
(``'backbone_neck'``) or ``backbone(x)`` (``'backbone'``), for an input ``x``
already normalised and padded by the detector's data preprocessor, with the
static shape given. The heads' post-processing (RoIAlign, NMS: mmcv's
compiled ops) is not: see ``tools/deployment/README.md``.

The file is written atomically: exported to a temporary file next to the
target, run with onnxruntime on a fresh random input and compared with the
PyTorch module, and only then renamed to the target. A failed export or
check leaves no ``.onnx`` behind.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import torch
from mmengine.logging import MMLogger
from torch import Tensor, nn

from ce_mmdet.utils.atomic_files import write_atomically

EXPORT_PARTS = ('backbone_neck', 'backbone')
"""What :func:`detector_part` can take out of a detector."""

DEFAULT_TOLERANCE = 1e-4
"""Largest accepted ``|onnx - torch| / max|torch|`` per output (float32)."""


class OnnxMismatchError(RuntimeError):
    """onnxruntime's outputs differ from PyTorch's beyond the tolerance."""


class BackboneNeck(nn.Module):
    """``neck(backbone(x))`` as a tuple of tensors (``backbone(x)`` without
    a neck): the part of a detector that maps images to feature maps."""

    def __init__(self, backbone: nn.Module,
                 neck: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        features = self.backbone(x)
        if self.neck is not None:
            features = self.neck(features)
        return tuple(features)


def detector_part(detector: nn.Module,
                  part: str = 'backbone_neck') -> nn.Module:
    """The module for ``part`` (one of :data:`EXPORT_PARTS`) of ``detector``.

    Shares the detector's submodules (no copy) and their training mode.
    """
    if part not in EXPORT_PARTS:
        raise ValueError(f'part must be one of {EXPORT_PARTS}, got {part!r}')
    backbone = getattr(detector, 'backbone', None)
    if backbone is None:
        raise ValueError(
            f'{type(detector).__name__} has no backbone to export')
    neck = getattr(detector, 'neck', None) if part == 'backbone_neck' else None
    if part == 'backbone_neck' and neck is None:
        raise ValueError(
            f'{type(detector).__name__} has no neck: use part="backbone"')
    wrapper = BackboneNeck(backbone, neck)
    wrapper.training = detector.training  # (not applied to the submodules)
    return wrapper


def _require_eval_mode(module: nn.Module) -> None:
    training = [name or type(module).__name__
                for name, m in module.named_modules() if m.training]
    if training:
        raise ValueError(
            f'{len(training)} submodules are in training mode (e.g. '
            f'{training[0]!r}): call module.eval() before exporting, or the '
            'graph would use batch statistics and update running buffers')


def export_onnx(module: nn.Module, example_input: Tensor, path: str | Path,
                opset: Optional[int] = None) -> Path:
    """Write ``module`` (in eval mode) to ``path`` as an ONNX model.

    Uses ``torch.onnx.export(dynamo=True)`` with the weights inside the file
    (no external data) and the input named ``input``; the input shape is
    static (that of ``example_input``).

    Args:
        module: the module; every submodule must be in eval mode.
        example_input: (N, C, H, W) input that fixes the exported shape.
        path: the file to write (overwritten, not atomically: see
            :func:`export_and_check_onnx`).
        opset: ONNX opset version; None for torch's default.

    Returns:
        ``path`` as a :class:`Path`.
    """
    _require_eval_mode(module)
    path = Path(path)
    with torch.no_grad():
        outputs = module(example_input)
    num_outputs = len(outputs) if isinstance(outputs, (tuple, list)) else 1
    program = torch.onnx.export(
        module, (example_input, ),
        dynamo=True,
        opset_version=opset,
        input_names=['input'],
        output_names=[f'output{i}' for i in range(num_outputs)],
        verbose=False)
    program.save(str(path), external_data=False)
    return path


@dataclass
class OnnxCheck:
    """How far onnxruntime's outputs are from PyTorch's, output by output.

    ``max_abs[i] = max |onnx_i - torch_i|``,
    ``max_rel[i] = max_abs[i] / max |torch_i|``.
    """

    output_names: list[str]
    max_abs: list[float] = field(default_factory=list)
    max_rel: list[float] = field(default_factory=list)

    @property
    def worst_abs(self) -> float:
        return max(self.max_abs)

    @property
    def worst_rel(self) -> float:
        return max(self.max_rel)

    def summary(self) -> str:
        """One line per output, then the worst case."""
        lines = [
            f'{name}: max abs diff {a:.3g}, max rel diff {r:.3g}'
            for name, a, r in zip(self.output_names, self.max_abs,
                                  self.max_rel)
        ]
        lines.append(f'worst: max abs diff {self.worst_abs:.3g}, '
                     f'max rel diff {self.worst_rel:.3g}')
        return '\n'.join(lines)


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError as error:
        raise ImportError(
            'checking an ONNX model needs onnxruntime: '
            'pip install onnxruntime '
            '(pinned in tools/constraints.txt; also in the "tests" extra, '
            'pip install -e ".[tests]")') from error
    return onnxruntime


def check_onnx(path: str | Path, module: nn.Module, inputs: Tensor,
               tolerance: float = DEFAULT_TOLERANCE,
               name: Optional[str] = None) -> OnnxCheck:
    """Run the ONNX model at ``path`` with onnxruntime (CPU) on ``inputs``
    and compare with ``module(inputs)`` in PyTorch.

    ``name``: how errors call the model (default: ``path``).

    Raises:
        OnnxMismatchError: an output's shape differs, or its ``max_rel``
            exceeds ``tolerance``.
    """
    ort = _onnxruntime()
    name = str(path) if name is None else name
    session = ort.InferenceSession(str(path),
                                   providers=['CPUExecutionProvider'])
    (input_meta, ) = session.get_inputs()
    onnx_outputs = session.run(None, {input_meta.name: inputs.cpu().numpy()})
    with torch.no_grad():
        torch_outputs = module(inputs)
    if isinstance(torch_outputs, Tensor):
        torch_outputs = (torch_outputs, )
    names = [meta.name for meta in session.get_outputs()]
    if len(onnx_outputs) != len(torch_outputs):
        raise OnnxMismatchError(
            f'{name}: {len(onnx_outputs)} ONNX outputs, '
            f'{len(torch_outputs)} PyTorch outputs')
    check = OnnxCheck(names)
    for output, got, expected in zip(names, onnx_outputs, torch_outputs):
        expected = expected.detach().cpu().float()
        got = torch.from_numpy(got).float()
        if got.shape != expected.shape:
            raise OnnxMismatchError(
                f'{name}: output {output} has shape {tuple(got.shape)} in '
                f'onnxruntime, {tuple(expected.shape)} in PyTorch')
        max_abs = (got - expected).abs().max().item()
        scale = expected.abs().max().item()
        check.max_abs.append(max_abs)
        check.max_rel.append(max_abs / scale if scale > 0 else max_abs)
    if not all(map(math.isfinite, check.max_rel)) or (
            check.worst_rel > tolerance):
        raise OnnxMismatchError(
            f'{name}: onnxruntime differs from PyTorch beyond the tolerance '
            f'{tolerance:g} (relative to each output\'s largest value):\n'
            + check.summary())
    return check


def export_and_check_onnx(module: nn.Module, input_shape: Sequence[int],
                          path: str | Path, opset: Optional[int] = None,
                          tolerance: float = DEFAULT_TOLERANCE,
                          seed: int = 0) -> OnnxCheck:
    """Export ``module`` to ``path`` and check it, atomically.

    The model is exported for random inputs of ``input_shape`` (N, C, H, W),
    written to a temporary file in ``path``'s directory, checked with
    :func:`check_onnx` on another random input and renamed to ``path`` only
    if the check passes. On any error the temporary file is removed and
    ``path`` is left as it was.

    Returns:
        The check (max differences per output).
    """
    if len(input_shape) != 4 or min(input_shape) < 1:
        raise ValueError(
            f'input_shape must be (N, C, H, W) with positive sizes, got '
            f'{tuple(input_shape)}')
    logger = MMLogger.get_current_instance()
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f'the directory of {path} does not exist: create it first')
    generator = torch.Generator().manual_seed(seed)
    device = next(module.parameters()).device
    example, check_input = (
        torch.randn(*input_shape, generator=generator).to(device)
        for _ in range(2))
    checks: list[OnnxCheck] = []

    def compare_with_pytorch(temporary: str) -> None:
        checks.append(check_onnx(temporary, module, check_input, tolerance,
                                 name=f'{path} (not written)'))

    write_atomically(
        path, lambda temporary: export_onnx(module, example, temporary, opset),
        validate=compare_with_pytorch)
    check = checks[0]
    logger.info(f'wrote {path} (input {tuple(input_shape)}); onnxruntime vs '
                f'PyTorch: max abs diff {check.worst_abs:.3g}, max rel diff '
                f'{check.worst_rel:.3g}')
    return check
