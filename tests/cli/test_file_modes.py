"""Outputs get the modes of the user's umask (0644 files, 0755 directories under 022), not
the private 0600/0700 of the temporary files they are written through."""

import json
import os
import stat

import pytest

from samsvae_plus._atomic import atomic_directory, atomic_path, atomic_write_bytes, current_umask
from samsvae_plus.cli.main import main


@pytest.fixture
def umask():
    """Run the test under a given umask (022 unless the test sets another)."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _assert_modes(root, file_mode=0o644, dir_mode=0o755):
    """Every file and directory under ``root`` (and ``root``) has the expected mode."""
    paths = [root] + sorted(root.rglob("*")) if root.is_dir() else [root]
    assert paths
    for path in paths:
        expected = dir_mode if path.is_dir() else file_mode
        assert _mode(path) == expected, f"{path}: {oct(_mode(path))} != {oct(expected)}"


def test_current_umask_reads_the_umask_and_leaves_it(umask):
    umask(0o027)
    assert current_umask() == 0o027
    assert current_umask() == 0o027


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_atomic_writes_follow_the_umask(tmp_path, umask, mask):
    umask(mask)
    atomic_write_bytes(tmp_path / "file.bin", b"x")
    with atomic_path(tmp_path / "staged.h5ad") as staged:
        staged.write_bytes(b"y")
    with atomic_directory(tmp_path / "folder") as folder:
        (folder / "inner.txt").write_text("z")
    for name in ("file.bin", "staged.h5ad", "folder/inner.txt"):
        assert _mode(tmp_path / name) == 0o666 & ~mask, name
    assert _mode(tmp_path / "folder") == 0o777 & ~mask
    # nothing temporary is left beside the outputs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.bin", "folder", "staged.h5ad"]


def test_a_failed_atomic_path_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "out.h5ad") as staged:
        staged.write_bytes(b"half")
        raise RuntimeError("writer failed")
    assert list(tmp_path.iterdir()) == []


def test_command_outputs_are_0644_files_in_0755_directories(tmp_path, umask, capsys):
    """simulate -> train -> evaluate, and the scorer's prep and score, under umask 022."""
    from samsvae_plus.testing.challenge_cases import CaseSpec, challenge_case

    data = tmp_path / "sim.h5ad"
    simulate = ["simulate", "--out", str(data), "--n-perturbations", "4", "--n-genes", "20"]
    simulate += ["--n-combinations", "1", "--cells-per-condition", "10"]
    simulate += ["--n-control-cells", "20", "--latent-dim", "3", "--n-contexts", "1"]
    assert main(simulate) == 0
    _assert_modes(data)

    model = tmp_path / "model"
    train = ["train", "--data", str(data), "--perturbation-key", "condition"]
    train += ["--control-label", "control", "--out", str(model)]
    train += ["--max-epochs", "2", "--latent-dim", "3", "--n-particles", "1", "--no-progress"]
    assert main(train) == 0
    _assert_modes(model)

    evaluation = tmp_path / "evaluation"
    evaluate = ["evaluate", "--model", str(model), "--data", str(data), "--out", str(evaluation)]
    evaluate += ["--split", "all", "--n-samples", "2", "--n-draws", "2", "--n-cells", "5"]
    evaluate += ["--no-progress"]
    assert main(evaluate) == 0
    _assert_modes(evaluation)
    assert json.loads((evaluation / "metrics.json").read_text())["n_cells"] > 0

    case = challenge_case(
        CaseSpec(seed=5, n_perturbations=3, cells=(10, 12), n_control=15, n_genes=150)
    )
    for name in ("real", "noisy"):
        case[name].write_h5ad(tmp_path / f"{name}.h5ad")
    prepared = tmp_path / "prepared.h5ad"
    prep = ["prep", "--pred", str(tmp_path / "noisy.h5ad"), "--genes", str(tmp_path / "real.h5ad")]
    assert main([*prep, "--out", str(prepared)]) == 0
    _assert_modes(prepared)
    result = tmp_path / "result.json"
    score = ["score", "--pred", str(prepared), "--real", str(tmp_path / "real.h5ad")]
    assert main([*score, "--out", str(result)]) == 0
    _assert_modes(result)
    capsys.readouterr()
