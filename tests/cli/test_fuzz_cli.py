"""Property-based fuzzing of the command line on fuzzed h5ad files.

``samsvae-plus train``, ``score`` and ``prep`` run in-process on files written from the
registration and scorer strategies (every defect an h5ad file can hold), on unreadable or
missing files, and with bad options. Invariant: exit code 0 with a complete output, or
exit code 2 with exactly one line on stderr, no traceback and no output; for ``train`` and
``score`` the code is 2 exactly when the input has a defect.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sps
from helpers.fuzz_scorer_strategies import SCORER_FILE_DEFECTS, scorer_cases
from helpers.fuzz_strategies import (
    CONTROL,
    FILE_DEFECTS,
    FUZZ,
    MOSTLY_CLEAN,
    PATTERNS,
    QUIET_NAMES,
    SCORER_CONTROL,
    message_names_a_defect,
    registration_cases,
    some_of,
)
from helpers.hypothesis_profiles import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from samsvae_plus.cli.main import main

# At the ci profile's counts every fuzz test takes seconds to minutes.
pytestmark = [QUIET_NAMES, pytest.mark.slow]

# Defects of the command line itself, with what the message must mention (the library's
# keywords as the command's flags).
PATTERNS.update(
    {
        "missing_file": r"does not exist",
        "unreadable_file": r"not a readable h5ad file",
        "bad_max_epochs_arg": r"--max-epochs must be a positive integer",
        "bad_batch_size_arg": r"--batch-size must be a positive integer",
        "bad_lr_arg": r"lr must be a positive, finite number",
        "bad_latent_dim_arg": r"--latent-dim must be at least 1",
        "bad_guide_arg": r"--guide .* is not available",
        "bad_mask_prior_arg": r"--mask-prior must lie strictly between 0 and 1",
        "bad_device_arg": r"device .* is not a device|needs CUDA",
        "bad_dense_epochs_arg": r"--dense-epochs must be an integer",
        "out_inside_file": r"which is a file",
        "out_is_directory": r"is a directory",
    }
)
BAD_TRAIN_ARGS = {
    "bad_max_epochs_arg": ["--max-epochs", "0"],
    "bad_batch_size_arg": ["--batch-size", "-2"],
    "bad_lr_arg": ["--lr", "nan"],
    "bad_latent_dim_arg": ["--latent-dim", "0"],
    "bad_guide_arg": ["--guide", "nope"],
    "bad_mask_prior_arg": ["--mask-prior", "1.5"],
    "bad_device_arg": ["--device", "tpu:7"],
    "bad_dense_epochs_arg": ["--dense-epochs", "3"],
}
FILE_ARG_DEFECTS = ["missing_file", "unreadable_file", "out_inside_file"]


def write(adata, path: Path) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adata.write_h5ad(path)
    return str(path)


def spoil(argv: list[str], how: str, tmp: Path) -> None:
    """Point the first input (argv[2]) at a missing or unreadable file, or --out at a path
    that cannot be written."""
    if how == "missing_file":
        argv[2] += ".missing.h5ad"
    elif how == "unreadable_file":
        Path(argv[2]).write_bytes(b"not an HDF5 file\n")
    elif how == "out_inside_file":
        (tmp / "a_file").write_text("x")
        argv[argv.index("--out") + 1] = str(tmp / "a_file" / "out")
    elif how == "out_is_directory":
        (tmp / "a_dir").mkdir()
        argv[argv.index("--out") + 1] = str(tmp / "a_dir")


def run_cli(argv: list[str]) -> tuple[int, str]:
    """Run ``samsvae-plus ARGV`` in this process; return the exit code and stderr."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        code = main(argv)
    return code, stderr.getvalue()


def check_exit(code: int, err: str, defects, command: str) -> None:
    """0 without defects; 2 with one line naming one of them (and no traceback)."""
    assert code in (0, 2), (code, err)
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in err, err
        assert lines[0].startswith(f"samsvae-plus {command}: error: "), err
        assert defects, f"clean input rejected: {err}"
        assert message_names_a_defect(lines[0], defects), f"{defects}: {err}"
    else:
        assert not defects, f"input with defects {defects} exited 0"


@st.composite
def train_invocations(draw):
    case = draw(
        registration_cases(FILE_DEFECTS, for_files=True, max_cells=8, defect_counts=MOSTLY_CLEAN)
    )
    cli_defects = draw(some_of([*FILE_ARG_DEFECTS, *BAD_TRAIN_ARGS], (0, 0, 0, 1)))
    return case, cli_defects


@settings(max_examples=examples(250), **FUZZ)
@given(train_invocations())
def test_train_command_exits_0_or_2_with_one_line(invocation):
    case, cli_defects = invocation
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = write(case.adata, tmp / "data.h5ad")
        kwargs = case.setup_kwargs
        argv = ["train", "--data", data, "--perturbation-key", kwargs["perturbation_key"]]
        argv += ["--control-label", kwargs["control_label"], "--out", str(tmp / "out")]
        for key in ("context_key", "layer", "library_size_key", "combination_delimiter"):
            if key in kwargs:
                argv += [f"--{key.replace('_', '-')}", kwargs[key]]
        argv += ["--max-epochs", "1", "--n-particles", "1", "--latent-dim", "2", "--no-progress"]
        for defect in cli_defects:
            if defect in BAD_TRAIN_ARGS:
                argv += BAD_TRAIN_ARGS[defect]
            else:
                spoil(argv, defect, tmp)
        code, err = run_cli(argv)
        check_exit(code, err, case.defects + tuple(cli_defects), "train")
        if code == 2:
            assert not (tmp / "out").exists()
            return
        history = json.loads((tmp / "out" / "history.json").read_text())
        assert len(history["train_elbo"]) == 1 and np.isfinite(history["train_elbo"]).all()
        assert (tmp / "out" / "params.pt").stat().st_size > 0


