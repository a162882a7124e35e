"""Write the tiny saved model and training checkpoint of ``tests/fixtures/previous_layout``.

They were written by commit 6f1170f, the last commit whose saved models and checkpoints
came from the flat layout (``samsvae_plus/model.py``, ``family.py``, ...); the tests load
them with the current code, so a layout or configuration change that breaks a user's
saved files fails there. Rerun only to add a new generation, never to refresh this one::

    python tests/helpers/make_previous_layout_fixture.py tests/fixtures/previous_layout
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

import samsvae_plus as sp

TINY = dict(
    n_perturbations=5,
    n_contexts=2,
    n_genes=30,
    latent_dim=3,
    n_combinations=2,
    cells_per_condition=12,
    n_control_cells=24,
    ate_cells=20,
    seed=1,
)
TRAINING = dict(
    max_epochs=6, dense_epochs=2, batch_size=64, n_particles=1, lr=2e-3, checkpoint_every=3
)


def main(out: Path) -> None:
    torch.set_num_threads(1)
    adata = sp.datasets.simulate(**TINY)
    sp.setup_anndata(adata, "condition", "control", context_key="cell_type")
    model = sp.SAMSVAE(adata, latent_dim=3, guide="correlated_basal", n_hidden=16)
    model.train(**TRAINING, seed=0, progress=False, checkpoint_dir=out / "checkpoints")
    model.save(out / "model")
    expected = {
        "simulation": TINY,
        "training": TRAINING,
        "mask_probabilities": model.mask_probabilities().round(6).to_numpy().tolist(),
    }
    (out / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
