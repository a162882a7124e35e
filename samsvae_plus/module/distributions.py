"""Distributions the models need that Pyro does not ship in the right parameterisation."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from pyro.distributions import RelaxedBernoulliStraightThrough, TorchDistribution
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all


class NegativeBinomial(TorchDistribution):
    """Negative binomial with a log mean and an inverse dispersion.

    ``Var[x] = mu + mu**2 / theta``. The log-probability is written in terms of
    ``log_mean`` with softplus, so it stays finite for means far below one and for large
    ``theta`` (the Poisson limit), where the textbook form loses precision:

    ``log p(x) = lgamma(x + theta) - lgamma(theta) - lgamma(x + 1)
    - theta * softplus(log mu - log theta) - x * softplus(log theta - log mu)``,

    with the softplus terms fused (:class:`NegativeBinomialTail`).

    Parameters
    ----------
    log_mean
        ``log mu``; with a library size ``l`` and expression ``rho`` this is
        ``log l + log rho``.
    inverse_dispersion
        ``theta > 0``; the variance approaches the Poisson one as ``theta`` grows.
    """

    arg_constraints = {"log_mean": constraints.real, "inverse_dispersion": constraints.positive}
    support = constraints.nonnegative_integer
    has_rsample = False

    def __init__(self, log_mean, inverse_dispersion, validate_args=None):
        self.log_mean = torch.as_tensor(log_mean)
        self.inverse_dispersion = torch.as_tensor(inverse_dispersion, dtype=self.log_mean.dtype)
        batch_shape = torch.broadcast_shapes(self.log_mean.shape, self.inverse_dispersion.shape)
        super().__init__(batch_shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        # Parameters keep their own shapes (theta is per gene) and broadcast only inside
        # log_prob. Pyro's plates expand every distribution to particles x cells; expanding
        # theta with them would make the lgamma terms, the dearest part of the ELBO,
        # particles times more expensive.
        new = self._get_checked_instance(NegativeBinomial, _instance)
        batch_shape = torch.Size(batch_shape)
        if torch.broadcast_shapes(batch_shape, self.batch_shape) != batch_shape:
            raise ValueError(
                f"cannot expand batch shape {tuple(self.batch_shape)} to {tuple(batch_shape)}"
            )
        new.log_mean = self.log_mean
        new.inverse_dispersion = self.inverse_dispersion
        super(NegativeBinomial, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def mean(self) -> torch.Tensor:
        return self.log_mean.exp().expand(self.batch_shape)

    @property
    def variance(self) -> torch.Tensor:
        mean = self.mean
        return mean + mean.square() / self.inverse_dispersion

    def sample(self, sample_shape=(), generator: torch.Generator | None = None) -> torch.Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        with torch.no_grad():
            theta = self.inverse_dispersion.expand(shape).contiguous()
            return self.sample_given_gamma(
                torch._standard_gamma(theta, generator=generator), generator
            )

    def sample_given_gamma(
        self, standard_gamma: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Counts from given ``Gamma(theta, 1)`` variates: ``Poisson(mu * g / theta)``.

        Drawing the gamma variates (the dear part) once and reusing them across conditions
        gives common random numbers. ``torch._standard_gamma`` is the sampler behind
        ``torch.distributions.Gamma``, called directly to skip the wrapper's overhead, which
        is larger than the sampling itself for cell x gene tensors.
        """
        with torch.no_grad():
            rate = self.log_mean.exp() * standard_gamma / self.inverse_dispersion
            return torch.poisson(rate, generator=generator)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        theta = self.inverse_dispersion
        # The lgamma terms have the counts' shape (no particle dimension): one pass, shared.
        log_prob = (
            torch.lgamma(value + theta)
            - torch.lgamma(theta)
            - torch.lgamma(value + 1)
            + NegativeBinomialTail.apply(self.log_mean - theta.log(), value, theta)
        )
        return log_prob.expand(torch.broadcast_shapes(log_prob.shape, self.batch_shape))


