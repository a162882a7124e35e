"""Masked-expression pretraining: the loss falls, and the weights reach a model's encoder
(by gene symbol) through encoder_weights=, from the API and from the CLI."""

import numpy as np
import pytest
import torch

import samsvae_plus as sp
from samsvae_plus.cli.main import main
from samsvae_plus.errors import InputError
from samsvae_plus.nn.masked_expression import choose_hidden
from samsvae_plus.nn.transformer import TransformerBasalEncoder

ARCHITECTURE = dict(d_model=16, n_heads=2, n_layers=1, n_bins=8)
EMBEDDING = dict(gene_embedding="random", gene_embedding_options={"dim": 8})


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    from conftest import tiny_simulation

    adata = tiny_simulation()
    path = tmp_path_factory.mktemp("pretrain") / "encoder.pt"
    result = sp.pretrain_encoder(
        adata,
        path,
        n_tokens=16,
        transformer=ARCHITECTURE,
        max_epochs=8,
        batch_size=32,
        lr=3e-3,
        **EMBEDDING,
    )
    return adata, result


def _encoder(model) -> TransformerBasalEncoder:
    (encoder,) = [m for m in model.module.modules() if isinstance(m, TransformerBasalEncoder)]
    return encoder


def _cls(body, adata):
    counts = torch.as_tensor(adata.X[:20].toarray(), dtype=torch.float32)
    with torch.no_grad():
        return body.eval()(counts, counts.sum(1))


def test_hidden_tokens_skip_padding_and_cover_every_cell():
    padding = torch.tensor([[False, False, False, True], [False, True, True, True]])
    hidden = choose_hidden(padding, 0.0, torch.Generator().manual_seed(0))
    assert hidden.sum(1).tolist() == [1, 1] and not (hidden & padding).any()
    assert (choose_hidden(padding, 0.999) == ~padding).all()


@pytest.mark.slow
def test_pretraining_lowers_the_masked_expression_loss(pretrained):
    _, result = pretrained
    losses = result.validation_loss
    assert len(losses) == 9 and result.best_epoch > 0
    assert losses[result.best_epoch] < 0.5 * losses[0]
    assert np.isfinite(result.train_loss).all()


@pytest.mark.slow
def test_a_model_loads_the_pretrained_weights(pretrained):
    adata, result = pretrained
    model = sp.SAMSVAE(
        adata, latent_dim=3, basal_encoder="transformer", encoder_weights=result.path, **EMBEDDING
    )
    assert model.config.encoder.transformer["d_model"] == 16
    assert model.config.encoder.n_tokens == 16
    torch.testing.assert_close(_cls(_encoder(model).body, adata), _cls(result.body, adata))
    fresh = sp.SAMSVAE(
        adata, latent_dim=3, basal_encoder="transformer", transformer=ARCHITECTURE, **EMBEDDING
    )
    assert not torch.allclose(_cls(_encoder(fresh).body, adata), _cls(result.body, adata))


@pytest.mark.slow
def test_weights_transfer_by_gene_symbol(pretrained):
    adata, result = pretrained
    subset = adata[:, adata.var_names[::-2]].copy()  # other genes, in another order
    sp.setup_anndata(subset, "condition", "control", context_key="cell_type")
    model = sp.ConditionalVAE(
        subset, latent_dim=3, basal_encoder="transformer", encoder_weights=result.path, **EMBEDDING
    )
    body = _encoder(model).body
    rows = [list(adata.var_names).index(g) for g in subset.var_names]
    torch.testing.assert_close(body.genes.learned, result.body.genes.learned[rows])
    torch.testing.assert_close(body.genes(), result.body.genes()[rows])
    with pytest.raises(InputError, match="pretrained with gene_embedding='random'"):
        sp.SAMSVAE(
            adata,
            latent_dim=3,
            basal_encoder="transformer",
            encoder_weights=result.path,
            gene_embedding="learned",
        )


@pytest.mark.slow
def test_cli_pretrain_writes_weights_a_model_loads(tmp_path, capsys):
    from conftest import tiny_simulation

    adata = tiny_simulation()
    adata.write_h5ad(tmp_path / "cells.h5ad")
    code = main(
        [
            "pretrain",
            "--data",
            str(tmp_path / "cells.h5ad"),
            "--out",
            str(tmp_path / "out"),
            "--gene-embedding",
            "learned",
            "--n-tokens",
            "8",
            "--d-model",
            "8",
            "--n-heads",
            "2",
            "--n-layers",
            "1",
            "--max-epochs",
            "2",
        ]
    )
    assert code == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("samsvae-plus pretrain: ") and "encoder_weights.pt" in summary
    model = sp.CPAVAE(
        adata,
        latent_dim=3,
        basal_encoder="transformer",
        gene_embedding="learned",
        encoder_weights=tmp_path / "out" / "encoder_weights.pt",
    )
    assert model.config.encoder.transformer["d_model"] == 8
