"""``samsvae-plus reproduce NAME|all``: regenerate the paper's tables from ``experiments/``.

Each table is a script of the source checkout's ``experiments/`` folder, reading its
versioned config from ``experiments/configs/NAME.yaml``; this command runs them and
writes each table's outputs to ``--out/NAME/``. The folder is not part of the installed
package, so it is looked up in ``--experiments``, ``$SAMSVAE_PLUS_EXPERIMENTS``, next to
the package in a source checkout, and in the working directory, in that order.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from samsvae_plus.cli.common import finish
from samsvae_plus.errors import InputError

ENV_VAR = "SAMSVAE_PLUS_EXPERIMENTS"
# In the order `all` runs them: F1 draws the best T1 row, so it comes after T1.
EXPERIMENTS = {
    "t1_models_guides": "T1, models x guides: test IWELBO, mask accuracy, ATE Pearson",
    "t2_heldout_combinations": "T2, held-out combinations: seen fraction f in {0, .25, .5, .75}",
    "t3_data_efficiency": "T3, data efficiency: share of combination cells kept",
    "t4_unseen_cell_type": "T4, unseen cell type: held-out glioma lines and contexts",
    "t5_unseen_perturbations": "T5, unseen single perturbations: gene-embedding prior",
    "f1_masks_pathways": "F1, masks of the best T1 model against pathways",
}
LOG = "log.txt"


def add_parser(subparsers) -> None:
    listing = "\n".join(f"  {name:<25} {text}" for name, text in EXPERIMENTS.items())
    parser = subparsers.add_parser(
        "reproduce",
        help="regenerate the paper's tables (experiments/NAME.py with configs/NAME.yaml)",
        description="Run one table's experiment, or all of them, writing table.csv, "
        "table.md, PNG and PDF figures, splits.json and run.json to OUT/NAME/.\n\n"
        f"experiments:\n{listing}\n  {'all':<25} every one of them, in this order",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", metavar="NAME", help="an experiment listed below, or 'all'")
    parser.add_argument("--out", required=True, help="output directory; each table in OUT/NAME")
    parser.add_argument("--smoke", action="store_true", help="tiny data and budget (tests)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="override the configs")
    parser.add_argument("--device", default="auto", help="torch device of the training")
    parser.add_argument(
        "--experiments", default=None, help=f"the experiments folder (default: ${ENV_VAR}, ...)"
    )
    parser.set_defaults(run=run)


def experiments_dir(path: str | None = None) -> Path:
    """The ``experiments/`` folder of a source checkout (see the module docstring)."""
    candidates = [
        Path(path) if path else None,
        Path(os.environ[ENV_VAR]) if os.environ.get(ENV_VAR) else None,
        Path(__file__).resolve().parents[2] / "experiments",
        Path.cwd() / "experiments",
    ]
    if path or os.environ.get(ENV_VAR):
        candidates = candidates[:2]  # an explicit choice is not silently replaced
    for candidate in filter(None, candidates):
        if (candidate / "configs").is_dir():
            return candidate
    tried = ", ".join(str(c) for c in candidates if c is not None)
    raise InputError(
        f"cannot find the experiments folder (tried {tried}); it is in the source "
        f"checkout, not the installed package: pass --experiments DIR or set {ENV_VAR}"
    )


def selected(name: str) -> list[str]:
    if name == "all":
        return list(EXPERIMENTS)
    if name not in EXPERIMENTS:
        raise InputError(
            f"unknown experiment {name!r}; choose one of {', '.join(EXPERIMENTS)} or 'all'"
        )
    return [name]


def run(args: argparse.Namespace) -> int:
    names = selected(args.name)
    folder = experiments_dir(args.experiments)
    out = Path(args.out).resolve()  # the scripts run in the experiments folder
    # the scripts import the same samsvae_plus as this command, installed or not
    package_root = str(Path(__file__).resolve().parents[2])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
    }
    timings = {}
    for name in names:
        target = out / name
        target.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, str(folder / f"{name}.py"), "--out", str(target)]
        command += ["--device", args.device] + (["--smoke"] if args.smoke else [])
        if args.seeds:
            command += ["--seeds", *map(str, args.seeds)]
        # One process per table: each script sets torch threads, warning filters and
        # matplotlib state for itself, imports its sibling modules by bare name, and may
        # run for an hour; a process keeps all of that from leaking into the next table,
        # and its output goes to the table's own log instead of interleaving.
        started = time.perf_counter()
        with open(target / LOG, "w") as log:
            code = subprocess.call(
                command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        timings[name] = time.perf_counter() - started
        if code != 0:
            tail = (target / LOG).read_text().strip().splitlines()[-15:]
            print("\n".join(tail), file=sys.stderr)
            raise InputError(
                f"{name} failed (exit code {code}) after {timings[name]:.0f} s; "
                f"its output is in {target / LOG}"
            )
    total = sum(timings.values())
    each = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings.items())
    return finish("reproduce", f"{len(names)} table(s) in {total:.0f} s ({each}) -> {out}")
