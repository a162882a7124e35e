"""Data sets: the simulator, loaders for the real files, and downloads of public ones.

A file is looked up, in order:

1. in the data directory: the ``data_dir`` argument, else the ``SAMSVAE_PLUS_DATA``
   environment variable, else ``../shared/data`` next to a source checkout. A file found
   there is checked against the directory's ``MANIFEST.sha256`` (and against the
   registry's checksum, for a downloadable file) and used offline;
2. for a file of the download registry (:mod:`samsvae_plus.data.remote_files`), in the
   download cache, downloading it there first where needed (:func:`download`; needs
   ``pip install "samsvae-plus[data]"``);
3. otherwise in the download cache, where ``samsvae-plus go-embedding`` writes the GO
   embedding it builds.

A missing file is an :class:`~samsvae_plus.errors.MissingDataFileError` that names the
file, the variable and how to get it.
"""

from __future__ import annotations

import gzip
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd

from samsvae_plus.data.checksums import file_matches
from samsvae_plus.data.download import cache_dir, download
from samsvae_plus.data.go_embedding import build_go_embedding
from samsvae_plus.data.remote_files import REMOTE_FILES, remote_file_for_path
from samsvae_plus.data.simulate import simulate
from samsvae_plus.errors import InputError, MissingDataFileError, check_choice

__all__ = [
    "data_dir",
    "cache_dir",
    "fetch",
    "download",
    "simulate",
    "norman_mcfaline_devel",
    "papalexi2021_thp1",
    "norman2019",
    "replogle2022",
    "gene_sets",
    "replogle_pathways",
    "go_gene_embedding",
    "build_go_embedding",
    "human_genes",
    "norman2019_interactions",
]

ENV_VAR = "SAMSVAE_PLUS_DATA"
_CHECKOUT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
GENE_SET_COLLECTIONS = {"corum": "corum.csv.gz", "gobp": "gobp.csv.gz", "pathway": "pathway.csv.gz"}
GO_EMBEDDING = "annotations/go/human_gene_go_svd128.npz"
REPLOGLE2022_SCREENS = ("k562_essential", "rpe1", "k562_gwps")

# How to get a file that is neither in the data directory nor downloadable.
_NOT_DOWNLOADABLE = "it cannot be downloaded (docs/data.md gives its source)"
_HOW_TO_GET = {
    GO_EMBEDDING: "or build it with `samsvae-plus go-embedding`, which downloads the GO "
    "files and writes the embedding to the cache",
    "perturbseq/norman_mcfaline_devel.h5ad": f"{_NOT_DOWNLOADABLE}; sp.datasets.norman2019() "
    "downloads the full Norman et al. 2019 data",
}
_HOW_TO_GET.update(
    {
        f"annotations/gene_sets/{name}": f"{_NOT_DOWNLOADABLE}; or pass a gene-set file of "
        "your own (.gmt, .json or .csv)"
        for name in GENE_SET_COLLECTIONS.values()
    }
)


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


def _chosen_data_dir(path: str | os.PathLike | None) -> Path | None:
    """:func:`data_dir`, or ``None`` where none is named and there is no source checkout
    (a pip install): a directory the user names must exist, the fallback need not."""
    if path is None and not os.environ.get(ENV_VAR) and not _CHECKOUT_DATA.is_dir():
        return None
    return data_dir(path)


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


def _verify(path: Path, directory: Path, relative_path: str) -> None:
    """Check a data-directory file against the manifest and, if downloadable, the registry."""
    expected = _manifest(directory).get(relative_path)
    if expected is not None and not file_matches(path, f"sha256:{expected}"):
        raise InputError(
            f"data file {path} does not match its sha256 in MANIFEST.sha256; "
            "it is corrupt or was modified, so restore the original"
        )
    remote = remote_file_for_path(relative_path)
    if remote is not None and remote.known_hash and not file_matches(path, remote.known_hash):
        raise InputError(
            f"data file {path} does not match the published checksum {remote.known_hash}; "
            f"it is corrupt or another version, so remove it to download {remote.url}"
        )


