"""Put a prediction into the layout challenge scorers expect.

That layout is: one ``obs`` column of perturbation labels and nothing else, float32 CSR
without stored zeros, the genes of the reference in the reference's order, and control
cells included. Values are kept as they are (raw counts or log1p); scorers normalise
counts themselves. The Virtual Cell Challenge names the column ``target_gene`` and its
controls ``non-targeting``; a user's own data keeps its own key and control label.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from samsvae_plus.challenge.inputs import as_matrix, detect_log1p, read_labels
from samsvae_plus.challenge.layout import SCORER_KEY, VCC_CONTROL_LABEL
from samsvae_plus.data import validate
from samsvae_plus.errors import InputError


def _in_gene_order(adata, genes: pd.Index, name: str) -> sp.csr_matrix:
    """``adata.X`` as float32 CSR with columns reordered to ``genes``."""
    validate.check_unique_names(adata.var_names, "gene", name)
    have = pd.Index(np.asarray(adata.var_names).astype(str))
    missing = genes.difference(have)
    if len(missing):
        raise InputError(
            f"{name} lacks {len(missing)} of the {len(genes)} reference genes (e.g. "
            f"{list(missing[:3])}): predict every reference gene"
        )
    # The scorer's own reading of X: CSR or ndarray, numeric, anything else refused.
    X = as_matrix(adata, name)
    if not sp.issparse(X):
        # scipy.sparse has no float16, and the output is float32 anyway.
        X = sp.csr_matrix(X.astype(np.float32, copy=False))
    X = X[:, have.get_indexer(genes)].astype(np.float32)
    X.eliminate_zeros()
    X.sort_indices()
    return X


def prepare_prediction(
    pred,
    genes: Sequence[str] | pd.Index,
    *,
    perturbation_key: str = SCORER_KEY,
    control_label: str = VCC_CONTROL_LABEL,
    controls=None,
    output_key: str = SCORER_KEY,
    output_control_label: str | None = None,
):
    """Return ``pred`` in the layout challenge scorers expect.

    Parameters
    ----------
    pred
        Predicted AnnData (raw counts or log1p), with any obs and var columns.
    genes
        Reference gene order (e.g. ``real.var_names``); ``pred`` may hold more genes and
        in any order, the extra ones are dropped.
    perturbation_key
        Column of ``pred.obs`` (and ``controls.obs``) with the perturbation labels.
    control_label
        Label of the control cells.
    controls
        Optional AnnData whose control cells are appended, for predictions made without
        controls (e.g. the real data's control cells). Its labels are read from
        ``perturbation_key`` if it has that column, else from ``target_gene``.
    output_key
        The ``obs`` column the output holds its labels in; pass ``perturbation_key`` to
        keep the input's.
    output_control_label
        The label the output gives control cells (``"non-targeting"`` for the Virtual Cell
        Challenge); None keeps ``control_label``.

    Returns
    -------
    anndata.AnnData
        ``obs[output_key]`` only, float32 CSR, genes in the reference order.

    Raises
    ------
    InputError
        When genes are missing, values are not counts or log1p, or there are no controls.
    """
    import anndata as ad

    genes = pd.Index(np.asarray(genes).astype(str))
    if genes.has_duplicates:
        raise InputError("the reference gene list has duplicates: pass unique gene names")
    parts = [(pred, "pred", None)]
    if controls is not None:
        parts.append((controls, "controls", control_label))
    matrices, labels = [], []
    for adata, name, keep in parts:
        key = perturbation_key
        if keep is not None and key not in adata.obs.columns:
            key = SCORER_KEY  # controls usually come from a file already in scorer layout
        cell_labels = read_labels(adata, key, name)
        X = _in_gene_order(adata, genes, name)
        if keep is not None:
            rows = np.flatnonzero(cell_labels == keep)
            if rows.size == 0:
                raise InputError(
                    f"controls has no cells labelled {keep!r} in obs[{perturbation_key!r}]: "
                    "pass the AnnData that holds the control cells"
                )
            X, cell_labels = X[rows], cell_labels[rows]
        matrices.append(X)
        labels.append(cell_labels)
    X = sp.vstack(matrices, format="csr").astype(np.float32)
    labels = np.concatenate(labels)
    if control_label not in set(labels):
        raise InputError(
            f"pred has no control cells labelled {control_label!r}: include them, or pass "
            "controls= (--controls) to take them from another AnnData"
        )
    detect_log1p(X, "pred")
    if output_control_label is not None:
        labels = np.where(labels == control_label, output_control_label, labels)
    obs = pd.DataFrame(
        {output_key: pd.Categorical(labels)},
        index=pd.Index([str(i) for i in range(labels.size)]),
    )
    return ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=genes.copy()))