@st.composite
def score_invocations(draw):
    case = draw(scorer_cases(SCORER_FILE_DEFECTS, for_files=True))
    cli_defects = draw(some_of([*FILE_ARG_DEFECTS, "out_is_directory"], (0, 0, 0, 1)))
    return case, cli_defects


@settings(max_examples=examples(150), **FUZZ)
@given(score_invocations())
def test_score_command_exits_0_or_2_with_one_line(invocation):
    case, cli_defects = invocation
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pred, real = write(case.pred, tmp / "pred.h5ad"), write(case.real, tmp / "real.h5ad")
        out = tmp / "score.json"
        argv = ["score", "--pred", pred, "--real", real, "--out", str(out)]
        argv += ["--perturbation-key", "target_gene", "--control-label", SCORER_CONTROL]
        for name, adata in case.options.items():
            argv += [f"--{name}", write(adata, tmp / f"{name}.h5ad")]
        for defect in cli_defects:
            spoil(argv, defect, tmp)
        code, err = run_cli(argv)
        check_exit(code, err, case.defects + tuple(cli_defects), "score")
        if code == 2:
            assert not out.exists()
            return
        result = json.loads(out.read_text())
        assert sorted(result["per_perturbation"]) == sorted(case.perturbations)
        assert np.isfinite(list(result["mean"].values())).all()


@settings(max_examples=examples(150), **FUZZ)
@given(scorer_cases(SCORER_FILE_DEFECTS, for_files=True), st.booleans(), st.booleans())
def test_prep_command_exits_0_or_2_with_one_line(case, genes_as_text, with_controls):
    """``prep`` reorders genes and tolerates other label sets, so only the exit contract
    and the layout of a written file are checked, not which defects it rejects."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pred = write(case.pred, tmp / "pred.h5ad")
        if genes_as_text:
            genes = tmp / "genes.txt"
            genes.write_text("".join(f"{g}\n" for g in case.real.var_names), encoding="utf-8")
        else:
            genes = write(case.real, tmp / "genes.h5ad")
        out = tmp / "prepared.h5ad"
        argv = ["prep", "--pred", pred, "--genes", str(genes), "--out", str(out)]
        argv += ["--perturbation-key", "target_gene", "--control-label", SCORER_CONTROL]
        if with_controls:
            argv += ["--controls", write(case.real, tmp / "controls.h5ad")]
        code, err = run_cli(argv)
        assert code in (0, 2), (code, err)
        if code == 2:
            assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
            assert not out.exists()
            return
        prepared = ad.read_h5ad(out)
        assert list(prepared.obs.columns) == ["target_gene"]
        assert sps.issparse(prepared.X) and prepared.X.dtype == np.float32
        assert np.isfinite(prepared.X.data).all() and (prepared.X.data > 0).all()
        assert SCORER_CONTROL in set(prepared.obs["target_gene"])
        if genes_as_text:
            expected = [g.split(",")[0].strip() for g in case.real.var_names]
            assert list(prepared.var_names) == [g for g in expected if g]
        else:
            assert list(prepared.var_names) == list(case.real.var_names)


def test_train_command_on_unicode_labels_round_trips(tmp_path):
    """Non-ASCII perturbation, gene and context names survive h5ad, training and loading."""
    import pandas as pd

    import samsvae_plus as sp

    labels = [CONTROL, "ÉPÉE", "基因", "ÉPÉE+基因"] * 4
    adata = ad.AnnData(
        X=sps.csr_matrix(np.arange(1, 49).reshape(16, 3) % 5 + 1),
        obs=pd.DataFrame(
            {"condition": pd.Categorical(labels), "cell_type": ["細胞", "ctx"] * 8},
            index=[f"c{i}" for i in range(16)],
        ),
        var=pd.DataFrame(index=["基因", "ÉPÉE", "g"]),
    )
    data = write(adata, tmp_path / "unicode.h5ad")
    code, err = run_cli(
        ["train", "--data", data, "--perturbation-key", "condition", "--control-label", CONTROL]
        + ["--context-key", "cell_type", "--out", str(tmp_path / "model"), "--max-epochs", "1"]
        + ["--n-particles", "1", "--latent-dim", "2", "--no-progress"]
    )
    assert code == 0, err
    model = sp.SAMSVAE.load(tmp_path / "model")
    assert model.registry.perturbations == ("ÉPÉE", "基因")
    assert model.registry.contexts == ("ctx", "細胞")
    prediction = model.predict(adata[:4].copy(), ["ÉPÉE+基因"], seed=1)
    # predict adds the control's rows, so that the output can go straight to a scorer
    assert set(prediction.obs["condition"]) == {"ÉPÉE+基因", CONTROL}
    assert set(prediction.obs["cell_type"]) == {"細胞", "ctx"}
    effect = model.average_treatment_effect(["基因"], context="細胞", n_draws=2, n_cells=5)
    assert list(effect.index) == ["基因"] and np.isfinite(effect.to_numpy()).all()
