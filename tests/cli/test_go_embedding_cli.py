"""`samsvae-plus go-embedding` on the hand-written GO fixture: the file it writes, its
default place in the cache, and one-line errors that name the flag."""

from pathlib import Path

import numpy as np
import pytest

from samsvae_plus.cli.main import main
from samsvae_plus.data import datasets

GO_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "go"
FILES = ["--obo", str(GO_FIXTURES / "mini.obo"), "--gaf", str(GO_FIXTURES / "mini.gaf")]
SMALL = ["--n-components", "3", "--min-genes", "1"]


def test_writes_the_npz_layout(tmp_path, capsys):
    out = tmp_path / "emb.npz"
    assert main(["go-embedding", *FILES, *SMALL, "--out", str(out)]) == 0
    assert f"7 genes x 3 dimensions -> {out}" in capsys.readouterr().out
    with np.load(out) as npz:
        assert npz["embedding"].shape == (7, 3) and "MAPK1" in npz["genes"]
        assert (np.diff(npz["singular_values"]) <= 0).all()


def test_default_output_is_where_the_loader_looks(tmp_path, monkeypatch):
    monkeypatch.setenv("SAMSVAE_PLUS_CACHE", str(tmp_path / "cache"))
    assert main(["go-embedding", *FILES, *SMALL]) == 0
    assert datasets.go_gene_embedding(data_dir=tmp_path).shape == (7, 3)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--obo", "absent.obo"], "--obo absent.obo does not exist"),
        (["--out", "emb.txt"], "--out emb.txt should end in .npz"),
        (["--n-components", "0"], "--n-components must be positive"),
        (["--min-genes", "9", "--max-genes", "3"], "--min-genes must be positive and at most"),
    ],
)
def test_bad_flags_are_one_line_errors(flags, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["go-embedding", *FILES, *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
