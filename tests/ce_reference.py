"""An independent, plain float64 implementation of CE's equations.

Written straight from the equations in docs/en/advanced_guides/design.md
("The method, in equations"), one step per line, with
none of the fused tricks of ce_mmdet.layers: explicit centring, torch.var,
per-group loops. Tests compare the real module against it.
"""
import torch

# The paper's (and the release's) constants (docs/en/advanced_guides/
# design.md):
# the tests pass these, never the module's own values, so that a wrong
# default in ce_mmdet cannot make its reference agree with it.
PAPER_BLOCK_GROUP_SIZE = 16
PAPER_STEM_GROUP_SIZE = 64
PAPER_ITERATIONS = 3
PAPER_EPS = 1e-5
PAPER_MOMENTUM = 0.1
PAPER_REDUCTION = 4


def reference_group_size(channels: int, group_size: int) -> int:
    while channels % group_size:
        group_size //= 2
    return group_size


def reference_ce(x, gate, fc1, ln_weight, ln_bias, fc2, *, group_size=16,
                 iterations=3, eps=1e-5, training=True, running_wm=None,
                 running_scale=None, dtype=torch.float64):
    """CE(x) in ``dtype`` (float64 by default): the straightforward, centred
    computation. Returns (out, batch statistics dict or None).

    ``running_wm`` is (G, g, g); in eval the running values are used.
    """
    x = x.to(dtype)
    n, c, h, w = x.shape
    g = reference_group_size(c, group_size)
    groups = c // g
    # Batch decorrelation.
    xt = x.transpose(0, 1).reshape(groups, g, -1)  # (G, g, M)
    if training:
        mu = xt.mean(-1, keepdim=True)
        xc = xt - mu
        sigma = (eps * torch.eye(g, dtype=x.dtype)
                 + xc @ xc.transpose(1, 2) / xt.shape[-1])
        whitened = []
        for k in range(groups):
            sigma_n = sigma[k] / torch.trace(sigma[k])
            p = torch.eye(g, dtype=x.dtype)
            for _ in range(iterations):
                p = 1.5 * p - 0.5 * p @ p @ p @ sigma_n
            whitened.append(p)
        wm = torch.stack(whitened)
    else:
        mu = None
        wm = running_wm.to(dtype)
    bd = (wm @ xt).reshape(c, n, h, w).transpose(0, 1)
    # Instance reweighting.
    if h * w > 1:
        v = x.view(n, c, -1).var(-1, unbiased=True)
    else:
        v = torch.zeros(n, c, dtype=x.dtype)
    hidden = v @ fc1.to(dtype).t()
    hidden = torch.nn.functional.layer_norm(hidden, (hidden.shape[1], ),
                                            ln_weight.to(dtype),
                                            ln_bias.to(dtype), 1e-5)
    a = torch.sigmoid(torch.relu(hidden) @ fc2.to(dtype).t())
    if training:
        s = torch.sqrt(v.mean())
    else:
        s = running_scale.to(dtype)
    ir = x * a[:, :, None, None] / s
    lam = torch.sigmoid(gate.to(dtype))
    out = lam * bd + (1 - lam) * ir
    stats = (dict(mean=mu.squeeze(-1), whitening=wm, scale=s.view(1))
             if training else None)
    return out, stats


def reference_from_module(module, x, training=None, dtype=torch.float64,
                          detach=True, *, group_size=PAPER_BLOCK_GROUP_SIZE,
                          iterations=PAPER_ITERATIONS, eps=PAPER_EPS,
                          reduction=PAPER_REDUCTION):
    """Run :func:`reference_ce` with ``module``'s learned parameters and
    running buffers (``detach=False``: differentiable in the parameters too).

    The constants are the caller's (the paper's by default), not the
    module's: ``group_size`` is the one requested, halved here by the
    paper's rule, and the MLP's width must be C / ``reduction``.
    """
    training = module.training if training is None else training
    ir = module.reweighting
    channels = x.shape[1]
    assert ir.squeeze.weight.shape == (channels // reduction, channels), (
        f'IR hidden width {ir.squeeze.weight.shape[0]}, expected C / '
        f'{reduction} = {channels // reduction}')

    def param(p):
        return p.detach() if detach else p

    return reference_ce(
        x, param(module.gate_logit), param(ir.squeeze.weight),
        param(ir.norm.weight), param(ir.norm.bias),
        param(ir.excite.weight), group_size=group_size,
        iterations=iterations, eps=eps, training=training,
        running_wm=module.running_whitening,
        running_scale=module.running_scale,
        dtype=dtype)
