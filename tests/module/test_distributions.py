"""Log-probabilities against analytic references."""

import numpy as np
import pytest
import scipy.stats as st
import torch

from samsvae_plus.module.distributions import NegativeBinomial, StraightThroughBernoulli


@pytest.mark.parametrize("mean", [1e-3, 0.5, 7.0, 300.0])
@pytest.mark.parametrize("theta", [0.05, 1.0, 20.0, 1e4])
def test_negative_binomial_log_prob_matches_scipy(mean, theta):
    counts = np.array([0, 1, 2, 5, 17, 250])
    dist = NegativeBinomial(
        torch.tensor(np.log(mean), dtype=torch.float64), torch.tensor(theta, dtype=torch.float64)
    )
    ours = dist.log_prob(torch.tensor(counts, dtype=torch.float64)).numpy()
    reference = st.nbinom.logpmf(counts, theta, theta / (theta + mean))
    np.testing.assert_allclose(ours, reference, rtol=1e-9, atol=1e-9)


def test_negative_binomial_broadcasts_without_expanding_theta():
    log_mean = torch.randn(3, 4, 5, dtype=torch.float64)  # particles x cells x genes
    theta = torch.rand(5, dtype=torch.float64) + 0.5  # per gene
    counts = torch.randint(0, 20, (4, 5)).double()
    expanded = NegativeBinomial(log_mean, theta).expand(torch.Size([3, 4, 5]))
    assert expanded.inverse_dispersion.shape == (5,)
    ours = expanded.log_prob(counts)
    reference = st.nbinom.logpmf(
        counts.numpy()[None], theta.numpy(), (theta / (theta + log_mean.exp())).numpy()
    )
    assert ours.shape == (3, 4, 5)
    np.testing.assert_allclose(ours.numpy(), reference, rtol=1e-9)


def test_negative_binomial_samples_have_the_right_moments():
    torch.manual_seed(0)
    mean, theta = torch.tensor([0.7, 12.0, 150.0]), torch.tensor([0.5, 4.0, 30.0])
    draws = NegativeBinomial(mean.log(), theta).sample(torch.Size([200_000]))
    np.testing.assert_allclose(draws.mean(0), mean, rtol=0.02)
    np.testing.assert_allclose(draws.var(0), mean + mean**2 / theta, rtol=0.05)


def test_mask_log_prob_is_the_discrete_bernoulli_pmf():
    torch.manual_seed(0)
    logits = torch.tensor([[-4.0, -0.3, 0.0], [0.8, 2.5, 6.0]], requires_grad=True)
    dist = StraightThroughBernoulli(torch.tensor(0.5), logits=logits)
    sample = dist.rsample()
    assert set(sample.detach().unique().tolist()) <= {0.0, 1.0}
    p = torch.sigmoid(logits)
    pmf = torch.where(sample > 0.5, p, 1 - p).log()
    torch.testing.assert_close(dist.log_prob(sample), pmf)
    # the relaxed density would differ: the pmf, not the Gumbel-sigmoid density, is scored
    relaxed = torch.distributions.RelaxedBernoulli(torch.tensor(0.5), logits=logits)
    assert not torch.allclose(relaxed.log_prob(sample.detach().clamp(1e-6, 1 - 1e-6)), pmf)


def test_mask_samples_carry_straight_through_gradients():
    torch.manual_seed(0)
    logits = torch.zeros(50, requires_grad=True)
    sample = StraightThroughBernoulli(torch.tensor(0.5), logits=logits).rsample()
    (sample * torch.arange(50.0)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_mask_frequency_matches_probability():
    torch.manual_seed(0)
    logits = torch.tensor([-2.0, 0.0, 1.5])
    draws = StraightThroughBernoulli(torch.tensor(0.5), logits=logits).expand([40_000, 3]).rsample()
    np.testing.assert_allclose(draws.mean(0), torch.sigmoid(logits), atol=0.01)
