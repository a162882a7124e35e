"""gene_embedding('go') where the data directory lacks the files, as in a pip install: the
embedding built by `samsvae-plus go-embedding` is found in the cache, and the missing
alias table is named in a warning instead of ending the run."""

from pathlib import Path

import pytest

from samsvae_plus.data import datasets
from samsvae_plus.data.go_embedding import build_go_embedding
from samsvae_plus.errors import MissingDataFileError
from samsvae_plus.nn.gene_embeddings import gene_embedding

GO_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "go"


@pytest.fixture()
def pip_install(tmp_path, monkeypatch):
    """No data directory anywhere, and an empty cache."""
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    monkeypatch.setattr(datasets, "_CHECKOUT_DATA", tmp_path / "no-checkout")
    monkeypatch.setenv("SAMSVAE_PLUS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_missing_go_embedding_names_the_file_and_the_command(pip_install):
    with pytest.raises(MissingDataFileError, match=r"human_gene_go_svd128\.npz.*go-embedding"):
        gene_embedding(["MAPK1"], "go")


def test_built_embedding_in_the_cache_is_used_without_aliases(pip_install):
    built = build_go_embedding(
        GO_FIXTURES / "mini.obo", GO_FIXTURES / "mini.gaf", n_components=3, min_genes=1
    )
    built.save(pip_install / datasets.GO_EMBEDDING)
    with pytest.warns(UserWarning) as record:
        matrix, found = gene_embedding(["MAPK1", "MARCH8"], "go")
    messages = " ".join(str(w.message) for w in record)
    assert "gene aliases are not resolved" in messages
    assert "human_genes.tsv.gz" in messages and "SAMSVAE_PLUS_DATA" in messages
    assert found.tolist() == [True, False] and matrix.shape == (2, 3)
