"""The package keeps its PyroModules' parameters local without changing Pyro's
process-wide ``module_local_params`` setting, so a user's own Pyro code keeps the global
parameter store."""

import subprocess
import sys

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.nn import PyroModule
from pyro.optim import Adam
from torch import nn

import samsvae_plus as sp

SETTING = "module_local_params"


def _use_the_package(adata, path):
    """Build, train, predict, save and load a model, as a user's session would."""
    model = sp.SAMSVAE(adata, latent_dim=2, n_hidden=8, n_layers=1)
    model.train(max_epochs=2, dense_epochs=1, batch_size=64, n_particles=1, progress=False)
    controls = adata[adata.obs["condition"] == "control"][:5].copy()
    model.predict(controls, ["P001"], seed=1)
    model.get_latent_representation(kind="z", give_mean=False)
    model.get_normalized_expression(controls, ["P001"])
    model.average_treatment_effect(["P001"], n_draws=1, n_cells=5)
    model.save(path)
    return sp.SAMSVAE.load(path, adata=adata)


def _user_pyro_module_params() -> set[str]:
    """Names a user's own PyroModule puts in the global parameter store when called."""

    class Regression(PyroModule):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(3, 1)

        def forward(self, x):
            return self.linear(x)

    pyro.clear_param_store()
    pyro.poutine.trace(Regression()).get_trace(torch.ones(2, 3))
    return set(pyro.get_param_store().keys())


def test_importing_the_package_leaves_the_setting_alone():
    code = (
        "import pyro, samsvae_plus, samsvae_plus.model, samsvae_plus.module.guides\n"
        f"print(pyro.settings.get({SETTING!r}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("user_value", [False, True])
def test_using_a_model_keeps_the_users_setting(tiny_adata, tmp_path, user_value):
    with pyro.settings.context(**{SETTING: user_value}):
        loaded = _use_the_package(tiny_adata, tmp_path / "model")
        assert pyro.settings.get(SETTING) is user_value
        # the loaded model still runs with local parameters under the user's setting
        controls = tiny_adata[tiny_adata.obs["condition"] == "control"][:3].copy()
        # P002 and the control, which predict adds
        assert loaded.predict(controls, ["P002"]).n_obs == 6
        assert loaded.get_latent_representation(controls, kind="z", give_mean=False).shape == (3, 2)
        assert pyro.settings.get(SETTING) is user_value


def test_a_users_global_param_store_code_still_works(tiny_adata, tmp_path):
    _use_the_package(tiny_adata, tmp_path / "model")
    assert pyro.settings.get(SETTING) is False
    # a PyroModule of the user's registers its parameters in the global store ...
    stored = _user_pyro_module_params()
    assert sorted(name.rsplit("$", 1)[-1] for name in stored) == ["bias", "weight"]

    # ... and plain pyro.param code trains through it
    def model(data):
        loc = pyro.param("loc", torch.tensor(0.0))
        with pyro.plate("data", len(data)):
            pyro.sample("obs", dist.Normal(loc, 1.0), obs=data)

    pyro.clear_param_store()
    data = torch.full((20,), 3.0)
    svi = SVI(model, lambda data: None, Adam({"lr": 0.1}), Trace_ELBO())
    for _ in range(50):
        svi.step(data)
    assert float(pyro.param("loc").detach()) > 2.0
    pyro.clear_param_store()
