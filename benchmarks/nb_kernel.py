"""The fused NB log-probability against the two-softplus form it replaced.

    python benchmarks/nb_kernel.py [--device cpu|cuda] [--repeats 21] [--compile] [--smoke]

On the likelihood's shape in ``train_speed`` (5 particles x 512 cells x 1,187 genes, counts
shared by the particles, a learned inverse dispersion per gene), times forward plus
backward of ``NegativeBinomial.log_prob`` (fused: :class:`NegativeBinomialTail`) and of the
textbook form with two ``softplus`` calls (and, with ``--compile``, the fused kernel
compiled by ``torch.compile``), alternating them, and counts the bytes autograd keeps for
the backward pass of each. Checks first that values and gradients agree. Writes ``benchmarks/results/nb_kernel[_cuda].json`` and prints a table last.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _results import result_path

from samsvae_plus import __version__
from samsvae_plus._atomic import atomic_write_text
from samsvae_plus.module.distributions import NegativeBinomial, compiled_kernels


def two_softplus_log_prob(x, log_mean, theta):
    """The NB log-pmf as written before fusing: two softplus passes over the particles."""
    log_theta = theta.log()
    return (
        torch.lgamma(x + theta)
        - torch.lgamma(theta)
        - torch.lgamma(x + 1)
        - theta * F.softplus(log_mean - log_theta)
        - x * F.softplus(log_theta - log_mean)
    )


def fused_log_prob(x, log_mean, theta):
    return NegativeBinomial(log_mean, theta).log_prob(x)


FORMS = {"fused": fused_log_prob, "two_softplus": two_softplus_log_prob}
# A form run with the fused kernel compiled (torch.compile, inductor), with --compile.
COMPILED = "fused_compiled"


def inputs(shape: tuple[int, int, int], device: str):
    generator = torch.Generator().manual_seed(0)
    particles, cells, genes = shape
    log_mean = torch.randn(particles, cells, genes, generator=generator)
    x = torch.poisson(3.0 * torch.rand(cells, genes, generator=generator))
    log_theta = torch.randn(genes, generator=generator)
    return x.to(device), log_mean.to(device), log_theta.to(device)


def loss_and_grads(name: str, x, log_mean, log_theta):
    """Forward and backward of form ``name``; the compiled kernel serves both directions."""
    log_mean = log_mean.detach().requires_grad_()
    log_theta = log_theta.detach().requires_grad_()
    with compiled_kernels(name == COMPILED):
        value = FORMS.get(name, fused_log_prob)(x, log_mean, log_theta.exp()).sum()
        return value.detach(), torch.autograd.grad(value, (log_mean, log_theta))


def saved_bytes(name: str, x, log_mean, log_theta) -> int:
    """Bytes of the distinct tensors autograd saves for the backward pass."""
    seen = {}

    def pack(tensor):
        seen[(tensor.data_ptr(), tensor.shape)] = tensor.element_size() * tensor.numel()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        FORMS.get(name, fused_log_prob)(
            x, log_mean.requires_grad_(), log_theta.requires_grad_().exp()
        ).sum()
    return sum(seen.values())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--smoke", action="store_true", help="tiny shape, for tests")
    parser.add_argument(
        "--compile", action="store_true", help="also time the kernel compiled by torch.compile"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    shape = (2, 16, 30) if args.smoke else (5, 512, 1187)
    repeats = 3 if args.smoke else args.repeats
    torch.set_num_threads(2)
    load_before = os.getloadavg()[0]
    x, log_mean, log_theta = inputs(shape, args.device)

    names = [*FORMS, COMPILED] if args.compile else list(FORMS)
    ref_value, ref_grads = loss_and_grads("two_softplus", x, log_mean, log_theta)
    agreement = {}
    for name in names:
        compile_start = time.perf_counter()
        value, grads = loss_and_grads(name, x, log_mean, log_theta)
        agreement[name] = {
            "first_call_s": time.perf_counter() - compile_start,
            "value_relative": float((value - ref_value).abs() / ref_value.abs()),
            "grad_log_mean_max_abs": float((grads[0] - ref_grads[0]).abs().max()),
            "grad_log_theta_relative": float(
                (grads[1] - ref_grads[1]).abs().max() / ref_grads[1].abs().max()
            ),
        }
        assert agreement[name]["value_relative"] < 1e-5, name
        assert agreement[name]["grad_log_theta_relative"] < 1e-4, name

    def synchronize():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    times = {name: [] for name in names}
    for round_ in range(repeats + 2):
        for name in names if round_ % 2 == 0 else names[::-1]:
            synchronize()
            start = time.perf_counter()
            loss_and_grads(name, x, log_mean, log_theta)
            synchronize()
            if round_ >= 2:  # the first two rounds warm up
                times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(t) for name, t in times.items()}
    saved = {name: saved_bytes(name, x, log_mean, log_theta) for name in FORMS}
    result = {
        "benchmark": "nb_kernel",
        "command": "python benchmarks/nb_kernel.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "shape": {"particles": shape[0], "cells": shape[1], "genes": shape[2]},
        "device": args.device,
        "load_average_before": load_before,
        "repeats": repeats,
        "median_forward_backward_s": median,
        "saved_for_backward_bytes": saved,
        "two_softplus_over_fused_time": median["two_softplus"] / median["fused"],
        "two_softplus_over_fused_saved_bytes": saved["two_softplus"] / saved["fused"],
        **(
            {"two_softplus_over_compiled_time": median["two_softplus"] / median[COMPILED]}
            if args.compile
            else {}
        ),
        "agreement": agreement,
        "versions": {"samsvae_plus": __version__, "torch": torch.__version__},
        "python": platform.python_version(),
        "smoke": args.smoke,
    }
    out = args.out or result_path("nb_kernel", args.device)
    atomic_write_text(out, json.dumps(result, indent=1))
    print(f"{'form':15} {'fwd+bwd (ms)':>13} {'saved (MB)':>11} {'time vs two_softplus':>21}")
    for name in names:
        kept = f"{saved[name] / 1e6:11.1f}" if name in saved else f"{'(as fused)':>11}"
        speedup = median["two_softplus"] / median[name]
        print(f"{name:15} {1e3 * median[name]:13.1f} {kept} {speedup:20.2f}x")
    return result


if __name__ == "__main__":
    main()
