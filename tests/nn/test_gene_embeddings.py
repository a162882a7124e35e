"""Gene embeddings: every source through one interface, aliases, fallbacks, and ESM2
computed by fair-esm from a FASTA and a local checkpoint (a tiny random ESM2 here)."""

from argparse import Namespace

import numpy as np
import pytest
import torch

from samsvae_plus.errors import InputError
from samsvae_plus.nn import esm2_embedding
from samsvae_plus.nn.gene_embeddings import GeneEmbeddingTable, gene_embedding

esm = pytest.importorskip("esm")

# Made-up proteins. MARCHF8 has two isoforms (one split over two lines); the headers
# follow UniProt's (GN=) and Ensembl's (gene_symbol:) conventions.
FASTA = """\
>sp|Q00001|MARC8_HUMAN Made-up isoform 1 OS=Homo sapiens OX=9606 GN=MARCHF8 PE=1 SV=1
MKTAYIAKQRQISFVK
SHFSRQLEERLGLIEV
>sp|Q00001-2|MARC8_HUMAN Made-up isoform 2 OS=Homo sapiens OX=9606 GN=MARCHF8 PE=1 SV=1
MKTAYIAKQR
>tr|Q00002|Q00002_HUMAN Made-up OS=Homo sapiens OX=9606 GN=TP53 PE=1 SV=1
MEEPQSDPSVEPPLSQETFSDLWKLLPENNVLSPLPSQAMDDLMLSPDDIEQWFTEDPGP
>ENSP00000000003 pep chromosome:GRCh38:12:1:2:1 gene:ENSG3 gene_symbol:KRAS description:made-up
MTEYKLVVVGAGGVGKSALTIQLIQNHF
"""


@pytest.fixture()
def tiny_esm2(tmp_path):
    """A randomly initialised 2-layer ESM2 saved in fair-esm's checkpoint format."""
    torch.manual_seed(0)
    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    model = esm.model.esm2.ESM2(num_layers=2, embed_dim=16, attention_heads=2, alphabet=alphabet)
    checkpoint = tmp_path / "esm2_t2_tiny.pt"
    torch.save(
        {
            "cfg": {
                "model": Namespace(
                    encoder_layers=2,
                    encoder_embed_dim=16,
                    encoder_attention_heads=2,
                    token_dropout=True,
                )
            },
            "model": {f"encoder.sentence_encoder.{k}": v for k, v in model.state_dict().items()},
        },
        checkpoint,
    )
    fasta = tmp_path / "proteins.fasta"
    fasta.write_text(FASTA)
    return model.eval(), alphabet, fasta, checkpoint


@torch.no_grad()
def _one_protein(model, alphabet, sequence):
    """Residue mean of the last layer for one unpadded sequence, token by token."""
    tokens = [alphabet.cls_idx, *(alphabet.get_idx(a) for a in sequence), alphabet.eos_idx]
    hidden = model(torch.tensor([tokens]), repr_layers=[2])["representations"][2]
    return hidden[0, 1:-1].mean(0).numpy()


@pytest.mark.slow
def test_esm2_pools_residues_then_isoforms_and_resolves_aliases(tiny_esm2, tmp_path):
    model, alphabet, fasta, checkpoint = tiny_esm2
    isoform_1 = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEV"
    expected = {
        "MARCH8": (
            _one_protein(model, alphabet, isoform_1) + _one_protein(model, alphabet, "MKTAYIAKQR")
        )
        / 2,
        "TP53": _one_protein(model, alphabet, FASTA.splitlines()[6]),
        "KRAS": _one_protein(model, alphabet, FASTA.splitlines()[-1]),
    }
    # sources enter at unit scale: divided by the standard deviation of the whole table
    scale = np.stack(list(expected.values())).std()
    genes = ["KRAS", "NOT_A_GENE", "MARCH8", "TP53"]  # MARCH8 is MARCHF8's old symbol
    cache = tmp_path / "esm2_cache.npz"
    with pytest.warns(UserWarning, match="1 of 4 genes have no embedding"):
        matrix, found = gene_embedding(
            genes, "esm2", fasta=fasta, checkpoint=checkpoint, cache=cache
        )
    assert found.tolist() == [True, False, True, True]
    assert matrix.shape == (4, 16) and not matrix[1].any()
    for row, gene in enumerate(genes):
        if gene in expected:
            # batched with padding in one forward pass, against one sequence at a time
            np.testing.assert_allclose(matrix[row], expected[gene] / scale, rtol=1e-4, atol=1e-5)

    # the second call reads the cache and never builds the model
    def refuse(_):
        raise AssertionError("the cache was not used")

    original = esm2_embedding.load_esm2
    esm2_embedding.load_esm2 = refuse
    try:
        with pytest.warns(UserWarning):
            again, _ = gene_embedding(
                genes, "esm2", fasta=fasta, checkpoint=checkpoint, cache=cache
            )
    finally:
        esm2_embedding.load_esm2 = original
    np.testing.assert_array_equal(again, matrix)


def test_esm2_needs_local_files(tmp_path):
    with pytest.raises(InputError, match="needs fasta= .* and checkpoint="):
        gene_embedding(["TP53"], "esm2")
    fasta = tmp_path / "p.fasta"
    fasta.write_text(FASTA)
    with pytest.raises(InputError, match="does not exist"):
        gene_embedding(["TP53"], "esm2", fasta=fasta, checkpoint=tmp_path / "esm2_none.pt")


def test_go_random_and_learned_sources():
    with pytest.warns(UserWarning, match="1 of 3 genes"):
        go, found = gene_embedding(["MARCH8", "MARCHF8", "NOT_A_GENE"], "go")
    assert found.tolist() == [True, True, False]
    np.testing.assert_array_equal(go[0], go[1])  # the alias gets the official gene's row
    random_ab, found = gene_embedding(["A", "B"], "random", dim=8)
    random_ba, _ = gene_embedding(["B", "A"], "random", dim=8)
    assert found.all() and random_ab.shape == (2, 8)
    np.testing.assert_array_equal(random_ab, random_ba[::-1])  # a function of the symbol
    learned, found = gene_embedding(["A", "B"], "learned")
    assert learned.shape == (2, 0) and not found.any()
    with pytest.raises(InputError, match="gene_embedding='glove' is not available"):
        gene_embedding(["A"], "glove")


def test_table_projects_found_genes_and_learns_the_others():
    table = GeneEmbeddingTable(3, 2, 4)
    table.set_embedding(np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]), np.array([1, 0, 1], bool))
    rows = table()
    scaled = table.fixed[[0, 2]]
    torch.testing.assert_close(rows[[0, 2]], table.project(scaled))
    torch.testing.assert_close(rows[1], table.learned[1])
    assert GeneEmbeddingTable(3, 0, 4)().shape == (3, 4)
