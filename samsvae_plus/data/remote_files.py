"""The registry of public files the package can download: one row per file, with its URL
and checksum.

A file's ``path`` is where it lives inside a data directory (``$SAMSVAE_PLUS_DATA``) and
inside the download cache alike, so a data directory that already holds it is used offline.

Checksums are never computed here from a guess. Each is the one its publisher lists:
Zenodo lists an md5 for every file of a record, and pooch accepts ``"md5:<hex>"``. Where
the publisher lists none (the Gene Ontology release archive), ``known_hash`` is ``None``:
the first download's sha256 is logged and pinned beside the file in the cache, and every
later use is checked against that pin (see :mod:`samsvae_plus.data.download`).
"""

from __future__ import annotations

from dataclasses import dataclass

from samsvae_plus.errors import InputError

__all__ = ["RemoteFile", "REMOTE_FILES", "remote_file", "remote_file_for_path"]

# scPerturb (Peidli et al. 2024, Nature Methods), version 1.4 of its Zenodo record
# (doi:10.5281/zenodo.13350497), CC BY 4.0. A record id names one immutable version.
_SCPERTURB = "https://zenodo.org/records/13350497/files/{}?download=1"
# The Gene Ontology's dated release archive: unlike current.geneontology.org, a dated
# folder never changes. GO content is CC BY 4.0.
_GO_RELEASE = "https://release.geneontology.org/2024-03-28/{}"


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file.

    Attributes
    ----------
    name
        Registry key, as :func:`samsvae_plus.datasets.download` takes it.
    path
        Path inside a data directory and inside the cache.
    url
        Versioned download URL.
    known_hash
        ``"md5:<hex>"`` or ``"sha256:<hex>"`` as published by the source, or ``None``
        where the source publishes none (pinned on first download).
    description
        What the file is, its size and licence, for listings and messages.
    """

    name: str
    path: str
    url: str
    known_hash: str | None
    description: str


REMOTE_FILES: dict[str, RemoteFile] = {
    entry.name: entry
    for entry in [
        RemoteFile(
            "norman2019",
            "perturbseq/NormanWeissman2019_filtered.h5ad",
            _SCPERTURB.format("NormanWeissman2019_filtered.h5ad"),
            "md5:c870e6967d91c017d9da827bab183cd6",
            "Norman et al. 2019, K562 CRISPRa single and two-gene perturbations, as scPerturb "
            "publishes it (0.70 GB, CC BY 4.0)",
        ),
        RemoteFile(
            "replogle2022_k562_essential",
            "perturbseq/ReplogleWeissman2022_K562_essential.h5ad",
            _SCPERTURB.format("ReplogleWeissman2022_K562_essential.h5ad"),
            "md5:d8cba17576d1a8afc0f7d71b79cad0f7",
            "Replogle et al. 2022, K562 CRISPRi screen of essential genes, as scPerturb "
            "publishes it (1.55 GB, CC BY 4.0)",
        ),
        RemoteFile(
            "replogle2022_rpe1",
            "perturbseq/ReplogleWeissman2022_rpe1.h5ad",
            _SCPERTURB.format("ReplogleWeissman2022_rpe1.h5ad"),
            "md5:cc7f1ec50aeb3a3e1b4a6cfa713d80fa",
            "Replogle et al. 2022, RPE1 CRISPRi screen of essential genes, as scPerturb "
            "publishes it (1.24 GB, CC BY 4.0)",
        ),
        RemoteFile(
            "replogle2022_k562_gwps",
            "perturbseq/ReplogleWeissman2022_K562_gwps.h5ad",
            _SCPERTURB.format("ReplogleWeissman2022_K562_gwps.h5ad"),
            "md5:13db594f8f1d2ccb88fec44a13e414dc",
            "Replogle et al. 2022, K562 genome-wide CRISPRi screen, as scPerturb publishes "
            "it (8.8 GB, CC BY 4.0)",
        ),
        RemoteFile(
            "go_basic",
            "annotations/go/go-basic.obo",
            _GO_RELEASE.format("ontology/go-basic.obo"),
            None,
            "Gene Ontology, acyclic basic version, release 2024-03-28 (CC BY 4.0)",
        ),
        RemoteFile(
            "goa_human",
            "annotations/go/goa_human.gaf.gz",
            _GO_RELEASE.format("annotations/goa_human.gaf.gz"),
            None,
            "GO annotations of human proteins (GAF 2.2), release 2024-03-28 (CC BY 4.0)",
        ),
    ]
}


def remote_file(name: str) -> RemoteFile:
    """The registry entry called ``name``.

    Raises
    ------
    InputError
        If no entry has that name; the message lists the names.
    """
    if name not in REMOTE_FILES:
        raise InputError(
            f"no downloadable file is called {name!r}; choose one of {sorted(REMOTE_FILES)}"
        )
    return REMOTE_FILES[name]


def remote_file_for_path(path: str) -> RemoteFile | None:
    """The registry entry stored at ``path`` inside a data directory, or ``None``."""
    for entry in REMOTE_FILES.values():
        if entry.path == path:
            return entry
    return None
