"""How the package defaults were chosen, without test cells: trained single perturbations
against cells the model never saw.

Norman's K562 cells with every two-gene combination left out (the combinations are the
held-out test of ``real_data_baselines``; nothing here reads them). Each single
perturbation's cells, and the controls, are split in halves: one half trains (with a tenth
of it for validation), the other is kept out. Scored, for every candidate of the config:

- ``fit``: the model's data-space ATE of the singles against the training half's data ATE;
- ``held_out``: the same model ATE against the kept-out half's data ATE, whose controls are
  the kept-out controls, so that no control cell is shared between the two sides;
- ``top50``: ``held_out`` over each perturbation's 50 genes of largest |held-out ATE|;

beside ``raw_split_half``: the training half's data ATE against the kept-out half's (what
the data alone predicts; a model that denoises should beat it). Mean ± sd over seeds.

Usage::

    python experiments/default_selection.py [--out figures/default_selection] [--seeds 0 1] [--smoke]
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from _common import seed_summary, split_record, table_args, write_outputs
from _data import CONTEXT, CONTROL, KEY, load_dataset
from _scores import data_space_ate

import samsvae_plus as sp
from samsvae_plus.data.splits import Split
from samsvae_plus.evaluate.ate import ate_pearson, data_ate

NAME = "default_selection"
METRICS = ["fit", "held_out", "top50", "raw_split_half", "raw_top50", "train_s"]


def halves(adata, seed: int) -> tuple[Split, np.ndarray]:
    """A split training on half of every single perturbation's cells and of the controls,
    and the other half's indices (kept out of training and validation)."""
    rng = np.random.default_rng(seed)
    labels = adata.obs[KEY].to_numpy(dtype=str)
    kept_out = []
    for label in np.unique(labels):
        cells = rng.permutation(np.flatnonzero(labels == label))
        kept_out.append(cells[: len(cells) // 2])
    kept_out = np.sort(np.concatenate(kept_out))
    trained = rng.permutation(np.setdiff1d(np.arange(adata.n_obs), kept_out))
    n_validation = len(trained) // 10
    split = Split(
        "single_halves",
        seed,
        np.sort(trained[n_validation:]),
        np.sort(trained[:n_validation]),
        kept_out,
    )
    return split, kept_out


def candidate_row(adata, candidate: dict, config: dict, seed: int, device: str) -> dict:
    split, kept_out = halves(adata, seed)
    model = getattr(sp, candidate.get("model", "SAMSVAE"))(adata, **candidate.get("options", {}))
    started = time.perf_counter()
    model.train(
        **{**config["training"], **candidate.get("training", {})},
        split=split,
        seed=seed,
        device=device,
        progress=False,
    )
    seconds = time.perf_counter() - started
    train = adata[split.train]
    singles = sorted(set(train.obs[KEY].astype(str)) - {CONTROL})
    predicted = data_space_ate(model, train, singles, n_draws=config["n_draws"], seed=seed)
    trained_ate = data_ate(train, KEY, CONTROL).loc[singles]
    held_ate = data_ate(adata[kept_out], KEY, CONTROL).loc[singles]
    return {
        "candidate": candidate["label"],
        "seed": seed,
        "fit": ate_pearson(predicted, trained_ate),
        "held_out": ate_pearson(predicted, held_ate),
        "top50": ate_pearson(predicted, held_ate, top_n=50),
        "raw_split_half": ate_pearson(trained_ate, held_ate),
        "raw_top50": ate_pearson(trained_ate, held_ate, top_n=50),
        "train_s": seconds,
    }, split_record(split, candidate=candidate["label"])


def main() -> None:
    args, config = table_args(NAME, __doc__)
    started = time.perf_counter()
    rows, splits = [], []
    for seed in args.seeds:
        adata, _ = load_dataset(config["dataset"], seed)
        labels = adata.obs[KEY].astype(str)
        keep = (adata.obs[CONTEXT] == config["context"]) & ~labels.str.contains("+", regex=False)
        adata = adata[keep.to_numpy()].copy()
        sp.setup_anndata(adata, KEY, CONTROL, context_key=CONTEXT)
        for candidate in config["candidates"]:
            row, split = candidate_row(adata, candidate, config, seed, args.device)
            print(row, flush=True)
            rows.append(row)
            splits.append(split)
    runs = pd.DataFrame(rows)
    table = seed_summary(runs, ["candidate"], METRICS)
    meta = {**config, "smoke": args.smoke, "seeds": args.seeds, "splits": splits}
    write_outputs(args.out, table, runs, meta, started)
    print(table.round(3).to_string())


if __name__ == "__main__":
    main()
