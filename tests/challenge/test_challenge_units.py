"""Units of the challenge scorer against scipy and scanpy, and its input validation."""

from __future__ import annotations

import math

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp
from scipy.stats import false_discovery_control, mannwhitneyu

from samsvae_plus.challenge import compiled, pseudobulk, rank_stats
from samsvae_plus.challenge import differential_expression as de
from samsvae_plus.challenge import summary as challenge_summary
from samsvae_plus.challenge.inputs import check_input
from samsvae_plus.challenge.metrics import REGISTRY
from samsvae_plus.challenge.pseudobulk import Normalised, group_cells, value_spans
from samsvae_plus.challenge.score import challenge_score, score_against_baseline
from samsvae_plus.challenge.summary import summarise_file, summarise_file_per_group
from samsvae_plus.errors import InputError

CONTROL = "non-targeting"


def small_counts(seed: int = 0, n_genes: int = 60, dtype=np.float32) -> ad.AnnData:
    """Counts with many ties: 3 perturbations + controls, a gene silent everywhere."""
    rng = np.random.default_rng(seed)
    sizes = {CONTROL: 40, "GENE003": 25, "P2": 18, "P3": 30}
    blocks, labels = [], []
    for i, (label, n) in enumerate(sizes.items()):
        mean = rng.gamma(0.6, 1.5, n_genes) * (1 + i * rng.random(n_genes))
        blocks.append(rng.poisson(mean, (n, n_genes)))
        labels += [label] * n
    X = np.vstack(blocks).astype(dtype)
    X[:, 7] = 0  # silent gene: p = 1, lfc 0/0 = 0
    X[: sizes[CONTROL], 9] = 0  # silent in controls only: lfc +inf
    obs = pd.DataFrame(
        {"target_gene": pd.Categorical(labels)}, index=[f"c{i}" for i in range(len(labels))]
    )
    var = pd.DataFrame(index=[f"GENE{j:03d}" for j in range(n_genes)])
    return ad.AnnData(X=sp.csr_matrix(X), obs=obs, var=var)


def scipy_reference(adata: ad.AnnData):
    """Per-perturbation p-values and BH FDR with scipy on the scanpy-normalised matrix."""
    norm = adata.copy()
    sc.pp.normalize_total(norm)
    sc.pp.log1p(norm)
    Y = norm.X.toarray().astype(np.float64)
    labels = adata.obs["target_gene"].astype(str).to_numpy()
    control = Y[labels == CONTROL]
    out = {}
    for label in sorted(set(labels) - {CONTROL}):
        group = Y[labels == label]
        p = np.array(
            [
                mannwhitneyu(
                    group[:, j], control[:, j], method="asymptotic", use_continuity=True
                ).pvalue
                if (group[:, j].any() or control[:, j].any())
                else 1.0
                for j in range(Y.shape[1])
            ]
        )
        out[label] = (p, false_discovery_control(p))
    return out


# ---------------------------------------------------------------- rank test and BH


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rank_test_matches_scipy_mannwhitneyu(dtype):
    adata = small_counts(dtype=dtype)
    inp = check_input(adata, "real", "target_gene", CONTROL)
    norm = Normalised(inp)
    groups = group_cells(inp.labels)
    blocks = [norm.block(groups.rows(i)) for i in range(len(groups.labels))]
    codes = (
        de.ValueCodes(norm.dtype)
        if norm.dtype == np.float32
        else de.ValueCodes(norm.dtype, [b.data for b in blocks])
    )
    control_index = de.ControlIndex(de.block_runs(blocks[0], codes), 60, codes.width)
    Y = [b.toarray().astype(np.float64) for b in blocks]  # scipy keeps float32 precision
    for i in range(1, len(blocks)):
        stats = de.rank_sums(de.block_runs(blocks[i], codes), control_index, 60)
        p = de.mann_whitney_pvalues(stats)
        for j in range(60):
            if not (Y[i][:, j].any() or Y[0][:, j].any()):
                assert p[j] == 1.0
                continue
            want = mannwhitneyu(Y[i][:, j], Y[0][:, j], method="asymptotic", use_continuity=True)
            assert stats.u1[j] == want.statistic
            assert p[j] == pytest.approx(want.pvalue, rel=1e-12, abs=1e-300)


