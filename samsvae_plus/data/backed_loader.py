"""Minibatches of an on-disk (backed) AnnData, read in contiguous chunks.

:class:`BackedLoader` is a :class:`~samsvae_plus.data.loaders.MinibatchLoader`, with the
interface the training loop uses (``n_cells``, ``len``, ``batches(skip=...)``,
``shuffle_state``), but holds only a window of the counts in memory. The file's rows are cut into fixed chunks
of ``chunk_size`` rows; a pass visits the chunks that hold cells of the split in a shuffled
order, ``window_chunks`` at a time, and shuffles the cells within each window. Each chunk
is one contiguous read (HDF5 reads whole CSR row ranges fast, and scattered rows slowly).

Everything but the counts (dosage, context, library size) is small and encoded up front by
:func:`~samsvae_plus.data.encode.encode` with ``load_counts=False``.

The order is a coarser shuffle than the in-memory loader's: a batch holds cells of at most
``window_chunks`` chunks (plus a carried remainder of fewer than ``batch_size`` cells). On
files whose rows are sorted by condition, widen the window or shuffle the file's rows once.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
import torch

from samsvae_plus.data.encode import EncodedData
from samsvae_plus.data.loaders import Batch, MinibatchLoader, make_batch


class BackedLoader(MinibatchLoader):
    """Minibatches of :class:`EncodedData` whose counts stay on disk.

    Parameters
    ----------
    data
        Encoded cells whose ``counts`` is a backed matrix (``adata.X`` of an AnnData read
        with ``backed="r"``) or any matrix that slices rows into scipy sparse.
    indices
        Which rows of ``data`` to iterate (a split); all rows by default. A batch's
        ``index`` holds positions within ``indices``, as the in-memory loader's does.
    batch_size
        Cells per batch; the last batch may be smaller.
    shuffle
        Draw a new chunk order and within-window order every pass, from a generator seeded
        with ``seed``; otherwise read the rows in file order.
    device
        Where the tensors are moved.
    chunk_size
        Rows of the file per contiguous read.
    window_chunks
        Chunks held (and shuffled together) at a time.
    """

    def __init__(
        self,
        data: EncodedData,
        indices: np.ndarray | None = None,
        *,
        batch_size: int = 512,
        shuffle: bool = True,
        seed: int = 0,
        device: torch.device | str = "cpu",
        chunk_size: int = 32768,
        window_chunks: int = 4,
    ) -> None:
        if chunk_size < 1 or window_chunks < 1:
            raise ValueError(
                "chunk_size and window_chunks must be at least 1, got "
                f"{chunk_size}, {window_chunks}"
            )
        super().__init__(
            data, indices, batch_size=batch_size, shuffle=shuffle, seed=seed, device=device
        )
        self.chunk_size = int(chunk_size)
        self.window_chunks = int(window_chunks)
        # The split in file order, with each row's position within `indices`.
        order = np.argsort(self.indices, kind="stable")
        self._rows = self.indices[order].astype(np.int64)
        self._positions = order.astype(np.int64)
        chunk_of_row = self._rows // self.chunk_size
        # Only chunks holding cells of the split are read; _bounds[k]:_bounds[k+1] are the
        # split's rows in the k-th of them.
        self._chunks = np.unique(chunk_of_row)
        self._bounds = np.searchsorted(chunk_of_row, np.append(self._chunks, np.inf))
        self.rows_held = 0
        self.max_rows_held = 0

    @property
    def row_bound(self) -> int:
        """The most rows of counts held at once: a window's chunks and a carried remainder."""
        return self.window_chunks * self.chunk_size + self.batch_size - 1

    def _hold(self, rows: int) -> None:
        self.rows_held = int(rows)
        self.max_rows_held = max(self.max_rows_held, int(rows))

    def row_blocks(self) -> Iterator[tuple[np.ndarray, sp.csr_matrix]]:
        """``(rows, counts)`` of the split, chunk by chunk in file order (rows sorted), for
        statistics that must see every cell once without loading them all."""
        for k in range(len(self._chunks)):
            rows = self._rows[self._bounds[k] : self._bounds[k + 1]]
            yield rows, self._read_rows(rows, held=0)
        self._hold(0)

    def _read_rows(self, rows: np.ndarray, held: int) -> sp.csr_matrix:
        """Counts of sorted ``rows`` (all in one chunk), from one contiguous read."""
        start, stop = int(rows[0]), int(rows[-1]) + 1
        self._hold(held + stop - start)
        block = sp.csr_matrix(self.data.counts[start:stop])
        return sp.csr_matrix(block[rows - start], dtype=np.float32)

    def _read_window(self, chunk_ids: np.ndarray, held: int) -> tuple[EncodedData, np.ndarray]:
        """The window's cells (counts in memory, file order) and their positions."""
        counts, rows, positions = [], [], []
        for k in chunk_ids:
            lo, hi = self._bounds[k], self._bounds[k + 1]
            counts.append(self._read_rows(self._rows[lo:hi], held))
            held += hi - lo
            rows.append(self._rows[lo:hi])
            positions.append(self._positions[lo:hi])
        self._hold(held)
        rows = np.concatenate(rows)
        window = EncodedData(
            counts=sp.vstack(counts, format="csr"),
            dosage=self.data.dosage[rows],
            context=self.data.context[rows],
            library_size=self.data.library_size[rows],
            conditions=self.data.conditions[rows],
        )
        return window, np.concatenate(positions)

    def batches(self, skip: int = 0) -> Iterator[Batch]:
        """One pass; the first ``skip`` batches of the pass's order are left out (but the
        order is drawn as for a full pass, and windows wholly skipped are not read), so a
        resumed epoch continues where it stopped."""
        n_chunks = len(self._chunks)
        chunk_order = self.rng.permutation(n_chunks) if self.shuffle else np.arange(n_chunks)
        windows = [
            chunk_order[i : i + self.window_chunks] for i in range(0, n_chunks, self.window_chunks)
        ]
        # One seed per window, drawn up front, so the generator's state after this line is
        # the same however many batches are skipped or taken.
        seeds = self.rng.integers(0, 2**63 - 1, size=len(windows)) if self.shuffle else None
        # The pass is the windows' cells one after another (each window in its own shuffled
        # order); batch b is cells b * batch_size onwards of that stream.
        first = skip * self.batch_size
        stream_start = 0
        carried: tuple[EncodedData, np.ndarray] | None = None
        for w, chunk_ids in enumerate(windows):
            size = int(sum(self._bounds[k + 1] - self._bounds[k] for k in chunk_ids))
            if stream_start + size <= first:
                stream_start += size
                continue
            held = 0 if carried is None else len(carried[1])
            window, positions = self._read_window(chunk_ids, held)
            local = np.arange(len(positions))
            if self.shuffle:
                local = np.random.default_rng(seeds[w]).permutation(local)
            drop = max(first - stream_start, 0)
            stream_start += size
            local = local[drop:]
            if carried is not None:
                window = _concatenate(carried[0], window)
                local = np.concatenate([np.arange(held), local + held])
                positions = np.concatenate([carried[1], positions])
            last = w == len(windows) - 1
            n_full = len(local) if last else len(local) - len(local) % self.batch_size
            for start in range(0, n_full, self.batch_size):
                yield self._batch(window, local[start : start + self.batch_size], positions)
            rest = local[n_full:]
            carried = None if last or len(rest) == 0 else (window.subset(rest), positions[rest])
            self._hold(0 if carried is None else len(rest))
        self._hold(0)

    def _batch(self, window: EncodedData, local: np.ndarray, positions: np.ndarray) -> Batch:
        # Sorted positions, as in the in-memory loader: the set of cells is what matters.
        ordered = local[np.argsort(positions[local], kind="stable")]
        return make_batch(window, ordered, positions[ordered], self.device)


def _concatenate(first: EncodedData, second: EncodedData) -> EncodedData:
    return EncodedData(
        counts=sp.vstack([first.counts, second.counts], format="csr"),
        dosage=sp.vstack([first.dosage, second.dosage], format="csr"),
        context=np.concatenate([first.context, second.context]),
        library_size=np.concatenate([first.library_size, second.library_size]),
        conditions=np.concatenate([first.conditions, second.conditions]),
    )
