"""Gene embeddings from a protein language model (ESM2, through ``fair-esm``).

A gene's vector is ESM2's final-layer representation of its protein, mean-pooled over the
residues of each isoform, then averaged over the isoforms. The sequences come from a
FASTA file and the weights from a local checkpoint, both given by the user: nothing is
downloaded. The result is cached to disk (an ``.npz`` written atomically), keyed by the
two files and the options, because a real ESM2 takes minutes to hours over a proteome.

Running it with real weights
----------------------------
::

    pip install "samsvae-plus[esm]"        # fair-esm
    # weights: esm2_t33_650M_UR50D.pt from the fair-esm release page, copied by hand;
    # proteins: UniProt's human reference proteome with isoforms
    #   (UP000005640_9606.fasta + UP000005640_9606_additional.fasta, concatenated)
    from samsvae_plus.nn.gene_embeddings import gene_embedding
    matrix, found = gene_embedding(
        adata.var_names, "esm2",
        fasta="human_proteome.fasta", checkpoint="esm2_t33_650M_UR50D.pt",
        cache="esm2_genes.npz",
    )

The checkpoint's file name must keep fair-esm's ``esm2_...`` stem (fair-esm reads the
architecture from it). It is unpickled (``torch.load(weights_only=False)``, fair-esm's
format stores an argparse namespace), so load only checkpoints you trust. The contact
regression file is not needed. Any ESM2 size works; on CPU the 650M model embeds about a
protein per second, so run it once and keep the cache.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from samsvae_plus._atomic import atomic_write_bytes
from samsvae_plus.errors import InputError

# ESM2 was trained on crops of 1,024 tokens (two of them BOS and EOS); longer proteins are
# cut, as fair-esm's own extraction script does.
MAX_RESIDUES = 1022
_GENE_FIELDS = (re.compile(r"\bGN=(\S+)"), re.compile(r"\bgene_symbol:(\S+)"))


def gene_of_header(header: str) -> str:
    """The gene symbol of a FASTA header: UniProt's ``GN=`` field, Ensembl's
    ``gene_symbol:`` field, or else the header's first word."""
    for pattern in _GENE_FIELDS:
        match = pattern.search(header)
        if match:
            return match.group(1)
    return header.split()[0] if header.split() else ""


def read_fasta(path: str | os.PathLike) -> dict[str, list[str]]:
    """Protein sequences of a FASTA file grouped by gene: ``{symbol: [isoform, ...]}``."""
    records: dict[str, list[str]] = defaultdict(list)
    header, chunks = None, []

    def flush() -> None:
        if header is not None and chunks:
            records[gene_of_header(header)].append("".join(chunks).upper())

    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if line.startswith(">"):
                flush()
                header, chunks = line[1:], []
            elif line:
                chunks.append(line)
    flush()
    if not records:
        raise InputError(f"{path} holds no FASTA records; pass a protein FASTA file")
    return dict(records)


def checkpoint_path(checkpoint: str | os.PathLike) -> Path:
    """``checkpoint`` as a path, checked: an existing file with fair-esm's ``esm2_`` name."""
    path = Path(checkpoint)
    if not path.is_file():
        raise InputError(f"ESM2 checkpoint {path} does not exist; pass a local .pt file")
    if not path.stem.startswith("esm2"):
        raise InputError(
            f"ESM2 checkpoint {path.name} must keep fair-esm's name (esm2_...pt), which "
            "fair-esm reads the architecture from"
        )
    return path


def load_esm2(checkpoint: str | os.PathLike):
    """``(model, alphabet)`` from a local fair-esm ESM2 checkpoint, in eval mode."""
    try:
        import esm
    except ImportError:
        raise InputError(
            "gene embeddings from ESM2 need fair-esm; pip install 'samsvae-plus[esm]'"
        ) from None
    path = checkpoint_path(checkpoint)
    data = torch.load(path, map_location="cpu", weights_only=False)
    # No regression data: fair-esm then accepts a state without the contact head.
    model, alphabet = esm.pretrained.load_model_and_alphabet_core(path.stem, data, None)
    return model.eval(), alphabet


