"""The GO embedding builder on a hand-written OBO/GAF pair (tests/fixtures/go), and on the
shared data directory's annotations, from which it must give back the shared embedding.

The fixture's graph (root GO:0000001):

- GO:0000003 kinase cascade is_a GO:0000002 signalling is_a root; GO:0000013 is its alt_id;
- GO:0000004 regulation of kinase cascade: is_a root, regulates GO:0000003;
- GO:0000006 small subunit assembly part_of GO:0000005 ribosome assembly is_a root;
- GO:0000007 stress response has_part GO:0000005 (has_part does not propagate);
- GO:0000099 is obsolete.

Its genes: MAPK1 (GO:0000003), MAP2K1 (GO:0000013), DUSP6 (GO:0000004), RPS3 (GO:0000006),
RPS6 (GO:0000005 and GO:0000006), RPL7 (GO:0000005), TP53 (GO:0000007, a NOT annotation
to GO:0000003, and the obsolete term).
"""

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from samsvae_plus.data import datasets
from samsvae_plus.data.go_embedding import (
    annotation_matrix,
    build_go_embedding,
    embedding_from_annotations,
    tfidf,
)
from samsvae_plus.data.go_files import read_gaf, read_obo
from samsvae_plus.errors import InputError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "go"
OBO, GAF = FIXTURES / "mini.obo", FIXTURES / "mini.gaf"


def _matrix(**kwargs) -> pd.DataFrame:
    parents, alternatives = read_obo(OBO)
    annotations = read_gaf(GAF)
    annotations["go_id"] = annotations["go_id"].map(lambda t: alternatives.get(t, t))
    matrix, genes, terms = annotation_matrix(annotations, parents, **kwargs)
    return pd.DataFrame(matrix.toarray(), index=genes, columns=terms)


def test_obo_keeps_propagating_relations_and_drops_obsolete_terms():
    parents, alternatives = read_obo(OBO)
    assert parents["GO:0000004"] == {"GO:0000001", "GO:0000003"}  # is_a and regulates
    assert parents["GO:0000006"] == {"GO:0000005"}  # part_of
    assert parents["GO:0000007"] == set()  # has_part is not followed
    assert "GO:0000099" not in parents
    assert alternatives == {"GO:0000013": "GO:0000003"}


def test_gaf_leaves_out_not_annotations_and_reads_gzip(tmp_path):
    plain = read_gaf(GAF)
    assert ("TP53", "GO:0000003") not in set(zip(plain["gene"], plain["go_id"], strict=True))
    assert len(plain) == 9  # ten lines, one of them NOT
    packed = tmp_path / "mini.gaf.gz"
    packed.write_bytes(gzip.compress(GAF.read_bytes()))
    pd.testing.assert_frame_equal(read_gaf(packed), plain)


def test_annotations_propagate_to_every_ancestor():
    table = _matrix(min_genes=1, max_genes=1000)
    assert list(table.columns) == [f"GO:000000{i}" for i in range(1, 8)]  # no obsolete term
    assert table.loc["DUSP6"].to_dict() == {  # is_a, then regulates, then is_a twice
        "GO:0000001": 1,
        "GO:0000002": 1,
        "GO:0000003": 1,
        "GO:0000004": 1,
        "GO:0000005": 0,
        "GO:0000006": 0,
        "GO:0000007": 0,
    }
    assert table.loc["RPS3", ["GO:0000001", "GO:0000005", "GO:0000006"]].tolist() == [1, 1, 1]
    assert table.loc["TP53"].sum() == 1  # only GO:0000007: no has_part, NOT or obsolete term
    # the secondary id counts as its primary term
    pd.testing.assert_series_equal(table.loc["MAP2K1"], table.loc["MAPK1"], check_names=False)


def test_term_size_filter_drops_terms_then_empty_genes():
    table = _matrix(min_genes=2, max_genes=5)
    # root (6 genes), regulation (DUSP6 alone) and stress response (TP53 alone) go; TP53 too
    assert list(table.columns) == ["GO:0000002", "GO:0000003", "GO:0000005", "GO:0000006"]
    assert "TP53" not in table.index and len(table) == 6


def test_tfidf_weights_rare_terms_up_and_scales_rows_to_unit_length():
    table = _matrix(min_genes=1, max_genes=1000)
    weighted = pd.DataFrame(tfidf(table.to_numpy()).toarray(), table.index, table.columns)
    # MAPK1 has the root (6 of 7 genes), signalling and the cascade (3 of 7 each)
    raw = np.array([np.log(7 / 6), np.log(7 / 3), np.log(7 / 3)])
    expected = raw / np.linalg.norm(raw)
    np.testing.assert_allclose(
        weighted.loc["MAPK1", ["GO:0000001", "GO:0000002", "GO:0000003"]], expected
    )
    assert weighted.loc["MAPK1"].drop(["GO:0000001", "GO:0000002", "GO:0000003"]).eq(0).all()
    np.testing.assert_allclose(np.linalg.norm(weighted, axis=1), 1)
    assert weighted.loc["TP53", "GO:0000007"] == pytest.approx(1.0)


