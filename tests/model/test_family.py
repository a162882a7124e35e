"""The model family: every pair trains through one interface; guides depend on what they
should; CPA-VAE is SAMS-VAE with masks pinned to 1; unseen perturbations use the prior."""

import numpy as np
import pandas as pd
import pyro.poutine as poutine
import pytest
import torch

import samsvae_plus as sp
from samsvae_plus.data.checked import check_cells
from samsvae_plus.data.encode import encode
from samsvae_plus.data.loaders import make_batch
from samsvae_plus.data.splits import held_out_perturbations
from samsvae_plus.errors import InputError
from samsvae_plus.inference.posterior import population_dosage
from samsvae_plus.model.base import PerturbationModel

PAIRS = [
    (sp.SAMSVAE, {"guide": "mean_field"}),
    (sp.SAMSVAE, {"guide": "mean_field", "basal_sees_shift": True}),
    (sp.SAMSVAE, {"guide": "correlated_basal"}),
    (sp.SAMSVAE, {"guide": "correlated_embedding"}),
    (sp.SAMSVAE, {"guide": "correlated"}),
    (sp.SAMSVAE, {"guide": "correlated", "masks": "beta_bernoulli"}),
    (sp.SAMSVAE, {"masks": "beta_bernoulli", "mask_probability_guide": "point"}),
    (sp.CPAVAE, {"guide": "mean_field"}),
    (sp.CPAVAE, {"guide": "correlated_basal"}),
    (sp.SVAEPlus, {}),
    (sp.ConditionalVAE, {}),
]
QUICK = dict(max_epochs=2, dense_epochs=1, batch_size=32, n_particles=2, progress=False)


def _id(pair):
    cls, options = pair
    return cls.__name__ + "".join(f"-{v}" for v in options.values())


@pytest.mark.slow
@pytest.mark.parametrize("pair", PAIRS, ids=[_id(p) for p in PAIRS])
def test_every_pair_trains_predicts_and_round_trips(tiny_adata, tmp_path, pair):
    cls, options = pair
    model = cls(tiny_adata, latent_dim=3, **options)
    history = model.train(**QUICK)
    assert np.isfinite(history.validation_elbo).all()
    controls = tiny_adata[tiny_adata.obs["condition"] == "control"][:6].copy()
    conditions = ["P001", next(c for c in model.registry.conditions if "+" in c)]
    predicted = model.predict(controls, conditions, seed=1)
    # the two conditions and the control, which predict adds
    assert predicted.n_obs == 18 and np.isfinite(predicted.X.data).all()
    ate = model.average_treatment_effect(conditions, n_draws=2, n_cells=20)
    assert np.isfinite(ate.to_numpy()).all()
    model.save(tmp_path / "m")
    loaded = cls.load(tmp_path / "m", adata=tiny_adata)
    again = loaded.predict(controls, conditions, seed=1)
    assert (again.X != predicted.X).nnz == 0


def _guide_and_batch(adata, **options):
    model = sp.SAMSVAE(adata, latent_dim=3, **options)
    data = encode(check_cells(adata, model.registry))
    perturbed = np.flatnonzero(np.asarray(data.dosage.sum(axis=1)).ravel() > 0)[:8]
    return model.module["guide"], make_batch(data, perturbed, np.arange(8))


def _values(**latents):
    """A trace holding only the given latent values, for poutine.replay."""
    trace = poutine.Trace()
    for name, value in latents.items():
        trace.add_node(name, name=name, type="sample", value=value, is_observed=False, infer={})
    return trace


def _basal_location(guide, batch, mask, embedding):
    values = _values(mask=mask, embedding=embedding)
    trace = poutine.trace(poutine.replay(guide, trace=values)).get_trace(batch, 100)
    return trace.nodes["z_basal"]["fn"].base_dist.loc


@pytest.mark.parametrize(
    "options, depends",
    [
        ({"guide": "mean_field"}, False),
        ({"guide": "mean_field", "basal_sees_shift": True}, False),
        ({"guide": "correlated_basal"}, True),
        ({"guide": "correlated"}, True),
    ],
)
def test_basal_posterior_depends_on_the_sampled_shift_only_when_correlated(
    tiny_adata, options, depends
):
    guide, batch = _guide_and_batch(tiny_adata, **options)
    t, k = guide.embedding_loc.shape
    ones = torch.ones(t, k)
    first = _basal_location(guide, batch, ones, torch.zeros(t, k))
    second = _basal_location(guide, batch, ones, torch.full((t, k), 2.0))
    assert (not torch.allclose(first, second)) == depends


