"""get_latent_representation: basal states that separate cell types, shifts that are
d (m * e), and the same verb for every model of the family."""

import numpy as np
import pytest
import torch
from helpers.silhouette import silhouette_score
from helpers.simulations import tiny_simulation

import samsvae_plus as sp
from samsvae_plus.errors import InputError

QUICK = dict(max_epochs=2, dense_epochs=1, batch_size=32, n_particles=1, progress=False)
# One model per way the guide reads the shift: not at all, its expected value, a sampled
# one, a sampled one it subtracts (SVAE+), and the conditional VAE, which has none.
FAMILY = [
    (sp.SAMSVAE, {"guide": "mean_field"}),
    (sp.SAMSVAE, {"basal_sees_shift": True}),
    (sp.SAMSVAE, {"guide": "correlated", "masks": "beta_bernoulli"}),
    (sp.CPAVAE, {"guide": "correlated_basal"}),
    (sp.SVAEPlus, {}),
    (sp.ConditionalVAE, {}),
]


@pytest.fixture(scope="module")
def trained_tiny():
    adata = tiny_simulation()
    model = sp.SAMSVAE(adata, latent_dim=3)
    model.train(**QUICK, seed=0)
    return adata, model


def test_silhouette_helper_matches_its_definition():
    # two tight, distant groups score near 1; one group split at random scores near 0
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(0, 0.1, (20, 2)), rng.normal(10, 0.1, (20, 2))])
    assert silhouette_score(points, [0] * 20 + [1] * 20) > 0.95
    assert abs(silhouette_score(rng.normal(size=(200, 2)), rng.integers(0, 2, 200))) < 0.05
    # a hand-computed case: points 0, 1 (group a) and 4 (group b) on a line
    a = [(4 - 1) / 4, (3 - 1) / 3]  # (b - a) / max(a, b) for 0 and 1; 4 is alone: 0
    assert silhouette_score([[0.0], [1.0], [4.0]], ["a", "a", "b"]) == pytest.approx(
        (sum(a) + 0.0) / 3
    )


def test_basal_states_of_control_cells_separate_the_contexts():
    # contexts whose basal means are far apart compared with the cells' spread around them
    adata = sp.datasets.simulate(
        n_perturbations=10,
        n_contexts=3,
        n_genes=100,
        latent_dim=4,
        n_combinations=2,
        cells_per_condition=30,
        n_control_cells=150,
        ate_cells=20,
        context_scale=3.0,
        seed=0,
    )
    sp.setup_anndata(adata, "condition", "control", context_key="cell_type")
    model = sp.SAMSVAE(adata, latent_dim=4)
    model.train(max_epochs=30, n_particles=1, lr=2e-3, batch_size=128, progress=False, seed=0)
    controls = adata[adata.obs["condition"] == "control"]
    basal = model.get_latent_representation(controls, kind="basal")
    assert basal.shape == (controls.n_obs, 4) and basal.dtype == np.float32
    assert silhouette_score(basal, controls.obs["cell_type"]) > 0.3
    # a control cell has no shift, so its z is its basal state
    np.testing.assert_array_equal(model.get_latent_representation(controls, kind="z"), basal)


def test_shift_is_d_times_m_times_e_at_the_variational_means(trained_tiny):
    adata, model = trained_tiny
    guide = model.module["guide"]
    effect = (torch.sigmoid(guide.mask_logits) * guide.embedding_loc).detach().numpy()
    row = {gene: i for i, gene in enumerate(model.registry.perturbations)}
    by_hand = np.stack(
        [
            sum((effect[row[g]] for g in label.split("+")), np.zeros(3, dtype=np.float32))
            if label != "control"
            else np.zeros(3, dtype=np.float32)
            for label in adata.obs["condition"].astype(str)
        ]
    )
    shift = model.get_latent_representation(kind="shift")
    assert np.abs(by_hand).max() > 0.01  # not a trivial zero
    np.testing.assert_allclose(shift, by_hand, rtol=1e-5, atol=1e-6)
    basal = model.get_latent_representation(kind="basal")
    np.testing.assert_allclose(model.get_latent_representation(kind="z"), basal + shift, rtol=1e-6)


def test_posterior_draws_are_seeded_consistent_and_centred_on_the_means(trained_tiny):
    adata, model = trained_tiny
    draw = {
        k: model.get_latent_representation(kind=k, give_mean=False, seed=3)
        for k in ("basal", "shift", "z")
    }
    # one draw of the globals and basal states per seed, whatever the kind asked for
    np.testing.assert_array_equal(draw["z"], draw["basal"] + draw["shift"])
    again = model.get_latent_representation(kind="z", give_mean=False, seed=3)
    np.testing.assert_array_equal(again, draw["z"])
    other = model.get_latent_representation(kind="z", give_mean=False, seed=4)
    assert not np.array_equal(other, draw["z"])
    # mean-field masks and embeddings are independent, so E[m * e] = E[m] E[e]
    shifts = [
        model.get_latent_representation(kind="shift", give_mean=False, seed=s) for s in range(300)
    ]
    mean = model.get_latent_representation(kind="shift")
    spread = np.std(shifts, axis=0) / np.sqrt(len(shifts))
    assert (np.abs(np.mean(shifts, axis=0) - mean) <= 5 * spread + 1e-6).all()


@pytest.mark.parametrize(
    "pair", FAMILY, ids=lambda p: p[0].__name__ + "".join(map(str, p[1].values()))
)
def test_every_model_of_the_family_gives_its_latent_states(tiny_adata, pair):
    cls, options = pair
    model = cls(tiny_adata, latent_dim=3, **options)
    model.train(**QUICK, seed=0)
    controls = tiny_adata[tiny_adata.obs["condition"] == "control"].copy()
    basal = model.get_latent_representation(kind="basal")
    assert basal.shape == (tiny_adata.n_obs, 3) and np.isfinite(basal).all()
    if cls is sp.ConditionalVAE:
        for kind in ("z", "shift"):
            with pytest.raises(InputError, match="no latent shift.*pass kind='basal'"):
                model.get_latent_representation(kind=kind)
    else:
        shift = model.get_latent_representation(kind="shift")
        z = model.get_latent_representation(kind="z")
        np.testing.assert_allclose(z, basal + shift, rtol=1e-5, atol=1e-6)
        assert np.abs(shift[tiny_adata.obs["condition"].to_numpy() != "control"]).max() > 0
        # controls have no shift
        assert not model.get_latent_representation(controls, kind="shift").any()
    expression = model.get_normalized_expression(controls[:4], ["P001"])
    np.testing.assert_allclose(expression.X.sum(axis=1), 1e4, rtol=1e-4)


def test_bad_requests_are_input_errors(trained_tiny, tiny_adata):
    adata, model = trained_tiny
    with pytest.raises(InputError, match="kind='latent' is not available"):
        model.get_latent_representation(kind="latent")
    with pytest.raises(InputError, match="give_mean"):
        model.get_latent_representation(give_mean="yes")
    with pytest.raises(InputError, match="genes"):
        model.get_latent_representation(adata[:, :5].copy())
    untrained = sp.SAMSVAE(tiny_adata, latent_dim=2)
    with pytest.raises(InputError, match="not trained"):
        untrained.get_latent_representation()
