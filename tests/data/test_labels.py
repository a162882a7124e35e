"""Messages about labels: close matches to a wrong control label, a warning about labels
that name no perturbation, and ``exclude=`` to leave their cells out of the model."""

import warnings

import numpy as np
import pandas as pd
import pytest

import samsvae_plus as sp
from samsvae_plus.data.checked import check_cells, check_model_data, without_excluded
from samsvae_plus.data.label_hints import label_hint, non_perturbation_labels
from samsvae_plus.data.registry import Registry, get_registry
from samsvae_plus.errors import InputError

UNASSIGNED, MULTIPLET = 10, 2


def fresh(tiny_adata):
    adata = tiny_adata.copy()
    del adata.uns["samsvae_plus"]
    return adata


def with_demultiplexing_leftovers(adata):
    """``UNASSIGNED`` cells of P004 relabelled 'unassigned' and ``MULTIPLET`` 'Multiplet', as
    a demultiplexing tool leaves them."""
    labels = adata.obs["condition"].astype(str).to_numpy()
    rows = np.flatnonzero(labels == "P004")
    labels[rows[:UNASSIGNED]] = "unassigned"
    labels[rows[UNASSIGNED : UNASSIGNED + MULTIPLET]] = "Multiplet"
    adata.obs["condition"] = pd.Categorical(labels)
    return adata


def setup(adata, **kwargs):
    sp.setup_anndata(adata, "condition", "control", context_key="cell_type", **kwargs)


# ---------------------------------------------------------------- hints


@pytest.mark.parametrize(
    "asked, hint",
    [
        ("Control", "(did you mean 'control'?)"),
        ("ctrl", "(did you mean 'control'?)"),
        ("non_targeting", "(did you mean 'non-targeting'?)"),
    ],
)
def test_a_close_label_is_suggested_whatever_its_case(asked, hint):
    labels = pd.Series(["control"] * 3 + ["non-targeting"] + ["KLF1"] * 5)
    assert label_hint(asked, labels) == hint


def test_without_a_close_label_the_most_common_are_shown():
    labels = pd.Series(["B"] * 3 + ["A"] * 3 + ["Z"] * 9 + ["C"])
    assert label_hint("NT", labels, most_common=3) == (
        "(the most common labels: 'Z' (9 cells), 'A' (3 cells), 'B' (3 cells))"
    )
    assert label_hint("NT", pd.Series(["C"])) == "(the most common labels: 'C' (1 cell))"


def test_a_wrong_control_label_gets_the_likely_one(tiny_adata):
    adata = fresh(tiny_adata)
    with pytest.raises(InputError) as info:
        sp.setup_anndata(adata, "condition", "Ctrl")
    assert str(info.value) == (
        "no cell has the control label 'Ctrl' in adata.obs['condition'] (did you mean "
        "'control'?); pass control_label= with the label of unperturbed cells"
    )
    with pytest.raises(InputError, match=r"the most common labels: 'control' \(24 cells\)"):
        sp.setup_anndata(adata, "condition", "NT")


# ---------------------------------------------------------------- the warning


def test_labels_that_name_no_perturbation_are_found_alone_or_in_combinations():
    labels = pd.Series(["NA", "A+none", "none", "control", "A", "DOUBLET", "negative"])
    assert non_perturbation_labels(labels, "+", "control") == {
        "A+none": 1,
        "DOUBLET": 1,
        "NA": 1,
        "negative": 1,
        "none": 1,
    }
    assert non_perturbation_labels(pd.Series(["none"]), "+", "none") == {}


def test_registration_warns_about_them_with_their_cells(tiny_adata):
    adata = with_demultiplexing_leftovers(fresh(tiny_adata))
    with pytest.warns(UserWarning) as record:
        setup(adata)
    (warning,) = record
    assert str(warning.message) == (
        "adata.obs['condition'] has labels that look like no perturbation: 'unassigned' "
        f"({UNASSIGNED} cells), 'Multiplet' ({MULTIPLET} cells); they are modelled as perturbed "
        "genes unless you pass exclude=['unassigned', 'Multiplet'] to leave those cells out"
    )
    assert warning.filename == __file__  # it points at the caller's line
    assert "unassigned" in get_registry(adata).perturbations


def test_registration_of_ordinary_labels_is_silent(tiny_adata):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        setup(fresh(tiny_adata))


# ---------------------------------------------------------------- exclude=


def test_excluded_labels_are_recorded_and_left_out_of_the_vocabulary(tiny_adata):
    adata = with_demultiplexing_leftovers(fresh(tiny_adata))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        setup(adata, exclude=["unassigned", "Multiplet"])
    registry = get_registry(adata)
    assert registry.exclude == ("unassigned", "Multiplet")
    assert not {"unassigned", "Multiplet"} & set(registry.conditions + registry.perturbations)
    assert registry.to_dict()["exclude"] == ["unassigned", "Multiplet"]
    assert Registry.from_dict(registry.to_dict()) == registry


