"""Posterior-predictive sampling by tracing the guide and replaying it through the model.

Counterfactuals follow Pyro's abduction / action / prediction pattern: the guide infers a
cell's basal state from its real counts (abduction), the cell's dosage is replaced by the
one of the target perturbation (action), and the model, replaying the inferred latents,
samples the counts (prediction). Model and guide are any pair of the family: the code
only relies on the guide's ``sample_globals`` and on the model observing counts at "x".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pyro.poutine as poutine
import torch
from torch import nn

from samsvae_plus.data.loaders import Batch


def global_draw(guide: nn.Module) -> poutine.Trace:
    """One joint draw of the global latents (masks, embeddings) from the guide."""
    return poutine.trace(guide.sample_globals).get_trace()


def draw_seed(seed: int, draw: int) -> int:
    """The torch seed of posterior draw ``draw``: every verb that indexes draws by ``seed``
    and draw number sees the same globals for the same pair."""
    return seed * 1_000_003 + draw


def global_draws(guide: nn.Module, n_draws: int, seed: int) -> Iterator[poutine.Trace]:
    """``n_draws`` draws of the globals, draw ``d`` taken right after seeding with
    :func:`draw_seed`; so ATE draws and ArviZ draws of one seed are the same joint draws."""
    for d in range(n_draws):
        torch.manual_seed(draw_seed(seed, d))
        yield global_draw(guide)


def encode_basal(guide: nn.Module, globals_trace: poutine.Trace, batch: Batch) -> poutine.Trace:
    """Guide trace for ``batch``: its globals replayed from ``globals_trace``, locals sampled."""
    return poutine.trace(poutine.replay(guide, trace=globals_trace)).get_trace(batch, len(batch))


def trace_prior(model: nn.Module, globals_trace: poutine.Trace, batch: Batch) -> poutine.Trace:
    """Model trace with the globals replayed and the local latents and counts sampled."""
    return poutine.trace(poutine.replay(model, trace=globals_trace)).get_trace(
        replace(batch, counts=None), len(batch)
    )


def sample_counts(model: nn.Module, latents: poutine.Trace, batch: Batch) -> torch.Tensor:
    """Counts sampled by the model with every latent replayed from ``latents``.

    ``batch.counts`` is ignored: the counts are sampled, under ``batch``'s dosage and
    library sizes.
    """
    trace = poutine.trace(poutine.replay(model, trace=latents)).get_trace(
        replace(batch, counts=None), len(batch)
    )
    return trace.nodes["x"]["value"]


def log_normalize_torch(counts: torch.Tensor, target_sum: float = 1e4) -> torch.Tensor:
    """Torch twin of :func:`samsvae_plus.data.transforms.log_normalize`."""
    totals = counts.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    return torch.log2(target_sum * counts / totals + 1)


@torch.no_grad()
def ate_draws(
    pair: nn.ModuleDict,
    condition_dosage: torch.Tensor,
    contexts: list[int],
    *,
    n_draws: int,
    n_cells: int,
    target_sum: float = 1e4,
    seed: int = 0,
    per_context: bool = False,
    basal_cells: dict[int, Batch] | None = None,
) -> torch.Tensor:
    """Posterior draws of the ATE on the ``log2(1e4 x / sum x + 1)`` scale.

    For each draw of the globals and each context, ``n_cells`` basal states are drawn from
    the prior with library size ``target_sum``; every condition then reuses those basal
    states and the same random stream for its count noise as the control (common random
    numbers), so the difference of means isolates the effect.

    Parameters
    ----------
    pair
        ``ModuleDict`` with ``"model"`` and ``"guide"``.
    condition_dosage
        Conditions x perturbations dosage rows (the first row need not be control; the
        control is added here).
    contexts
        Context ids to average over with equal weight.
    per_context
        Keep the contexts apart instead of averaging them.
    basal_cells
        Optional real control cells per context id: the basal states are then drawn from
        the guide's encoder applied to these cells (``n_cells`` is ignored for those
        contexts), and counts are still sampled with library size ``target_sum``.

    Returns
    -------
    Tensor
        Draws x conditions x genes (draws x contexts x conditions x genes with
        ``per_context``), on the CPU.
    """
    model, guide = pair["model"], pair["guide"]
    device = next(pair.parameters()).device
    condition_dosage = condition_dosage.to(device)
    n_conditions, n_perturbations = condition_dosage.shape
    draws = []
    for d, globals_trace in enumerate(global_draws(guide, n_draws, seed)):
        per_context_draw = []
        for c in contexts:
            if basal_cells is not None and c in basal_cells:
                source = basal_cells[c].to(device)
                latents = encode_basal(guide, globals_trace, source)
                batch = replace(
                    source,
                    counts=None,
                    library_size=torch.full_like(source.library_size, float(target_sum)),
                )
            else:
                batch = Batch(
                    counts=None,
                    dosage=torch.zeros(n_cells, n_perturbations, device=device),
                    library_size=torch.full((n_cells,), float(target_sum), device=device),
                    context=torch.full((n_cells,), int(c), dtype=torch.long, device=device),
                    index=torch.arange(n_cells, device=device),
                )
                latents = trace_prior(model, globals_trace, batch)
                latents.remove_node("x")  # so that the counts are redrawn under each dosage
            noise_seed = draw_seed(seed, 7919 * d + c + 1)
            control = _mean_log_expression(
                model,
                latents,
                batch,
                torch.zeros(n_perturbations, device=device),
                noise_seed,
                target_sum,
            )
            per_context_draw.append(
                torch.stack(
                    [
                        _mean_log_expression(model, latents, batch, row, noise_seed, target_sum)
                        - control
                        for row in condition_dosage
                    ]
                )
            )
        stacked = torch.stack(per_context_draw)
        draws.append((stacked if per_context else stacked.mean(dim=0)).cpu())
    return torch.stack(draws)


def _mean_log_expression(
    model: nn.Module,
    latents: poutine.Trace,
    batch: Batch,
    dosage_row: torch.Tensor,
    noise_seed: int,
    target_sum: float,
) -> torch.Tensor:
    """Mean log-normalised expression of ``batch`` under one dosage, with seeded count noise.

    Reseeding before each call is what makes the noise common to all conditions.
    """
    torch.manual_seed(noise_seed)
    dosage = dosage_row.expand_as(batch.dosage)
    counts = sample_counts(model, latents, replace(batch, dosage=dosage))
    return log_normalize_torch(counts, target_sum).mean(dim=0)