def _tail(a: torch.Tensor, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    # softplus(+-a) = relu(+-a) + log1p(exp(-|a|)): one exp and one log1p for both terms
    shared = torch.log1p(torch.exp(-a.abs()))
    return x * a.clamp(max=0) - theta * a.clamp(min=0) - (theta + x) * shared


def _tail_grads(grad, a, x, theta) -> tuple[torch.Tensor, torch.Tensor]:
    grad_a = grad * (x - (theta + x) * torch.sigmoid(a))
    grad_theta = -grad * F.softplus(a)
    return grad_a, grad_theta


# The kernels NegativeBinomialTail runs; compiled_kernels() swaps in compiled versions.
_KERNELS = {"tail": _tail, "tail_grads": _tail_grads}
_COMPILED: dict[str, dict] = {}


@contextlib.contextmanager
def compiled_kernels(enabled: bool = True, backend: str = "inductor") -> Iterator[None]:
    """Run the fused NB kernel through ``torch.compile`` inside the block.

    Compiled, each direction is one generated kernel instead of about ten elementwise
    passes over particles x cells x genes. Compilation happens once per process and
    backend (seconds; on the CPU it needs a C compiler); shapes are dynamic, so a smaller
    last batch does not recompile.
    """
    if not enabled:
        yield
        return
    if backend not in _COMPILED:
        _COMPILED[backend] = {
            name: torch.compile(kernel, dynamic=True, backend=backend)
            for name, kernel in (("tail", _tail), ("tail_grads", _tail_grads))
        }
    previous = dict(_KERNELS)
    _KERNELS.update(_COMPILED[backend])
    try:
        yield
    finally:
        _KERNELS.update(previous)


class NegativeBinomialTail(torch.autograd.Function):
    """The NB log-probability's particle-sized part, fused: ``-theta softplus(a) -
    x softplus(-a)`` with ``a = log mu - log theta``.

    Both softplus terms share one ``exp`` and one ``log1p``, and the backward pass keeps
    only ``a`` (plus the counts and ``theta``, which have no particle dimension), where
    autograd through two softplus calls keeps three particles x cells x genes tensors.
    This is the largest tensor of the ELBO, so it bounds the batch size that fits on a
    GPU (``benchmarks/nb_kernel.py``).

    Gradients: ``d/da = x - (theta + x) sigmoid(a)``; ``d/dtheta = -softplus(a)`` at fixed
    ``a`` (the dependence of ``a`` on ``theta`` flows through autograd outside).
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(a, x, theta)
        return _KERNELS["tail"](a, x, theta)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        a, x, theta = ctx.saved_tensors
        if ctx.needs_input_grad[1]:
            raise RuntimeError("the NB log-probability has no gradient in the counts")
        grad_a, grad_theta = _KERNELS["tail_grads"](grad, a, x, theta)
        return grad_a.sum_to_size(a.shape), None, grad_theta.sum_to_size(theta.shape)


class StraightThroughBernoulli(RelaxedBernoulliStraightThrough):
    """Hard 0/1 samples with relaxed (Gumbel-sigmoid) gradients, scored by the Bernoulli pmf.

    Pyro's :class:`~pyro.distributions.RelaxedBernoulliStraightThrough` scores its hard
    samples with the relaxed density. The mask posterior is a discrete Bernoulli, so the
    ELBO must use the discrete pmf ``m log sigma(l) + (1 - m) log sigma(-l)``; the sample
    still carries the straight-through gradient.

    Parameters
    ----------
    temperature
        Temperature of the relaxation used for gradients.
    logits
        Bernoulli logits.
    """

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        logits, value = broadcast_all(self.logits, value)
        return -F.binary_cross_entropy_with_logits(logits, value, reduction="none")

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(StraightThroughBernoulli, _instance)
        return super().expand(batch_shape, _instance=new)
