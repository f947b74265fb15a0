"""A per-image, block-diagonal 1x1 map whose coefficients depend on the batch.

Channel Equilibrium (and BN folded into it) is, for every image ``n``,

    out[n] = A[n] @ x[n] + c[n]          (per group of ``g`` channels)

where the small matrices ``A[n]`` (G, g, g) and offsets ``c[n]`` (G, g) are
functions of second-order statistics of ``x``: the per-image, per-group Gram
matrices ``gram[n] = x[n] x[n]^T`` and sums ``s1[n] = x[n] 1``. Everything
that touches the large tensor is three passes forward (Gram, sum, apply) and
three backward (``dA = dout x^T``, ``dc = dout 1``, and one fused
``dx = A^T dout + (dgram + dgram^T) x + ds1``), with no transposes or copies
of ``x``. Everything between statistics and map is a small graph (matrices of
size g x g) that ordinary autograd differentiates inside ``backward``; it may
contain a differentiable all-reduce, which is how SyncCE syncs statistics.

When a graph is being captured (``torch.jit.trace``, ``torch.compile``,
``torch.export``), the same computation runs as plain differentiable ops
instead (:func:`graph_capture_in_progress`): the capturer then sees, counts,
differentiates and exports every step, while eager mode keeps the
hand-written backward.
"""
import contextlib
from typing import Callable, Iterator, Mapping, Optional

import torch
from torch import Tensor

# statistics_to_map(gram (N,G,g,g), s1 (N,G,g), params: {name: tensor}) ->
#     (A (N,G,g,g), c (N,G,g) or None,
#      extras: {name: tensor}, not differentiated)
MapBuilder = Callable[[Tensor, Tensor, dict[str, Tensor]],
                      tuple[Tensor, Optional[Tensor], dict[str, Tensor]]]


