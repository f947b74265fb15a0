"""One residual-block forward, in overridable steps, for every ResNet here.

MMDetection's BasicBlock and Bottleneck run the same pattern with two or
three convolutions. :class:`ResidualSteps` runs it once, and the blocks of
this package change only the steps they need::

    out = x
    for k in 1 .. n:                  # n = num_convs: 2 or 3
        if k < n:
            out = between_convs(k, conv_norm(k, out))   # ReLU(normK(convK))
        else:
            out = last_conv_norm(out)                   # normN(convN)
        out = plugins_after_conv(k, out)                # after_convK plugins
    out = relu(out + identity)        # identity = x or downsample(x)

(everything before the final ReLU checkpointed when ``with_cp``).
"""
from typing import Tuple

from mmdet.models.backbones.resnet import Bottleneck
from torch import Tensor, nn
from torch.utils import checkpoint as cp


class ResidualSteps:
    """Mixin: the forward of MMDetection's blocks, as overridable steps.

    To be listed before an MMDetection block (or a subclass of one) that
    has ``convK``, ``normK`` (K = 1 .. :attr:`num_convs`), ``relu``,
    ``downsample``, ``with_cp``, ``with_plugins`` and, with plugins,
    ``after_convK_plugin_names`` and ``forward_plugin``. Steps to override:
    :meth:`between_convs` (e.g. fewer ReLUs) and :meth:`last_conv_norm`
    (e.g. CE after the last norm, before the residual addition).
    """

    num_convs: int

    def conv_and_norm(self, index: int) -> Tuple[nn.Module, nn.Module]:
        """``(convK, normK)`` for K = ``index`` (1-based)."""
        return getattr(self, f'conv{index}'), getattr(self, f'norm{index}')

    def conv_norm(self, index: int, x: Tensor) -> Tensor:
        """``normK(convK(x))`` of an inner convolution (K < num_convs)."""
        conv, norm = self.conv_and_norm(index)
        return norm(conv(x))

    def last_conv_norm(self, x: Tensor) -> Tensor:
        """The last convolution and its norm, before any ``after_convN``
        plugin and the residual addition."""
        conv, norm = self.conv_and_norm(self.num_convs)
        return norm(conv(x))

    def between_convs(self, index: int, x: Tensor) -> Tensor:
        """The activation after ``normK``, K = ``index`` < num_convs."""
        return self.relu(x)

    def plugins_after_conv(self, index: int, x: Tensor) -> Tensor:
        """The ``after_convK`` plugins, K = ``index``, in their order."""
        if not self.with_plugins:  # (a Bottleneck has no names then)
            return x
        return self.forward_plugin(
            x, getattr(self, f'after_conv{index}_plugin_names'))

    def residual_branch(self, x: Tensor) -> Tensor:
        """The block without its final ReLU: steps, then ``+ identity``."""
        out = x
        for index in range(1, self.num_convs + 1):
            if index < self.num_convs:
                out = self.between_convs(index, self.conv_norm(index, out))
            else:
                out = self.last_conv_norm(out)
            out = self.plugins_after_conv(index, out)
        identity = x if self.downsample is None else self.downsample(x)
        out += identity  # in place, as MMDetection's blocks
        return out

    def forward(self, x: Tensor) -> Tensor:
        """``relu(residual_branch(x))``; the branch is recomputed in the
        backward instead of stored when ``with_cp`` (as MMDetection's
        blocks, non-reentrant: the default to come in PyTorch)."""
        if self.with_cp and x.requires_grad:
            out = cp.checkpoint(self.residual_branch, x, use_reentrant=False)
        else:
            out = self.residual_branch(x)
        return self.relu(out)


class StepsBottleneck(ResidualSteps, Bottleneck):
    """MMDetection's Bottleneck (same modules and numbers), run by
    :class:`ResidualSteps`: the base of the CE and proportional-ReLU
    Bottlenecks."""

    num_convs = 3

