"""The fast path changes speed, not the ELBO: fused and compiled NB kernels, the resident
loader and learning-rate scaling against the reference path on a fixed seed."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.simulations import tiny_simulation

import samsvae_plus as sp
from samsvae_plus.data.checked import check_cells
from samsvae_plus.data.encode import encode
from samsvae_plus.data.loaders import InMemoryLoader
from samsvae_plus.data.registry import get_registry
from samsvae_plus.errors import InputError
from samsvae_plus.inference.svi import estimate_elbo, make_loss, scaled_learning_rate
from samsvae_plus.module.distributions import NegativeBinomial, compiled_kernels

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from nb_kernel import two_softplus_log_prob  # noqa: E402  (the form the fused kernel replaced)

TRAINING = dict(max_epochs=6, dense_epochs=2, batch_size=32, n_particles=3, progress=False)


def reference_nb(monkeypatch) -> None:
    """Score counts with the unfused two-softplus NB log-probability."""
    monkeypatch.setattr(
        NegativeBinomial,
        "log_prob",
        lambda self, value: two_softplus_log_prob(value, self.log_mean, self.inverse_dispersion),
    )


def validation_elbo_per_cell(model) -> tuple[float, float]:
    """Mean and standard error over cells of the validation ELBO, one particle per cell."""
    adata = model.adata
    data = encode(check_cells(adata, get_registry(adata)))
    loss = make_loss(model.module, n_particles=1)
    per_cell = [
        estimate_elbo(loss, InMemoryLoader(data, [i], batch_size=1)) for i in model.split.validation
    ]
    return float(np.mean(per_cell)), float(np.std(per_cell) / math.sqrt(len(per_cell)))


@pytest.mark.slow
def test_fused_nb_gives_the_two_softplus_elbo_and_gradients(monkeypatch):
    model = sp.SAMSVAE(tiny_simulation(), latent_dim=3)
    model.train(**TRAINING, seed=0)
    data = encode(check_cells(model.adata, get_registry(model.adata)))
    loss = make_loss(model.module, n_particles=4)
    batch = next(iter(InMemoryLoader(data, batch_size=64, shuffle=False)))

    def loss_and_grads():
        torch.manual_seed(3)
        value = loss(batch, data.n_cells)
        grads = torch.autograd.grad(value, list(model.module.parameters()), allow_unused=True)
        return value.detach(), grads

    fused = loss_and_grads()
    with compiled_kernels(backend="aot_eager"):  # traced and differentiated by dynamo
        compiled = loss_and_grads()
    reference_nb(monkeypatch)
    reference = loss_and_grads()
    for candidate in (fused, compiled):
        assert torch.allclose(candidate[0], reference[0], rtol=1e-6)
        for got, want in zip(candidate[1], reference[1], strict=True):
            if want is not None:
                assert torch.allclose(got, want, rtol=1e-4, atol=1e-4 * want.abs().max())


@pytest.mark.slow
def test_the_fast_path_trains_to_the_reference_elbo_within_monte_carlo_error(monkeypatch):
    fast = sp.SAMSVAE(tiny_simulation(), latent_dim=3)
    with compiled_kernels(backend="aot_eager"):
        fast.train(**TRAINING, seed=2, loader="resident")
    fast_elbo, fast_se = validation_elbo_per_cell(fast)
    reference_nb(monkeypatch)
    reference = sp.SAMSVAE(tiny_simulation(), latent_dim=3)
    reference.train(**TRAINING, seed=2, loader="memory")
    reference_elbo, reference_se = validation_elbo_per_cell(reference)
    assert abs(fast_elbo - reference_elbo) < 3 * math.hypot(fast_se, reference_se)
    # and far tighter in fact: the same batches and draws, kernels equal to rounding
    assert abs(fast.history.validation_elbo[-1] - reference.history.validation_elbo[-1]) < 0.05


def test_learning_rate_scaling_is_the_documented_rule_and_reaches_adam():
    assert scaled_learning_rate(1e-3, 2048, "sqrt") == pytest.approx(2e-3)
    assert scaled_learning_rate(1e-3, 2048, "linear") == pytest.approx(4e-3)
    assert scaled_learning_rate(1e-3, 2048, None) == 1e-3

    def fit(**options):
        model = sp.SAMSVAE(tiny_simulation(), latent_dim=3)
        model.train(max_epochs=2, dense_epochs=1, batch_size=128, progress=False, **options)
        return model.module.state_dict()

    scaled = fit(lr=1e-3, lr_scaling="sqrt")
    explicit = fit(lr=1e-3 * math.sqrt(128 / 512))
    for name, value in scaled.items():
        assert torch.equal(value, explicit[name]), name
    with pytest.raises(InputError, match="lr_scaling='cube' is not available"):
        fit(lr=1e-3, lr_scaling="cube")
