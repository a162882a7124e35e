"""Readers of the Gene Ontology's public files: the ontology (OBO 1.2, such as
``go-basic.obo``) and gene annotations (GAF 2.x, such as ``goa_human.gaf.gz``).

Either file may be gzip-compressed; a name ending in ``.gz`` says so.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from samsvae_plus.errors import InputError

__all__ = ["PROPAGATED_RELATIONS", "read_obo", "read_gaf"]

# The relations of go-basic, along which an annotation holds for the parent term as well
# (the "true path rule"). go-basic leaves out has_part and the cross-aspect relations
# because those do not propagate.
PROPAGATED_RELATIONS = (
    "is_a",
    "part_of",
    "regulates",
    "positively_regulates",
    "negatively_regulates",
)


def _lines(path: str | os.PathLike, what: str) -> Iterator[str]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} {path} does not exist or is not a file")
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        yield from handle


def read_obo(path: str | os.PathLike) -> tuple[dict[str, set[str]], dict[str, str]]:
    """The term graph of an OBO file.

    Returns
    -------
    parents
        Every non-obsolete term -> its parents along :data:`PROPAGATED_RELATIONS`.
    alternatives
        Secondary id (``alt_id``) -> the term's primary id.

    Raises
    ------
    InputError
        If the file is missing or has no ``[Term]`` stanza.
    """
    parents: dict[str, set[str]] = {}
    alternatives: dict[str, str] = {}
    obsolete: set[str] = set()
    term: str | None = None
    in_term = False
    for raw in _lines(path, "OBO file"):
        line = raw.split(" ! ", 1)[0].strip()  # "! name" comments follow ids
        if line.startswith("["):
            in_term, term = line == "[Term]", None
            continue
        if not in_term or ":" not in line:
            continue
        tag, value = (part.strip() for part in line.split(":", 1))
        if tag == "id":
            term = value
            parents.setdefault(term, set())
        elif term is None:
            continue
        elif tag == "is_a":
            parents[term].add(value.split()[0])
        elif tag == "relationship":
            relation, target = value.split()[:2]
            if relation in PROPAGATED_RELATIONS:
                parents[term].add(target)
        elif tag == "alt_id":
            alternatives[value] = term
        elif tag == "is_obsolete" and value == "true":
            obsolete.add(term)
    if not parents:
        raise InputError(
            f"OBO file {path} has no [Term] stanza; pass an ontology such as go-basic.obo"
        )
    for term in obsolete:
        del parents[term]
    return parents, alternatives


def read_gaf(path: str | os.PathLike) -> pd.DataFrame:
    """The positive annotations of a GAF file as a table with columns ``gene`` (the
    DB Object Symbol) and ``go_id``, one row per distinct pair.

    Annotations qualified with ``NOT`` say that the gene does *not* have the function, so
    they are left out.

    Raises
    ------
    InputError
        If the file is missing, a line has fewer than the 15 columns every GAF version
        has, or no annotation is left.
    """
    pairs = set()
    for number, line in enumerate(_lines(path, "GAF file"), start=1):
        if line.startswith("!") or not line.strip():
            continue
        columns = line.rstrip("\n").split("\t")
        if len(columns) < 15:
            raise InputError(
                f"GAF file {path}, line {number}, has {len(columns)} tab-separated columns "
                "instead of at least 15; pass a GAF 2.x file such as goa_human.gaf.gz"
            )
        if "NOT" in columns[3].split("|"):
            continue
        pairs.add((columns[2], columns[4]))
    if not pairs:
        raise InputError(f"GAF file {path} has no positive annotation")
    return pd.DataFrame(sorted(pairs), columns=["gene", "go_id"])