def fetch(
    relative_path: str, data_dir_path: str | os.PathLike | None = None, *, verify: bool = True
) -> Path:
    """Path of a data file: from the data directory, else the download cache (downloading a
    registry file there first where needed).

    Parameters
    ----------
    relative_path
        The file's path inside a data directory, such as ``"annotations/go/go-basic.obo"``.
    data_dir_path
        Data directory (see :func:`data_dir`).
    verify
        Check a data-directory file against ``MANIFEST.sha256`` and the registry's
        checksum. Cached registry files are always checked.

    Raises
    ------
    MissingDataFileError
        If the file is nowhere to be found; the message names it, the variable to set and
        how to get it.
    InputError
        If its checksum differs, or its download fails.
    """
    # one spelling for every lookup below (the manifest, the registry, the hints)
    relative_path = os.path.normpath(relative_path)
    directory = _chosen_data_dir(data_dir_path)
    if directory is not None and (directory / relative_path).is_file():
        path = directory / relative_path
        if verify:
            _verify(path, directory, relative_path)
        return path
    remote = remote_file_for_path(relative_path)
    if remote is not None:
        return download(remote)
    cached = cache_dir() / relative_path
    if cached.is_file():
        return cached
    where = f"the data directory {directory}" if directory is not None else "a data directory"
    raise MissingDataFileError(
        f"data file {relative_path} is in neither {where} nor the cache {cache_dir()}; "
        f"set {ENV_VAR} to a data directory that has it; "
        + _HOW_TO_GET.get(relative_path, _NOT_DOWNLOADABLE)
    )


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


def norman2019(
    data_dir: str | os.PathLike | None = None, *, backed: Literal["r"] | None = None
) -> ad.AnnData:
    """Norman et al. 2019 (K562, CRISPRa, single genes and two-gene combinations), the
    whole data set as scPerturb publishes it (0.70 GB; downloaded once, see :func:`fetch`).

    scPerturb's conventions hold: ``obs["perturbation"]`` is the label, combinations are
    joined with ``_`` and control cells are ``control``, so register it with
    ``setup_anndata(adata, perturbation_key="perturbation", control_label="control",
    combination_delimiter="_")``.

    Parameters
    ----------
    data_dir
        Data directory tried before the cache (see :func:`data_dir`).
    backed
        ``"r"`` to leave ``X`` on disk (anndata's backed mode).
    """
    return ad.read_h5ad(fetch(REMOTE_FILES["norman2019"].path, data_dir), backed=backed)


def replogle2022(
    screen: str = "k562_essential",
    data_dir: str | os.PathLike | None = None,
    *,
    backed: Literal["r"] | None = None,
) -> ad.AnnData:
    """A Replogle et al. 2022 CRISPRi Perturb-seq screen as scPerturb publishes it
    (downloaded once, see :func:`fetch`).

    Labels are in ``obs["perturbation"]``, with ``control`` for non-targeting guides.

    Parameters
    ----------
    screen
        ``"k562_essential"`` (1.55 GB), ``"rpe1"`` (1.24 GB) or ``"k562_gwps"``, the
        genome-wide screen (8.8 GB: pass ``backed="r"`` unless memory is plentiful).
    data_dir
        Data directory tried before the cache (see :func:`data_dir`).
    backed
        ``"r"`` to leave ``X`` on disk (anndata's backed mode).
    """
    check_choice("screen", screen, REPLOGLE2022_SCREENS)
    return ad.read_h5ad(fetch(REMOTE_FILES[f"replogle2022_{screen}"].path, data_dir), backed=backed)


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
    """The GO-derived 128-d gene embedding as a ``float32`` DataFrame (genes x 128).

    It is read from the data directory, else from the cache, where
    ``samsvae-plus go-embedding`` (:func:`build_go_embedding`) writes it.
    """
    with np.load(fetch(GO_EMBEDDING, data_dir), allow_pickle=False) as npz:
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