@torch.no_grad()
def embed_sequences(
    model, alphabet, sequences: list[str], *, layer: int | None = None, max_tokens: int = 4096
) -> np.ndarray:
    """Residue-mean representation of each sequence (sequences x width), from ``layer``
    (default: the last). Sequences are batched by length, at most ``max_tokens`` per batch;
    padding, BOS and EOS are left out of the means."""
    layer = model.num_layers if layer is None else layer
    converter = alphabet.get_batch_converter(truncation_seq_length=MAX_RESIDUES)
    out = np.zeros((len(sequences), model.embed_dim), dtype=np.float32)
    lengths = [min(len(s), MAX_RESIDUES) + 2 for s in sequences]
    batches: list[list[int]] = []
    for i in np.argsort(lengths, kind="stable"):
        # ascending lengths: the newest sequence is the longest of its batch
        if batches and (len(batches[-1]) + 1) * lengths[i] <= max_tokens:
            batches[-1].append(int(i))
        else:
            batches.append([int(i)])
    for rows in batches:
        _, _, tokens = converter([(str(i), sequences[i]) for i in rows])
        hidden = model(tokens, repr_layers=[layer])["representations"][layer]
        residues = (
            (tokens != alphabet.padding_idx)
            & (tokens != alphabet.cls_idx)
            & (tokens != alphabet.eos_idx)
        )
        weights = residues.to(hidden.dtype).unsqueeze(-1)
        out[rows] = ((hidden * weights).sum(1) / weights.sum(1).clamp_min(1)).numpy()
    return out


def _file_key(path: str | os.PathLike) -> dict:
    stat = Path(path).stat()
    return {"path": str(Path(path).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def esm2_table(
    fasta: str | os.PathLike,
    checkpoint: str | os.PathLike,
    *,
    cache: str | os.PathLike | None = None,
    genes: Iterable[str] | None = None,
    layer: int | None = None,
) -> pd.DataFrame:
    """ESM2 gene embedding of the genes of ``fasta`` (genes x width, indexed by symbol).

    Parameters
    ----------
    fasta
        Protein sequences; several records of one gene are its isoforms (see
        :func:`gene_of_header` for how the gene is read from a header).
    checkpoint
        A local fair-esm ESM2 checkpoint (``esm2_*.pt``).
    cache
        ``.npz`` file for the result; reused when it was made from the same files (path,
        size, modification time) and options, recomputed otherwise.
    genes
        Embed only these symbols of the FASTA (the others are skipped, which saves time).
    layer
        Representation layer; by default the last.
    """
    checkpoint = checkpoint_path(checkpoint)
    proteins = read_fasta(fasta)
    wanted = sorted(proteins if genes is None else set(genes) & set(proteins))
    key = json.dumps(
        {
            "fasta": _file_key(fasta),
            "checkpoint": _file_key(checkpoint),
            "layer": layer,
            "max_residues": MAX_RESIDUES,
            "genes": wanted,
        },
        sort_keys=True,
    )
    if cache is not None and Path(cache).is_file():
        with np.load(cache, allow_pickle=False) as saved:
            if str(saved["key"]) == key:
                return pd.DataFrame(saved["embedding"], index=pd.Index(saved["genes"].astype(str)))
    model, alphabet = load_esm2(checkpoint)
    sequences = [s for g in wanted for s in proteins[g]]
    per_isoform = embed_sequences(model, alphabet, sequences, layer=layer)
    # Each gene's isoforms are consecutive in `sequences`; average them with equal weight.
    counts = np.array([len(proteins[g]) for g in wanted])
    owner = np.repeat(np.arange(len(wanted)), counts)
    embedding = np.zeros((len(wanted), per_isoform.shape[1]), dtype=np.float32)
    np.add.at(embedding, owner, per_isoform)
    embedding /= np.maximum(counts, 1)[:, None]
    if cache is not None:
        buffer = io.BytesIO()
        np.savez(buffer, key=np.asarray(key), genes=np.asarray(wanted), embedding=embedding)
        atomic_write_bytes(cache, buffer.getvalue())
    return pd.DataFrame(embedding, index=pd.Index(wanted))
