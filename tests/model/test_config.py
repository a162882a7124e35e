"""Typed configurations: the user classes take their arguments from them, save them as the
JSON object saved models always held, load them back, and register by name only on
request."""

import inspect
from dataclasses import fields

import pytest
import torch
from torch import nn

import samsvae_plus as sp
from samsvae_plus.inference.training_options import TrainingOptions
from samsvae_plus.model.base import PerturbationModel
from samsvae_plus.module.config import (
    ConditionalVAEConfig,
    CPAVAEConfig,
    SAMSVAEConfig,
    SVAEPlusConfig,
)
from samsvae_plus.nn.encoder_options import EncoderOptions

# The config entries of model.json as the classes wrote them before they were typed.
SAVED = {
    sp.SAMSVAE: (
        dict(latent_dim=3, guide="correlated", masks="beta_bernoulli"),
        {
            "latent_dim": 3,
            "guide": "correlated",
            "basal_encoder": "mlp",
            "masks": "beta_bernoulli",
            "mask_prior": 0.01,
            "beta_prior": [1.0, (1.0 - 0.01) / 0.01],
            "mask_probability_guide": "beta",
            "embedding_prior_scale": 1.0,
            "perturbation_prior": "normal",
            "basal_sees_shift": False,
            "n_hidden": 128,
            "n_layers": 2,
            "temperature": 0.5,
        },
    ),
    sp.CPAVAE: (
        dict(latent_dim=3, guide="correlated_basal", n_layers=1),
        {
            "latent_dim": 3,
            "guide": "correlated_basal",
            "basal_encoder": "mlp",
            "masks": "fixed",
            "embedding_prior_scale": 1.0,
            "perturbation_prior": "normal",
            "basal_sees_shift": False,
            "n_hidden": 128,
            "n_layers": 1,
        },
    ),
    sp.SVAEPlus: (
        dict(latent_dim=3, mask_probability_guide="point"),
        {
            "latent_dim": 3,
            "beta2": 3.0,
            "mask_probability_guide": "point",
            "n_hidden": 128,
            "n_layers": 2,
            "temperature": 0.5,
        },
    ),
    sp.ConditionalVAE: (
        dict(latent_dim=3, n_hidden=16),
        {"latent_dim": 3, "n_hidden": 16, "n_layers": 2},
    ),
}


@pytest.mark.parametrize("cls", list(SAVED), ids=lambda cls: cls.__name__)
def test_a_config_saves_the_json_object_saved_models_always_held(cls, tiny_adata, tmp_path):
    options, saved = SAVED[cls]
    model = cls(tiny_adata, **options)
    assert model.config.to_dict() == saved
    assert type(model.config).from_dict(saved) == model.config
    model.train(max_epochs=1, batch_size=64, n_particles=1, progress=False)
    loaded = PerturbationModel.load(model.save(tmp_path / "m"))
    assert type(loaded) is cls and loaded.config == model.config


def test_a_transformer_config_keeps_its_resolved_encoder(tiny_adata):
    model = sp.CPAVAE(
        tiny_adata,
        latent_dim=2,
        basal_encoder="transformer",
        gene_embedding="random",
        transformer={"d_model": 8, "n_heads": 2, "n_layers": 1},
    )
    saved = model.config.to_dict()
    assert saved["n_tokens"] == 256 and saved["transformer"]["n_bins"] == 16
    assert saved["gene_embedding"] == "random" and saved["encoder_weights"] is None
    assert saved["token_embedding_dim"] > 0
    assert CPAVAEConfig.from_dict(saved) == model.config


def test_the_keyword_api_is_the_configs_fields():
    signature = inspect.signature(sp.SAMSVAE)
    parameters = list(signature.parameters.values())
    assert [p.name for p in parameters[:4]] == ["adata", "latent_dim", "guide", "basal_encoder"]
    assert all(p.kind is p.KEYWORD_ONLY for p in parameters[4:])
    assert signature.parameters["mask_prior"].default == SAMSVAEConfig().mask_prior
    assert signature.parameters["n_tokens"].default is None
    names = {p.name for p in parameters}
    assert {"gene_embedding_dim", "token_embedding_dim", "encoder"}.isdisjoint(names)
    assert set(inspect.signature(sp.SVAEPlus).parameters) == {"adata"} | {
        f.name for f in SVAEPlusConfig.argument_fields()
    }
    assert "guide" not in inspect.signature(sp.ConditionalVAE).parameters


def test_positional_and_keyword_arguments_build_the_same_model(tiny_adata):
    by_position = sp.SAMSVAE(tiny_adata, 3, "correlated_basal", n_hidden=8)
    by_keyword = sp.SAMSVAE(tiny_adata, latent_dim=3, guide="correlated_basal", n_hidden=8)
    assert by_position.config == by_keyword.config
    for name, value in by_position.module.state_dict().items():
        assert torch.equal(value, by_keyword.module.state_dict()[name]), name
    with pytest.raises(TypeError, match="unexpected keyword argument 'latnt_dim'"):
        sp.SAMSVAE(tiny_adata, latnt_dim=3)
    with pytest.raises(TypeError, match="too many positional"):
        sp.ConditionalVAE(tiny_adata, 3, "mean_field")


def test_configs_check_their_options():
    with pytest.raises(sp.InputError, match="guide='correlated' is not available"):
        CPAVAEConfig(guide="correlated")
    with pytest.raises(sp.InputError, match="mask_prior must lie strictly between 0 and 1"):
        SAMSVAEConfig(mask_prior=1.0)
    with pytest.raises(sp.InputError, match="latent_dim must be at least 1"):
        ConditionalVAEConfig(latent_dim=0)
    with pytest.raises(sp.InputError, match="does not know"):
        SAMSVAEConfig.from_dict({"latent_dim": 3, "beta2": 4.0})
    assert SAMSVAEConfig(mask_prior=0.2).beta_prior == (1.0, 4.0)
    assert SVAEPlusConfig(latent_dim=7).beta2 == 7.0
    assert SAMSVAEConfig.from_dict({"latent_dim": 3}).encoder == EncoderOptions()


def test_train_takes_its_defaults_from_the_training_options():
    parameters = inspect.signature(PerturbationModel.train).parameters
    for f in fields(TrainingOptions):
        assert parameters[f.name].default == f.default, f.name


def _tiny_model_class(name: str, register: bool):
    from samsvae_plus.module.likelihood import CountLikelihood

    class Model(nn.Module):
        def __init__(self, n_genes):
            super().__init__()
            self.likelihood = CountLikelihood(2, n_genes, (4,))

    def build(self, registry, config, inputs):
        return nn.ModuleDict({"model": Model(registry.n_genes), "guide": nn.Module()})

    return type(name, (PerturbationModel,), {"_build": build}, register=register)


def test_a_same_named_class_elsewhere_does_not_replace_a_registered_one(tiny_adata, tmp_path):
    model = sp.ConditionalVAE(tiny_adata, latent_dim=2, n_hidden=8, n_layers=1)
    model.train(max_epochs=1, batch_size=64, n_particles=1, progress=False)
    path = model.save(tmp_path / "cvae")
    local = _tiny_model_class("ConditionalVAE", register=False)
    assert local(tiny_adata).config.to_dict() == {}
    assert type(PerturbationModel.load(path)) is sp.ConditionalVAE
    with pytest.raises(TypeError, match="'ConditionalVAE' is registered already"):
        _tiny_model_class("ConditionalVAE", register=True)
    assert type(PerturbationModel.load(path)) is sp.ConditionalVAE
