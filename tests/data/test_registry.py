"""Registration: what it records, and a clear error for each bad input."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sps

import samsvae_plus as sp
from samsvae_plus.data.checked import check_cells
from samsvae_plus.data.encode import dosage_matrix, encode
from samsvae_plus.data.registry import get_registry
from samsvae_plus.errors import InputError


def fresh(tiny_adata):
    adata = tiny_adata.copy()
    del adata.uns["samsvae_plus"]
    return adata


def setup(adata, **kw):
    sp.setup_anndata(
        adata, kw.pop("perturbation_key", "condition"), kw.pop("control_label", "control"), **kw
    )


def test_registry_records_single_gene_vocabulary(tiny_adata):
    registry = get_registry(tiny_adata)
    truth = tiny_adata.uns["simulation"]
    assert registry.perturbations == tuple(truth["perturbations"])
    assert registry.contexts == ("ctx0", "ctx1")
    assert registry.genes == tuple(tiny_adata.var_names)
    combination = next(c for c in registry.conditions if "+" in c)
    a, b = combination.split("+")
    dosage = dosage_matrix([combination, a, "control"], registry).toarray()
    assert dosage.sum(axis=1).tolist() == [2, 1, 0]
    np.testing.assert_array_equal(
        dosage[0],
        dosage_matrix([a], registry).toarray()[0] + dosage_matrix([b], registry).toarray()[0],
    )


def test_unseen_combination_of_seen_genes_is_encoded(tiny_adata):
    registry = get_registry(tiny_adata)
    new = f"{registry.perturbations[0]}+{registry.perturbations[-1]}"
    assert new not in registry.conditions
    assert dosage_matrix([new], registry).toarray().sum() == 2
    with pytest.raises(InputError, match="never saw perturbed"):
        dosage_matrix(["NOT_A_GENE+P000"], registry)


def test_registry_survives_h5ad_round_trip(tiny_adata, tmp_path):
    tiny_adata.write_h5ad(tmp_path / "a.h5ad")
    import anndata as ad

    assert get_registry(ad.read_h5ad(tmp_path / "a.h5ad")) == get_registry(tiny_adata)


def test_library_size_from_obs_column(tiny_adata):
    adata = fresh(tiny_adata)
    adata.obs["depth"] = np.asarray(adata.X.sum(axis=1)).ravel() * 3.0
    setup(adata, library_size_key="depth")
    data = encode(check_cells(adata, get_registry(adata)))
    np.testing.assert_allclose(data.library_size, adata.obs["depth"].to_numpy(), rtol=1e-6)


def _float_x(adata):
    adata.X = adata.X.astype(np.float32)
    return adata


def _set_first_value(value):
    def corrupt(adata):
        adata = _float_x(adata)
        adata.X.data[0] = value
        return adata

    return corrupt


def _rename_control(adata):
    adata.obs["condition"] = adata.obs["condition"].cat.rename_categories({"control": "ctrl"})
    return adata


def _unused_category(adata):
    adata.obs["condition"] = adata.obs["condition"].cat.add_categories(["GHOST"])
    return adata


def _empty_label(adata):
    labels = adata.obs["condition"].astype(str).to_numpy()
    labels[2] = ""
    adata.obs["condition"] = pd.Categorical(labels)
    return adata


def _missing_label(adata):
    labels = adata.obs["condition"].astype(object).to_numpy()
    labels[2] = None
    adata.obs["condition"] = labels
    return adata


def _duplicate_genes(adata):
    names = list(adata.var_names)
    names[1] = names[0]
    adata.var_names = names
    return adata


def _zero_cell(adata):
    counts = adata.X.tolil()
    counts[3, :] = 0
    adata.X = counts.tocsr()
    return adata


def _float16(adata):
    adata.X = adata.X.toarray().astype(np.float16)
    return adata


BAD_INPUTS = {
    "non-integer": (_set_first_value(1.5), {}, "non-integer"),
    "negative": (_set_first_value(-2.0), {}, "negative"),
    "nan": (_set_first_value(np.nan), {}, "NaN"),
    "inf": (_set_first_value(np.inf), {}, "infinite"),
    "float16": (_float16, {}, "float16"),
    "missing perturbation key": (lambda a: a, {"perturbation_key": "guide"}, "not a column"),
    "missing context key": (lambda a: a, {"context_key": "line"}, "not a column"),
    "missing layer": (lambda a: a, {"layer": "counts"}, "not in adata.layers"),
    "missing control": (_rename_control, {}, "no cell has the control label"),
    "unused category": (_unused_category, {}, "unused categories"),
    "empty label": (_empty_label, {}, "empty labels"),
    "missing label": (_missing_label, {}, "missing label"),
    "duplicate genes": (_duplicate_genes, {}, "gene names are not unique"),
    "zero-count cell": (_zero_cell, {}, "zero counts"),
    "missing library-size key": (lambda a: a, {"library_size_key": "depth"}, "not a column"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_each_bad_input_gets_a_one_line_error_naming_the_fix(tiny_adata, name):
    corrupt, kwargs, pattern = BAD_INPUTS[name]
    adata = corrupt(fresh(tiny_adata))
    with pytest.raises(InputError, match=pattern) as info:
        setup(adata, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert any(
        word in message
        for word in ("pass", "call", "remove", "drop", "label", "convert", "fix", "store")
    )
    assert "samsvae_plus" not in adata.uns


def test_non_positive_library_sizes_are_rejected(tiny_adata):
    adata = fresh(tiny_adata)
    adata.obs["depth"] = 0.0
    with pytest.raises(InputError, match="positive and finite"):
        setup(adata, library_size_key="depth")


def test_unregistered_adata_is_refused(tiny_adata):
    with pytest.raises(InputError, match="setup_anndata"):
        get_registry(fresh(tiny_adata))


def test_dense_integer_counts_are_accepted(tiny_adata):
    adata = fresh(tiny_adata)
    adata.X = adata.X.toarray()
    setup(adata)
    assert sps.issparse(encode(check_cells(adata, get_registry(adata))).counts)
