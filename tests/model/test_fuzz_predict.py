"""Property-based fuzzing of the prediction verbs of a trained model.

One SAMS-VAE with non-ASCII perturbation, gene and context names is trained once; then
``predict``, ``sample`` and ``average_treatment_effect`` get fuzzed requests (labels,
contexts, counts of draws and cells, seeds, library sizes) and fuzzed cells. Invariant: a
clean request returns a result without NaN whose labels are the ones asked for; a bad one
raises a one-line InputError that names the problem; nothing else is raised.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sps
from helpers.fuzz_requests import (
    bad_options,
    context_option,
    count_option,
    library_size_option,
    perturbation_option,
    seed_option,
)
from helpers.fuzz_strategies import (
    CONTEXTS,
    CONTROL,
    FUZZ,
    PREDICT_DATA_DEFECTS,
    QUIET_NAMES,
    UNICODE_GENES,
    cells_for_model,
    expect,
    quiet_anndata,
)
from helpers.hypothesis_profiles import examples
from hypothesis import given, settings
from hypothesis import strategies as st

import samsvae_plus as sp
from samsvae_plus.data.checked import match_training_labels

# At the ci profile's counts every fuzz test takes seconds to minutes.
pytestmark = [QUIET_NAMES, pytest.mark.slow]


@pytest.fixture(scope="module")
def model():
    """A tiny SAMS-VAE over the perturbations 'ÉPÉE', '基因' and 'A' in two contexts."""
    rng = np.random.default_rng(0)
    n_cells, genes = 36, ["基因0", "ÉPÉE", "g2", "g3"]
    labels = [CONTROL, "ÉPÉE", "基因", "A", "ÉPÉE+基因", "A+基因"] * 6
    counts = rng.integers(0, 6, size=(n_cells, len(genes)))
    counts[:, 0] += 1
    obs = pd.DataFrame(
        {"condition": pd.Categorical(labels), "cell_type": [CONTEXTS[i % 2] for i in range(36)]},
        index=[f"cell{i}" for i in range(n_cells)],
    )
    adata = quiet_anndata(X=sps.csr_matrix(counts), obs=obs, var=pd.DataFrame(index=genes))
    sp.setup_anndata(adata, "condition", CONTROL, context_key="cell_type")
    model = sp.SAMSVAE(adata, latent_dim=2, n_hidden=8, n_layers=1)
    model.train(max_epochs=2, n_particles=1, batch_size=12, progress=False, seed=0)
    assert set(UNICODE_GENES[:2]) <= set(model.registry.perturbations)
    return model


def expected_conditions(model, perturbations, with_control: bool) -> list[str]:
    if perturbations is None:
        conditions = [c for c in model.registry.conditions if c != CONTROL]
        return [CONTROL, *conditions] if with_control else conditions
    return [perturbations] if isinstance(perturbations, str) else list(perturbations)


def expected_predict_conditions(model, perturbations) -> list[str]:
    """predict's conditions: the requested labels as the training data writes them, each
    once, then the control where they lack it."""
    if perturbations is None:
        return expected_conditions(model, None, with_control=True)
    requested = expected_conditions(model, perturbations, with_control=False)
    labels = match_training_labels(requested, model.registry)
    return labels if CONTROL in labels else [*labels, CONTROL]


def assert_counts(X) -> np.ndarray:
    """Sampled counts: finite, non-negative whole numbers."""
    values = X.toarray() if sps.issparse(X) else np.asarray(X)
    assert np.isfinite(values).all() and (values >= 0).all()
    assert (values == np.round(values)).all()
    return values


@settings(max_examples=examples(250), **FUZZ)
@given(data=st.data())
def test_predict_is_clean_or_an_input_error(model, data):
    registry = model.registry
    bad = data.draw(bad_options("perturbations", "n_draws", "batch_size", "seed"))
    perturbations = data.draw(perturbation_option(registry, "bad_perturbations" in bad))
    n_draws = data.draw(count_option("bad_n_draws" in bad, 1, 2))
    batch_size = data.draw(count_option("bad_batch_size" in bad, 1, 8))
    seed = data.draw(seed_option("bad_seed" in bad))
    cells, cell_defects = data.draw(cells_for_model(registry))
    out = expect(
        lambda: model.predict(
            cells, perturbations, n_draws=n_draws, batch_size=batch_size, seed=seed
        ),
        cell_defects + tuple(bad),
    )
    if out is None:
        return
    conditions = expected_predict_conditions(model, perturbations)
    assert out.n_obs == cells.n_obs * len(conditions) * n_draws
    assert list(out.var_names) == list(registry.genes)
    assert list(out.obs["condition"].astype(str)[: cells.n_obs]) == [conditions[0]] * cells.n_obs
    assert set(out.obs["condition"].astype(str)) == set(conditions)
    assert list(out.obs["control_cell"][: cells.n_obs]) == list(cells.obs_names)
    assert set(out.obs["cell_type"].astype(str)) <= set(registry.contexts)
    assert_counts(out.X)


@settings(max_examples=examples(150), **FUZZ)
@given(data=st.data())
def test_sample_is_clean_or_an_input_error(model, data):
    registry = model.registry
    bad = data.draw(
        bad_options("perturbations", "n_cells", "n_draws", "context", "seed", "library_size_option")
    )
    perturbations = data.draw(perturbation_option(registry, "bad_perturbations" in bad))
    n_cells = data.draw(count_option("bad_n_cells" in bad, 1, 4))
    n_draws = data.draw(count_option("bad_n_draws" in bad, 1, 2))
    context = data.draw(context_option(registry, "bad_context" in bad))
    seed = data.draw(seed_option("bad_seed" in bad))
    library_size = data.draw(library_size_option("bad_library_size_option" in bad))
    out = expect(
        lambda: model.sample(
            perturbations,
            n_cells=n_cells,
            context=context,
            library_size=library_size,
            n_draws=n_draws,
            seed=seed,
        ),
        tuple(bad),
    )
    if out is None:
        return
    conditions = expected_conditions(model, perturbations, with_control=True)
    assert out.n_obs == n_cells * len(conditions) * n_draws
    assert list(out.obs["condition"].astype(str).unique()) == list(dict.fromkeys(conditions))
    if context is not None:
        assert set(out.obs["cell_type"].astype(str)) == {context}
    assert_counts(out.X)


@settings(max_examples=examples(150), **FUZZ)
@given(data=st.data())
def test_average_treatment_effect_is_clean_or_an_input_error(model, data):
    registry = model.registry
    bad = data.draw(bad_options("perturbations", "n_draws", "n_cells", "context", "seed", "basal"))
    perturbations = data.draw(perturbation_option(registry, "bad_perturbations" in bad))
    n_draws = data.draw(count_option("bad_n_draws" in bad, 1, 2))
    n_cells = data.draw(count_option("bad_n_cells" in bad, 1, 4))
    context = data.draw(context_option(registry, "bad_context" in bad))
    seed = data.draw(seed_option("bad_seed" in bad))
    basal = "bogus" if "bad_basal" in bad else data.draw(st.sampled_from(["prior", "encoder"]))
    by_context = data.draw(st.booleans())
    # Basal cells are all read as controls (they carry no labels), so only the defects of
    # whole cells apply to them.
    controls, cell_defects = None, ()
    if basal == "encoder" and data.draw(st.booleans()):
        unlabelled = [
            d for d in PREDICT_DATA_DEFECTS if d not in ("unknown_perturbation", "nfd_label")
        ]
        controls, cell_defects = data.draw(cells_for_model(registry, unlabelled))
        if hasattr(controls, "obs") and "condition" in controls.obs:
            del controls.obs["condition"]
    out = expect(
        lambda: model.average_treatment_effect(
            perturbations,
            context=context,
            n_draws=n_draws,
            n_cells=n_cells,
            seed=seed,
            by_context=by_context,
            basal=basal,
            adata_controls=controls,
        ),
        cell_defects + tuple(bad),
    )
    if out is None:
        return
    conditions = expected_conditions(model, perturbations, with_control=False)
    assert list(out.columns) == list(registry.genes)
    assert np.isfinite(out.to_numpy()).all()
    rows = out.index.get_level_values("condition") if by_context else out.index
    assert list(dict.fromkeys(rows.astype(str))) == list(dict.fromkeys(conditions))
    if CONTROL in conditions and not by_context:
        # A control's effect on itself is exactly zero: common random numbers.
        assert np.all(out.loc[[CONTROL]].to_numpy() == 0)