def test_constant_cells_match_scipy():
    rng = np.random.default_rng(3)
    control = sp.csr_matrix(np.round(rng.gamma(0.5, 2.0, (50, 20)), 1).astype(np.float32))
    values = np.round(rng.gamma(0.5, 2.0, 20), 1).astype(np.float32)
    values[:3] = 0.0
    codes = de.ValueCodes(np.float32)
    index = de.ControlIndex(de.block_runs(control, codes), 20, codes.width)
    stats = de.rank_sums(de.constant_runs(values, 12, codes), index, 20)
    p = de.mann_whitney_pvalues(stats)
    dense = control.toarray().astype(np.float64)
    for j in range(20):
        if not (values[j] or dense[:, j].any()):
            continue
        want = mannwhitneyu(np.full(12, float(values[j])), dense[:, j], method="asymptotic")
        assert stats.u1[j] == want.statistic
        assert p[j] == pytest.approx(want.pvalue, rel=1e-12)


def test_benjamini_hochberg_matches_scipy_and_known_table():
    # The worked example of scipy.stats.false_discovery_control's documentation.
    ps = [
        0.0001,
        0.0004,
        0.0019,
        0.0095,
        0.0201,
        0.0278,
        0.0298,
        0.0344,
        0.0459,
        0.3240,
        0.4262,
        0.5719,
        0.6528,
        0.7590,
        1.000,
    ]
    known = [
        0.0015,
        0.003,
        0.0095,
        0.035625,
        0.0603,
        0.06385714,
        0.06385714,
        0.0645,
        0.0765,
        0.486,
        0.58118182,
        0.714875,
        0.75323077,
        0.81321429,
        1.0,
    ]
    np.testing.assert_allclose(de.benjamini_hochberg(np.array(ps)), known, rtol=1e-6)
    rng = np.random.default_rng(0)
    p = np.round(rng.random((5, 300)) ** 3, 3)  # rounding makes ties
    np.testing.assert_array_equal(de.benjamini_hochberg(p), false_discovery_control(p, axis=-1))


def test_log2_fold_change_edge_cases():
    lfc = de.log2_fold_change(
        np.array([0.0, 0.5, 0.0, np.log1p(4.0)]), np.array([0.0, 0.0, 0.5, np.log1p(1.0)])
    )
    assert lfc.dtype == np.float32
    assert lfc[0] == 0.0 and lfc[1] == np.inf and lfc[2] == -np.inf
    assert lfc[3] == pytest.approx(2.0)


@pytest.mark.slow
def test_summary_fdr_matches_scipy_pipeline():
    adata = small_counts(seed=5)
    summary = summarise_file(check_input(adata, "real", "target_gene", CONTROL), CONTROL)
    reference = scipy_reference(adata)
    for i, label in enumerate(summary.labels):
        p, fdr = reference[label]
        np.testing.assert_allclose(summary.fdr[i], fdr.astype(np.float32), rtol=1e-6)
        np.testing.assert_array_equal(summary.fdr[i] < 0.05, fdr.astype(np.float32) < 0.05)
    assert summary.lfc[:, 7].tolist() == [0.0] * 3  # silent everywhere
    assert np.isposinf(summary.lfc[:, 9]).all()  # silent in controls only


@pytest.mark.parametrize(
    "case", ["counts", "float64", "dense", "log1p", "stored_zeros", "one_group"]
)
def test_compiled_summary_equals_numpy_per_group_summary(case, monkeypatch):
    # The compiled pass against the pure-numpy fallback (no extension at all, so its
    # erfc and validation too): every field, bit for bit.
    assert rank_stats.available(), "the C extension was not built"
    dtype = np.float64 if case == "float64" else np.float32
    adata = small_counts(seed=11, dtype=dtype)
    if case == "dense":
        adata.X = adata.X.toarray()
    elif case == "log1p":
        adata.X = sp.csr_matrix(np.log1p(adata.X.toarray() * 0.5).astype(np.float32))
    elif case == "stored_zeros":
        adata.X.data[::7] = 0.0  # explicit zeros, not eliminated
    elif case == "one_group":
        adata = adata[adata.obs["target_gene"].isin([CONTROL, "P2"])].copy()
    inp = check_input(adata, "real", "target_gene", CONTROL)
    got = summarise_file(inp, CONTROL)
    with monkeypatch.context() as patch:
        patch.setattr(compiled, "kernels", None)
        want = summarise_file_per_group(inp, CONTROL)
    for field in ("labels", "n_cells", "means", "control_mean", "fdr", "lfc"):
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field), err_msg=field)


