"""The plain-PyTorch ELBO of the speed benchmark is Pyro's loss, draw for draw."""

import numpy as np
import pyro
import pytest
import torch

import samsvae_plus as sp
from samsvae_plus.data.checked import check_cells
from samsvae_plus.data.encode import encode
from samsvae_plus.data.loaders import make_batch
from samsvae_plus.inference.plain_elbo import plain_negative_elbo
from samsvae_plus.inference.svi import make_loss

N_CELLS = 400  # the plate is larger than the batch, so local terms are scaled by 20


def _loss_and_grads(pair, loss_fn, seed):
    pair.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    value = loss_fn()
    value.backward()
    grads = {name: p.grad.clone() for name, p in pair.named_parameters() if p.grad is not None}
    return value.detach(), grads


@pytest.mark.parametrize(
    ("guide", "basal_sees_shift", "n_particles"),
    [
        ("mean_field", False, 5),
        ("mean_field", True, 3),
        ("mean_field", False, 1),
        ("correlated_basal", False, 5),
        ("correlated_embedding", False, 3),
        ("correlated", False, 5),
        ("correlated", False, 1),
    ],
)
def test_plain_elbo_equals_pyro_loss_and_gradients(
    tiny_adata, guide, basal_sees_shift, n_particles
):
    model = sp.SAMSVAE(tiny_adata, latent_dim=3, guide=guide, basal_sees_shift=basal_sees_shift)
    pair = model.module
    # masks away from 1/2 and a mask-dependent embedding correction that is not zero, so that
    # every term and every gradient path is exercised
    with torch.no_grad():
        pair["guide"].mask_logits.normal_(0.0, 1.5)
        if pair["guide"].embedding_given_mask is not None:
            pair["guide"].embedding_given_mask.out[-1].weight.normal_(0.0, 0.3)
    data = encode(check_cells(tiny_adata, model.registry))
    rows = np.arange(3, 23)
    batch = make_batch(data, rows, rows)
    pyro_loss = make_loss(pair, n_particles)
    with pyro.validation_enabled(False):
        for seed in (0, 1):
            expected, expected_grads = _loss_and_grads(
                pair, lambda: pyro_loss(batch, N_CELLS), seed
            )
            value, grads = _loss_and_grads(
                pair, lambda: plain_negative_elbo(pair, batch, N_CELLS, n_particles), seed
            )
            torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-3)
            assert grads.keys() == expected_grads.keys()
            for name, grad in expected_grads.items():
                torch.testing.assert_close(grads[name], grad, rtol=1e-4, atol=1e-4, msg=name)
    # other draws give a loss outside the tolerance, so the agreement is not vacuous
    torch.manual_seed(2)
    other = plain_negative_elbo(pair, batch, N_CELLS, n_particles).detach()
    assert not torch.isclose(other, expected, rtol=1e-5, atol=1e-3)


def test_plain_elbo_refuses_models_it_does_not_cover(tiny_adata):
    model = sp.SAMSVAE(tiny_adata, latent_dim=3, masks="beta_bernoulli")
    data = encode(check_cells(tiny_adata, model.registry))
    batch = make_batch(data, np.arange(5), np.arange(5))
    with pytest.raises(NotImplementedError, match="Bernoulli masks"):
        plain_negative_elbo(model.module, batch, 5, 2)
