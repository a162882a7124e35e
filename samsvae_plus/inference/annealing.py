"""Warm-up of the global latents' KL term.

Early in training the decoder ignores the latent shifts, so the prior on the sparse masks
is the only force on them and switches every mask off before the likelihood can argue for
it. Down-weighting ``log p - log q`` of the global sites (every site outside the cell
plate) for the first steps lets masks and embeddings find the effects first; the weight
then rises linearly to 1, after which the objective is the exact ELBO.
"""

from __future__ import annotations

from pyro.poutine.messenger import Messenger

CELL_PLATE = "cells"


class GlobalKLWeight(Messenger):
    """Multiply the log-density scale of every site outside the cell plate by ``weight``.

    Apply the same instance around model and guide, so that ``log p - log q`` of the
    global latents is scaled as a whole.
    """

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = weight

    def _process_message(self, msg) -> None:
        if msg["type"] != "sample" or self.weight == 1.0:
            return
        if not any(frame.name == CELL_PLATE for frame in msg["cond_indep_stack"]):
            msg["scale"] = msg["scale"] * self.weight


def linear_warmup(step: int, warmup_steps: int, start: float = 0.0) -> float:
    """Weight rising linearly from ``start`` at step 0 to 1 at ``warmup_steps``."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return 1.0
    return start + (1.0 - start) * step / warmup_steps