@pytest.mark.parametrize(
    "options, depends",
    [({"guide": "mean_field"}, False), ({"guide": "correlated_embedding"}, True)],
)
def test_embedding_posterior_depends_on_the_mask_only_when_correlated(tiny_adata, options, depends):
    guide, _ = _guide_and_batch(tiny_adata, **options)
    if guide.embedding_given_mask is not None:
        torch.nn.init.normal_(guide.embedding_given_mask.out[-1].weight)  # leave the zero start
    t, k = guide.embedding_loc.shape

    def embedding_location(mask):
        trace = poutine.trace(
            poutine.replay(guide.sample_globals, trace=_values(mask=mask))
        ).get_trace()
        return trace.nodes["embedding"]["fn"].base_dist.loc

    changed = not torch.allclose(
        embedding_location(torch.ones(t, k)), embedding_location(torch.zeros(t, k))
    )
    assert changed == depends


def test_correlated_guide_samples_mask_then_embedding_then_basal_state(tiny_adata):
    guide, batch = _guide_and_batch(tiny_adata, guide="correlated")
    trace = poutine.trace(guide).get_trace(batch, 100)
    order = [
        name for name, node in trace.nodes.items() if node["type"] == "sample" and name != "cells"
    ]
    assert order == ["mask", "embedding", "z_basal"]


def test_cpa_vae_is_sams_vae_with_masks_pinned_to_one(tiny_adata):
    sams = sp.SAMSVAE(tiny_adata, latent_dim=3)
    cpa = sp.CPAVAE(tiny_adata, latent_dim=3)
    shared = {k: v for k, v in sams.module.state_dict().items() if k in cpa.module.state_dict()}
    cpa.module.load_state_dict(shared, strict=False)
    data = encode(check_cells(tiny_adata, sams.registry))
    batch = make_batch(data, np.arange(40), np.arange(40))
    torch.manual_seed(0)
    values = poutine.trace(cpa.module["guide"]).get_trace(batch, 40)
    t, k = values.nodes["embedding"]["value"].shape
    pinned = _values(
        mask=torch.ones(t, k),
        embedding=values.nodes["embedding"]["value"],
        z_basal=values.nodes["z_basal"]["value"],
    )
    cpa_trace = poutine.trace(poutine.replay(cpa.module["model"], trace=pinned)).get_trace(
        batch, 40
    )
    sams_trace = poutine.trace(poutine.replay(sams.module["model"], trace=pinned)).get_trace(
        batch, 40
    )
    for site in ("x", "z_basal", "embedding"):
        torch.testing.assert_close(
            cpa_trace.nodes[site]["fn"].log_prob(cpa_trace.nodes[site]["value"]),
            sams_trace.nodes[site]["fn"].log_prob(sams_trace.nodes[site]["value"]),
        )
    # the only difference is SAMS-VAE's prior probability of the all-ones mask
    difference = sams_trace.log_prob_sum() - cpa_trace.log_prob_sum()
    torch.testing.assert_close(
        difference, torch.tensor(t * k * np.log(0.01), dtype=difference.dtype)
    )


@pytest.fixture(scope="module")
def held_out_model(small_adata):
    split = held_out_perturbations(small_adata.obs["condition"], fraction=0.1, seed=0)
    model = sp.SAMSVAE(small_adata, latent_dim=5, guide="correlated_basal")
    model.train(
        max_epochs=6, dense_epochs=2, n_particles=1, batch_size=256, progress=False, split=split
    )
    return model, split


