"""Numerical stability: the NB log-probability over extreme counts, means and dispersions,
and an encoder that meets a gene constant in training."""

import sys
from pathlib import Path

import mpmath  # a dependency of torch (through sympy), used here as a high-precision oracle
import numpy as np
import pytest
import torch
from scipy.special import digamma

import samsvae_plus as sp
from samsvae_plus.module.distributions import NegativeBinomial

# The grid and the float64 reference are the precision benchmark's, so the two agree.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from nb_precision import grid, reference_log_prob  # noqa: E402


def log_prob_and_grads(x, mu, theta, dtype):
    log_mean = torch.tensor(np.log(mu), dtype=dtype, requires_grad=True)
    theta_t = torch.tensor(theta, dtype=dtype, requires_grad=True)
    value = NegativeBinomial(log_mean, theta_t).log_prob(torch.tensor(x, dtype=dtype))
    value.sum().backward()
    return value.detach().double().numpy(), log_mean.grad.double().numpy(), theta_t.grad.double()


def test_log_prob_matches_scipy_in_float64_over_the_whole_grid():
    x, mu, theta = grid()
    value, _, _ = log_prob_and_grads(x, mu, theta, torch.float64)
    reference = reference_log_prob(x, mu, theta)
    assert np.isfinite(reference).all()
    relative = np.abs(value - reference) / np.maximum(1.0, np.abs(reference))
    assert relative.max() < 1e-8


@pytest.mark.parametrize(
    "x, mu, theta", [(1, 1e-8, 1e6), (1e6, 1e6, 1e-4), (0, 1e6, 1e-4), (7, 1e-4, 1e4)]
)
def test_log_prob_agrees_with_a_50_digit_oracle_at_the_corners(x, mu, theta):
    mpmath.mp.dps = 50
    X, M, T = mpmath.mpf(x), mpmath.mpf(mu), mpmath.mpf(theta)
    exact = (
        mpmath.loggamma(X + T)
        - mpmath.loggamma(T)
        - mpmath.loggamma(X + 1)
        + T * mpmath.log(T / (T + M))
        + X * mpmath.log(M / (T + M))
    )
    value, _, _ = log_prob_and_grads(
        np.array([x]), np.array([mu]), np.array([theta]), torch.float64
    )
    assert abs(value[0] - float(exact)) <= 1e-9 * max(1.0, abs(float(exact)))


def test_gradients_match_the_analytic_ones_in_float64():
    x, mu, theta = grid()
    _, d_log_mean, d_theta = log_prob_and_grads(x, mu, theta, torch.float64)
    # d/dlog(mu) = theta (x - mu) / (theta + mu)
    np.testing.assert_allclose(d_log_mean, theta * (x - mu) / (theta + mu), rtol=1e-9, atol=1e-9)
    # d/dtheta = digamma(x + theta) - digamma(theta) - log1p(mu / theta) + (mu - x) / (theta + mu)
    expected = digamma(x + theta) - digamma(theta) - np.log1p(mu / theta) + (mu - x) / (theta + mu)
    np.testing.assert_allclose(d_theta.numpy(), expected, rtol=1e-6, atol=1e-9)


def test_log_prob_and_gradients_stay_finite_in_float32():
    x, mu, theta = grid()
    value, d_log_mean, d_theta = log_prob_and_grads(x, mu, theta, torch.float32)
    assert np.isfinite(value).all() and (value <= 1e-3).all()
    assert np.isfinite(d_log_mean).all() and torch.isfinite(d_theta).all()


def test_a_gene_constant_in_training_does_not_make_nan(tiny_adata):
    adata = tiny_adata
    counts = adata.X.toarray()
    counts[:, 0] = 0  # never expressed: standard deviation 0
    adata.X = type(adata.X)(counts)
    model = sp.SAMSVAE(adata, latent_dim=3)
    model.train(max_epochs=2, dense_epochs=1, batch_size=32, n_particles=1, progress=False)
    standardizer = model.module["guide"].basal_encoder.standardize
    assert standardizer.std[0] == 1  # unit scale, not 1 / eps
    # a later cell that does express the gene gives a moderate input, not thousands
    counts = torch.zeros(1, adata.n_vars)
    counts[0, 0] = 1.0
    assert standardizer(counts, torch.tensor([1000.0]))[0, 0] == pytest.approx(
        np.log1p(10.0), rel=1e-3
    )
    assert all(torch.isfinite(p).all() for p in model.module.parameters())
    assert np.isfinite(model.iwelbo(adata, n_samples=2, progress=False)).all()
