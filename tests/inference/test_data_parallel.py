"""Data-parallel training: 2 gloo processes against 1 process with the same global batch."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from helpers.simulations import TINY, tiny_simulation

import samsvae_plus as sp
from samsvae_plus.data.splits import random_split
from samsvae_plus.inference.data_parallel import DataParallel

# The tiny simulation with more cells, so that a few epochs reach a stable ELBO.
SIMULATION = {**TINY, "cells_per_condition": 30, "n_control_cells": 60, "seed": 0}
TRAINING = dict(
    max_epochs=30, dense_epochs=12, batch_size=64, n_particles=1, lr=3e-3, progress=False
)

SCRIPT = (
    textwrap.dedent(
        """
    import json, os, sys
    import torch
    import samsvae_plus as sp
    from samsvae_plus.data.splits import random_split

    torch.set_num_threads(1)
    adata = sp.datasets.simulate(**SIMULATION)
    sp.setup_anndata(adata, "condition", "control", context_key="cell_type")
    model = sp.SAMSVAE(adata, latent_dim=3)
    split = random_split(adata.n_obs, (0.8, 0.1, 0.1), seed=0)
    history = model.train(**TRAINING, seed=0, split=split, distributed=True)
    rank = int(os.environ["RANK"])
    torch.save(model.module.state_dict(), os.path.join(sys.argv[1], f"rank{rank}.pt"))
    if rank == 0:
        best = history.validation_elbo[history.best_epoch]
        with open(os.path.join(sys.argv[1], "result.json"), "w") as handle:
            json.dump({"validation_elbo": best, "steps": history.steps}, handle)
    """
    )
    .replace("**SIMULATION", f"**{SIMULATION!r}")
    .replace("**TRAINING", f"**{TRAINING!r}")
)


def single_process(seed):
    """One process on the same split; the seed changes the batch order and the draws."""
    adata = tiny_simulation(**SIMULATION)
    model = sp.SAMSVAE(adata, latent_dim=3)
    split = random_split(adata.n_obs, (0.8, 0.1, 0.1), seed=0)
    history = model.train(**TRAINING, seed=seed, split=split)
    return history.validation_elbo[history.best_epoch], history.steps


@pytest.mark.slow
def test_two_processes_reach_the_single_process_validation_elbo(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node=2", str(script), str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    parallel = json.loads((tmp_path / "result.json").read_text())
    # the globals are replicated: both processes end with identical parameters
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for name, value in rank0.items():
        assert torch.equal(value, rank1[name]), name

    singles = [single_process(seed) for seed in (0, 1, 2)]
    # same global batch, so the same number of optimizer steps
    assert parallel["steps"] == singles[0][1]
    elbos = np.array([elbo for elbo, _ in singles])
    # Monte-Carlo error: the spread between seeds of one process on the same split (with a
    # floor, in case three seeds happen to agree closely)
    tolerance = max(4 * elbos.std(ddof=1), 0.5)
    assert abs(parallel["validation_elbo"] - elbos.mean()) < tolerance, (parallel, elbos)


def test_shards_split_a_batch_and_a_short_tail_goes_to_every_process():
    positions = np.arange(10)
    shards = [DataParallel(rank, 3).shard(positions) for rank in range(3)]
    np.testing.assert_array_equal(np.sort(np.concatenate(shards)), positions)
    tail = np.array([7, 8])
    assert all(np.array_equal(DataParallel(rank, 3).shard(tail), tail) for rank in range(3))
    seeds = {DataParallel(rank, 3).sampling_seed(0) for rank in range(3)}
    assert len(seeds) == 3


def test_distributed_without_a_process_group_is_a_clear_error(tiny_adata, monkeypatch):
    for key in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    model = sp.SAMSVAE(tiny_adata, latent_dim=3)
    with pytest.raises(sp.InputError, match="torchrun --nproc_per_node"):
        model.train(max_epochs=1, distributed=True, progress=False)


@pytest.mark.slow
def test_the_train_command_runs_under_torchrun_and_rank_0_writes(tmp_path):
    adata = sp.datasets.simulate(**SIMULATION)
    del adata.uns["simulation"]
    data = tmp_path / "data.h5ad"
    adata.write_h5ad(data)
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += ["-m", "samsvae_plus.cli.main", "train", "--data", str(data)]
    command += ["--perturbation-key", "condition", "--control-label", "control"]
    command += ["--out", str(out), "--max-epochs", "3", "--latent-dim", "3", "--n-particles", "1"]
    command += ["--batch-size", "64", "--no-progress", "--distributed"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("samsvae-plus train:") == 1  # one summary, from rank 0
    model = sp.SAMSVAE.load(out)
    assert model.is_trained and len(model.history.train_elbo) == 3
    assert not (tmp_path / "run.checkpoints").exists()
