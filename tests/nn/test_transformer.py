"""The transformer basal encoder: token selection, gene-order invariance, the padding
mask, the rotation of its head, and training with every model of the family."""

import numpy as np
import pytest
import torch

import samsvae_plus as sp
from samsvae_plus.errors import InputError
from samsvae_plus.nn.transformer import TransformerBasalEncoder, tie_break_keys

GENES = [f"G{g:02d}" for g in range(24)]
SMALL_ARCHITECTURE = dict(d_model=16, n_heads=2, n_layers=2, n_bins=8)
# per-gene state rows, which move with the genes when the columns are permuted
GENE_ROWS = ["body.genes.fixed", "body.genes.found", "body.genes.learned", "body.tie_break"]


def _encoder(genes=GENES, n_tokens=8, condition_features=0, seed=0):
    torch.manual_seed(seed)
    encoder = TransformerBasalEncoder(
        genes,
        3,
        6,
        n_tokens=n_tokens,
        condition_features=condition_features,
        hidden=(16,),
        **SMALL_ARCHITECTURE,
    )
    rng = np.random.default_rng(seed)
    encoder.body.genes.set_embedding(rng.normal(size=(len(genes), 6)), rng.random(len(genes)) < 0.7)
    return encoder


def _counts(n_cells=6, seed=0):
    """Sparse integer counts with many ties (mostly 0, 1 and 2) and uneven depth."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(rng.uniform(0.1, 1.5, size=(n_cells, 1)), size=(n_cells, len(GENES)))
    counts[:, 0] += 1  # no empty cell
    counts = torch.as_tensor(counts, dtype=torch.float32)
    return counts, counts.sum(1)


def test_the_top_k_genes_are_chosen_with_ties_broken_by_gene():
    encoder = _encoder(n_tokens=5)
    counts, library = _counts()
    index, value, padding = encoder.body.select_tokens(counts, library)
    keys = tie_break_keys(GENES)
    for cell in range(counts.shape[0]):
        c = counts[cell].numpy()
        expected = sorted(range(len(GENES)), key=lambda g: (-c[g], -keys[g]))[:5]
        assert index[cell].tolist() == expected
        np.testing.assert_allclose(
            value[cell].numpy(), np.log1p(1e4 * c[expected] / c.sum()), rtol=1e-6
        )
        assert padding[cell].tolist() == (c[expected] == 0).tolist()


@pytest.mark.parametrize("n_tokens", [5, 24])
def test_output_is_invariant_to_gene_order(n_tokens):
    encoder = _encoder(n_tokens=n_tokens)
    counts, library = _counts()
    permutation = torch.from_numpy(np.random.default_rng(1).permutation(len(GENES)))
    permuted = _encoder([GENES[i] for i in permutation], n_tokens=n_tokens, seed=1)
    state = encoder.state_dict()
    permuted.load_state_dict({k: v[permutation] if k in GENE_ROWS else v for k, v in state.items()})
    loc, scale = encoder(counts, library)
    loc_p, scale_p = permuted(counts[:, permutation], library)
    torch.testing.assert_close(loc_p, loc, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(scale_p, scale, rtol=1e-5, atol=1e-6)
    # and the output does depend on which gene carries which count
    shuffled, _ = encoder(counts[:, permutation], library)
    assert (shuffled - loc).abs().max() > 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("train", [True, False])
def test_padding_is_masked_out(train):
    encoder = _encoder(n_tokens=len(GENES)).train(train)
    counts, library = _counts()
    expressed = (counts > 0).sum(1)
    # the batch reads as many tokens as its cell with most expressed genes: the others are padded
    assert expressed.min() < expressed.max() < len(GENES)
    padded, _ = encoder(counts, library)
    for cell in range(counts.shape[0]):
        encoder.body.n_tokens = int(expressed[cell])  # exactly its expressed genes: no padding
        alone, _ = encoder(counts[cell : cell + 1], library[cell : cell + 1])
        torch.testing.assert_close(alone[0], padded[cell], rtol=1e-5, atol=1e-5)


def test_head_rotates_with_the_latent_basis():
    encoder = _encoder(condition_features=3)
    counts, library = _counts()
    shift = torch.randn(2, counts.shape[0], 3)  # particles x cells x latent
    rotation = torch.linalg.qr(torch.randn(3, 3))[0]
    loc, _ = encoder(counts, library, shift)
    encoder.rotate_latent(rotation, condition_is_latent=True)
    rotated, _ = encoder(counts, library, shift @ rotation.T)
    torch.testing.assert_close(rotated, loc @ rotation.T, rtol=1e-4, atol=1e-5)


TRANSFORMER = dict(
    basal_encoder="transformer",
    gene_embedding="random",
    gene_embedding_options={"dim": 8},
    n_tokens=12,
    transformer=dict(d_model=16, n_heads=2, n_layers=1, n_bins=8),
    n_hidden=32,
    n_layers=1,
)
FAMILY = [
    (sp.SAMSVAE, {"guide": "mean_field"}),
    (sp.SAMSVAE, {"guide": "correlated_basal"}),
    (sp.SAMSVAE, {"guide": "correlated_embedding"}),
    (sp.SAMSVAE, {"guide": "correlated"}),
    (sp.CPAVAE, {"guide": "mean_field", "basal_sees_shift": True}),
    (sp.SVAEPlus, {}),
    (sp.ConditionalVAE, {}),
]


@pytest.mark.parametrize(
    "cls, options",
    FAMILY,
    ids=[c.__name__ + "-" + "-".join(map(str, o.values())) for c, o in FAMILY],
)
@pytest.mark.slow
def test_every_model_trains_with_the_transformer(tiny_adata, cls, options):
    model = cls(tiny_adata, latent_dim=3, **options, **TRANSFORMER)
    history = model.train(
        max_epochs=6, dense_epochs=2, batch_size=64, n_particles=2, lr=3e-3, progress=False
    )
    assert np.isfinite(history.train_elbo).all() and np.isfinite(history.validation_elbo).all()
    assert history.train_elbo[-1] > history.train_elbo[0] + 1.0  # nats per cell


def test_saved_model_keeps_its_encoder(tiny_adata, tmp_path):
    model = sp.SAMSVAE(tiny_adata, latent_dim=3, guide="correlated", **TRANSFORMER)
    model.train(max_epochs=2, dense_epochs=1, batch_size=64, n_particles=1, progress=False)
    controls = tiny_adata[tiny_adata.obs["condition"] == "control"][:5].copy()
    predicted = model.predict(controls, ["P001"], seed=3)
    model.save(tmp_path / "m")
    loaded = sp.SAMSVAE.load(tmp_path / "m", adata=tiny_adata)
    assert loaded.config.encoder.basal_encoder == "transformer"
    assert loaded.config.encoder.n_tokens == 12
    assert (loaded.predict(controls, ["P001"], seed=3).X != predicted.X).nnz == 0


@pytest.mark.parametrize(
    "options, message",
    [
        ({"n_tokens": 0}, "n_tokens must be an integer from 1 to 2048, got 0"),
        ({"n_tokens": 4096}, "n_tokens must be an integer from 1 to 2048"),
        ({"transformer": {"d_model": 10, "n_heads": 4}}, "d_model \\(10\\) must be a multiple"),
        ({"transformer": {"width": 8}}, "transformer option 'width' is not available"),
        ({"encoder_weights": "missing.pt"}, "encoder_weights missing.pt does not exist"),
        (
            {"basal_encoder": "mlp", "n_tokens": 8},
            "n_tokens= applies to basal_encoder='transformer'",
        ),
        ({"basal_encoder": "cnn"}, "basal_encoder='cnn' is not available"),
    ],
)
def test_bad_encoder_options_are_one_line_errors(tiny_adata, options, message):
    with pytest.raises(InputError, match=message) as err:
        sp.SAMSVAE(tiny_adata, latent_dim=3, **{**TRANSFORMER, **options})
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_chunks_by_expressed_genes_give_the_one_pass_output(monkeypatch):
    from samsvae_plus.nn import transformer

    encoder = _encoder(n_tokens=len(GENES))
    counts, library = _counts(n_cells=9)
    whole, _ = encoder(counts, library)
    monkeypatch.setattr(transformer, "CHUNK_CELLS", 2)  # five chunks, each its own width
    chunked, _ = encoder(counts, library)
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-5)
