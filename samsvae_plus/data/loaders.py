"""Minibatches of encoded cells as tensors.

A :class:`Batch` holds everything the model and guide need for a set of cells. Its
``index`` is the cells' positions within the set being iterated, which the Pyro cell plate
uses as its subsample so that local terms are scaled by ``n_cells / batch_size``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields

import numpy as np
import torch

from samsvae_plus.data.device_csr import DeviceCSR
from samsvae_plus.data.encode import EncodedData


@dataclass
class Batch:
    """Tensors for a minibatch of cells.

    Attributes
    ----------
    counts
        Cells x genes counts (``float32``); ``None`` when counts are to be sampled.
    dosage
        Cells x perturbations dosage (``float32``).
    library_size
        Library size per cell (``float32``).
    context
        Context id per cell (``int64``).
    index
        Positions of the cells within the iterated set (``int64``).
    """

    counts: torch.Tensor | None
    dosage: torch.Tensor
    library_size: torch.Tensor
    context: torch.Tensor
    index: torch.Tensor

    def __len__(self) -> int:
        return self.index.shape[0]

    def to(self, device: torch.device | str) -> Batch:
        moved = {
            f.name: (None if getattr(self, f.name) is None else getattr(self, f.name).to(device))
            for f in fields(self)
        }
        return Batch(**moved)


def make_batch(
    data: EncodedData,
    rows: np.ndarray,
    positions: np.ndarray,
    device: torch.device | str = "cpu",
    *,
    sparse_transfer: bool | None = None,
) -> Batch:
    """Tensors on ``device`` for ``data`` rows ``rows``; ``positions`` become the plate
    subsample.

    Counts and dosage are densified on the host for the CPU; for another device
    (``sparse_transfer``, by default whenever ``device`` is not the CPU) their CSR arrays
    are copied and densified there, which moves a fraction of the bytes.
    """
    device = torch.device(device)
    if sparse_transfer is None:
        sparse_transfer = device.type != "cpu"

    def dense(matrix) -> torch.Tensor:
        if sparse_transfer:
            return DeviceCSR.from_scipy(matrix[rows], device).dense()
        return torch.from_numpy(matrix[rows].toarray()).to(device)

    return Batch(
        counts=dense(data.counts),
        dosage=dense(data.dosage),
        library_size=torch.from_numpy(data.library_size[rows]).to(device),
        context=torch.from_numpy(data.context[rows]).to(device),
        index=torch.from_numpy(np.asarray(positions, dtype=np.int64)).to(device),
    )


class MinibatchLoader:
    """What every loader shares: a split of encoded cells, a batch size, a seeded shuffling
    generator and a device. Subclasses implement :meth:`batches`; the training loop uses
    only ``n_cells``, ``len``, ``batches(skip=...)`` and ``shuffle_state``."""

    def __init__(
        self,
        data: EncodedData,
        indices: np.ndarray | None = None,
        *,
        batch_size: int = 512,
        shuffle: bool = True,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.data = data
        self.indices = np.arange(data.n_cells) if indices is None else np.asarray(indices)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.rng = np.random.default_rng(seed)
        self.device = torch.device(device)

    @property
    def n_cells(self) -> int:
        """Cells per pass: the size of the Pyro cell plate."""
        return len(self.indices)

    def __len__(self) -> int:
        return -(-self.n_cells // self.batch_size)

    @property
    def shuffle_state(self) -> dict:
        """The state of the shuffling generator (JSON-serialisable), to resume an epoch."""
        return self.rng.bit_generator.state

    @shuffle_state.setter
    def shuffle_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state

    def __iter__(self) -> Iterator[Batch]:
        return self.batches()

    def batches(self, skip: int = 0) -> Iterator[Batch]:
        """One pass; the first ``skip`` batches of the pass's order are left out (but the
        order is drawn as for a full pass), so a resumed epoch continues where it stopped."""
        raise NotImplementedError


class ShuffledRowsLoader(MinibatchLoader):
    """A loader that can reach any row at any time: each pass is a fresh permutation of the
    cells, cut into batches whose positions are sorted. Subclasses turn positions into a
    :class:`Batch` (:meth:`_batch`).

    Parameters
    ----------
    shard
        For data-parallel training: picks this process's share of each batch (positions
        stay those of the whole set, so the cell plate keeps its full size).
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
        shard: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        super().__init__(
            data, indices, batch_size=batch_size, shuffle=shuffle, seed=seed, device=device
        )
        self.shard = shard

    def batches(self, skip: int = 0) -> Iterator[Batch]:
        order = self.rng.permutation(self.n_cells) if self.shuffle else np.arange(self.n_cells)
        for start in range(skip * self.batch_size, self.n_cells, self.batch_size):
            # Sorted rows make the CSR slice a contiguous-ish read; the set is what matters.
            positions = np.sort(order[start : start + self.batch_size])
            if self.shard is not None:
                positions = self.shard(positions)
            yield self._batch(positions)

    def _batch(self, positions: np.ndarray) -> Batch:
        raise NotImplementedError


class InMemoryLoader(ShuffledRowsLoader):
    """Minibatches of an in-memory :class:`EncodedData`, sliced on the host per batch.

    For the CPU the rows are densified on the host; for a GPU their CSR arrays are copied
    and densified on the device (:func:`make_batch`).

    Parameters
    ----------
    data
        The encoded cells.
    indices
        Which rows of ``data`` to iterate (a split); all rows by default.
    batch_size
        Cells per batch; the last batch may be smaller.
    shuffle
        Draw a new order every pass, from a generator seeded with ``seed``.
    device
        Where the tensors are moved.
    shard
        See :class:`ShuffledRowsLoader`.
    """

    def _batch(self, positions: np.ndarray) -> Batch:
        return make_batch(self.data, self.indices[positions], positions, self.device)


class ResidentLoader(ShuffledRowsLoader):
    """Minibatches of cells held on the device for the whole run.

    The split's counts and dosage are copied to the device once, as CSR
    (:class:`~samsvae_plus.data.device_csr.DeviceCSR`); each batch is gathered and
    densified there, so no cell data crosses from the host after the start. It draws the
    same orders as :class:`InMemoryLoader` with the same seed and yields the same
    batches. Parameters as for :class:`InMemoryLoader`.
    """

    def __init__(self, data: EncodedData, indices: np.ndarray | None = None, **options) -> None:
        super().__init__(data, indices, **options)
        split = data.subset(self.indices)
        self.counts = DeviceCSR.from_scipy(split.counts, self.device)
        self.dosage = DeviceCSR.from_scipy(split.dosage, self.device)
        self.library_size = torch.from_numpy(split.library_size).to(self.device)
        self.context = torch.from_numpy(split.context).to(self.device)

    @staticmethod
    def device_bytes(data: EncodedData, indices: np.ndarray) -> int:
        """Device memory the cells at ``indices`` would take, before building the loader."""
        counts_nnz = int(np.diff(data.counts.indptr)[indices].sum())
        dosage_nnz = int(np.diff(data.dosage.indptr)[indices].sum())
        # values and int32 column indices per entry; int64 row pointers, library, context
        return 8 * (counts_nnz + dosage_nnz) + len(indices) * (2 * 8 + 4 + 8)

    def _batch(self, positions: np.ndarray) -> Batch:
        index = torch.from_numpy(np.asarray(positions, dtype=np.int64)).to(self.device)
        return Batch(
            counts=self.counts.dense(index),
            dosage=self.dosage.dense(index),
            library_size=self.library_size[index],
            context=self.context[index],
            index=index,
        )
