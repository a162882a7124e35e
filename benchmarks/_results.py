"""Where benchmarks write their JSON: ``results/NAME[_cuda][VARIANT].json``, so that GPU
runs (``gpu.sh``) sit beside the committed CPU results instead of replacing them."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def result_path(name: str, device: str, variant: str = "") -> Path:
    """The default output of benchmark ``name`` run on ``device``."""
    return RESULTS / f"{name}{'' if device == 'cpu' else '_cuda'}{variant}.json"
