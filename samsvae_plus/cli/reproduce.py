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
EXPERIMENTS = {
    "t1_models_guides": "T1, models x guides: test IWELBO, mask accuracy, ATE Pearson",
    "t2_heldout_combinations": "T2, held-out combinations: seen fraction f in {0, .25, .5, .75}",
    "t3_data_efficiency": "T3, data efficiency: share of combination cells kept",
    "t4_unseen_cell_type": "T4, unseen cell type: held-out glioma lines and contexts",
    "t5_unseen_perturbations": "T5, unseen single perturbations: gene-embedding prior",
    "f1_masks_pathways": "F1, masks of the best T1 model against pathways",
}
# Longest first, so that parallel workers finish together (measured wall times at one
# thread: T1 and T4 take about an hour each, the others 5 to 40 minutes).
START_ORDER = (
    "t1_models_guides",
    "t4_unseen_cell_type",
    "t2_heldout_combinations",
    "t3_data_efficiency",
    "t5_unseen_perturbations",
    "f1_masks_pathways",
)
AFTER = {"f1_masks_pathways": "t1_models_guides"}  # F1 reads T1's table when it is there
LOG = "log.txt"


def add_parser(subparsers) -> None:
    listing = "\n".join(f"  {name:<25} {text}" for name, text in EXPERIMENTS.items())
    parser = subparsers.add_parser(
        "reproduce",
        help="regenerate the paper's tables (experiments/NAME.py with configs/NAME.yaml)",
        description="Run one table's experiment, or all of them, writing table.csv, "
        "table.md, PNG and PDF figures, splits.json and run.json to OUT/NAME/.\n\n"
        f"experiments:\n{listing}\n  {'all':<25} every one of them, --jobs at a time "
        "(F1 after T1, whose best row it maps)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", metavar="NAME", help="an experiment listed below, or 'all'")
    parser.add_argument("--out", required=True, help="output directory; each table in OUT/NAME")
    parser.add_argument("--smoke", action="store_true", help="tiny data and budget (tests)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="override the configs")
    parser.add_argument("--device", default="auto", help="torch device of the training")
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="tables run side by side (default: one per CPU core, at most one per table); "
        "each gets cores/jobs torch threads unless SAMSVAE_THREADS is set",
    )
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


def _command(name: str, folder: Path, target: Path, args: argparse.Namespace) -> list[str]:
    command = [sys.executable, str(folder / f"{name}.py"), "--out", str(target)]
    command += ["--device", args.device] + (["--smoke"] if args.smoke else [])
    if args.seeds:
        command += ["--seeds", *map(str, args.seeds)]
    return command


def _environment(jobs: int) -> dict:
    """The scripts import the same samsvae_plus as this command, installed or not, and
    share the cores: several 1-thread processes train these small models faster than one
    process with all the threads."""
    package_root = str(Path(__file__).resolve().parents[2])
    threads = os.environ.get("SAMSVAE_THREADS") or str(max(1, (os.cpu_count() or 1) // jobs))
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
        "SAMSVAE_THREADS": threads,
    }


def run(args: argparse.Namespace) -> int:
    names = selected(args.name)
    folder = experiments_dir(args.experiments)
    if args.jobs is not None and args.jobs < 1:
        raise InputError(f"--jobs must be at least 1, got {args.jobs}")
    jobs = args.jobs or max(1, min(len(names), os.cpu_count() or 1))
    out = Path(args.out).resolve()  # the scripts run in the experiments folder
    env = _environment(jobs)
    # One process per table: each script sets torch threads, warning filters and
    # matplotlib state for itself, imports its sibling modules by bare name, and may run
    # for an hour; a process keeps all of that from leaking into the next table, and its
    # output goes to the table's own log instead of interleaving.
    pending = [name for name in START_ORDER if name in names]
    running: dict[str, tuple[subprocess.Popen, float, object]] = {}
    timings: dict[str, float] = {}
    began = time.perf_counter()
    while pending or running:
        for name in [n for n in pending if AFTER.get(n) not in pending + list(running)]:
            if len(running) == jobs:
                break
            target = out / name
            target.mkdir(parents=True, exist_ok=True)
            log = open(target / LOG, "w")
            process = subprocess.Popen(
                _command(name, folder, target, args),
                cwd=folder,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            running[name] = (process, time.perf_counter(), log)
            pending.remove(name)
            print(f"reproduce: {name} started", file=sys.stderr, flush=True)
        time.sleep(0.2)
        for name, (process, started, log) in list(running.items()):
            code = process.poll()
            if code is None:
                continue
            log.close()
            del running[name]
            timings[name] = time.perf_counter() - started
            if code != 0:
                _stop(running)
                target = out / name
                tail = (target / LOG).read_text().strip().splitlines()[-15:]
                print("\n".join(tail), file=sys.stderr)
                raise InputError(
                    f"{name} failed (exit code {code}) after {timings[name]:.0f} s; "
                    f"its output is in {target / LOG}"
                )
            print(f"reproduce: {name} done in {timings[name]:.0f} s", file=sys.stderr, flush=True)
    wall = time.perf_counter() - began
    each = ", ".join(f"{name} {timings[name]:.0f} s" for name in names)
    return finish(
        "reproduce",
        f"{len(names)} table(s) in {wall:.0f} s wall, {jobs} at a time ({each}) -> {out}",
    )


def _stop(running: dict) -> None:
    """Ends the tables still running when one fails (fail fast, as make does)."""
    for process, _, log in running.values():
        process.terminate()
        process.wait()
        log.close()
    running.clear()
