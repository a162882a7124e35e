"""``samsvae-plus reproduce NAME|all``: regenerate the paper's tables from ``experiments/``.

Each experiment is a versioned config of the source checkout's ``experiments/`` folder,
``experiments/configs/NAME.yaml``, run by the script its ``script:`` key names (by
default ``NAME.py``; a supplementary experiment reuses a table's script with a design of
its own); this command runs them and writes each one's outputs to ``--out/NAME/``. The
folder is not part of the installed package, so it is looked up in ``--experiments``,
``$SAMSVAE_PLUS_EXPERIMENTS``, next to the package in a source checkout, and in the
working directory, in that order.

``reproduce all`` runs ``--jobs`` processes side by side: one per table, except that the
seeds of a table in :data:`SEED_JOBS` (T4) each get a job of their own, gathered into the
table by a last one.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
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
# Run by name only, not by `all`: the other results of docs/results.md, each a design of its own.
SUPPLEMENTARY = {
    "model_family": "T1's design on one larger simulation, 20 latent dims, 500 epochs",
    "heldout_combinations": "T2's design at f = 0.75, larger simulation, short budget",
    "unseen_perturbations": "T5's design on one simulation at a short budget",
    "masks_norman": "F1's analysis of SAMS-VAE (10 dims, short budget) on Norman",
    "ablation_mask_recovery": "mask recovery with one training choice switched off",
    "ate_noise_ceiling": "data ATE of T1's training cells against its test cells",
    "ate_ppc_simulation": "held-out IWELBO and ATE calibration, model and ensemble",
    "real_data_baselines": "package defaults against the no-model baselines on real cells",
    "default_selection": "how the defaults were chosen, on kept-out cells of trained genes",
}
# Longest first, so that parallel workers finish together (measured wall times at one
# thread: T1 and each of T4's seed jobs take about an hour, the others 5 to 40 minutes).
START_ORDER = (
    "t1_models_guides",
    "t4_unseen_cell_type",
    "t2_heldout_combinations",
    "t3_data_efficiency",
    "t5_unseen_perturbations",
    "f1_masks_pathways",
)
AFTER = {"f1_masks_pathways": "t1_models_guides"}  # F1 reads T1's table when it is there
# Tables whose script keeps each seed's rows in its output folder and takes --rows-only:
# their seeds run as jobs of their own, side by side with the other tables, and a last
# job gathers them into the table. One T4 seed takes as long as all of T1.
SEED_JOBS = {"t4_unseen_cell_type"}
LOG = "log.txt"


@dataclass(frozen=True)
class Job:
    """One process of a reproduce run: a whole table, or one seed's rows of a table."""

    table: str
    seeds: tuple[int, ...] | None = None  # --seeds (None: the config's)
    rows_only: bool = False
    after: tuple[str, ...] = ()  # names of the jobs that must have finished first

    @property
    def name(self) -> str:
        return f"{self.table} seed {self.seeds[0]}" if self.rows_only else self.table

    @property
    def log(self) -> str:
        return f"log_seed{self.seeds[0]}.txt" if self.rows_only else LOG


