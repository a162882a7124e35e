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


def make_batch(data: EncodedData, rows: np.ndarray, positions: np.ndarray) -> Batch:
    """Tensors for ``data`` rows ``rows``; ``positions`` become the plate subsample."""
    return Batch(
        counts=torch.from_numpy(data.counts[rows].toarray()),
        dosage=torch.from_numpy(data.dosage[rows].toarray()),
        library_size=torch.from_numpy(data.library_size[rows]),
        context=torch.from_numpy(data.context[rows]),
        index=torch.from_numpy(np.asarray(positions, dtype=np.int64)),
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


class InMemoryLoader(MinibatchLoader):
    """Minibatches of an in-memory :class:`EncodedData`, densified per batch on the host.

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
            positions = np.sort(order[start : start + self.batch_size])
            if self.shard is not None:
                positions = self.shard(positions)
            # Sorted rows make the CSR slice a contiguous-ish read; the set is what matters.
            yield make_batch(self.data, self.indices[positions], positions).to(self.device)
