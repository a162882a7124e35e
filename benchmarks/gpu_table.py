"""The table of GPU figures, read from the JSON that ``gpu.sh`` leaves in results/.

    python benchmarks/gpu_table.py [--suffix _cuda] [--results DIR]

``--suffix ""`` prints the same table from the CPU results. A benchmark that has not run
shows as "not run"; every number printed is read from a file, none is computed here
except ratios of two numbers of the same file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def read(results: Path, name: str) -> dict | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def rows(results: Path, suffix: str) -> list[tuple[str, str]]:
    """(figure, value) pairs, in the order of the table."""
    out: list[tuple[str, str]] = []
    speed = read(results, f"train_speed{suffix}")
    if speed is None:
        out.append(("train_speed", "not run"))
    else:
        out.append(("device", str(speed.get("gpu") or speed["device"])))
        for guide, result in speed["guides"].items():
            out.append(
                (
                    f"train_speed {guide}: steps/s Pyro / plain, ratio",
                    f"{result['pyro']['steps_per_s']:.2f} / {result['plain']['steps_per_s']:.2f}"
                    f", {result['pyro_over_plain']:.3f}",
                )
            )
    for name, label in (("", "eager"), ("_compiled", "compiled NB kernel")):
        budget = read(results, f"train_budget{suffix}{name}")
        if budget is None:
            out.append((f"train_budget ({label})", "not run"))
            continue
        how = "measured" if budget["paper_budget_measured"] else "extrapolated"
        memory = budget["gpu_max_memory_allocated_gb"]
        out.append(
            (
                f"model.train steps/s; 150k steps ({label})",
                f"{budget['steps_per_s']:.1f}; {budget['paper_budget_minutes']:.1f} min ({how})"
                + ("" if memory is None else f"; peak GPU memory {memory:.2f} GB"),
            )
        )
    loaders = read(results, f"loader_speed{suffix}")
    if loaders is None:
        out.append(("loader_speed", "not run"))
    else:
        step = loaders["step"]["steps_per_s"]
        for name, result in loaders["loaders"].items():
            if "batches_per_s" in result:
                out.append(
                    (
                        f"loader {name}: batches/s (x step rate {step:.1f}/s)",
                        f"{result['batches_per_s']:.0f} ({result['over_step_rate']:.1f}x)",
                    )
                )
    kernel = read(results, f"nb_kernel{suffix}")
    if kernel is None:
        out.append(("nb_kernel", "not run"))
    else:
        compiled = kernel.get("two_softplus_over_compiled_time")
        out.append(
            (
                "NB kernel speed-up over two softplus: fused, compiled",
                f"{kernel['two_softplus_over_fused_time']:.2f}x, "
                + ("not run" if compiled is None else f"{compiled:.2f}x"),
            )
        )
        out.append(
            (
                "NB kernel: bytes kept for backward, two softplus / fused",
                f"{kernel['two_softplus_over_fused_saved_bytes']:.2f}x",
            )
        )
    predict = read(results, f"predict_speed{suffix}")
    if predict is None:
        out.append(("predict_speed", "not run"))
    else:
        for verb, call in predict["calls"].items():
            out.append(
                (
                    f"{verb}: cells/s; peak RSS, {call['cells_out']:,} cells",
                    f"{call['cells_per_s']:.0f}; {call['peak_rss_gb']:.2f} GB",
                )
            )
    return out


def main(argv: list[str] | None = None) -> list[tuple[str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suffix", default="_cuda")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    table = rows(args.results, args.suffix)
    print("| figure | value |\n| --- | --- |")
    for figure, value in table:
        print(f"| {figure} | {value} |")
    return table


if __name__ == "__main__":
    main()
