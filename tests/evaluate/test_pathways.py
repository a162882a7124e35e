"""Masks against pathways: gene-set files, labels, kNN accuracy, Jaccard, enrichment, BH."""

import gzip
import itertools
import json
from math import comb

import numpy as np
import pandas as pd
import pytest
from scipy.stats import false_discovery_control

from samsvae_plus.errors import InputError
from samsvae_plus.evaluate.enrichment import dimension_enrichment
from samsvae_plus.evaluate.gene_sets import assign_pathways, load_gene_sets, membership
from samsvae_plus.evaluate.masks import _vote, knn_pathway_accuracy, mask_jaccard
from samsvae_plus.evaluate.pathway_report import mask_pathway_report

SETS = {
    "big": ["A", "B", "C", "X1", "X2", "X3", "X4", "X5", "X6", "X7"],
    "pair": ["C", "D"],
    "ef_general": ["E", "F", "Y1", "Y2", "Y3"],
    "ef_specific": ["E", "F", "Y1"],
    "single": ["G"],
}
PERTURBATIONS = ["A", "B", "C", "D", "E", "F", "G"]


def test_gene_set_files_in_every_format(tmp_path):
    (tmp_path / "sets.json").write_text(json.dumps({"pathways": {"S": ["A", "B"]}}))
    (tmp_path / "plain.json").write_text(json.dumps({"S": ["A", "B"]}))
    (tmp_path / "sets.csv").write_text("ID,Name,Genes,Length\n1,S,A;B,2\n")
    with gzip.open(tmp_path / "sets.gmt.gz", "wt") as handle:
        handle.write("S\tdescription\tA\tB\n")
    for name in ["sets.json", "plain.json", "sets.csv", "sets.gmt.gz"]:
        assert load_gene_sets(tmp_path / name) == {"S": ["A", "B"]}, name
    with pytest.raises(InputError, match="neither a collection"):
        load_gene_sets(tmp_path / "missing.json")
    (tmp_path / "bad.txt").write_text("S A B")
    with pytest.raises(InputError, match="must end in"):
        load_gene_sets(tmp_path / "bad.txt")


def test_membership_keeps_sets_that_group_at_least_two_perturbations():
    table = membership(PERTURBATIONS, SETS)
    assert list(table.columns) == ["big", "pair", "ef_general", "ef_specific"]
    assert table["pair"].tolist() == [False, False, True, True, False, False, False]
    assert list(membership(PERTURBATIONS, SETS, max_set_size=4).columns) == ["pair", "ef_specific"]


def test_greedy_labels_prefer_large_then_specific_sets():
    labels = assign_pathways(PERTURBATIONS, SETS)
    # big takes A, B, C; pair is then left with D alone; the E/F tie goes to the smaller set
    assert labels.dropna().to_dict() == {
        "A": "big",
        "B": "big",
        "C": "big",
        "E": "ef_specific",
        "F": "ef_specific",
    }
    assert labels[["D", "G"]].isna().all()


def test_vote_breaks_ties_by_the_nearest_neighbour():
    assert _vote(np.array([[1, 2], [2, 1], [3, 1, 1]], dtype=object)).tolist() == [1, 2, 1]


def _two_clusters():
    features = pd.DataFrame(
        [[1.0, 0.0], [0.95, 0.05], [0.9, 0.0], [0.0, 1.0], [0.05, 0.9], [0.0, 0.92], [0.0, 0.95]],
        index=["X1", "X2", "X3", "Y1", "Y2", "Y3", "X4"],
        columns=["z0", "z1"],
    )
    labels = pd.Series(["X", "X", "X", "Y", "Y", "Y", "X"], index=features.index)
    return features, labels


def test_knn_accuracy_and_majority_rate_on_two_clusters():
    features, labels = _two_clusters()
    result = knn_pathway_accuracy(features, labels, k=3, n_permutations=500, seed=0)
    # X4 sits among the Ys and is called Y; everything else is right
    assert result.accuracy == pytest.approx(6 / 7)
    assert result.majority_rate == pytest.approx(4 / 7)
    assert result.predictions["X4"] == "Y" and result.predictions["Y1"] == "Y"
    # the permutation p-value estimates the share of the 35 labellings with four Xs that
    # score at least 6/7
    at_least = 0
    for xs in itertools.combinations(range(7), 4):
        shuffled = pd.Series("Y", index=labels.index)
        shuffled.iloc[list(xs)] = "X"
        at_least += (
            knn_pathway_accuracy(features, shuffled, k=3, n_permutations=0).accuracy >= 6 / 7
        )
    assert result.p_value == pytest.approx(at_least / 35, abs=0.05)
    unlabelled = labels.copy()
    unlabelled[:] = np.nan
    assert np.isnan(knn_pathway_accuracy(features, unlabelled).accuracy)