def test_embedding_is_the_truncated_svd_of_the_tfidf_matrix():
    result = build_go_embedding(OBO, GAF, n_components=4, min_genes=1, max_genes=1000)
    table = _matrix(min_genes=1, max_genes=1000)
    assert list(result.genes) == list(table.index)
    dense = tfidf(table.to_numpy()).toarray()
    u, s, _ = np.linalg.svd(dense)
    np.testing.assert_allclose(result.singular_values, s[:4], rtol=1e-6)
    assert (np.diff(result.singular_values) <= 0).all()
    # U = embedding / S has orthonormal columns, and spans the top-4 left singular space
    basis = result.embedding / result.singular_values
    np.testing.assert_allclose(basis.T @ basis, np.eye(4), atol=1e-8)
    np.testing.assert_allclose(basis @ basis.T, u[:, :4] @ u[:, :4].T, atol=1e-6)
    # each column's largest entry is positive, so the signs do not depend on the solver
    assert (basis[np.abs(basis).argmax(axis=0), np.arange(4)] > 0).all()


def test_genes_that_share_terms_are_closer():
    frame = build_go_embedding(OBO, GAF, n_components=4, min_genes=1, max_genes=1000).to_frame()
    unit = frame.div(np.linalg.norm(frame, axis=1), axis=0)
    cosine = unit @ unit.T
    assert cosine.loc["MAPK1", "MAP2K1"] == pytest.approx(1.0)  # the same terms
    assert cosine.loc["MAPK1", "DUSP6"] > cosine.loc["MAPK1", "RPS3"]
    assert cosine.loc["RPS3", "RPS6"] > cosine.loc["RPS3", "DUSP6"]
    assert cosine.loc["RPS3", "RPS6"] > cosine.loc["RPS3", "RPL7"]  # they share GO:0000006


def test_saved_embedding_is_read_by_the_loader(tmp_path):
    result = build_go_embedding(OBO, GAF, n_components=3, min_genes=1, max_genes=1000)
    result.save(tmp_path / datasets.GO_EMBEDDING)
    with np.load(tmp_path / datasets.GO_EMBEDDING) as npz:
        assert sorted(npz.files) == ["embedding", "genes", "singular_values"]
        assert npz["embedding"].dtype == np.float16  # as the shared file
    loaded = datasets.go_gene_embedding(tmp_path)
    assert list(loaded.index) == list(result.genes) and loaded.shape == (7, 3)
    np.testing.assert_allclose(loaded.to_numpy(), result.embedding, atol=2e-3)


def test_bad_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="must be positive and below the smaller side"):
        build_go_embedding(OBO, GAF, n_components=7, min_genes=1, max_genes=1000)
    with pytest.raises(InputError, match="no GO term has between min_genes=50"):
        build_go_embedding(OBO, GAF, min_genes=50, max_genes=100)
    (tmp_path / "short.gaf").write_text("UniProtKB\tP1\tA\tenables\n")
    with pytest.raises(InputError, match="line 1, has 4 tab-separated columns"):
        read_gaf(tmp_path / "short.gaf")
    (tmp_path / "empty.obo").write_text("format-version: 1.2\n")
    with pytest.raises(InputError, match=r"has no \[Term\] stanza"):
        read_obo(tmp_path / "empty.obo")
    with pytest.raises(InputError, match="GAF file .* does not exist"):
        read_gaf(tmp_path / "absent.gaf")


def test_recipe_gives_back_the_shared_embedding():
    """From the shared folder's direct annotations of protein-coding genes and its GO graph
    (Bioconductor's), the builder reproduces the shared embedding: its genes, its singular
    values, and its columns up to sign (to float16 precision)."""
    try:
        shared = datasets.data_dir()
        go = shared / "annotations" / "go"
        table = pd.read_csv(go / "human_go_annotations_direct.tsv.gz", sep="\t", dtype=str)
        edges = pd.read_csv(go / "go_parents.tsv.gz", sep="\t", dtype=str)
        terms = pd.read_csv(go / "go_terms.tsv.gz", sep="\t", dtype=str)
    except (InputError, FileNotFoundError) as err:
        pytest.skip(f"shared data not available: {err}")
    genes = datasets.human_genes()
    coding = set(genes.loc[genes["gene_type"] == "protein-coding", "symbol"])
    annotations = table[table["symbol"].isin(coding)].rename(columns={"symbol": "gene"})
    parents = {term: set() for term in terms["go_id"]}
    for child, parent in zip(edges["go_id"], edges["parent_id"], strict=True):
        parents[child].add(parent)
    built = embedding_from_annotations(annotations, parents)
    shipped = datasets.go_gene_embedding()
    with np.load(datasets.fetch(datasets.GO_EMBEDDING), allow_pickle=False) as npz:
        shipped_values = npz["singular_values"]
    assert set(built.genes) == set(shipped.index)
    np.testing.assert_allclose(built.singular_values, shipped_values, rtol=1e-5)
    mine = built.to_frame().loc[shipped.index].to_numpy()
    signs = np.sign((mine * shipped.to_numpy()).sum(axis=0))
    np.testing.assert_allclose(mine * signs, shipped.to_numpy(), atol=1e-3)