def add_parser(subparsers) -> None:
    tables = "\n".join(f"  {name:<25} {text}" for name, text in EXPERIMENTS.items())
    others = "\n".join(f"  {name:<25} {text}" for name, text in SUPPLEMENTARY.items())
    parser = subparsers.add_parser(
        "reproduce",
        help="regenerate the paper's tables (experiments/configs/NAME.yaml and its script)",
        description="Run one experiment, or all the tables, writing their tables, run "
        "records (run.json) and figures to OUT/NAME/.\n\n"
        f"tables:\n{tables}\n  {'all':<25} every table, --jobs at a time "
        f"(F1 after T1, whose best row it maps)\n\nsupplementary experiments (by name):\n"
        f"{others}",
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
    if name not in EXPERIMENTS and name not in SUPPLEMENTARY:
        raise InputError(
            f"unknown experiment {name!r}; choose one of "
            f"{', '.join([*EXPERIMENTS, *SUPPLEMENTARY])} or 'all'"
        )
    return [name]


def _config(folder: Path, name: str) -> dict:
    """``configs/NAME.yaml`` as written (empty when there is none)."""
    import yaml

    path = folder / "configs" / f"{name}.yaml"
    config = yaml.safe_load(path.read_text()) if path.is_file() else None
    return config if isinstance(config, dict) else {}


def config_script(folder: Path, name: str) -> str:
    """The script that runs experiment ``name``: its config's ``script:``, else NAME."""
    return str(_config(folder, name).get("script", name))


def config_seeds(folder: Path, table: str, smoke: bool) -> list[int] | None:
    """The seeds of ``configs/TABLE.yaml`` (its ``smoke:`` ones with ``smoke``), or None
    when the config does not list them."""
    config = _config(folder, table)
    smoke_seeds = (config.get("smoke") or {}).get("seeds")
    seeds = smoke_seeds if smoke and smoke_seeds is not None else config.get("seeds")
    return [int(seed) for seed in seeds] if seeds else None


def plan(names: list[str], folder: Path, args: argparse.Namespace) -> list[Job]:
    """The jobs of ``names`` in start order: a table of :data:`SEED_JOBS` with several
    seeds becomes one rows-only job per seed and a gathering job after them."""
    jobs, gathers = [], []
    # tables start longest first; a supplementary experiment is run alone, by name
    for table in [name for name in START_ORDER if name in names] or names:
        seeds = args.seeds or (
            config_seeds(folder, table, args.smoke) if table in SEED_JOBS else None
        )
        after = (AFTER[table],) if AFTER.get(table) in names else ()
        if table in SEED_JOBS and seeds and len(seeds) > 1:
            parts = [Job(table, (seed,), rows_only=True) for seed in seeds]
            jobs += parts
            gathers.append(Job(table, tuple(seeds), after=tuple(p.name for p in parts)))
        else:
            jobs.append(Job(table, tuple(args.seeds) if args.seeds else None, after=after))
    return jobs + gathers


def _command(job: Job, folder: Path, target: Path, args: argparse.Namespace) -> list[str]:
    script = config_script(folder, job.table)
    command = [sys.executable, str(folder / f"{script}.py"), "--out", str(target)]
    if script != job.table:
        command += ["--config", job.table]
    command += ["--device", args.device] + (["--smoke"] if args.smoke else [])
    if job.seeds:
        command += ["--seeds", *map(str, job.seeds)]
    return command + (["--rows-only"] if job.rows_only else [])


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


def require_yaml() -> None:
    """The experiments read YAML configs; PyYAML comes with the ``experiments`` extra."""
    try:
        import yaml  # noqa: F401
    except ImportError:
        raise InputError(
            "reproduce reads the experiments' YAML configs and needs PyYAML, which is not "
            "installed: pip install 'samsvae-plus[experiments]' (or pip install pyyaml)"
        ) from None


def run(args: argparse.Namespace) -> int:
    names = selected(args.name)
    require_yaml()
    folder = experiments_dir(args.experiments)
    if args.jobs is not None and args.jobs < 1:
        raise InputError(f"--jobs must be at least 1, got {args.jobs}")
    pending = plan(names, folder, args)
    jobs = args.jobs or max(1, min(len(pending), os.cpu_count() or 1))
    out = Path(args.out).resolve()  # the scripts run in the experiments folder
    env = _environment(jobs)
    # One process per table (or seed of a table): each script sets torch threads, warning
    # filters and matplotlib state for itself, imports its sibling modules by bare name,
    # and may run for an hour; a process keeps all of that from leaking into the next
    # one, and its output goes to its own log instead of interleaving.
    running: dict[str, tuple[Job, subprocess.Popen, float, object]] = {}
    timings: dict[str, float] = {}
    began = time.perf_counter()
    while pending or running:
        waiting = {job.name for job in pending} | set(running)
        for job in [j for j in pending if not waiting.intersection(j.after)]:
            if len(running) == jobs:
                break
            target = out / job.table
            target.mkdir(parents=True, exist_ok=True)
            log = open(target / job.log, "w")
            process = subprocess.Popen(
                _command(job, folder, target, args),
                cwd=folder,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            running[job.name] = (job, process, time.perf_counter(), log)
            pending.remove(job)
            print(f"reproduce: {job.name} started", file=sys.stderr, flush=True)
        time.sleep(0.2)
        for name, (job, process, started, log) in list(running.items()):
            code = process.poll()
            if code is None:
                continue
            log.close()
            del running[name]
            timings[name] = time.perf_counter() - started
            if code != 0:
                _stop(running)
                path = out / job.table / job.log
                tail = path.read_text().strip().splitlines()[-15:]
                print("\n".join(tail), file=sys.stderr)
                raise InputError(
                    f"{name} failed (exit code {code}) after {timings[name]:.0f} s; "
                    f"its output is in {path}"
                )
            print(f"reproduce: {name} done in {timings[name]:.0f} s", file=sys.stderr, flush=True)
    wall = time.perf_counter() - began
    return finish(
        "reproduce",
        f"{len(names)} table(s) in {wall:.0f} s wall, {jobs} at a time "
        f"({', '.join(_table_time(name, timings) for name in names)}) -> {out}",
    )


def _table_time(table: str, timings: dict[str, float]) -> str:
    """A table's time: its job's, or the sum of its seed jobs' and its gathering."""
    parts = [t for name, t in timings.items() if name == table or name.startswith(f"{table} seed ")]
    if len(parts) == 1:
        return f"{table} {parts[0]:.0f} s"
    return f"{table} {sum(parts):.0f} s in {len(parts)} jobs"


def _stop(running: dict) -> None:
    """Ends the jobs still running when one fails (fail fast, as make does)."""
    for _, process, _, log in running.values():
        process.terminate()
        process.wait()
        log.close()
    running.clear()