@pytest.mark.slow
def test_perturbations_without_training_cells_are_predicted_as_the_trained_population(
    held_out_model, tmp_path
):
    model, split = held_out_model
    untrained = [
        a for a, seen in zip(model.actions, model.trained_actions, strict=True) if not seen
    ]
    trained = [a for a, seen in zip(model.actions, model.trained_actions, strict=True) if seen]
    assert untrained, "the split should hold out at least one perturbation"
    row = model.actions.index(untrained[0])
    guide = model.module["guide"]
    with torch.no_grad():  # an absurd variational value that must never be used
        guide.embedding_loc[row] = 100.0
        guide.mask_logits[row] = 10.0
    probabilities = model.mask_probabilities().loc[untrained[0]]
    np.testing.assert_allclose(probabilities.to_numpy(), 0.01, rtol=1e-5)
    # each cell takes one random trained perturbation's effect, so the ATE of an unseen
    # one is the mean of the trained ones' ATEs (up to the draw of which cell takes which)
    options = {"n_draws": 2, "n_cells": 3000, "seed": 0}
    unseen = model.average_treatment_effect([untrained[0]], **options).to_numpy()[0]
    population = model.average_treatment_effect(trained, **options).to_numpy().mean(axis=0)
    assert np.corrcoef(unseen, population)[0, 1] > 0.95
    np.testing.assert_allclose(np.linalg.norm(unseen), np.linalg.norm(population), rtol=0.15)
    cells = model.sample([untrained[0]], n_cells=5, seed=0)
    assert np.isfinite(cells.X.toarray()).all() and cells.X.sum() > 0
    # the table of which actions trained where is saved with the model
    loaded = PerturbationModel.load(model.save(tmp_path / "model"))
    np.testing.assert_array_equal(loaded.trained_by_context, model.trained_by_context)
    small = {"n_draws": 1, "n_cells": 50, "seed": 1}
    pd.testing.assert_frame_equal(
        loaded.average_treatment_effect([untrained[0]], **small),
        model.average_treatment_effect([untrained[0]], **small),
    )


def test_population_dosage_moves_an_unseen_dose_to_an_action_trained_in_the_cell_s_context():
    # actions 0-2 trained in context 0, only action 2 in context 1; action 3 never
    population = torch.tensor([[True, True, True, False], [False, False, True, False]])
    combination = torch.tensor([1.0, 0.0, 0.0, 1.0])  # trained 0 with unseen 3
    contexts = torch.tensor([0] * 3000 + [1] * 10)
    generator = torch.Generator().manual_seed(0)
    dosage = population_dosage(combination.expand(3010, -1), contexts, population, generator)
    assert bool((dosage[:, 3] == 0).all())
    np.testing.assert_array_equal(dosage.sum(1).numpy(), np.full(3010, 2.0))
    picked = (dosage - torch.tensor([1.0, 0.0, 0.0, 0.0])).argmax(1)
    np.testing.assert_allclose(np.bincount(picked[:3000].numpy(), minlength=3), 1000, rtol=0.1)
    assert bool((picked[3000:] == 2).all())  # context 1's only trained action
    seen = torch.tensor([0.0, 1.0, 0.0, 0.0]).expand(4, -1)
    torch.testing.assert_close(population_dosage(seen, contexts[:4], population), seen)
    torch.testing.assert_close(
        population_dosage(combination[None], contexts[:1], None), combination[None]
    )


@pytest.mark.slow
def test_models_without_an_effect_prior_refuse_unseen_perturbations(small_adata, held_out_model):
    _, split = held_out_model
    held = sorted(set(small_adata.obs["condition"].to_numpy()[split.test]))
    controls = small_adata[small_adata.obs["condition"] == "control"][:3].copy()
    for cls in (sp.ConditionalVAE, sp.SVAEPlus):
        model = cls(small_adata, latent_dim=3)
        model.train(max_epochs=1, n_particles=1, batch_size=256, progress=False, split=split)
        with pytest.raises(InputError, match="no prior over perturbation effects"):
            model.predict(controls, [held[0]])


def test_svae_plus_treats_each_condition_as_its_own_action(tiny_adata):
    model = sp.SVAEPlus(tiny_adata, latent_dim=3)
    combination = next(c for c in model.registry.conditions if "+" in c)
    assert combination in model.actions and "control" not in model.actions
    a, b = combination.split("+")
    with pytest.raises(InputError, match="never saw perturbed"):
        model._conditions([f"{b}+{a}"])  # the reversed label is another, unknown action
