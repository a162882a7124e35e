"""Temporary weights on the KL terms, for schedules that steer early training.

A weight multiplies ``log p - log q`` of a group of latent sites in model and guide
together. Global sites are those outside the cell plate (masks, embeddings); local latent
sites are the unobserved sites inside it (``z_basal``). Observations are never weighted,
and with both weights at 1 the objective is the exact ELBO.
"""

from __future__ import annotations

from pyro.poutine.messenger import Messenger

from samsvae_plus.inference.sites import CELL_PLATE, in_cell_plate

__all__ = ["CELL_PLATE", "KLWeights"]


class KLWeights(Messenger):
    """Scale the log-densities of global and of local latent sites.

    Apply one instance around both model and guide.
    """

    def __init__(self, global_weight: float = 1.0, local_weight: float = 1.0) -> None:
        super().__init__()
        self.global_weight = global_weight
        self.local_weight = local_weight

    @property
    def is_exact(self) -> bool:
        return self.global_weight == 1.0 and self.local_weight == 1.0

    def _process_message(self, msg) -> None:
        if msg["type"] != "sample" or self.is_exact:
            return
        if not in_cell_plate(msg):
            msg["scale"] = msg["scale"] * self.global_weight
        elif not msg["is_observed"]:
            msg["scale"] = msg["scale"] * self.local_weight
