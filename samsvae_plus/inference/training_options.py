"""The settings of a training run, with their defaults, as one typed record.

:class:`TrainingOptions` is the one place that states how a model trains unless told
otherwise: :meth:`PerturbationModel.train <samsvae_plus.model.base.PerturbationModel.train>`
takes its keyword defaults from it, ``samsvae-plus train`` and ``demo`` their flags, and
:mod:`~samsvae_plus.inference.trainer` reads a checked instance. Retuning a default is a
change of one line here.

Nothing here imports torch, so the command line builds its parser from it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

LOADERS = ("auto", "memory", "resident", "backed")
LR_SCALINGS = (None, "sqrt", "linear")
# The batch size the default learning rate was tuned at (the paper's and the demo's).
REFERENCE_BATCH_SIZE = 512


@dataclass(frozen=True)
class TrainingOptions:
    """How :meth:`~samsvae_plus.model.base.PerturbationModel.train` fits a model (its
    docstring explains each option)."""

    max_epochs: int = field(
        default=400,
        metadata={"help": "upper bound on passes over the training cells, dense start included"},
    )
    batch_size: int = field(default=512, metadata={"help": "cells per step"})
    # One particle at lr 2e-3 fitted Norman's trained effects more closely than five at 3e-4
    # and agreed better with kept-out cells (docs/results.md, "Choosing the defaults").
    n_particles: int = field(default=1, metadata={"help": "vectorized ELBO particles per step"})
    lr: float = field(default=2e-3, metadata={"help": "Adam learning rate"})
    lr_scaling: str | None = field(
        default=None,
        metadata={
            "help": f"scale lr from {REFERENCE_BATCH_SIZE} cells per step to the batch size "
            "(default: as given)",
            "choices": LR_SCALINGS,
        },
    )
    dense_epochs: int | None = field(
        default=None,
        metadata={"help": "epochs with masks pinned on (default: 2/5 of max_epochs)"},
    )
    global_lr_factor: float = field(
        default=30.0,
        metadata={"help": "learning rate of the per-perturbation parameters relative to lr"},
    )
    early_stopping_patience: int | None = field(
        default=20,
        metadata={"help": "epochs without a better validation ELBO before stopping"},
    )
    grad_clip: float | None = field(
        default=None, metadata={"help": "bound on the gradient norm (default: none)"}
    )
    split_fractions: tuple[float, float, float] = field(
        default=(0.8, 0.1, 0.1),
        metadata={"help": "train, validation and test shares of a random split"},
    )
    loader: str = field(
        default="auto",
        metadata={"help": "how batches reach the device", "choices": LOADERS},
    )
    compile_kernels: bool = field(
        default=False,
        metadata={"help": "compile the fused NB log-probability with torch.compile (GPU speed)"},
    )
    checkpoint_every: int = field(
        default=500, metadata={"help": "optimizer steps between checkpoints"}
    )
    device: str | torch.device = field(default="auto", metadata={"help": "'auto', 'cpu' or 'cuda'"})
    # None: sp.settings.seed if set, else 0
    seed: int | None = field(
        default=None, metadata={"help": "seed of the split, the batches and every sample"}
    )
    progress: bool = field(
        default=True,
        metadata={"help": "show a progress bar", "negative_help": "hide the progress bar"},
    )
