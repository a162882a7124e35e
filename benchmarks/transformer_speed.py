"""Speed of the transformer basal encoder against the MLP encoder, forward plus backward.

    python benchmarks/transformer_speed.py [--cells 512] [--tokens 256] [--genes 2000]
        [--rounds 20] [--warmup 3] [--smoke] [--out PATH]

Both encoders are built as a model builds them (latent 20, head MLP 128 x 128; the
transformer with the default architecture ``nn.encoder_options.ARCHITECTURE`` and a 128-d
fixed gene embedding) and timed side by side in one process: each round times one step of
each, in alternating order, on the same batch of ``--cells`` cells x ``--genes`` genes of
negative-binomial-like counts deep enough that every cell has at least ``--tokens``
expressed genes (no padding). A step is the encoder's forward pass, a sum of its outputs
and the backward pass. The ratio is of median step times. On a machine with CUDA, the
transformer is also timed at 2,048 tokens against the MLP on the GPU; otherwise that entry
says it was skipped. Writes ``benchmarks/results/transformer_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from samsvae_plus import __version__
from samsvae_plus._atomic import atomic_write_text
from samsvae_plus.nn.encoder_options import ARCHITECTURE
from samsvae_plus.nn.encoders import MLPBasalEncoder
from samsvae_plus.nn.transformer import TransformerBasalEncoder

RESULT = Path(__file__).resolve().parent / "results" / "transformer_speed.json"
LATENT_DIM = 20
HIDDEN = (128, 128)
EMBEDDING_DIM = 128


def batch(n_cells: int, n_genes: int, n_tokens: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Gamma-Poisson counts of depth ``20 * n_tokens``, which leaves every cell at least
    ``n_tokens`` expressed genes (checked)."""
    rng = np.random.default_rng(0)
    rates = rng.gamma(0.5, 2.0, size=(n_cells, n_genes)) * rng.lognormal(0, 1, size=n_genes)
    counts = rng.poisson(rates * 20 * n_tokens / rates.sum(1, keepdims=True))
    expressed = (counts > 0).sum(1)
    assert expressed.min() >= n_tokens, f"only {expressed.min()} expressed genes in a cell"
    counts = torch.as_tensor(counts, dtype=torch.float32, device=device)
    return counts, counts.sum(1)


def encoders(n_genes: int, n_tokens: int, device) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    genes = [f"G{g:05d}" for g in range(n_genes)]
    transformer = TransformerBasalEncoder(
        genes, LATENT_DIM, EMBEDDING_DIM, hidden=HIDDEN, n_tokens=n_tokens, **ARCHITECTURE
    )
    transformer.body.genes.set_embedding(
        np.random.default_rng(1).normal(size=(n_genes, EMBEDDING_DIM)), np.ones(n_genes, bool)
    )
    mlp = MLPBasalEncoder(n_genes, LATENT_DIM, hidden=HIDDEN)
    return {"mlp": mlp.to(device), "transformer": transformer.to(device)}


def step(encoder: torch.nn.Module, counts: torch.Tensor, library: torch.Tensor) -> float:
    synchronize = torch.cuda.synchronize if counts.is_cuda else (lambda: None)
    encoder.zero_grad(set_to_none=True)
    synchronize()
    start = time.perf_counter()
    loc, scale = encoder(counts, library)
    (loc.sum() + scale.sum()).backward()
    synchronize()
    return time.perf_counter() - start


def compare(n_cells: int, n_genes: int, n_tokens: int, rounds: int, warmup: int, device) -> dict:
    """Median step times of both encoders, timed in alternating order on one batch."""
    counts, library = batch(n_cells, n_genes, n_tokens, device)
    nets = encoders(n_genes, n_tokens, device)
    times: dict[str, list[float]] = {name: [] for name in nets}
    for r in range(warmup + rounds):
        names = list(nets) if r % 2 == 0 else list(nets)[::-1]
        for name in names:
            elapsed = step(nets[name], counts, library)
            if r >= warmup:
                times[name].append(elapsed)
    median = {name: statistics.median(t) for name, t in times.items()}
    return {
        "cells": n_cells,
        "genes": n_genes,
        "tokens": n_tokens,
        "device": str(device),
        "step_s": times,
        "median_step_s": median,
        "transformer_over_mlp": median["transformer"] / median["mlp"],
        "parameters": {
            name: sum(p.numel() for p in net.parameters()) for name, net in nets.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=512)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for tests")
    parser.add_argument("--out", default=str(RESULT))
    args = parser.parse_args()
    if args.smoke:
        args.cells, args.tokens, args.genes, args.rounds, args.warmup = 16, 8, 40, 2, 1
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    record = {
        "smoke": args.smoke,
        "architecture": ARCHITECTURE,
        "latent_dim": LATENT_DIM,
        "head_hidden": list(HIDDEN),
        "threads": args.threads,
        "load_average_before": load,
        "cpu": compare(args.cells, args.genes, args.tokens, args.rounds, args.warmup, "cpu"),
        "versions": {"samsvae_plus": __version__, "torch": torch.__version__},
        "python": platform.python_version(),
    }
    if torch.cuda.is_available():
        record["gpu_2048_tokens"] = compare(
            args.cells, max(args.genes, 6000), 2048, args.rounds, args.warmup, "cuda"
        )
        record["gpu_2048_tokens"]["name"] = torch.cuda.get_device_name(0)
    else:
        record["gpu_2048_tokens"] = {"skipped": True, "note": "no CUDA device on this machine"}
    atomic_write_text(args.out, json.dumps(record, indent=1) + "\n")
    cpu = record["cpu"]
    print(
        f"{'encoder':12} {'median step (s)':>16}  ({cpu['cells']} cells x {cpu['tokens']} tokens, CPU)"
    )
    for name, value in cpu["median_step_s"].items():
        print(f"{name:12} {value:16.4f}")
    print(f"transformer / mlp: {cpu['transformer_over_mlp']:.1f}x -> {args.out}")


if __name__ == "__main__":
    main()
