"""``samsvae-plus score`` and ``samsvae-plus prep`` end to end, on small synthetic files."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from samsvae_plus.challenge.files import read_scorer_file
from samsvae_plus.challenge.inputs import check_input
from samsvae_plus.challenge.score import challenge_score, score_tables
from samsvae_plus.cli import main as cli
from samsvae_plus.errors import InputError
from samsvae_plus.testing.challenge_cases import CaseSpec, challenge_case

SPEC = CaseSpec(seed=5, n_perturbations=8, cells=(30, 40), n_control=60, n_genes=150)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    case = challenge_case(SPEC)
    folder = tmp_path_factory.mktemp("challenge_cli")
    for name in ("real", "noisy", "reference"):
        case[name].write_h5ad(folder / f"{name}.h5ad")
    return folder, case


@pytest.fixture
def run(capsys):
    def invoke(*argv: str) -> tuple[int, str, str]:
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def test_score_writes_the_documented_json(files, run):
    folder, case = files
    out = folder / "result.json"
    code, stdout, _ = run(
        "score",
        "--pred",
        str(folder / "noisy.h5ad"),
        "--real",
        str(folder / "real.h5ad"),
        "--reference",
        str(folder / "reference.h5ad"),
        "--out",
        str(out),
    )
    assert code == 0
    lines = stdout.strip().splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith("scored 8 perturbations")
        and "avg_score" in lines[0]
    )
    result = json.loads(out.read_text())
    assert set(result) == {"per_perturbation", "mean", "baseline", "score"}
    want = challenge_score(case["noisy"], case["real"], reference=case["reference"]).to_dict()
    assert result == json.loads(json.dumps(want))


def test_score_without_baseline_has_null_blocks(files, run):
    folder, _ = files
    out = folder / "plain.json"
    code, _, _ = run(
        "score",
        "--pred",
        str(folder / "noisy.h5ad"),
        "--real",
        str(folder / "real.h5ad"),
        "--out",
        str(out),
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert result["baseline"] is None and result["score"] is None


def test_score_bad_input_exits_2_with_one_line(files, run, tmp_path):
    folder, case = files
    bad = case["noisy"].copy()
    bad.X = bad.X.astype(np.float32)
    bad.X.data[0] = np.nan
    bad.write_h5ad(tmp_path / "bad.h5ad")
    code, stdout, stderr = run(
        "score",
        "--pred",
        str(tmp_path / "bad.h5ad"),
        "--real",
        str(folder / "real.h5ad"),
        "--out",
        str(tmp_path / "r.json"),
    )
    assert code == 2 and stdout == ""
    assert stderr.count("\n") == 1 and "NaN" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "r.json").exists()
    code, _, stderr = run(
        "score",
        "--pred",
        str(tmp_path / "missing.h5ad"),
        "--real",
        str(folder / "real.h5ad"),
        "--out",
        str(tmp_path / "r.json"),
    )
    assert code == 2 and "does not exist" in stderr


@pytest.mark.parametrize("command", ["score", "prep"])
def test_help(run, command):
    with pytest.raises(SystemExit) as exit_:
        run(command, "--help")
    assert exit_.value.code == 0


def test_prep_writes_the_scorer_layout(files, run, tmp_path):
    folder, case = files
    real = case["real"]
    # A model's output: extra obs columns, genes shuffled plus one extra, no controls, dense.
    pred = case["noisy"][case["noisy"].obs["target_gene"] != "non-targeting"].copy()
    order = np.random.default_rng(0).permutation(pred.n_vars)
    pred = pred[:, order].copy()
    pred.X = pred.X.toarray().astype(np.float64)
    pred.obs["guide"] = "g1"
    pred.obs = pred.obs.rename(columns={"target_gene": "condition"})
    extra = ad.AnnData(
        X=np.ones((pred.n_obs, 1)),
        obs=pred.obs,
        var=ad.AnnData(np.ones((1, 1))).var.set_axis(["EXTRA"]),
    )
    pred = ad.concat([pred, extra], axis=1, merge="same")
    pred.write_h5ad(tmp_path / "model.h5ad")
    out = tmp_path / "prepared.h5ad"
    code, stdout, err = run(
        "prep",
        "--pred",
        str(tmp_path / "model.h5ad"),
        "--genes",
        str(folder / "real.h5ad"),
        "--controls",
        str(folder / "real.h5ad"),
        "--perturbation-key",
        "condition",
        "--vcc",
        "--out",
        str(out),
    )
    assert code == 0, err
    assert stdout.startswith("prepared ") and stdout.count("\n") == 1
    prepared = ad.read_h5ad(out)
    assert list(prepared.obs.columns) == ["target_gene"]
    assert sp.issparse(prepared.X) and prepared.X.format == "csr"
    assert prepared.X.dtype == np.float32 and not (prepared.X.data == 0).any()
    assert list(prepared.var_names) == list(real.var_names)
    assert (prepared.obs["target_gene"] == "non-targeting").sum() == (
        real.obs["target_gene"] == "non-targeting"
    ).sum()
    # Scoring the prepared file equals scoring the prediction with the real controls added.
    perturbed = case["noisy"][case["noisy"].obs["target_gene"] != "non-targeting"]
    direct = ad.concat([perturbed, real[real.obs["target_gene"] == "non-targeting"]])
    pd.testing.assert_frame_equal(
        challenge_score(prepared, real).per_perturbation,
        challenge_score(direct, real).per_perturbation,
    )


def test_prep_and_score_keep_the_users_keys(files, run, tmp_path):
    """Without --vcc, prep keeps the input's key and control label, and score reads them
    in every file: the numbers are those of the challenge layout."""
    folder, case = files

    def relabel(adata):
        adata = adata.copy()
        labels = adata.obs.pop("target_gene").astype(str).replace({"non-targeting": "NT"})
        adata.obs["gene"] = labels.astype("category")
        return adata

    relabel(case["noisy"]).write_h5ad(tmp_path / "pred.h5ad")
    relabel(case["real"]).write_h5ad(tmp_path / "real.h5ad")
    relabel(case["reference"]).write_h5ad(tmp_path / "reference.h5ad")
    keys = ("--perturbation-key", "gene", "--control-label", "NT")
    code, stdout, err = run(
        "prep",
        "--pred",
        str(tmp_path / "pred.h5ad"),
        "--genes",
        str(tmp_path / "real.h5ad"),
        *keys,
        "--out",
        str(tmp_path / "prepared.h5ad"),
    )
    assert code == 0, err
    assert "obs['gene']" in stdout
    prepared = ad.read_h5ad(tmp_path / "prepared.h5ad")
    assert list(prepared.obs.columns) == ["gene"]
    assert (prepared.obs["gene"] == "NT").sum() == (
        case["noisy"].obs["target_gene"] == "non-targeting"
    ).sum()
    code, stdout, err = run(
        "score",
        "--pred",
        str(tmp_path / "prepared.h5ad"),
        "--real",
        str(tmp_path / "real.h5ad"),
        "--reference",
        str(tmp_path / "reference.h5ad"),
        *keys,
        "--out",
        str(tmp_path / "result.json"),
    )
    assert code == 0, err
    want = challenge_score(case["noisy"], case["real"], reference=case["reference"])
    assert json.loads((tmp_path / "result.json").read_text()) == json.loads(
        json.dumps(want.to_dict())
    )
    # --vcc writes the challenge's key and control label from the user's
    code, _, err = run(
        "prep",
        "--pred",
        str(tmp_path / "pred.h5ad"),
        "--genes",
        str(tmp_path / "real.h5ad"),
        *keys,
        "--vcc",
        "--out",
        str(tmp_path / "vcc.h5ad"),
    )
    assert code == 0, err
    vcc = ad.read_h5ad(tmp_path / "vcc.h5ad")
    assert list(vcc.obs.columns) == ["target_gene"]
    assert set(vcc.obs["target_gene"]) == set(case["noisy"].obs["target_gene"])


def test_score_line_shows_the_baseline_beside_the_model(files, run):
    folder, case = files
    code, stdout, _ = run(
        "score",
        "--pred",
        str(folder / "noisy.h5ad"),
        "--real",
        str(folder / "real.h5ad"),
        "--reference",
        str(folder / "reference.h5ad"),
        "--out",
        str(folder / "beside.json"),
    )
    assert code == 0
    result = challenge_score(case["noisy"], case["real"], reference=case["reference"])
    for name, metric in (("PDS", "discrimination_score_l1"), ("DES", "overlap_at_N")):
        model, baseline = result.mean[metric], result.baseline_mean[metric]
        assert f"{name} {model:.4f} (baseline {baseline:.4f})" in stdout
    assert f"MAE {result.mean['mae']:.4f} (baseline {result.baseline_mean['mae']:.4f})" in stdout
    # without a baseline there is nothing to show beside the model
    code, stdout, _ = run(
        "score",
        "--pred",
        str(folder / "noisy.h5ad"),
        "--real",
        str(folder / "real.h5ad"),
        "--out",
        str(folder / "alone.json"),
    )
    assert code == 0 and "baseline" not in stdout


def test_prep_without_controls_is_rejected(files, run, tmp_path):
    folder, case = files
    pred = case["noisy"][case["noisy"].obs["target_gene"] != "non-targeting"].copy()
    pred.write_h5ad(tmp_path / "no_controls.h5ad")
    code, _, stderr = run(
        "prep",
        "--pred",
        str(tmp_path / "no_controls.h5ad"),
        "--genes",
        str(folder / "real.h5ad"),
        "--out",
        str(tmp_path / "p.h5ad"),
    )
    assert code == 2 and "no control cells" in stderr and "--controls" in stderr


# ---------------------------------------------------------------- h5py-only reading


@pytest.mark.parametrize("layout", ["csr", "dense", "csc", "strings", "integer_counts"])
def test_light_reader_scores_like_anndata(files, tmp_path, layout):
    folder, case = files
    pred = case["noisy"].copy()
    convert = True
    if layout == "dense":
        pred.X = pred.X.toarray()
    elif layout == "csc":
        pred.X = sp.csc_matrix(pred.X)
    elif layout == "strings":
        pred.obs["target_gene"] = pred.obs["target_gene"].astype(str).to_numpy(dtype=object)
        convert = False
    elif layout == "integer_counts":
        pred.X = pred.X.astype(np.int64)
    pred.write_h5ad(tmp_path / "pred.h5ad", convert_strings_to_categoricals=convert)
    light = read_scorer_file(tmp_path / "pred.h5ad", "target_gene")
    assert light is not None
    real = read_scorer_file(folder / "real.h5ad", "target_gene")
    reference = read_scorer_file(folder / "reference.h5ad", "target_gene")
    got = score_tables(light, real, reference=reference).to_dict()
    want = challenge_score(pred, case["real"], reference=case["reference"]).to_dict()
    assert got == want


def _relabelled(adata, labels):
    out = adata.copy()
    out.obs["target_gene"] = pd.Categorical(labels)
    return out


@pytest.mark.parametrize(
    "defect", ["no_column", "missing_labels", "empty_label", "not_nfc", "duplicate_genes", "nan"]
)
def test_light_reader_reports_like_anndata(files, tmp_path, defect):
    _, case = files
    bad = case["noisy"].copy()
    key = "target_gene"
    labels = bad.obs[key].astype(str).to_numpy(dtype=object)
    if defect == "no_column":
        key = "guide"
    elif defect == "missing_labels":
        labels[:3] = np.nan
        bad = _relabelled(bad, labels)
    elif defect == "empty_label":
        labels[:2] = ""
        bad = _relabelled(bad, labels)
    elif defect == "not_nfc":
        labels[labels == labels[0]] = "A\u030a"
        bad = _relabelled(bad, labels)
    elif defect == "duplicate_genes":
        names = np.array(bad.var_names, dtype=object)  # a copy: the index is shared
        names[3] = names[1]
        bad.var_names = names
    elif defect == "nan":
        bad.X = bad.X.astype(np.float32)
        bad.X.data[5] = np.nan
    bad.write_h5ad(tmp_path / "bad.h5ad")
    light = read_scorer_file(tmp_path / "bad.h5ad", key)
    assert light is not None
    messages = []
    for source in (bad, light):
        with pytest.raises(InputError) as err:
            check_input(source, "pred", key, "non-targeting")
        messages.append(str(err.value))
    assert messages[0] == messages[1]


def test_light_reader_leaves_other_files_to_anndata(tmp_path):
    (tmp_path / "not.h5ad").write_text("not hdf5")
    assert read_scorer_file(tmp_path / "not.h5ad", "target_gene") is None
    import h5py

    with h5py.File(tmp_path / "old.h5ad", "w") as f:  # no anndata encoding attributes
        f.create_dataset("X", data=np.ones((2, 2)))
    assert read_scorer_file(tmp_path / "old.h5ad", "target_gene") is None


def test_score_command_scores_without_importing_scipy_anndata_or_pandas(files, tmp_path):
    # A fresh interpreter, as a user's cold start: the h5py reader and the compiled path
    # need none of the three (importing them is most of a cold start), nor numpy.ma
    # (which np.unique and np.median import on first use).
    import subprocess
    import sys

    folder, _ = files
    out = tmp_path / "result.json"
    code = (
        "import sys\n"
        "from samsvae_plus.cli import main\n"
        f"assert main.main(['score', '--pred', {str(folder / 'noisy.h5ad')!r}, "
        f"'--real', {str(folder / 'real.h5ad')!r}, '--out', {str(out)!r}]) == 0\n"
        "print(sorted(m for m in ('scipy.sparse', 'anndata', 'pandas', 'numpy.ma') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    want = challenge_score(
        ad.read_h5ad(folder / "noisy.h5ad"), ad.read_h5ad(folder / "real.h5ad")
    ).to_dict()
    assert json.loads(out.read_text())["mean"] == want["mean"]


def test_csr_arrays_check_their_layout_and_act_like_scipy():
    from samsvae_plus.challenge.csr_arrays import CSRArrays, as_scipy, is_sparse

    dense = np.array([[0, 2, 0], [1, 0, 0], [0, 0, 0]], dtype=np.float32)
    ref = sp.csr_matrix(dense)
    X = CSRArrays(ref.data, ref.indices, ref.indptr, ref.shape)
    assert is_sparse(X) and is_sparse(ref) and not is_sparse(dense)
    assert (X.nnz, X.size, X.max(), X.dtype) == (ref.nnz, ref.size, ref.max(), ref.dtype)
    np.testing.assert_array_equal(as_scipy(X).toarray(), dense)
    # No implicit zero: the maximum is the stored one, even when negative.
    full = CSRArrays(np.array([-1.0, -2.0]), np.array([0, 0]), np.array([0, 1, 2]), (2, 1))
    assert full.max() == -1.0
    with pytest.raises(ValueError, match="column indices"):
        CSRArrays(ref.data, ref.indices + 2, ref.indptr, ref.shape)
    with pytest.raises(ValueError, match="not decrease"):
        CSRArrays(ref.data, ref.indices, np.array([0, 2, 1, 2]), ref.shape)
    with pytest.raises(ValueError, match="4 entries"):
        CSRArrays(ref.data, ref.indices, ref.indptr[:-1], ref.shape)
