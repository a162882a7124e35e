"""Errors that end a command name its flags, not the library's keyword arguments."""

import argparse

import numpy as np
import pytest

from samsvae_plus.cli.flag_names import in_flags, keyword_flags
from samsvae_plus.cli.main import main


@pytest.fixture()
def parser():
    parser = argparse.ArgumentParser()
    parser.add_argument("--control-label")
    parser.add_argument("--max-epochs", type=int)
    parser.add_argument("--dense-epochs", type=int)
    parser.add_argument("--layer")
    parser.add_argument("--library-size-key")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--no-progress", dest="no_progress", action="store_true")
    return parser


def test_each_long_option_maps_its_keyword(parser):
    flags = keyword_flags(parser)
    assert flags["control_label"] == ("--control-label", False, False)
    assert flags["resume"] == ("--resume", True, False)
    assert flags["progress"] == ("--no-progress", True, True)
    assert "help" not in flags


@pytest.mark.parametrize(
    "message, expected",
    [
        (
            "pass control_label= with the label of unperturbed cells",
            "pass --control-label with the label of unperturbed cells",
        ),
        (
            "dense_epochs must be an integer from 0 to max_epochs - 1 (3), got 4",
            "--dense-epochs must be an integer from 0 to --max-epochs - 1 (3), got 4",
        ),
        ("pass layer='raw counts' or layer=counts", "pass --layer 'raw counts' or --layer counts"),
        ("pass layer=", "pass --layer"),
        ("max_epochs=3 is too few", "--max-epochs 3 is too few"),
        ("library_size_key=None sums the counts", "no --library-size-key sums the counts"),
        ("resume=True needs a checkpoint", "--resume needs a checkpoint"),
        ("progress=False hides the bar", "--no-progress hides the bar"),
        # a flag the message gives already is not repeated
        ("pass control_label= / --control-label", "pass --control-label"),
        ("pass control_label= (--control-label) too", "pass --control-label too"),
        # names that are not the keyword stay as written
        (
            "adata.obs['control_label'], model.max_epochs, max_epochs_seen, the layer",
            "adata.obs['control_label'], model.max_epochs, max_epochs_seen, the layer",
        ),
        ("pass n_draws=3 or seed=1", "pass n_draws=3 or seed=1"),
    ],
)
def test_keywords_become_flags(parser, message, expected):
    assert in_flags(message, parser) == expected


def test_a_command_error_names_the_flag(tmp_path, capsys):
    import samsvae_plus as sp

    adata = sp.datasets.simulate(
        n_perturbations=3, n_contexts=1, n_genes=20, n_combinations=1, seed=0
    )
    del adata.uns["simulation"]
    adata.write_h5ad(tmp_path / "data.h5ad")
    argv = ["train", "--data", str(tmp_path / "data.h5ad"), "--out", str(tmp_path / "out")]
    argv += ["--perturbation-key", "condition", "--control-label", "Control"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("samsvae-plus train: error: no cell has the control label 'Control'")
    assert "pass --control-label with the label" in err and "control_label=" not in err
    assert len(err.splitlines()) == 1


def test_a_warning_names_the_flag_and_exclude_takes_its_advice(tmp_path, caplog, capsys):
    import json
    import logging

    import samsvae_plus as sp

    adata = sp.datasets.simulate(
        n_perturbations=3, n_contexts=1, n_genes=20, n_combinations=1, seed=0
    )
    del adata.uns["simulation"]
    labels = adata.obs["condition"].astype(str).to_numpy()
    labels[np.flatnonzero(labels == "P000")[:7]] = "unassigned"
    adata.obs["condition"] = labels
    adata.write_h5ad(tmp_path / "data.h5ad")
    argv = ["train", "--data", str(tmp_path / "data.h5ad"), "--perturbation-key", "condition"]
    argv += ["--control-label", "control", "--max-epochs", "2", "--n-particles", "1"]
    argv += ["--no-progress"]
    with caplog.at_level(logging.INFO):
        assert main([*argv, "--out", str(tmp_path / "all")]) == 0
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warned == [
            "adata.obs['condition'] has labels that look like no perturbation: 'unassigned' "
            "(7 cells); they are modelled as perturbed genes unless you pass --exclude "
            "unassigned to leave those cells out"
        ]
        caplog.clear()
        assert main([*argv, "--exclude", "unassigned", "--out", str(tmp_path / "kept")]) == 0
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "leaving out 7 of" in caplog.text
    split = json.loads((tmp_path / "kept" / "split.json").read_text())
    assert sum(len(split[part]) for part in ("train", "validation", "test")) == adata.n_obs - 7
    registry = json.loads((tmp_path / "kept" / "model.json").read_text())["registry"]
    assert registry["exclude"] == ["unassigned"]
