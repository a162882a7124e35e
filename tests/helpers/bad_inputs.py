"""A catalogue of bad inputs, one per row of the "Bad inputs" table in docs/reliability.md.

Each entry builds a small valid input, breaks one thing and returns the one-line message
the package answers with. ``tests/model/test_input_validation.py`` checks every message is an
InputError (or, for the CLI, exit code 2 with one line) and appears verbatim in that
table; ``python tests/helpers/bad_inputs.py`` prints it, so the table is generated from the
code, never written by hand.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import unicodedata
import warnings
from collections.abc import Callable
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sps

import samsvae_plus as sp
from samsvae_plus.errors import InputError

CONTROL = "control"


def registration_data() -> ad.AnnData:
    """Eight cells over three genes, perturbations 'ÉPÉE' and '基因', two contexts."""
    counts = np.array([[1, 2, 0], [0, 3, 1], [2, 0, 4], [1, 1, 1]] * 2, dtype=np.int64)
    labels = [CONTROL, "ÉPÉE", "基因", "ÉPÉE+基因"] * 2
    obs = pd.DataFrame(
        {"condition": pd.Categorical(labels), "cell_type": ["ctx0", "細胞"] * 4},
        index=[f"cell{i}" for i in range(8)],
    )
    return ad.AnnData(X=counts, obs=obs, var=pd.DataFrame(index=["g0", "g1", "g2"]))


def _set_value(value, dtype=np.float64):
    def change(adata):
        X = adata.X.astype(dtype)
        X[1, 0] = value
        adata.X = X

    return change


def _relabel(i: int, label):
    def change(adata):
        labels = adata.obs["condition"].astype(object).to_numpy()
        labels[i] = label
        adata.obs["condition"] = labels

    return change


def _quietly(function: Callable) -> Callable:
    def run(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return function(*args, **kwargs)

    return run


@_quietly
def setup_message(change: Callable | None = None, **kwargs) -> str:
    adata = registration_data()
    if change is not None:
        change(adata)
    try:
        sp.setup_anndata(
            adata, **{"perturbation_key": "condition", "control_label": CONTROL, **kwargs}
        )
    except InputError as err:
        return str(err)
    raise AssertionError("accepted")


def _names(attribute: str, names: list[str]) -> Callable:
    def change(adata):
        setattr(adata, attribute, names)

    return change


def _zero_cell(adata):
    X = adata.X.copy()
    X[3] = 0
    adata.X = X


def _cell_total_above_int32(adata):
    X = adata.X.astype(np.int64)
    X[2] = [2**30 + 1, 2**30 + 1, 0]
    adata.X = X


def _unused_level(adata):
    adata.obs["condition"] = adata.obs["condition"].cat.add_categories(["GHOST"])


def _bad_depth(adata):
    adata.obs["depth"] = [100.0, 0.0, 80.0, 90.0] * 2


REGISTRATION = [
    ("NaN in the counts", lambda: setup_message(_set_value(np.nan))),
    ("infinite count", lambda: setup_message(_set_value(np.inf))),
    ("negative count", lambda: setup_message(_set_value(-1.0))),
    ("non-integer count (normalised data)", lambda: setup_message(_set_value(0.5))),
    ("float16 matrix", lambda: setup_message(_set_value(1.0, np.float16))),
    ("object matrix", lambda: setup_message(_set_value(1, object))),
    ("a count above 2**31-1", lambda: setup_message(_set_value(2.0**31))),
    ("a cell total above 2**31-1", lambda: setup_message(_cell_total_above_int32)),
    ("cell with zero counts", lambda: setup_message(_zero_cell)),
    ("duplicate gene names", lambda: setup_message(_names("var_names", ["g0", "g0", "g2"]))),
    ("empty gene name", lambda: setup_message(_names("var_names", ["g0", "", "g2"]))),
    (
        "duplicate cell names",
        lambda: setup_message(_names("obs_names", ["c0", "c0", *map(str, range(6))])),
    ),
    (
        "label not in Unicode NFC form",
        lambda: setup_message(_relabel(1, unicodedata.normalize("NFD", "ÉPÉE"))),
    ),
    ("label with a control character", lambda: setup_message(_relabel(1, "ÉPÉE\x00"))),
    ("label with an invisible character", lambda: setup_message(_relabel(1, "ÉPÉE\u200b"))),
    (
        "gene name with a control character",
        lambda: setup_message(_names("var_names", ["g0", "g\t1", "g2"])),
    ),
    ("unused categorical level", lambda: setup_message(_unused_level)),
    ("missing label", lambda: setup_message(_relabel(1, None))),
    ("empty label", lambda: setup_message(_relabel(1, ""))),
    ("combination with an empty part ('ÉPÉE+')", lambda: setup_message(_relabel(1, "ÉPÉE+"))),
    ("combination naming a gene twice", lambda: setup_message(_relabel(3, "基因+基因"))),
    ("no control cells", lambda: setup_message(control_label="ctrl")),
    (
        "no control cells, and no label close",
        lambda: setup_message(control_label="NT"),
    ),
    ("`exclude=` naming the control label", lambda: setup_message(exclude=[CONTROL])),
    ("`exclude=` naming no cell's label", lambda: setup_message(exclude=["ÉPE"])),
    (
        "only control cells",
        lambda: setup_message(lambda a: a.obs.__setitem__("condition", CONTROL)),
    ),
    ("missing perturbation column", lambda: setup_message(perturbation_key="guide")),
    ("missing layer", lambda: setup_message(layer="counts")),
    ("library size of 0", lambda: setup_message(_bad_depth, library_size_key="depth")),
]


_MODEL = None


@_quietly
def trained_model():
    """A tiny SAMS-VAE on :func:`registration_data`, trained for one epoch."""
    global _MODEL
    if _MODEL is None:
        adata = registration_data()
        sp.setup_anndata(adata, "condition", CONTROL, context_key="cell_type")
        _MODEL = sp.SAMSVAE(adata, latent_dim=2, n_hidden=4, n_layers=1)
        _MODEL.train(max_epochs=1, n_particles=1, progress=False)
    return _MODEL


@_quietly
def model_message(call: Callable) -> str:
    try:
        call(trained_model())
    except InputError as err:
        return str(err)
    raise AssertionError("accepted")


def _controls(change: Callable | None = None) -> ad.AnnData:
    adata = registration_data()
    adata = adata[adata.obs["condition"] == CONTROL].copy()
    if change is not None:
        change(adata)
    return adata


def _unseen_context(adata):
    adata.obs["cell_type"] = "T cell"


def _log_normalised(adata):
    adata.X = np.log1p(adata.X.astype(np.float32))


PREDICTION = [
    (
        "unknown perturbation (predict)",
        lambda: model_message(lambda m: m.predict(_controls(), ["NOPE"])),
    ),
    (
        "combination naming an unknown gene",
        lambda: model_message(lambda m: m.predict(_controls(), ["ÉPÉE+NOPE"])),
    ),
    (
        "context not seen in training (predict)",
        lambda: model_message(lambda m: m.predict(_controls(_unseen_context), ["ÉPÉE"])),
    ),
    (
        "context not seen in training (sample)",
        lambda: model_message(lambda m: m.sample(["ÉPÉE"], context="T cell")),
    ),
    (
        "requested label not in NFC form",
        lambda: model_message(
            lambda m: m.sample([unicodedata.normalize("NFD", "ÉPÉE")], n_cells=2)
        ),
    ),
    (
        "cells with the genes in another order",
        lambda: model_message(lambda m: m.predict(_controls()[:, ["g2", "g1", "g0"]].copy())),
    ),
    (
        "cells without one of the model's genes",
        lambda: model_message(lambda m: m.predict(_controls()[:, :2].copy())),
    ),
    ("n_draws=0", lambda: model_message(lambda m: m.average_treatment_effect(n_draws=0))),
    (
        "library size beyond int32",
        lambda: model_message(lambda m: m.sample(["ÉPÉE"], library_size=1e40)),
    ),
    ("not an AnnData", lambda: model_message(lambda m: m.predict("cells.h5ad"))),
    (
        "log-normalised cells (predict)",
        lambda: model_message(lambda m: m.predict(_controls(_log_normalised), ["ÉPÉE"])),
    ),
]


def scorer_pair(change: Callable):
    """A valid (pred, real) pair (three labels x two cells, four genes, raw counts), with
    ``change`` applied to pred."""
    rng = np.random.default_rng(0)
    labels = ["non-targeting", "non-targeting", "P1", "P1", "P2", "P2"]
    files = []
    for _ in range(2):
        obs = pd.DataFrame(
            {"target_gene": pd.Categorical(labels)}, index=[f"c{i}" for i in range(6)]
        )
        files.append(
            ad.AnnData(
                X=sps.csr_matrix(rng.integers(0, 9, size=(6, 4)).astype(np.float32)),
                obs=obs,
                var=pd.DataFrame(index=["G0", "G1", "G2", "G3"]),
            )
        )
    pred, real = files
    change(pred)
    return pred, real


@_quietly
def scorer_message(change: Callable) -> str:
    pred, real = scorer_pair(change)
    try:
        sp.metrics.challenge_score(pred, real)
    except InputError as err:
        return str(err)
    raise AssertionError("accepted")


def _pred_value(value):
    def change(pred):
        X = pred.X.toarray().astype(np.float64)
        X[2, 1] = value
        pred.X = X

    return change


def _pred_labels(mapping: dict):
    def change(pred):
        pred.obs["target_gene"] = pred.obs["target_gene"].cat.rename_categories(mapping)

    return change


SCORER = [
    ("NaN in the prediction", lambda: scorer_message(_pred_value(np.nan))),
    ("values neither counts nor log1p", lambda: scorer_message(_pred_value(20.5))),
    ("a count above 2**31-1", lambda: scorer_message(_pred_value(2.0**31))),
    ("different perturbations", lambda: scorer_message(_pred_labels({"P2": "P9"}))),
    ("no control cells", lambda: scorer_message(_pred_labels({"non-targeting": "ctrl"}))),
    (
        "genes in another order",
        lambda: scorer_message(lambda p: p._inplace_subset_var([1, 0, 2, 3])),
    ),
    (
        "duplicate gene names",
        lambda: scorer_message(_names("var_names", ["G0", "G0", "G2", "G3"])),
    ),
    (
        "label not in NFC form",
        lambda: scorer_message(_pred_labels({"P1": unicodedata.normalize("NFD", "Å")})),
    ),
]


@_quietly
def cli_message(*argv: str) -> str:
    """Run the CLI in a scratch directory (so paths are short and relative); return the
    single stderr line of a failure."""
    from samsvae_plus.cli.main import main

    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            registration_data().write_h5ad("data.h5ad")
            Path("notes.txt").write_text("not an h5ad file\n")
            Path("binary.txt").write_bytes(b"\xff\xfe\x00 not text")
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                try:
                    code = main(list(argv))
                except SystemExit as exit_:
                    code = exit_.code
        finally:
            os.chdir(here)
    lines = err.getvalue().strip().splitlines()
    assert code == 2 and len(lines) == 1, (code, lines)
    return lines[0]


TRAIN = ["train", "--perturbation-key", "condition", "--control-label", CONTROL]
CLI = [
    ("missing file", lambda: cli_message(*TRAIN, "--data", "missing.h5ad", "--out", "m")),
    ("file that is not h5ad", lambda: cli_message(*TRAIN, "--data", "notes.txt", "--out", "m")),
    (
        "--out inside a file",
        lambda: cli_message(*TRAIN, "--data", "data.h5ad", "--out", "notes.txt/m"),
    ),
    (
        "device this machine lacks",
        lambda: cli_message(*TRAIN, "--data", "data.h5ad", "--out", "m", "--device", "tpu"),
    ),
    ("missing required option", lambda: cli_message("train", "--data", "data.h5ad")),
    (
        "wrong control label (the message names the flag)",
        lambda: cli_message(
            "train",
            "--perturbation-key",
            "condition",
            "--control-label",
            "Control",
            "--data",
            "data.h5ad",
            "--out",
            "m",
        ),
    ),
]

CATALOGUE = {
    "`sp.setup_anndata` (and `samsvae-plus train`)": REGISTRATION,
    "`predict` / `sample` / `average_treatment_effect`": PREDICTION,
    "`sp.metrics.challenge_score` (and `samsvae-plus score`)": SCORER,
    "`samsvae-plus` command line (exit code 2)": CLI,
}


def markdown_table() -> str:
    rows = ["| entry point | bad input | message |", "|---|---|---|"]
    for where, entries in CATALOGUE.items():
        for i, (what, message) in enumerate(entries):
            rows.append(f"| {where if i == 0 else ''} | {what} | `{message()}` |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.stdout.write(markdown_table() + "\n")