def test_a_registry_without_exclusions_is_written_as_before(tiny_adata):
    assert "exclude" not in get_registry(tiny_adata).to_dict()


def test_one_label_may_be_given_as_a_string(tiny_adata):
    adata = with_demultiplexing_leftovers(fresh(tiny_adata))
    with pytest.warns(UserWarning, match=r"'Multiplet' \(2 cells\); .* exclude=\['Multiplet'\]"):
        setup(adata, exclude="unassigned")
    assert get_registry(adata).exclude == ("unassigned",)


@pytest.mark.parametrize(
    "exclude, message",
    [
        (["control"], "exclude names the control label 'control'; the model needs control cells"),
        (
            ["unasigned"],
            "exclude names 'unasigned', which no cell has in adata.obs['condition'] "
            "(did you mean 'unassigned'?); pass labels of that column",
        ),
        ([None], "exclude must hold condition labels"),
    ],
)
def test_a_bad_exclude_is_a_one_line_error(tiny_adata, exclude, message):
    adata = with_demultiplexing_leftovers(fresh(tiny_adata))
    with pytest.raises(InputError) as info:
        setup(adata, exclude=exclude)
    assert str(info.value).startswith(message)
    assert "samsvae_plus" not in adata.uns


def test_excluded_cells_are_not_checked(tiny_adata):
    """A cell left out may be empty: it is never modelled."""
    adata = with_demultiplexing_leftovers(fresh(tiny_adata))
    counts = adata.X.tolil()
    counts[np.flatnonzero(adata.obs["condition"] == "unassigned")[0], :] = 0
    adata.X = counts.tocsr()
    with pytest.raises(InputError, match="zero counts"):
        setup(adata.copy(), exclude=["Multiplet"])
    setup(adata, exclude=["unassigned", "Multiplet"])


def test_the_gate_drops_excluded_cells_for_every_verb(tiny_adata):
    adata = with_demultiplexing_leftovers(fresh(tiny_adata))
    setup(adata, exclude=["unassigned", "Multiplet"])
    registry = get_registry(adata)
    kept = adata.n_obs - UNASSIGNED - MULTIPLET
    cells = check_cells(adata, registry)
    assert cells.n_cells == kept
    assert not set(cells.obs_names) & set(adata.obs_names[adata.obs["condition"] == "unassigned"])
    assert without_excluded(adata, registry).n_obs == kept
    check_model_data(adata, registry)  # the excluded labels are not unknown conditions

    model = sp.SAMSVAE(adata, latent_dim=2)
    model.train(max_epochs=2, dense_epochs=1, batch_size=32, n_particles=1, progress=False)
    assert model.split_indices("all", kept).size == kept
    with pytest.raises(InputError, match="without the cells labelled 'unassigned', 'Multiplet'"):
        model.split_indices("all", adata.n_obs)
    assert model.iwelbo(adata, 2, per_cell=True, progress=False).shape == (kept,)
    assert model.condition_splits() is not None


def test_cells_of_excluded_labels_only_or_on_disk_are_refused(tiny_adata, tmp_path):
    import anndata as ad

    adata = with_demultiplexing_leftovers(fresh(tiny_adata))
    setup(adata, exclude=["unassigned", "Multiplet"])
    registry = get_registry(adata)
    only = adata[adata.obs["condition"] == "unassigned"].copy()
    with pytest.raises(InputError, match="every cell of adata has a label the model excludes"):
        check_cells(only, registry)
    adata.write_h5ad(tmp_path / "cells.h5ad")
    backed = ad.read_h5ad(tmp_path / "cells.h5ad", backed="r")
    with pytest.raises(
        InputError, match=r"adata is backed and holds 12 cells labelled 'unassigned', 'Multiplet'"
    ):
        check_cells(backed, registry)
    backed.file.close()


# ---------------------------------------------------------------- normalised cells


def test_normalised_cells_given_to_a_model_get_a_fix_its_verbs_take(tiny_adata):
    model = sp.SAMSVAE(tiny_adata, latent_dim=2)
    model.train(max_epochs=2, dense_epochs=1, batch_size=32, n_particles=1, progress=False)
    controls = tiny_adata[tiny_adata.obs["condition"] == "control"].copy()
    controls.X = np.log1p(controls.X.toarray().astype(np.float32))
    with pytest.raises(InputError) as info:
        model.predict(controls, ["P000"])
    assert str(info.value) == (
        "adata.X contains non-integer values, so it looks normalised; the model reads raw "
        "counts from adata.X, as registered, so pass cells with raw counts there (such as a "
        "copy with adata.X = adata.layers['counts'])"
    )
