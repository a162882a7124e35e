"""Pyro generative models and variational guides. Nothing here reads AnnData.

Models and guides are ``PyroModule``s whose parameters are ordinary ``nn.Parameter``s.
Module-local parameters keep them out of Pyro's global parameter store, so two models in
one session never share parameters by name, and a model is a plain ``torch.nn.Module``
for saving, moving between devices and DDP.
"""

import pyro

pyro.settings.set(module_local_params=True)
