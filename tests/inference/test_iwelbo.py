"""The IWELBO is a bound: it tightens with more samples and reduces to the ELBO at S = 1."""

import numpy as np
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import Trace_ELBO

import samsvae_plus as sp
from samsvae_plus.data.checked import check_cells
from samsvae_plus.data.encode import encode
from samsvae_plus.data.loaders import make_batch
from samsvae_plus.inference.kl_weights import KLWeights
from samsvae_plus.settings import seeded


@pytest.fixture(scope="module")
def test_cells(trained_model, small_adata):
    return small_adata[trained_model.split.test].copy()


def _elbo_per_cell(model, adata, seed, *, global_weight):
    """Pyro's own one-particle ELBO of all cells as one batch, per cell."""
    data = encode(check_cells(adata, model.registry))
    rows = np.arange(data.n_cells)
    batch = make_batch(data, rows, rows)
    weights = KLWeights(global_weight=global_weight, local_weight=1.0)
    pair = model.module
    elbo = Trace_ELBO(num_particles=1, max_plate_nesting=1)
    with seeded(seed), torch.no_grad():
        loss = elbo.differentiable_loss(
            weights(pair["model"]), weights(pair["guide"]), batch, data.n_cells
        )
    return -float(loss) / data.n_cells


def test_one_sample_bound_is_the_elbo_of_the_local_terms(trained_model, test_cells):
    # Same seed, same order of draws (globals, then locals): Pyro's ELBO with the global
    # terms weighted 0 must give the same number.
    bound = trained_model.iwelbo(test_cells, 1, seed=3, batch_size=10_000, progress=False)
    expected = _elbo_per_cell(trained_model, test_cells, 3, global_weight=0.0)
    assert bound == pytest.approx(expected, rel=1e-6)


def test_full_model_bound_adds_the_global_kl(trained_model, test_cells):
    bound = trained_model.iwelbo(
        test_cells, 1, seed=4, batch_size=10_000, include_global_kl=True, progress=False
    )
    expected = _elbo_per_cell(trained_model, test_cells, 4, global_weight=1.0)
    assert bound == pytest.approx(expected, rel=1e-6)
    # and the global KL is a real cost: a few nats per cell on these 170 cells
    local_only = _elbo_per_cell(trained_model, test_cells, 4, global_weight=0.0)
    assert local_only - bound > 0.5


def test_bound_tightens_with_more_samples(trained_model, test_cells):
    seeds = range(4)
    means = {
        s: np.array([trained_model.iwelbo(test_cells, s, seed=k, progress=False) for k in seeds])
        for s in (1, 10, 100)
    }
    for low, high in ((1, 10), (10, 100)):
        # Monte Carlo error of the difference of two means over seeds
        error = np.sqrt((means[low].var(ddof=1) + means[high].var(ddof=1)) / len(seeds))
        assert means[high].mean() >= means[low].mean() - 3 * error, (low, high, means)
    # not only non-decreasing: 100 samples are clearly tighter than 1
    gain = means[100].mean() - means[1].mean()
    assert gain > 3 * np.sqrt((means[1].var(ddof=1) + means[100].var(ddof=1)) / len(seeds))


def test_per_cell_bounds_average_to_the_mean_and_batches_do_not_matter(trained_model, test_cells):
    per_cell = trained_model.iwelbo(test_cells, 5, seed=1, per_cell=True, progress=False)
    assert per_cell.shape == (test_cells.n_obs,)
    assert per_cell.mean() == pytest.approx(
        trained_model.iwelbo(test_cells, 5, seed=1, progress=False)
    )
    # the globals are drawn once, so changing the batch size changes only which local
    # draws each cell gets: the mean stays within Monte Carlo error
    other = trained_model.iwelbo(test_cells, 5, seed=1, batch_size=37, progress=False)
    assert abs(other - per_cell.mean()) < 1.0


@pytest.mark.slow
def test_a_model_without_global_latents_is_scored_the_same_way(tiny_adata):
    from torch import nn

    from samsvae_plus.model.base import PerturbationModel
    from samsvae_plus.module.likelihood import CountLikelihood
    from samsvae_plus.nn.encoders import MLPBasalEncoder

    class Decoder(nn.Module):
        def __init__(self, n_genes, n_perturbations):
            super().__init__()
            self.likelihood = CountLikelihood(3 + n_perturbations, n_genes, (16,))

        def forward(self, batch, n_cells):
            import pyro

            with pyro.plate("cells", n_cells, subsample=batch.index):
                z = pyro.sample("z", dist.Normal(torch.zeros(len(batch), 3), 1.0).to_event(1))
                return self.likelihood(torch.cat([z, batch.dosage], -1), batch)

    class Encoder(nn.Module):
        def __init__(self, n_genes):
            super().__init__()
            self.net = MLPBasalEncoder(n_genes, 3, hidden=(16,))

        def sample_globals(self):
            return None

        def forward(self, batch, n_cells):
            import pyro

            with pyro.plate("cells", n_cells, subsample=batch.index):
                loc, scale = self.net(batch.counts, batch.library_size, None)
                pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    class LocalConditionalVAE(PerturbationModel):
        def _build(self, registry, config, inputs):
            return nn.ModuleDict(
                {
                    "model": Decoder(registry.n_genes, registry.n_perturbations),
                    "guide": Encoder(registry.n_genes),
                }
            )

    model = LocalConditionalVAE(tiny_adata)
    model.train(max_epochs=2, batch_size=32, n_particles=1, progress=False)
    one = model.iwelbo(tiny_adata, 1, seed=2, batch_size=10_000, progress=False)
    assert one == pytest.approx(_elbo_per_cell(model, tiny_adata, 2, global_weight=0.0), rel=1e-6)
    assert model.iwelbo(tiny_adata, 50, seed=2, progress=False) > one
    trace = poutine.trace(model.module["guide"].sample_globals).get_trace()
    assert not [n for n, s in trace.nodes.items() if s["type"] == "sample"]
    with pytest.raises(sp.InputError, match="no global latent"):
        model.to_inference_data(n_draws=2)