def test_knn_accuracy_is_nan_with_a_single_pathway():
    # Every vote would be right (accuracy 1 = majority rate 1) whatever the masks are.
    features = pd.DataFrame(np.eye(3), index=["a", "b", "c"])
    one = pd.Series(["complex"] * 3, index=features.index)
    result = knn_pathway_accuracy(features, one, k=1, n_permutations=10)
    assert np.isnan(result.accuracy) and result.n_labelled == 3 and result.n_classes == 1


def test_jaccard_within_and_between_pathways():
    masks = pd.DataFrame(
        [[0.9, 0.9, 0.0], [0.9, 0.0, 0.0], [0.0, 0.0, 0.9], [0.0, 0.8, 0.9]],
        index=["a1", "a2", "b1", "b2"],
    )
    labels = pd.Series(["a", "a", "b", "b"], index=masks.index)
    result = mask_jaccard(masks, labels, n_permutations=100)
    # within: a1-a2 = 1/2, b1-b2 = 1/2; between: a1-b1 0, a1-b2 1/3, a2-b1 0, a2-b2 0
    assert result.within == pytest.approx(0.5)
    assert result.between == pytest.approx((1 / 3) / 4)
    assert (result.n_within_pairs, result.n_between_pairs) == (2, 4)


def _benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """BH by its definition, q_(i) = min over j >= i of p_(j) n / j capped at 1, in the
    input order (the package's own implementation before it took scipy's)."""
    p = np.asarray(p_values, dtype=float)
    n = p.size
    order = np.argsort(p, kind="stable")
    ranked = p[order] * n / np.arange(1, n + 1)
    q = np.empty(n)
    q[order] = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1.0)
    return q


def test_benjamini_hochberg_by_hand_and_against_scipy():
    # enrichment's q-values are scipy's false_discovery_control
    p = np.array([0.01, 0.04, 0.03, 0.2])
    np.testing.assert_allclose(_benjamini_hochberg(p), [0.04, 0.16 / 3, 0.16 / 3, 0.2])
    np.testing.assert_allclose(false_discovery_control(p), [0.04, 0.16 / 3, 0.16 / 3, 0.2])
    p = np.random.default_rng(0).random(50) ** 3
    np.testing.assert_allclose(_benjamini_hochberg(p), false_discovery_control(p))


def test_enrichment_q_values_match_the_previous_benjamini_hochberg():
    rng = np.random.default_rng(1)
    perturbations = [f"P{i}" for i in range(60)]
    probs = pd.DataFrame(
        rng.random((60, 8)), index=perturbations, columns=[f"z{k}" for k in range(8)]
    )
    sets = {f"S{j}": list(rng.choice(perturbations, size=8, replace=False)) for j in range(15)}
    table = dimension_enrichment(probs, membership(perturbations, sets))
    assert len(table) == 8 * 15 and table["p_value"].min() < 0.05  # ties and small p-values
    np.testing.assert_allclose(
        table["q_value"], _benjamini_hochberg(table["p_value"].to_numpy()), rtol=1e-12
    )
    # and the q-values the scorer's bit-exact BH gives
    from samsvae_plus.challenge.differential_expression import benjamini_hochberg

    np.testing.assert_allclose(
        table["q_value"], benjamini_hochberg(table["p_value"].to_numpy()), rtol=1e-12
    )


def test_hypergeometric_enrichment_by_hand():
    perturbations = [f"P{i}" for i in range(12)]
    annotated = perturbations[:10]  # P10 and P11 are in no set: outside the universe
    sets = {"S": annotated[:4], "T": annotated[4:10]}
    probs = pd.DataFrame(0.0, index=perturbations, columns=["z0", "z1"])
    probs.loc[["P0", "P1", "P2", "P5", "P10"], "z0"] = 0.9  # 3 of S, 1 of T, 1 outside
    table = dimension_enrichment(probs, membership(perturbations, sets))
    row = table.set_index(["dimension", "gene_set"]).loc[("z0", "S")]
    assert (row["overlap"], row["n_active"], row["in_set"], row["universe"]) == (3, 4, 4, 10)
    expected = (comb(4, 3) * comb(6, 1) + comb(4, 4) * comb(6, 0)) / comb(10, 4)
    assert row["p_value"] == pytest.approx(expected)
    assert row["fold_enrichment"] == pytest.approx((3 / 4) / (4 / 10))
    assert row["members"] == "P0;P1;P2"
    assert len(table) == 2  # z1 has no active perturbation and is not tested
    np.testing.assert_allclose(table["q_value"], _benjamini_hochberg(table["p_value"].to_numpy()))


def test_report_on_a_mapping_of_sets():
    features, labels = _two_clusters()
    sets = {"X": list(labels.index[labels == "X"]), "Y": list(labels.index[labels == "Y"])}
    report = mask_pathway_report(features, sets, collection="toy", n_permutations=50)
    summary = report.summary()
    assert summary["collection"] == "toy" and summary["n_sets"] == 2
    assert summary["knn_accuracy"] == pytest.approx(6 / 7)
    assert report.labels.to_dict() == labels.to_dict()
