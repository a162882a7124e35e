"""Gene-set collections and the mapping of perturbed genes to them.

A collection is ``{set name: [gene symbols]}``: the Replogle et al. 2022 pathway lists,
CORUM complexes, GO biological processes or Reactome/BioCarta/PID pathways from the data
directory, or a file of the user's (JSON, pflex-style CSV, or GMT).
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from samsvae_plus.errors import InputError

# Collection names accepted in place of a file; see samsvae_plus.datasets.
COLLECTIONS = ("replogle", "corum", "gobp", "pathway")


def load_gene_sets(
    source: str | os.PathLike | Mapping[str, Sequence[str]],
    data_dir: str | os.PathLike | None = None,
) -> dict[str, list[str]]:
    """A gene-set collection as ``{set name: [gene symbols]}``.

    Parameters
    ----------
    source
        A collection of the data directory (``"replogle"``, ``"corum"``, ``"gobp"``,
        ``"pathway"``), a file (``.json`` mapping names to gene lists, optionally under a
        ``"pathways"`` key; ``.csv``/``.csv.gz`` with ``Name`` and ``;``-separated
        ``Genes`` columns; ``.gmt``), or a mapping.
    data_dir
        Data directory of the named collections (see :func:`samsvae_plus.datasets.data_dir`).
    """
    if isinstance(source, Mapping):
        return {str(k): [str(g) for g in v] for k, v in source.items()}
    from samsvae_plus.data import datasets

    if str(source) == "replogle":
        return datasets.replogle_pathways(data_dir)
    if str(source) in COLLECTIONS:
        return datasets.gene_sets(str(source), data_dir)
    path = Path(source)
    if not path.is_file():
        raise InputError(
            f"gene-set source {str(source)!r} is neither a collection {list(COLLECTIONS)} "
            "nor an existing file"
        )
    name = path.name.lower()
    try:
        if name.endswith(".json"):
            raw = json.loads(path.read_text())
            raw = raw.get("pathways", raw) if isinstance(raw, dict) else raw
            if not isinstance(raw, dict):
                raise ValueError("expected an object mapping set names to gene lists")
            return {str(k): [str(g) for g in v] for k, v in raw.items()}
        if name.endswith((".csv", ".csv.gz")):
            table = pd.read_csv(path)
            return {
                str(n): str(genes).split(";")
                for n, genes in zip(table["Name"], table["Genes"], strict=True)
            }
        if name.endswith((".gmt", ".gmt.gz")):
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rt") as handle:
                rows = [line.rstrip("\n").split("\t") for line in handle if line.strip()]
            return {row[0]: [g for g in row[2:] if g] for row in rows}
    except (ValueError, KeyError, OSError, json.JSONDecodeError) as err:
        raise InputError(f"gene-set file {path} could not be read ({err})") from None
    raise InputError(f"gene-set file {path} must end in .json, .csv, .csv.gz or .gmt")


def membership(
    perturbations: Sequence[str],
    gene_sets: Mapping[str, Sequence[str]],
    *,
    min_members: int = 2,
    max_set_size: int | None = None,
) -> pd.DataFrame:
    """Which perturbed genes belong to which sets: perturbations x sets, boolean.

    Only sets with at least ``min_members`` of the perturbations (and at most
    ``max_set_size`` genes in all) are kept: a set holding one perturbation says nothing
    about which perturbations belong together.
    """
    perturbations = pd.Index([str(p) for p in perturbations], name="perturbation")
    columns = {}
    for name, genes in gene_sets.items():
        if max_set_size is not None and len(set(genes)) > max_set_size:
            continue
        hit = perturbations.isin(list(genes))
        if hit.sum() >= min_members:
            columns[name] = hit
    table = pd.DataFrame(columns, index=perturbations, dtype=bool)
    table.attrs["set_sizes"] = {name: len(set(gene_sets[name])) for name in table.columns}
    return table


def assign_pathways(
    perturbations: Sequence[str],
    gene_sets: Mapping[str, Sequence[str]],
    *,
    min_members: int = 2,
    max_set_size: int | None = None,
) -> pd.Series:
    """One pathway label per perturbation, for classification: a greedy set cover.

    Repeatedly, the set holding the most still-unlabelled perturbations labels them
    (ties go to the smaller, more specific set, then to the name), until no set holds
    ``min_members`` unlabelled ones. Disjoint lists such as Replogle's come out
    unchanged; overlapping collections (GO) get each gene's largest shared set.

    Returns
    -------
    Series
        Perturbation -> set name; perturbations left out of every set are missing (NaN).
    """
    table = membership(perturbations, gene_sets, min_members=min_members, max_set_size=max_set_size)
    sizes = table.attrs["set_sizes"]
    labels = pd.Series(np.nan, index=table.index, dtype=object, name="pathway")
    unlabelled = np.ones(len(table), bool)
    values = table.to_numpy()
    names = list(table.columns)
    while values.size:
        counts = (values & unlabelled[:, None]).sum(axis=0)
        best = min(range(len(names)), key=lambda j: (-counts[j], sizes[names[j]], names[j]))
        if counts[best] < min_members:
            break
        rows = values[:, best] & unlabelled
        labels[rows] = names[best]
        unlabelled &= ~rows
    return labels
