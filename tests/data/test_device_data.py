"""Sparse data on the device: CSR arrays densified where the model runs, and the resident
loader against the in-memory one. On the CPU these run the same code a GPU runs."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp_sparse
import torch
from helpers.simulations import tiny_simulation

import samsvae_plus as sp
from samsvae_plus.data.checked import check_cells
from samsvae_plus.data.device_csr import DeviceCSR, GrowingCSR, to_host_csr
from samsvae_plus.data.encode import encode
from samsvae_plus.data.loaders import Batch, InMemoryLoader, ResidentLoader, make_batch
from samsvae_plus.data.registry import get_registry
from samsvae_plus.errors import InputError


def assert_batches_equal(left: Batch, right: Batch) -> None:
    for name in ("counts", "dosage", "library_size", "context", "index"):
        a, b = getattr(left, name), getattr(right, name)
        assert a.dtype == b.dtype, name
        assert torch.equal(a, b), name


def test_device_csr_rows_equal_scipy_rows_including_repeats_and_empty_rows():
    matrix = sp_sparse.random(60, 25, density=0.15, format="csr", random_state=3, dtype=np.float32)
    matrix.data[matrix.indptr[7] : matrix.indptr[8]] = 0  # an empty row
    matrix.eliminate_zeros()
    csr = DeviceCSR.from_scipy(matrix, "cpu")
    for rows in ([7], [3, 3, 59, 0, 7], list(range(60)), []):
        index = torch.tensor(rows, dtype=torch.int64)
        expected = matrix[np.asarray(rows, dtype=np.int64)].toarray()
        assert torch.equal(csr.dense(index), torch.from_numpy(expected))
    assert torch.equal(csr.dense(), torch.from_numpy(matrix.toarray()))


def test_device_csr_sums_duplicate_entries_as_scipy_does():
    # Entry (0, 1) stored twice: scipy's dense form holds their sum.
    matrix = sp_sparse.csr_matrix(
        (np.array([1.0, 2.0, 5.0], dtype=np.float32), np.array([1, 1, 0]), np.array([0, 2, 3])),
        shape=(2, 3),
    )
    assert not matrix.has_canonical_format
    dense = DeviceCSR.from_scipy(matrix, "cpu").dense()
    assert torch.equal(dense, torch.tensor([[0.0, 3.0, 0.0], [5.0, 0.0, 0.0]]))


@pytest.fixture(scope="module")
def encoded():
    adata = tiny_simulation()
    return encode(check_cells(adata, get_registry(adata)))


def test_sparse_transfer_gives_the_host_densified_batch(encoded):
    rows = np.array([0, 5, 9, 40, 41])
    host = make_batch(encoded, rows, np.arange(5), sparse_transfer=False)
    device = make_batch(encoded, rows, np.arange(5), sparse_transfer=True)
    assert_batches_equal(host, device)


@pytest.mark.parametrize("skip", [0, 2])
def test_resident_loader_yields_the_in_memory_loaders_batches(encoded, skip):
    split = np.random.default_rng(0).permutation(encoded.n_cells)[:70]

    def shard(positions):  # an uneven share, as a data-parallel rank takes
        return positions[::2]

    options = dict(batch_size=16, seed=4, shard=shard)
    memory, resident = (
        InMemoryLoader(encoded, split, **options),
        ResidentLoader(encoded, split, **options),
    )
    for _ in range(2):  # two passes: the shuffling generators advance alike
        pairs = list(zip(memory.batches(skip=skip), resident.batches(skip=skip), strict=True))
        assert len(pairs) == len(memory) - skip
        for left, right in pairs:
            assert_batches_equal(left, right)
    assert ResidentLoader.device_bytes(encoded, split) >= resident.counts.nbytes


@pytest.mark.slow
def test_training_with_the_resident_loader_gives_the_same_parameters():
    def fit(loader):
        model = sp.SAMSVAE(tiny_simulation(), latent_dim=3)
        model.train(
            max_epochs=4,
            dense_epochs=2,
            batch_size=32,
            n_particles=2,
            seed=5,
            progress=False,
            loader=loader,
        )
        return model.module.state_dict()

    memory, resident = fit("memory"), fit("resident")
    for name, value in memory.items():
        assert torch.equal(value, resident[name]), name


def test_an_unknown_loader_is_named_with_the_choices():
    model = sp.SAMSVAE(tiny_simulation(), latent_dim=3)
    with pytest.raises(InputError, match="loader must be one of .*'resident'"):
        model.train(max_epochs=1, loader="gpu", progress=False)


def test_growing_csr_equals_vstack_in_order():
    blocks = [
        sp_sparse.random(n, 9, density=0.3, format="csr", random_state=n, dtype=np.float32)
        for n in (4, 1, 7, 30)
    ]
    blocks.insert(2, sp_sparse.csr_matrix((0, 9), dtype=np.float32))  # an empty chunk
    expected = sp_sparse.vstack(blocks, format="csr").toarray()
    first, second = GrowingCSR(9), GrowingCSR(9)
    for block in blocks[:3]:
        first.append(block)
    for block in blocks[3:]:
        second.append(block)
    first.extend(second)
    assert second.nnz == 0 and second.row_lengths == []  # released once moved
    stacked = first.to_csr()
    assert stacked.dtype == np.float32 and stacked.indices.dtype == np.int32
    np.testing.assert_array_equal(stacked.toarray(), expected)
    assert GrowingCSR(9).to_csr().shape == (0, 9)


def test_to_host_csr_keeps_the_values():
    dense = torch.tensor([[0.0, 2.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 5.0]])
    np.testing.assert_array_equal(to_host_csr(dense).toarray(), dense.numpy())
