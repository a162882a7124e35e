"""Module-local parameters for the package's PyroModules, without a process-wide setting.

With Pyro's ``module_local_params`` setting on, a ``PyroModule`` keeps its parameters as
ordinary ``nn.Parameter``s instead of Pyro's global parameter store: two models in one
session never share parameters by name, and a model is a plain ``torch.nn.Module`` for
saving, moving between devices and DDP. The setting is global, though, and the user's own
Pyro code may rely on the global store, so it is switched on only while one of the
package's modules runs.

Pyro reads the setting when a ``PyroModule`` is constructed (its context decides then
whether it keeps a local store) and while it is called (entering that context, and every
parameter or submodule looked up inside the call). Attribute access outside a call does
not depend on it. :class:`LocalPyroModule` sets it for exactly those two moments and
restores the caller's value afterwards.
"""

from __future__ import annotations

from typing import Any

import pyro
from pyro.nn import PyroModule

SETTING = "module_local_params"


class LocalPyroModule(PyroModule):
    """A ``PyroModule`` whose parameters are module-local whatever the global setting.

    Submodules share their parent's context, so only modules constructed and called
    through this class (or submodules of one) are covered; every model and guide of the
    package derives from it.
    """

    def __init__(self, name: str = "") -> None:
        with pyro.settings.context(**{SETTING: True}):
            super().__init__(name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if pyro.settings.get(SETTING):
            return super().__call__(*args, **kwargs)
        with pyro.settings.context(**{SETTING: True}):
            return super().__call__(*args, **kwargs)
