"""Bootstrap ensembles: stratified resampling of the training cells, pooling of the
members' ATE draws, and the ensemble's verbs against its members' own."""

import numpy as np
import pandas as pd
import pytest
from helpers.simulations import tiny_simulation

import samsvae_plus as sp
from samsvae_plus.data.splits import Split, bootstrap_split
from samsvae_plus.evaluate.ate_check import ATEDraws, pool_ate_draws, summarise_ate
from samsvae_plus.model.ensemble import cell_groups, draw_shares


def test_bootstrap_split_resamples_training_cells_within_their_groups():
    groups = np.array(["a"] * 30 + ["b"] * 12 + ["c"] * 8)
    rows = np.random.default_rng(0).permutation(50)
    split = Split("random", 0, train=np.sort(rows[:40]), validation=rows[40:45], test=rows[45:])
    boot = bootstrap_split(split, groups, seed=3)
    # every group keeps its number of training cells, drawn from its own training cells
    for label in "abc":
        own = split.train[groups[split.train] == label]
        drawn = boot.train[groups[boot.train] == label]
        assert len(drawn) == len(own)
        assert set(drawn) <= set(own)
    assert len(np.unique(boot.train)) < len(boot.train)  # drawn with replacement
    np.testing.assert_array_equal(boot.validation, split.validation)
    np.testing.assert_array_equal(boot.test, split.test)
    again = bootstrap_split(split, groups, seed=3)
    np.testing.assert_array_equal(again.train, boot.train)
    assert not np.array_equal(bootstrap_split(split, groups, seed=4).train, boot.train)


def test_bootstrap_multiplicities_average_one():
    # Each training cell appears Binomial(n, 1/n) times in a resample of its group: mean 1.
    groups = np.repeat(["a", "b"], [200, 100])
    split = Split(
        "random", 0, train=np.arange(300), validation=np.array([], int), test=np.array([], int)
    )
    counts = sum(
        np.bincount(bootstrap_split(split, groups, seed=s).train, minlength=300) for s in range(200)
    )
    assert counts.mean() == pytest.approx(200.0)
    # about 1 - 1/e of the cells appear in a resample
    present = np.mean(
        [len(np.unique(bootstrap_split(split, groups, seed=s).train)) for s in range(20)]
    )
    assert present / 300 == pytest.approx(1 - np.exp(-1), abs=0.03)


def test_draw_shares_split_the_draws_evenly():
    assert draw_shares(10, 4) == [3, 3, 2, 2]
    assert draw_shares(8, 8) == [1] * 8
    with pytest.raises(sp.InputError, match="members"):
        draw_shares(3, 4)


def _draws(reference, offset, n):
    grid = np.linspace(-1.0, 1.0, n)[:, None, None]
    return reference.to_numpy()[None] + offset + grid


def test_pooled_draws_are_the_mixture_of_the_parts():
    reference = pd.DataFrame([[0.0, 1.0], [2.0, -1.0]], index=["A", "B"], columns=["g1", "g2"])
    # two posteriors, each too narrow on its own (centred 1.5 off), pooled they straddle
    low = ATEDraws(reference, _draws(reference, -1.5, 21))
    high = ATEDraws(reference, _draws(reference, 1.5, 21))
    pooled = pool_ate_draws([low, high])
    assert pooled.model_draws.shape == (42, 2, 2)
    check = pooled.summarise(level=0.9)
    expected = summarise_ate(reference, np.concatenate([low.model_draws, high.model_draws]))
    assert check.metrics.loc["all", "coverage"] == expected.metrics.loc["all", "coverage"] == 1.0
    assert low.summarise().metrics.loc["all", "coverage"] == 0.0
    np.testing.assert_allclose(check.prediction.to_numpy(), reference.to_numpy(), atol=1e-12)
    other = ATEDraws(reference + 1.0, _draws(reference, 0.0, 21))
    with pytest.raises(ValueError, match="references"):
        pool_ate_draws([low, other])


FAST = dict(max_epochs=6, dense_epochs=2, n_particles=1, lr=2e-3, batch_size=64, progress=False)


@pytest.fixture(scope="module")
def ensemble():
    adata = tiny_simulation()
    model = sp.SAMSVAE(adata, latent_dim=3)
    model.train(**FAST, seed=0)
    return model, sp.BootstrapEnsemble.fit(model, 2, seed=5, **FAST)


@pytest.mark.slow
def test_members_train_on_bootstrap_resamples_of_the_models_training_cells(ensemble):
    model, ens = ensemble
    assert len(ens) == 2
    for k, member in enumerate(ens.members):
        expected = bootstrap_split(model.split, cell_groups(model.adata, model), seed=5 + k)
        np.testing.assert_array_equal(member.split.train, expected.train)
        np.testing.assert_array_equal(member.split.validation, model.split.validation)
        assert member.config == model.config
    first, second = (m.module.state_dict() for m in ens.members)
    decoder = "model.likelihood.decoder.net.0.weight"
    assert not np.allclose(first[decoder].numpy(), second[decoder].numpy())


@pytest.mark.slow
def test_ensemble_ate_pools_its_members_draws(ensemble, tmp_path):
    model, ens = ensemble
    truth = model.adata.uns["simulation"]["true_ate"].iloc[:3]
    check = ens.check_ate(reference=truth, n_draws=4, n_cells=10, progress=False)
    # member k draws its share (2 each) with seed k; the point estimate is their mean
    members = [
        m.check_ate(reference=truth, n_draws=2, n_cells=10, seed=k, progress=False)
        for k, m in enumerate(ens.members)
    ]
    expected = (members[0].prediction + members[1].prediction) / 2
    np.testing.assert_allclose(check.prediction, expected, rtol=1e-5, atol=1e-6)
    mean, draws = ens.average_treatment_effect(
        list(truth.index), n_draws=4, n_cells=10, return_draws=True
    )
    own = [
        m.average_treatment_effect(list(truth.index), n_draws=2, n_cells=10, seed=k)
        for k, m in enumerate(ens.members)
    ]
    assert draws.shape == (4, *mean.shape)
    np.testing.assert_allclose(mean, (own[0] + own[1]) / 2, rtol=1e-5, atol=1e-6)
    # saved and loaded, the ensemble draws the same
    loaded = sp.BootstrapEnsemble.load(ens.save(tmp_path / "ens"), adata=model.adata)
    again = loaded.average_treatment_effect(list(truth.index), n_draws=4, n_cells=10)
    np.testing.assert_array_equal(again.to_numpy(), mean.to_numpy())


@pytest.mark.slow
def test_ensemble_refuses_options_it_sets_and_mixed_members(ensemble):
    model, ens = ensemble
    with pytest.raises(sp.InputError, match="split"):
        sp.BootstrapEnsemble.fit(model, 1, split=model.split, **FAST)
    with pytest.raises(sp.InputError, match="members"):
        ens.check_ate(reference=model.adata.uns["simulation"]["true_ate"], n_draws=1)
    other = sp.SAMSVAE(tiny_simulation(n_genes=20), latent_dim=3)
    with pytest.raises(sp.InputError, match="one class"):
        sp.BootstrapEnsemble([ens.members[0], other])
