"""Pyro generative models and variational guides. Nothing here reads AnnData.

Models and guides are ``PyroModule``s whose parameters are ordinary ``nn.Parameter``s,
module-local while the package's modules are built and called
(:mod:`~samsvae_plus.module.local_params`), so that Pyro's process-wide setting stays the
user's. :mod:`~samsvae_plus.module.config` holds the typed configurations of the model
family.
"""
