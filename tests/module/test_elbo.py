"""The minibatch loss is an unbiased, exactly scaled estimate of the full-data loss."""

import numpy as np
import pyro.poutine as poutine
import torch

import samsvae_plus as sp
from samsvae_plus.data.checked import check_cells
from samsvae_plus.data.encode import encode
from samsvae_plus.data.loaders import make_batch


def _loss(model, guide, batch, n_cells, values):
    """-(log p - log q) with every latent replayed from ``values``."""
    guide_trace = poutine.trace(poutine.replay(guide, trace=values)).get_trace(batch, n_cells)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(batch, n_cells)
    return -(model_trace.log_prob_sum() - guide_trace.log_prob_sum())


def _sliced(trace, positions):
    """The latent values of ``trace`` for the cells at ``positions`` (globals unchanged)."""
    sliced = poutine.Trace()
    for name in ("mask", "embedding", "z_basal"):
        node = dict(trace.nodes[name])
        if name == "z_basal":
            node["value"] = node["value"][positions]
        sliced.add_node(name, **node)
    return sliced


@torch.no_grad()
def test_minibatch_losses_average_to_the_full_data_loss(tiny_adata):
    model = sp.SAMSVAE(tiny_adata, latent_dim=3, basal_sees_shift=True)
    pair = model.module
    data = encode(check_cells(tiny_adata, model.registry))
    n = data.n_cells
    rows = np.arange(n)
    full = make_batch(data, rows, rows)
    torch.manual_seed(0)
    values = poutine.trace(pair["guide"]).get_trace(full, n)

    # A partition into equal batches; each batch loss scales its cells by n / batch size.
    order = np.random.default_rng(0).permutation(n)
    batches = np.split(order[: n - n % 4], 4)
    n_used = sum(len(b) for b in batches)
    used = np.sort(np.concatenate(batches))
    subset = make_batch(data, used, np.arange(n_used))
    subset_values = _sliced(values, torch.as_tensor(used))
    subset_loss = _loss(pair["model"], pair["guide"], subset, n_used, subset_values)

    minibatch = []
    for positions in batches:
        positions = np.sort(positions)
        local = np.searchsorted(used, positions)
        batch = make_batch(data, positions, local)
        minibatch.append(
            _loss(
                pair["model"],
                pair["guide"],
                batch,
                n_used,
                _sliced(values, torch.as_tensor(positions)),
            )
        )
    torch.testing.assert_close(torch.stack(minibatch).mean(), subset_loss, rtol=1e-5, atol=1e-2)
    # and a wrongly scaled estimate would be far off
    spread = torch.stack(minibatch).std()
    assert spread > 1e-3 * abs(float(subset_loss.detach())), (
        "batches should differ; the test would be vacuous"
    )


def test_cell_plate_scales_local_sites_and_not_global_ones(tiny_adata):
    model = sp.SAMSVAE(tiny_adata, latent_dim=3)
    data = encode(check_cells(tiny_adata, model.registry))
    batch = make_batch(data, np.arange(10), np.arange(10))
    trace = poutine.trace(model.module["model"]).get_trace(batch, 250)
    assert trace.nodes["mask"]["scale"] == 1.0
    assert trace.nodes["embedding"]["scale"] == 1.0
    assert trace.nodes["z_basal"]["scale"] == 25.0
    assert trace.nodes["x"]["scale"] == 25.0


@torch.no_grad()
def test_vectorized_particles_pair_each_basal_state_with_its_own_globals(tiny_adata):
    """Particle p's counts are scored at z_basal[p] + d (m[p] * e[p]), once per particle."""
    from pyro.infer import Trace_ELBO

    for guide in ("mean_field", "correlated"):
        model = sp.SAMSVAE(tiny_adata, latent_dim=3, guide=guide)
        pair = model.module
        data = encode(check_cells(tiny_adata, model.registry))
        batch = make_batch(data, np.arange(10), np.arange(10))
        elbo = Trace_ELBO(num_particles=4, vectorize_particles=True, max_plate_nesting=1)
        model_trace, _ = elbo._get_vectorized_trace(pair["model"], pair["guide"], (batch, 40), {})
        model_trace.compute_log_prob()
        nodes = model_trace.nodes
        expected = []
        for p in range(4):
            z = nodes["z_basal"]["value"][p] + batch.dosage @ (
                nodes["mask"]["value"][p, 0] * nodes["embedding"]["value"][p, 0]
            )
            likelihood = pair["model"].likelihood.distribution(z, batch.library_size)
            expected.append(likelihood.log_prob(batch.counts).sum())
        # the site holds one term per particle and cell (scaled by 40 / 10), no cross pairs
        torch.testing.assert_close(nodes["x"]["log_prob_sum"], 4.0 * torch.stack(expected).sum())
