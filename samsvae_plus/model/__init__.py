"""The user-facing model classes.

Importing this package defines the family (:mod:`samsvae_plus.model.family`), so that
:meth:`PerturbationModel.load <samsvae_plus.model.base.PerturbationModel.load>` finds every
class a saved model may name, however the caller reached the base class.
"""

from samsvae_plus.model import family  # noqa: F401  (registers the family's classes by name)