def graph_capture_in_progress() -> bool:
    """Whether ``torch.jit.trace``, ``torch.compile`` or ``torch.export`` is
    capturing the code that runs now: they cannot look into an autograd
    Function whose backward calls autograd itself, nor change the thread
    count, so CE then runs as plain differentiable ops."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


@contextlib.contextmanager
def small_graph_threads(device: torch.device) -> Iterator[None]:
    """Run the statistics graph (dozens of ops on g x g matrices) on one CPU
    thread: each op is too small to gain from the intra-op pool, and on a
    loaded machine every parallel region can wait a scheduler time slice for
    a descheduled worker (measured: 15 ms for a (64, 16, 16) bmm)."""
    threads = torch.get_num_threads()
    if device.type != 'cpu' or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def grouped_gram_and_sum(x_grouped: Tensor,
                         full_gram: bool = True) -> tuple[Tensor, Tensor]:
    """Per-image, per-group Gram matrices and sums of ``x_grouped``
    (N, G, g, P).

    With ``full_gram=False`` only the Gram diagonals (per-channel sums of
    squares, one dot product per channel: several times cheaper than g x g
    products) are computed, returned as diagonal matrices.
    """
    sums = x_grouped.sum(-1)
    if full_gram:
        return x_grouped @ x_grouped.transpose(-1, -2), sums
    rows = x_grouped.reshape(-1, 1, x_grouped.shape[-1])
    sum_sq = torch.bmm(rows, rows.transpose(1, 2)).view_as(sums)
    return torch.diag_embed(sum_sq), sums


def grouped_view(x: Tensor, group_size: int) -> Tensor:
    """(N, C, H, W) -> (N, C / g, g, H * W), a view of contiguous ``x``."""
    n, c, h, w = x.shape
    return x.view(n, c // group_size, group_size, h * w)


def apply_grouped_map(x_grouped: Tensor, map_matrix: Tensor,
                      offset: Optional[Tensor],
                      out: Optional[Tensor] = None) -> Tensor:
    """``map_matrix @ x_grouped + offset``: (N,G,g,g) @ (N,G,g,P) + (N,G,g,1).

    The offset enters the matrix product as its initial value (one fused
    multiply-add, not a second pass over the output). ``out``: a contiguous
    (N, G, g, P) tensor to write into (outside autograd only).
    """
    n, groups, g, positions = x_grouped.shape
    batch = n * groups
    maps = map_matrix.reshape(batch, g, g)
    inputs = x_grouped.reshape(batch, g, positions)
    result = None if out is None else out.view(batch, g, positions)
    if offset is None:
        result = torch.bmm(maps, inputs, out=result)
    else:
        initial = offset.reshape(batch, g, 1).expand(batch, g, positions)
        result = torch.baddbmm(initial, maps, inputs, out=result)
    return result.view_as(x_grouped)


class _StatisticsConditionedMap(torch.autograd.Function):
    """Autograd for :func:`statistics_conditioned_map` (see the module doc)."""

    @staticmethod
    def forward(ctx, x: Tensor, group_size: int, statistics_to_map: MapBuilder,
                full_gram: bool, extras_out: dict, names: tuple[str, ...],
                *values: Tensor):
        x_grouped = grouped_view(x, group_size)
        gram, s1 = grouped_gram_and_sum(x_grouped, full_gram)
        # The small graph is recorded here and differentiated in backward.
        with torch.enable_grad(), small_graph_threads(x_grouped.device):
            gram_leaf = gram.requires_grad_(ctx.needs_input_grad[0])
            s1_leaf = s1.requires_grad_(ctx.needs_input_grad[0])
            param_leaves = [
                value.detach().requires_grad_(needs) for value, needs in zip(
                    values, ctx.needs_input_grad[_FIRST_PARAM:])
            ]
            map_matrix, offset, extras = statistics_to_map(
                gram_leaf, s1_leaf, dict(zip(names, param_leaves)))
        extras_out.update(_detached(extras))
        # The output is a tensor of the input's shape, not a view: in-place
        # ops downstream (the residual addition, ReLU) on a view of a custom
        # Function's output would make autograd copy the whole gradient.
        out = torch.empty_like(x)
        apply_grouped_map(x_grouped, map_matrix.detach(),
                          None if offset is None else offset.detach(),
                          out=grouped_view(out, group_size))
        ctx.save_for_backward(x)
        ctx.group_size = group_size
        ctx.small_graph = (gram_leaf, s1_leaf, param_leaves, map_matrix,
                           offset)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):
        (x, ) = ctx.saved_tensors
        x_grouped = grouped_view(x, ctx.group_size)
        grad_out = grouped_view(grad_out.contiguous(), ctx.group_size)
        gram, s1, param_leaves, map_matrix, offset = ctx.small_graph
        needs_x = ctx.needs_input_grad[0]
        wanted = [gram, s1] if needs_x else []
        wanted += [p for p in param_leaves if p.requires_grad]
        grad_x = None
        grad_params = [None] * len(param_leaves)
        if wanted:
            outputs = [map_matrix]
            grads = [grad_out @ x_grouped.transpose(-1, -2)]
            if offset is not None:
                outputs.append(offset)
                grads.append(grad_out.sum(-1))
            # retain_graph: the outer graph may be differentiated again
            # (retain_graph=True, gradcheck); the small graph is tiny.
            with small_graph_threads(x_grouped.device):
                found = torch.autograd.grad(outputs, wanted, grads,
                                            allow_unused=True,
                                            retain_graph=True)
            found = [torch.zeros_like(t) if g is None else g
                     for t, g in zip(wanted, found)]
            if needs_x:
                grad_gram, grad_s1 = found[:2]
                found = found[2:]
                grad_x = _input_gradient(x_grouped, grad_out, map_matrix,
                                         grad_gram, grad_s1)
            it = iter(found)
            grad_params = [next(it) if p.requires_grad else None
                           for p in param_leaves]
        elif needs_x:
            grad_x = map_matrix.detach().transpose(-1, -2) @ grad_out
        if grad_x is not None:
            grad_x = grad_x.view_as(x)
        return (grad_x, *[None] * (_FIRST_PARAM - 1), *grad_params)


# Arguments of _StatisticsConditionedMap.forward before the parameters.
_FIRST_PARAM = 6


def _detached(tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {name: t.detach() for name, t in tensors.items()}


def _input_gradient(x_grouped: Tensor, grad_out: Tensor, map_matrix: Tensor,
                    grad_gram: Tensor, grad_s1: Tensor) -> Tensor:
    """``dx = A^T dout + (dgram + dgram^T) x + ds1``, in two BLAS calls
    that accumulate into one output (no temporaries of the input's size)."""
    n, groups, g, positions = x_grouped.shape
    batch = n * groups
    sym = grad_gram + grad_gram.transpose(-1, -2)
    grad_x = torch.baddbmm(grad_s1.reshape(batch, g, 1),
                           sym.reshape(batch, g, g),
                           x_grouped.reshape(batch, g, positions))
    grad_x.baddbmm_(map_matrix.detach().reshape(batch, g, g).transpose(1, 2),
                    grad_out.reshape(batch, g, positions))
    return grad_x.view_as(x_grouped)


@torch.compiler.disable
def _small_graph_outside_inductor(statistics_to_map: MapBuilder, *args):
    """``statistics_to_map(*args)`` run eagerly under ``torch.compile``.

    Inductor (torch 2.13, CPU) miscompiles the backward of this small graph
    in some networks (CE-ResNet's stem: a buffer is read after its reuse,
    ``UnboundLocalError: ... 'bufN'``), and ops on g x g matrices gain
    nothing from compiling anyway. Costs a graph break per CE layer in
    training; inference and export keep one graph. Still needed on torch
    2.14.1: without it, Inductor compiles CE-ResNet-50's training as one
    graph for one input shape, but fails once a new shape makes the shapes
    dynamic (``InductorError: TypeError: cannot determine truth value of
    Relational``), as a detector's varying image sizes do.
    """
    return statistics_to_map(*args)


def statistics_conditioned_map(
        x: Tensor, group_size: int, statistics_to_map: MapBuilder,
        params: Optional[Mapping[str, Tensor]] = None,
        full_gram: bool = True) -> tuple[Tensor, dict[str, Tensor]]:
    """Apply ``A(stats) @ x + c(stats)`` per image and group; see module doc.

    Args:
        x: (N, C, H, W), contiguous; channels are grouped ``group_size`` at
            a time (G = C / group_size groups of g = group_size).
        group_size: g.
        statistics_to_map: builds ``(A, c, extras)`` from ``gram`` (N,G,g,g),
            ``s1`` (N,G,g) and a dict of ``params`` (the same names), with
            differentiable torch ops on small tensors. ``c`` may be None;
            ``extras`` (a dict of tensors, e.g. batch statistics for running
            averages) are returned detached.
        params: by name, the tensors ``statistics_to_map`` uses that may
            need gradients; it receives every one of them, under its name.
        full_gram: False when ``statistics_to_map`` reads only the diagonal
            of ``gram`` (it then gets a diagonal matrix).

    Returns:
        ``(out (N, C, H, W), extras)``.
    """
    params = dict(params or {})
    needs_grad = torch.is_grad_enabled() and (
        x.requires_grad or any(p.requires_grad for p in params.values()))
    if needs_grad and not graph_capture_in_progress():
        extras: dict[str, Tensor] = {}
        out = _StatisticsConditionedMap.apply(
            x, group_size, statistics_to_map, full_gram, extras,
            tuple(params), *params.values())
        return out, extras
    # Plain ops: autograd (or the graph capturer) sees every step.
    x_grouped = grouped_view(x, group_size)
    gram, s1 = grouped_gram_and_sum(x_grouped, full_gram)
    if needs_grad and torch.compiler.is_compiling():
        map_matrix, offset, extras = _small_graph_outside_inductor(
            statistics_to_map, gram, s1, params)
    elif graph_capture_in_progress():  # (thread counts are not capturable)
        map_matrix, offset, extras = statistics_to_map(gram, s1, params)
    else:
        with small_graph_threads(x.device):
            map_matrix, offset, extras = statistics_to_map(gram, s1, params)
    if needs_grad or graph_capture_in_progress():
        # matmul + add: what graph capturers and FLOP counters know best.
        out = map_matrix @ x_grouped
        if offset is not None:
            out = out + offset.unsqueeze(-1)
        return out.view_as(x), _detached(extras)
    out = torch.empty_like(x)
    apply_grouped_map(x_grouped, map_matrix, offset,
                      out=grouped_view(out, group_size))
    return out, _detached(extras)
