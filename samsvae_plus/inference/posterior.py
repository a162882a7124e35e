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


def global_draw(
    guide: nn.Module, model: nn.Module | None = None, untrained: torch.Tensor | None = None
) -> poutine.Trace:
    """One joint draw of the global latents (masks, embeddings) from the guide.

    Rows of perturbations flagged in ``untrained`` (no training cells) are drawn from the
    model's prior instead: their variational parameters never saw data and are whatever
    they were initialised to.
    """
    trace = poutine.trace(guide.sample_globals).get_trace()
    if model is None or untrained is None or not bool(untrained.any()):
        return trace
    prior = poutine.trace(model.sample_globals).get_trace()
    for name, node in trace.nodes.items():
        if node["type"] == "sample" and name in prior.nodes:
            node["value"] = torch.where(
                untrained[:, None], prior.nodes[name]["value"], node["value"]
            )
    return trace


def population_dosage(
    dosage: torch.Tensor,
    contexts: torch.Tensor,
    population: torch.Tensor | None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``dosage`` (cells x actions) where each cell's dose of an action without training
    cells goes to one action trained in the cell's context, drawn at random for that cell.

    ``population`` (contexts x actions) says which actions had training cells in which
    context; None when every action had some. A perturbation the model never saw is thus
    predicted as the population of those it saw in that context (the posterior predictive
    of an exchangeable one), and its ATE is the mean of theirs: most perturbations of a
    screen share one response, which is why the mean of perturbations is a strong
    baseline. Drawing its own effect from the prior instead gave effects of a few percent
    of a real one's size, mostly draw noise (docs/results.md). A context without trained
    actions draws from those of every context.
    """
    if population is None:
        return dosage
    population = population.to(dosage.device)
    untrained = untrained_actions(population)
    unseen = torch.nonzero(untrained & (dosage != 0).any(0)).flatten()
    if len(unseen) == 0:
        return dosage
    dosage = dosage.clone()
    everywhere = torch.nonzero(~untrained).flatten()
    for context in contexts.unique():
        cells = torch.nonzero(contexts == context).flatten()
        pool = torch.nonzero(population[context]).flatten()
        pool = pool if len(pool) else everywhere
        for action in unseen:
            picks = torch.randint(
                len(pool), (len(cells),), generator=generator, device=dosage.device
            )
            dosage[cells, pool[picks]] += dosage[cells, action]
    dosage[:, unseen] = 0
    return dosage


def untrained_actions(population: torch.Tensor | None) -> torch.Tensor | None:
    """Actions without training cells in any context, from the contexts x actions table of
    :func:`population_dosage` (None when every action had cells)."""
    return None if population is None else ~population.any(0)


def draw_seed(seed: int, draw: int) -> int:
    """The torch seed of posterior draw ``draw``: every verb that indexes draws by ``seed``
    and draw number sees the same globals for the same pair."""
    return seed * 1_000_003 + draw


def global_draws(
    guide: nn.Module,
    n_draws: int,
    seed: int,
    model: nn.Module | None = None,
    untrained: torch.Tensor | None = None,
) -> Iterator[poutine.Trace]:
    """``n_draws`` draws of the globals (see :func:`global_draw`), draw ``d`` taken right after
    seeding with :func:`draw_seed`; so ATE draws and ArviZ draws of one seed are the same
    joint draws."""
    for d in range(n_draws):
        torch.manual_seed(draw_seed(seed, d))
        yield global_draw(guide, model, untrained)


def encode_basal(guide: nn.Module, globals_trace: poutine.Trace, batch: Batch) -> poutine.Trace:
    """Guide trace for ``batch``: its globals replayed from ``globals_trace``, locals sampled."""
    return poutine.trace(poutine.replay(guide, trace=globals_trace)).get_trace(batch, len(batch))


def trace_prior(model: nn.Module, globals_trace: poutine.Trace, batch: Batch) -> poutine.Trace:
    """Model trace with the globals replayed and the local latents drawn from the prior.

    Counts are sampled when ``batch.counts`` is None; otherwise they are observed (pass a
    placeholder to get the latents without paying for a count draw).
    """
    return poutine.trace(poutine.replay(model, trace=globals_trace)).get_trace(batch, len(batch))


def count_distribution(model: nn.Module, latents: poutine.Trace, batch: Batch):
    """The model's negative binomial for ``batch`` with every latent replayed from ``latents``.

    ``batch.counts`` must be a tensor (any values): the site is then observed and nothing is
    drawn.
    """
    trace = poutine.trace(poutine.replay(model, trace=latents)).get_trace(batch, len(batch))
    return trace.nodes["x"]["fn"].base_dist


def sample_counts(model: nn.Module, latents: poutine.Trace, batch: Batch) -> torch.Tensor:
    """Counts sampled by the model with every latent replayed from ``latents``.

    ``batch.counts`` is ignored: the counts are sampled, under ``batch``'s dosage and
    library sizes.
    """
    trace = poutine.trace(poutine.replay(model, trace=latents)).get_trace(
        replace(batch, counts=None), len(batch)
    )
    return trace.nodes["x"]["value"]


def log_normalize_torch(
    counts: torch.Tensor, target_sum: float = 1e4, *, natural: bool = False
) -> torch.Tensor:
    """Torch twin of :func:`samsvae_plus.data.transforms.log_normalize`; with ``natural``,
    ``log1p(target_sum x / total)`` as scanpy's ``normalize_total`` + ``log1p`` write it."""
    totals = counts.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    scaled = target_sum * counts / totals
    return torch.log1p(scaled) if natural else torch.log2(scaled + 1)


# The two scales an ATE is reported on (see ``PerturbationModel.average_treatment_effect``):
# the model's own (prior or encoded basal states at a fixed depth, log2), and the data's
# (encoded real control cells at their observed depths, natural log1p, as the data are).
ATE_SPACES = ("model", "data")


@torch.no_grad()
def ate_draws(
    pair: nn.ModuleDict,
    condition_dosage: torch.Tensor,
    contexts: list[int],
    *,
    n_genes: int,
    n_draws: int,
    n_cells: int,
    target_sum: float = 1e4,
    seed: int = 0,
    population: torch.Tensor | None = None,
    per_context: bool = False,
    basal_cells: dict[int, Batch] | None = None,
    space: str = "model",
) -> torch.Tensor:
    """Posterior draws of the ATE on the ``log2(1e4 x / sum x + 1)`` scale (or, with
    ``space="data"``, on the data's ``log1p(1e4 x / total)`` scale at the control cells'
    observed library sizes).

    For each draw of the globals and each context, ``n_cells`` basal states are drawn from
    the prior with library size ``target_sum``. Every condition then reuses those basal
    states, the same gamma variates of the negative binomial and the same Poisson stream as
    the control (common random numbers), so the difference of means isolates the effect.

    Parameters
    ----------
    pair
        ``ModuleDict`` with ``"model"`` and ``"guide"``.
    condition_dosage
        Conditions x actions dosage rows (the control is added here).
    contexts
        Context ids to average over with equal weight.
    n_genes
        Number of genes the model observes.
    population
        Contexts x actions with training cells: an untrained action's dose goes to a
        trained one per cell (:func:`population_dosage`), and its globals come from the
        prior (:func:`global_draw`).
    per_context
        Keep the contexts apart instead of averaging them.
    basal_cells
        Optional real control cells per context id: the basal states are then drawn from
        the guide's encoder applied to these cells (``n_cells`` is ignored for those
        contexts), and counts are still sampled with library size ``target_sum``.
    space
        ``"model"`` (the above) or ``"data"``: counts of the ``basal_cells`` are sampled at
        their own library sizes and normalised as the data are, natural ``log1p``, so the
        result compares with a data ATE computed from those same kind of cells.

    Returns
    -------
    Tensor
        Draws x conditions x genes (draws x contexts x conditions x genes with
        ``per_context``), on the CPU.
    """
    model, guide = pair["model"], pair["guide"]
    device = next(pair.parameters()).device
    condition_dosage = condition_dosage.to(device)
    n_actions = condition_dosage.shape[1]
    generator = torch.Generator(device=device)
    draws = []
    draws_of_globals = global_draws(guide, n_draws, seed, model, untrained_actions(population))
    for d, globals_trace in enumerate(draws_of_globals):
        per_context_draw = []
        for c in contexts:
            if basal_cells is not None and c in basal_cells:
                source = basal_cells[c].to(device)
                latents = encode_basal(guide, globals_trace, source)
                # the real counts stay as the placeholder count_distribution needs
                library = (
                    source.library_size
                    if space == "data"
                    else torch.full_like(source.library_size, float(target_sum))
                )
                batch = replace(
                    source,
                    dosage=torch.zeros(len(source), n_actions, device=device),
                    library_size=library,
                )
            else:
                batch = Batch(
                    counts=torch.zeros(n_cells, n_genes, device=device),  # see trace_prior
                    dosage=torch.zeros(n_cells, n_actions, device=device),
                    library_size=torch.full((n_cells,), float(target_sum), device=device),
                    context=torch.full((n_cells,), int(c), dtype=torch.long, device=device),
                    index=torch.arange(n_cells, device=device),
                )
                latents = trace_prior(model, globals_trace, batch)
                latents.remove_node("x")
            noise_seed = draw_seed(seed, 7919 * d + c + 1)
            theta = count_distribution(model, latents, batch).inverse_dispersion
            generator.manual_seed(noise_seed)
            gamma = torch._standard_gamma(
                theta.expand(len(batch), n_genes).contiguous(), generator=generator
            )

            common = (model, latents, batch, gamma, generator, noise_seed + 1, target_sum)
            common += (space == "data",)
            control = _mean_log_expression(torch.zeros(n_actions, device=device), *common)
            # its own stream: the count noise must stay common to condition and control
            picks = torch.Generator(device=device)
            picks.manual_seed(noise_seed + 2)
            per_context_draw.append(
                torch.stack(
                    [
                        _mean_log_expression(
                            population_dosage(
                                row.expand_as(batch.dosage), batch.context, population, picks
                            ),
                            *common,
                        )
                        - control
                        for row in condition_dosage
                    ]
                )
            )
        stacked = torch.stack(per_context_draw)
        draws.append((stacked if per_context else stacked.mean(dim=0)).cpu())
    return torch.stack(draws)


def _mean_log_expression(
    dosage: torch.Tensor,
    model: nn.Module,
    latents: poutine.Trace,
    batch: Batch,
    gamma: torch.Tensor,
    generator: torch.Generator,
    poisson_seed: int,
    target_sum: float,
    natural: bool = False,
) -> torch.Tensor:
    """Mean log-normalised expression under ``dosage`` (one row for every cell, or a row per
    cell), with the shared gamma variates and a reseeded Poisson stream (the common random
    numbers of :func:`ate_draws`)."""
    nb = count_distribution(model, latents, replace(batch, dosage=dosage.expand_as(batch.dosage)))
    generator.manual_seed(poisson_seed)
    counts = nb.sample_given_gamma(gamma, generator)
    return log_normalize_torch(counts, target_sum, natural=natural).mean(dim=0)
