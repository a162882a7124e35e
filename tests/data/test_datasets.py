"""Data directory resolution, checksums and the real-data loaders."""

import hashlib

import numpy as np
import pytest

import samsvae_plus as sp
from samsvae_plus.data import datasets
from samsvae_plus.errors import InputError


def test_argument_then_variable_then_checkout(tmp_path, monkeypatch):
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    assert datasets.data_dir() == datasets._CHECKOUT_DATA
    monkeypatch.setenv(datasets.ENV_VAR, str(tmp_path))
    assert datasets.data_dir() == tmp_path
    other = tmp_path / "other"
    other.mkdir()
    assert datasets.data_dir(other) == other


def test_missing_file_names_the_file_and_the_variable(tmp_path):
    with pytest.raises(
        InputError, match=r"perturbseq/norman_mcfaline_devel\.h5ad.*SAMSVAE_PLUS_DATA"
    ):
        sp.datasets.norman_mcfaline_devel(data_dir=tmp_path)


def test_checksum_mismatch_is_reported(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "x.json").write_text("{}")
    digest = hashlib.sha256(b"something else").hexdigest()
    (tmp_path / "MANIFEST.sha256").write_text(f"{digest}  ./annotations/x.json\n")
    with pytest.raises(InputError, match="sha256"):
        datasets.fetch("annotations/x.json", tmp_path)
    (tmp_path / "MANIFEST.sha256").write_text(
        f"{hashlib.sha256(b'{}').hexdigest()}  ./annotations/x.json\n"
    )
    datasets._manifest.cache_clear()
    assert datasets.fetch("annotations/x.json", tmp_path).exists()


def test_norman_loads_and_registers():
    adata = sp.datasets.norman_mcfaline_devel()
    assert adata.shape == (5961, 500)
    sp.setup_anndata(adata, "condition", "control", context_key="cell_type")
    registry = adata.uns["samsvae_plus"]
    assert set(registry["contexts"]) == {"k562", "A172", "T98G", "U87MG"}
    assert "KLF1" in registry["perturbations"] and "KLF1+MAP2K6" not in registry["perturbations"]


def test_papalexi_drops_unassigned_cells():
    adata = sp.datasets.papalexi2021_thp1()
    assert "unassigned" not in set(adata.obs["condition"])
    assert adata.n_obs == 20729 - 4537
    sp.setup_anndata(adata, "condition", "control")  # no unused categories left behind


def test_annotations():
    pathways = sp.datasets.replogle_pathways()
    assert len(pathways) == 8 and len(pathways["EXOSOME"]) == 20
    corum = sp.datasets.gene_sets("corum")
    assert len(corum) == 2916
    embedding = sp.datasets.go_gene_embedding()
    assert embedding.shape == (17273, 128) and embedding.dtypes.iloc[0] == np.float32
    assert "BPGM+SAMD1" in sp.datasets.norman2019_interactions().index
    with pytest.raises(InputError, match="unknown gene-set collection"):
        sp.datasets.gene_sets("kegg")