@pytest.mark.parametrize("reason", ["not_built", "large_file"])
def test_summary_falls_back_to_per_group(monkeypatch, reason):
    inp = check_input(small_counts(seed=4), "real", "target_gene", CONTROL)
    calls = []
    real_fallback = challenge_summary.summarise_file_per_group

    def fallback(*args):
        calls.append(args)
        return real_fallback(*args)

    if reason == "not_built":
        monkeypatch.setattr(compiled, "kernels", None)
    else:
        monkeypatch.setattr(challenge_summary, "JOINT_MAX_ENTRIES", 100)
    monkeypatch.setattr(challenge_summary, "summarise_file_per_group", fallback)
    got = summarise_file(inp, CONTROL)
    assert len(calls) == 1
    np.testing.assert_array_equal(got.fdr, real_fallback(inp, CONTROL).fdr)


# ---------------------------------------------------------------- normalisation


@pytest.mark.parametrize("layout", ["sparse", "dense"])
def test_normalisation_is_scanpys_bit_for_bit(layout):
    adata = small_counts(seed=2)
    dense = adata.X.toarray()
    dense[4] = 0  # an empty cell (sparse median counts it, dense median skips it)
    adata.X = dense if layout == "dense" else sp.csr_matrix(dense)
    expected = adata.copy()
    with pytest.warns(UserWarning, match="zero counts"):
        sc.pp.normalize_total(expected)
    sc.pp.log1p(expected)
    want = expected.X.toarray() if sp.issparse(expected.X) else expected.X
    norm = Normalised(check_input(adata, "real", "target_gene", CONTROL))
    got = norm.block(np.arange(adata.n_obs)).toarray()
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_table_normalisation_is_scanpys_bit_for_bit():
    # Rows with enough values for the per-cell log1p(c / scale) table, with counts above
    # the table and near-integers (counts by the 1e-3 rule, but not table entries).
    rng = np.random.default_rng(8)
    dense = rng.poisson(rng.gamma(0.8, 2.0, 700), (60, 700)).astype(np.float32)
    dense[::7, ::5] += 80.0
    dense[3, :40] += 0.0004
    adata = ad.AnnData(
        X=sp.csr_matrix(dense),
        obs=pd.DataFrame(
            {"target_gene": pd.Categorical([CONTROL] * 30 + ["P1"] * 30)},
            index=[f"c{i}" for i in range(60)],
        ),
        var=pd.DataFrame(index=[f"G{j}" for j in range(700)]),
    )
    expected = adata.copy()
    sc.pp.normalize_total(expected)
    sc.pp.log1p(expected)
    want = expected.X.toarray()
    norm = Normalised(check_input(adata, "real", "target_gene", CONTROL))
    assert norm.X.nnz > 4 * pseudobulk._TABLE_COUNTS * adata.n_obs  # the table is used
    got = norm.block(np.arange(adata.n_obs)).toarray()
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    # The compiled path reads the raw counts through a table and a rest list instead.
    raw, indices, indptr = norm.raw_csr()
    source = rank_stats.count_source(raw, indptr, norm.scale, 16)
    assert source.table.shape == (adata.n_obs, pseudobulk._TABLE_COUNTS)
    assert 0 < source.rest_positions.size < raw.size // 10
    read = sp.csr_matrix((_through_source(raw, indptr, source), indices, indptr), adata.shape)
    np.testing.assert_array_equal(read.toarray().view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_median_is_numpys_bit_for_bit(dtype):
    rng = np.random.default_rng(5)
    for size in (1, 2, 7, 10, 5500, 5501):
        values = (rng.gamma(2.0, 900.0, size) * rng.random(size)).astype(dtype)
        values[: size // 3] = values[0]  # ties
        got, want = pseudobulk.median(values), np.median(values)
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), size


def test_integer_counts_and_float16_log1p_are_accepted():
    counts = small_counts(seed=1)
    as_int = counts.copy()
    as_int.X = as_int.X.astype(np.int64)
    a = challenge_score(as_int, counts).per_perturbation
    b = challenge_score(counts, counts).per_perturbation
    pd.testing.assert_frame_equal(a, b)
    logged = counts.copy()
    sc.pp.normalize_total(logged)
    sc.pp.log1p(logged)
    half = logged.copy()
    half.X = half.X.toarray().astype(np.float16)
    result = challenge_score(half, logged)
    assert set(result.per_perturbation.index) == {"GENE003", "P2", "P3"}


# ---------------------------------------------------------------- handled, not rejected


def test_explicit_zeros_are_zeros():
    adata = small_counts(seed=4)
    stored = adata.copy()
    dense = stored.X.toarray()
    rows, cols = np.nonzero(dense == 0)
    keep = np.random.default_rng(0).random(rows.size) < 0.3
    # Same matrix, with 30 % of its zeros stored explicitly.
    data = np.concatenate([stored.X.data, np.zeros(keep.sum(), np.float32)])
    r = np.concatenate([np.repeat(np.arange(dense.shape[0]), np.diff(stored.X.indptr)), rows[keep]])
    c = np.concatenate([stored.X.indices, cols[keep]])
    stored.X = sp.csr_matrix((data, (r, c)), shape=dense.shape)
    stored.X.sum_duplicates()
    assert (stored.X.data == 0).sum() == keep.sum()
    got = challenge_score(stored, stored)
    want = challenge_score(adata, adata)
    pd.testing.assert_frame_equal(got.per_perturbation, want.per_perturbation)


def test_unused_categories_are_ignored():
    adata = small_counts(seed=6)
    extra = adata.copy()
    extra.obs["target_gene"] = extra.obs["target_gene"].cat.add_categories(["UNUSED"])
    pd.testing.assert_frame_equal(
        challenge_score(extra, adata).per_perturbation,
        challenge_score(adata, adata).per_perturbation,
    )


def test_cells_in_any_order_and_counts_differ():
    adata = small_counts(seed=7)
    shuffled = adata[np.random.default_rng(1).permutation(adata.n_obs)].copy()
    pd.testing.assert_frame_equal(
        challenge_score(shuffled, adata).per_perturbation,
        challenge_score(adata, adata).per_perturbation,
    )


# ---------------------------------------------------------------- rejected with one line


def _bad(modify):
    adata = small_counts(seed=8)
    pred = adata.copy()
    modify(pred)
    return pred, adata


def _set_value(value):
    def modify(a):
        a.X = a.X.astype(np.float32)
        a.X.data[3] = value

    return modify


def _log_with_max(a):
    a.X = a.X.astype(np.float32)
    a.X.data[:] = np.log1p(a.X.data)
    a.X.data[0] = 20.5


def _reorder_genes(a):
    a._inplace_subset_var(np.r_[1, 0, 2 : a.n_vars])


def _rename_gene(a):
    a.var_names = ["OTHER"] + list(a.var_names[1:])


def _relabel(a):
    a.obs["target_gene"] = a.obs["target_gene"].cat.rename_categories({"P2": "P9"})


def _drop_control(a):
    a.obs["target_gene"] = a.obs["target_gene"].cat.rename_categories({CONTROL: "ctrl"})


def _nan_label(a):
    labels = a.obs["target_gene"].astype(object)
    labels.iloc[0] = np.nan
    a.obs["target_gene"] = labels


@pytest.mark.parametrize(
    ("modify", "words"),
    [
        (_set_value(np.nan), "NaN"),
        (_set_value(np.inf), "infinite"),
        (_set_value(-1.0), "negative"),
        (_log_with_max, "neither counts nor log1p"),
        (_reorder_genes, "another order"),
        (_rename_gene, "different names"),
        (_relabel, "different perturbations"),
        (_drop_control, "no control cells"),
        (_nan_label, "missing labels"),
        (lambda a: a.obs.rename(columns={"target_gene": "guide"}, inplace=True), "no column"),
    ],
)
@pytest.mark.parametrize("path", ["compiled", "numpy"])
def test_bad_prediction_gets_a_one_line_error(modify, words, path, monkeypatch):
    if path == "numpy":  # validation without the compiled scan gives the same errors
        monkeypatch.setattr(compiled, "kernels", None)
    pred, real = _bad(modify)
    with pytest.raises(InputError) as err:
        challenge_score(pred, real)
    message = str(err.value)
    assert words in message and "\n" not in message and "pred" in message
    assert ":" in message  # problem, then the fix


def test_other_misuse_is_rejected():
    adata = small_counts(seed=9)
    with pytest.raises(InputError, match="pass one"):
        challenge_score(adata, adata, baseline=adata, reference=adata)
    with pytest.raises(InputError, match="not an AnnData"):
        challenge_score(adata.X, adata)
    only_control = adata[adata.obs["target_gene"] == CONTROL].copy()
    with pytest.raises(InputError, match="only control"):
        challenge_score(only_control, only_control)
    missing = adata.copy()
    missing.X = missing.X.astype(np.float32)
    with pytest.raises(InputError, match="reference"):
        _drop_control(missing)
        challenge_score(adata, adata, reference=missing)


# ---------------------------------------------------------------- score block


def test_score_normalisation_rules():
    user = pd.Series({"overlap_at_N": 0.5, "mae": 0.1, "discrimination_score_l1": 0.4})
    base = pd.Series({"overlap_at_N": 0.2, "mae": 0.2, "discrimination_score_l1": 0.6})
    score = score_against_baseline(user, base)
    assert score["overlap_at_N"] == pytest.approx(0.375)
    assert score["mae"] == pytest.approx(0.5)
    assert score["discrimination_score_l1"] == 0.0  # worse than baseline: clipped
    assert score["avg_score"] == pytest.approx((0.375 + 0.5) / 3)
    assert score["leaderboard_x100"] == pytest.approx(100 * score["avg_score"])
    perfect_base = pd.Series({"overlap_at_N": 1.0, "mae": 0.0, "discrimination_score_l1": 1.0})
    degenerate = score_against_baseline(perfect_base, perfect_base)
    assert degenerate[["overlap_at_N", "mae", "discrimination_score_l1"]].tolist() == [0, 0, 0]
    assert {m.name: m.best for m in REGISTRY.values()} == {
        "overlap_at_N": 1.0,
        "mae": 0.0,
        "discrimination_score_l1": 1.0,
    }


def test_real_is_validated_once_with_a_baseline(monkeypatch):
    from samsvae_plus.challenge import inputs as challenge_inputs

    adata, names = small_counts(seed=10), []
    checked = challenge_inputs.check_input

    def counting(adata, name, *args):
        names.append(name)
        return checked(adata, name, *args)

    monkeypatch.setattr(challenge_inputs, "check_input", counting)
    noisy = adata.copy()
    noisy.X = noisy.X * 2
    result = challenge_score(noisy, adata, baseline=adata)
    assert sorted(names) == ["baseline", "pred", "real"]
    # The baseline equals the real data here: its means are the perfect ones.
    assert result.baseline_mean["discrimination_score_l1"] == 1.0


def test_result_dict_layout():
    adata = small_counts(seed=10)
    result = challenge_score(adata, adata, reference=adata).to_dict()
    assert set(result) == {"per_perturbation", "mean", "baseline", "score"}
    row = result["per_perturbation"]["P2"]
    assert set(row) == {
        "overlap_at_N",
        "mae",
        "discrimination_score_l1",
        "de_nsig_real",
        "de_nsig_pred",
        "n_cells_real",
        "n_cells_pred",
    }
    assert row["n_cells_real"] == 18 and isinstance(row["de_nsig_real"], int)
    assert set(result["score"]) == {
        "overlap_at_N",
        "mae",
        "discrimination_score_l1",
        "avg_score",
        "leaderboard_x100",
    }
    assert set(result["baseline"]) == {"mean"}
    assert result["mean"]["discrimination_score_l1_centered"] == 1.0
    assert challenge_score(adata, adata).to_dict()["score"] is None


def test_value_spans_cover_every_position_in_about_limit_values():
    starts = np.array([0, 5, 5, 12, 20])  # genes of 5, 0, 7 and 8 values
    assert value_spans(starts, 6) == [(0, 2), (2, 3), (3, 4)]
    assert value_spans(starts, 100) == [(0, 4)]
    assert value_spans(np.array([0]), 10) == []


def test_checks_side_by_side_raise_the_real_files_problem_first():
    from concurrent.futures import ThreadPoolExecutor

    from samsvae_plus.challenge.inputs import check_pair

    real, pred = small_counts(seed=3), small_counts(seed=4)
    real.X = real.X.toarray()
    real.X[0, 0] = np.nan
    pred = pred[pred.obs["target_gene"] != CONTROL].copy()  # no control
    messages = []
    for executor in (None, ThreadPoolExecutor(max_workers=2)):
        with pytest.raises(InputError) as err:
            check_pair(
                pred,
                real,
                perturbation_key="target_gene",
                control_label=CONTROL,
                executor=executor,
            )
        messages.append(str(err.value))
    assert "real.X contains NaN" in messages[0]
    assert messages[0] == messages[1]


def _per_group_stats(values, indices, indptr, group_of_row, sizes, n_genes):
    """:class:`rank_stats.JointStats` by the per-group path's steps (numpy): each group's
    rows cut out as a zero-free block, summed, and ranked against the control's."""
    X = sp.csr_matrix((values, indices, indptr), shape=(indptr.size - 1, n_genes))
    codes = de.ValueCodes(values.dtype, [values[values != 0]])
    blocks = []
    for g in range(sizes.size):
        block = X[np.flatnonzero(group_of_row == g)]
        block.eliminate_zeros()
        blocks.append(block)
    control = de.ControlIndex(de.block_runs(blocks[0], codes), n_genes, codes.width)
    tests = [de.rank_sums(de.block_runs(b, codes), control, n_genes) for b in blocks[1:]]
    return rank_stats.JointStats(
        sums=np.stack([pseudobulk.block_sums(b, n_genes) for b in blocks]),
        u1=np.stack([t.u1 for t in tests]),
        tie=np.stack([t.tie for t in tests]),
        nonzero=np.stack([t.nonzero for t in tests]),
    )


def _through_source(raw: np.ndarray, indptr: np.ndarray, source) -> np.ndarray:
    """What the kernel reads for raw counts with a CountSource, computed with numpy."""
    rows = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
    width = source.table.shape[1]
    counts = raw.astype(np.int64).clip(0, width - 1)
    values = source.table[rows, counts]
    values[source.rest_positions] = source.rest_values
    return values


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_rank_stats_are_exact_whatever_the_order(dtype):
    # Cells in random order, and a count table that does not ascend with the count, leave
    # every run unsorted: the compiled path must sort them and still give the per-group
    # path's numbers exactly, for values as stored and for counts read through a table.
    rng = np.random.default_rng(21)
    X = sp.random(300, 40, density=0.5, random_state=3, format="csr", dtype=np.float64)
    X.data = np.round(X.data * 4, 1).astype(dtype)  # many ties
    group_of_row = rng.integers(0, 4, 300)
    group_of_row[:10] = 0
    sizes = np.bincount(group_of_row, minlength=4)

    def numpy_stats(values):
        return _per_group_stats(values, X.indices, X.indptr, group_of_row, sizes, 40)

    def assert_same(got, want):
        for field in ("sums", "u1", "tie", "nonzero"):
            np.testing.assert_array_equal(getattr(got, field), getattr(want, field), field)

    want = numpy_stats(X.data)
    for order in (None, rng.permutation(300)):
        got = rank_stats.rank_stats(X.data, X.indices, X.indptr, group_of_row, sizes, 40, order)
        assert_same(got, want)

    raw = rng.integers(0, 12, X.nnz).astype(dtype)  # stored zeros too
    raw[::13] += dtype(0.5)  # not a count of the table
    table = np.round(rng.random((300, 8)) * 3, 1).astype(dtype)
    table[:, 0] = 0
    rest = np.flatnonzero((raw >= 8) | (raw != np.trunc(raw)))
    source = rank_stats.CountSource(
        table, rest, np.round(rng.random(rest.size) * 3, 1).astype(dtype), n_buckets=5
    )
    want = numpy_stats(_through_source(raw, X.indptr, source))
    got = rank_stats.rank_stats(
        raw, X.indices, X.indptr, group_of_row, sizes, 40, rng.permutation(300), source
    )
    assert_same(got, want)


def test_compiled_rank_stats_reject_out_of_range_input():
    X = sp.csr_matrix(np.ones((4, 3), dtype=np.float32))
    groups = np.array([0, 0, 1, 1])
    with pytest.raises(ValueError, match="out of range"):
        rank_stats.rank_stats(X.data, X.indices + 1, X.indptr, groups, np.array([2, 2]), 3)
    with pytest.raises(ValueError, match="out of range"):
        rank_stats.rank_stats(X.data, X.indices, X.indptr, groups + 5, np.array([2, 2]), 3)
    with pytest.raises(ValueError, match="indptr"):
        rank_stats.rank_stats(X.data, X.indices, X.indptr[::-1], groups, np.array([2, 2]), 3)
    table = np.zeros((4, 1), dtype=np.float32)
    for rest in ([], [5, 2]):  # a count beyond the table not listed; a list out of order
        source = rank_stats.CountSource(
            table, np.array(rest, dtype=np.int64), np.ones(len(rest), np.float32), 1
        )
        with pytest.raises(ValueError, match="out of range"):
            rank_stats.rank_stats(
                X.data, X.indices, X.indptr, groups, np.array([2, 2]), 3, None, source
            )


def test_compiled_erfc_is_math_erfc_bit_for_bit(monkeypatch):
    # p-values must keep the reference's bits: the compiled erfc is the C library's, which
    # math.erfc calls; both paths are checked against math.erfc itself.
    x = np.concatenate([np.linspace(-3, 40, 20001), np.random.default_rng(3).normal(3, 4, 4999)])
    want = np.array([math.erfc(v) for v in x.tolist()])
    assert compiled.kernels is not None, "the C extension was not built"
    np.testing.assert_array_equal(de.erfc(x).view(np.uint64), want.view(np.uint64))
    monkeypatch.setattr(compiled, "kernels", None)
    got = de.erfc(x.reshape(5, -1))
    np.testing.assert_array_equal(got.ravel().view(np.uint64), want.view(np.uint64))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_value_scan_is_numpys(dtype):
    # The validation's one compiled pass must say what numpy's min, max and
    # x - floor(x) > tolerance say, including fractions right at the tolerance, values
    # beyond the rounding trick's range, negative zero and non-finite values.
    from samsvae_plus.challenge.inputs import FRACTION_TOLERANCE, _compiled_scan

    tol = dtype(FRACTION_TOLERANCE)
    edges = np.array(
        [0, -0.0, 1, 7, 2.0**23 + 2, 2.0**60, 3 + tol, 3 + np.nextafter(tol, 1), 0.5, 1e-30],
        dtype=dtype,
    )
    rng = np.random.default_rng(9)
    cases = [edges[:2], edges[:5], edges]
    cases += [np.round(rng.gamma(1, 5, 1000)).astype(dtype) + e for e in edges[6:9]]
    cases += [np.append(edges, bad).astype(dtype) for bad in (np.nan, np.inf, -2.5)]
    for values in cases:
        finite, low, high, fraction = _compiled_scan(values)
        assert finite == bool(np.isfinite(values).all())
        if finite:
            assert (low, high) == (float(values.min()), float(values.max()))
            if low >= 0:
                assert fraction == bool((values - np.floor(values) > FRACTION_TOLERANCE).any())
