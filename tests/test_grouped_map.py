"""``gradcheck`` of the fused map's hand-written backward, in float64."""
from typing import Optional

import pytest
import torch
from torch import Tensor
from torch.autograd import gradcheck

from ce_mmdet.layers.grouped_map import statistics_conditioned_map

GROUP_SIZE = 2


def covariance_map(gram: Tensor, s1: Tensor, params: dict[str, Tensor],
                   positions: int, full_gram: bool = True,
                   with_offset: bool = True
                   ) -> tuple[Tensor, Optional[Tensor], dict[str, Tensor]]:
    """A map that reads every statistic it is given: ``A = weight + cov``,
    ``c = bias - A mean`` (the shape of CE's map, without its inverse square
    root); with ``full_gram=False`` only the variances (the diagonal), as
    that mode requires."""
    mean = s1 / positions
    cov = gram / positions - mean.unsqueeze(-1) * mean.unsqueeze(-2)
    if not full_gram:
        cov = torch.diag_embed(cov.diagonal(dim1=-2, dim2=-1))
    map_matrix = params['weight'] + cov
    offset = params['bias'] - (map_matrix @ mean.unsqueeze(-1)).squeeze(-1)
    return map_matrix, offset if with_offset else None, dict(mean=mean)


def fused_map(full_gram: bool, with_offset: bool):
    def run(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        positions = x.shape[2] * x.shape[3]
        out, _ = statistics_conditioned_map(
            x, GROUP_SIZE,
            lambda gram, s1, params: covariance_map(
                gram, s1, params, positions, full_gram, with_offset),
            params=dict(weight=weight, bias=bias), full_gram=full_gram)
        # The hand-written backward, not the plain-ops fallback.
        assert type(out.grad_fn).__name__.startswith(
            '_StatisticsConditionedMap')
        return out
    return run


def float64_inputs(x_grad: bool = True, params_grad: bool = True):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64, generator=generator)
    weight = torch.randn(2, GROUP_SIZE, GROUP_SIZE, dtype=torch.float64,
                         generator=generator)
    bias = torch.randn(2, GROUP_SIZE, dtype=torch.float64,
                       generator=generator)
    return (x.requires_grad_(x_grad), weight.requires_grad_(params_grad),
            bias.requires_grad_(params_grad))


@pytest.mark.parametrize('full_gram', [True, False])
@pytest.mark.parametrize('with_offset', [True, False])
def test_gradcheck_input_and_parameters(full_gram, with_offset):
    assert gradcheck(fused_map(full_gram, with_offset), float64_inputs())


@pytest.mark.parametrize('x_grad,params_grad', [(True, False),
                                                (False, True)])
def test_gradcheck_when_only_some_inputs_need_gradients(x_grad,
                                                        params_grad):
    assert gradcheck(fused_map(True, True),
                     float64_inputs(x_grad, params_grad))


def test_backward_is_once_differentiable():
    # @once_differentiable: no double backward, hence no gradgradcheck.
    x, weight, bias = float64_inputs()
    out = fused_map(True, True)(x, weight, bias)
    grad_out = torch.ones_like(out, requires_grad=True)
    (grad_x, ) = torch.autograd.grad(out, x, grad_out, create_graph=True)
    with pytest.raises(RuntimeError, match='once_differentiable'):
        grad_x.sum().backward()
