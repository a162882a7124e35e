"""Data sets: the simulator and loaders for the real files of the data directory.

The data directory is resolved from, in order: the ``data_dir`` argument, the
``SAMSVAE_PLUS_DATA`` environment variable, and ``../shared/data`` next to a source
checkout. Every file is checked against the directory's ``MANIFEST.sha256`` before use.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from samsvae_plus.data.simulate import simulate
from samsvae_plus.errors import InputError

__all__ = [
    "data_dir",
    "fetch",
    "simulate",
    "norman_mcfaline_devel",
    "papalexi2021_thp1",
    "gene_sets",
    "replogle_pathways",
    "go_gene_embedding",
    "human_genes",
    "norman2019_interactions",
]

ENV_VAR = "SAMSVAE_PLUS_DATA"
_CHECKOUT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
GENE_SET_COLLECTIONS = {"corum": "corum.csv.gz", "gobp": "gobp.csv.gz", "pathway": "pathway.csv.gz"}


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The data directory: ``path``, else ``$SAMSVAE_PLUS_DATA``, else the checkout's."""
    if path is not None:
        chosen, source = Path(path), "the data_dir argument"
    elif os.environ.get(ENV_VAR):
        chosen, source = Path(os.environ[ENV_VAR]), f"${ENV_VAR}"
    else:
        chosen, source = _CHECKOUT_DATA, "the source checkout's ../shared/data"
    if not chosen.is_dir():
        raise InputError(
            f"data directory {chosen} (from {source}) does not exist; "
            f"set {ENV_VAR} or pass data_dir= pointing at the shared data folder"
        )
    return chosen


@lru_cache(maxsize=8)
def _manifest(directory: Path) -> dict[str, str]:
    manifest = directory / "MANIFEST.sha256"
    if not manifest.exists():
        return {}
    entries = {}
    for line in manifest.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            entries[os.path.normpath(name.strip())] = digest
    return entries


@lru_cache(maxsize=64)
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    # size and mtime are part of the cache key so that a replaced file is hashed again.
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(
    relative_path: str, data_dir_path: str | os.PathLike | None = None, *, verify: bool = True
) -> Path:
    """Path of a file in the data directory, checked against ``MANIFEST.sha256``.

    Raises
    ------
    InputError
        If the file is missing (the message names it and the variable to set) or its
        checksum differs from the manifest.
    """
    directory = data_dir(data_dir_path)
    path = directory / relative_path
    if not path.is_file():
        raise InputError(
            f"data file {relative_path} is missing from {directory}; set {ENV_VAR} "
            "to a data directory that has it"
        )
    if verify:
        expected = _manifest(directory).get(os.path.normpath(relative_path))
        if expected is not None:
            stat = path.stat()
            if _sha256(path, stat.st_size, stat.st_mtime_ns) != expected:
                raise InputError(
                    f"data file {path} does not match its sha256 in MANIFEST.sha256; "
                    "it is corrupt or was modified, so restore the original"
                )
    return path


def norman_mcfaline_devel(data_dir: str | os.PathLike | None = None) -> ad.AnnData:
    """Norman et al. 2019 (K562, CRISPRa, with combinations) joined with McFaline-Figueroa et
    al. 2023 (three glioma lines, CRISPRi): 5,961 cells x 500 genes of integer UMI counts.

    Register it with ``setup_anndata(adata, perturbation_key="condition",
    control_label="control", context_key="cell_type")``.
    """
    return ad.read_h5ad(fetch("perturbseq/norman_mcfaline_devel.h5ad", data_dir))


def papalexi2021_thp1(
    data_dir: str | os.PathLike | None = None, *, include_unassigned: bool = False
) -> ad.AnnData:
    """Papalexi et al. 2021 THP-1 ECCITE-seq knockouts: 299 genes, 26 targets.

    Cells without a confident guide (``condition == "unassigned"``) are dropped unless
    ``include_unassigned=True``, and unused categories are removed, so the result can be
    registered directly with ``perturbation_key="condition", control_label="control"``.
    """
    adata = ad.read_h5ad(fetch("perturbseq/papalexi2021_thp1.h5ad", data_dir))
    if not include_unassigned:
        adata = adata[adata.obs["condition"] != "unassigned"].copy()
        for key in adata.obs.columns:
            if isinstance(adata.obs[key].dtype, pd.CategoricalDtype):
                adata.obs[key] = adata.obs[key].cat.remove_unused_categories()
    return adata


def gene_sets(
    collection: str = "corum", data_dir: str | os.PathLike | None = None
) -> dict[str, list[str]]:
    """A gene-set collection as ``{set name: [gene symbols]}``.

    Parameters
    ----------
    collection
        ``"corum"`` (protein complexes), ``"gobp"`` (GO biological processes) or
        ``"pathway"`` (Reactome, BioCarta and PID).
    """
    if collection not in GENE_SET_COLLECTIONS:
        raise InputError(
            f"unknown gene-set collection {collection!r}; choose one of {sorted(GENE_SET_COLLECTIONS)}"
        )
    table = pd.read_csv(
        fetch(f"annotations/gene_sets/{GENE_SET_COLLECTIONS[collection]}", data_dir)
    )
    names = table["Name"].astype(str)
    # Some collections reuse a name for different sets; the ID keeps them apart.
    repeated = names.duplicated(keep=False)
    names = names.where(~repeated, names + " [" + table["ID"].astype(str) + "]")
    return {name: str(genes).split(";") for name, genes in zip(names, table["Genes"], strict=True)}


def replogle_pathways(data_dir: str | os.PathLike | None = None) -> dict[str, list[str]]:
    """The eight pathway and complex gene lists of Replogle et al. 2022."""
    raw = json.loads(fetch("annotations/replogle2022_pathways_clusters.json", data_dir).read_text())
    return {str(name): [str(g) for g in genes] for name, genes in raw["pathways"].items()}


def go_gene_embedding(data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """The GO-derived 128-d gene embedding as a ``float32`` DataFrame (genes x 128)."""
    with np.load(
        fetch("annotations/go/human_gene_go_svd128.npz", data_dir), allow_pickle=False
    ) as npz:
        return pd.DataFrame(
            npz["embedding"].astype(np.float32), index=pd.Index(npz["genes"].astype(str))
        )


def human_genes(data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Human gene table: symbol, Entrez, Ensembl and UniProt ids and ``;``-separated aliases."""
    with gzip.open(fetch("annotations/go/human_genes.tsv.gz", data_dir), "rt") as handle:
        return pd.read_csv(handle, sep="\t", dtype=str)


def norman2019_interactions(data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Norman et al. 2019 genetic-interaction fits, indexed by ``"A+B"`` like the h5ad labels."""
    table = pd.read_csv(fetch("annotations/norman2019_gi/regr_fits_final.csv", data_dir))
    return table.set_index(table.pop("name").str.replace("_", "+", regex=False))
