"""Typed configurations of the model family: one frozen dataclass per user class.

A configuration declares every option of its class once: the name, the default, a line of
help and, where the values are a fixed set, the choices (field metadata). The user classes
take their keyword arguments from it (:meth:`ModelConfig.argument_fields`), ``samsvae-plus
train`` its flags, and a saved model its ``model.json`` entry (:meth:`ModelConfig.to_dict`,
the same JSON object as before the configurations were typed, so that checkpoint
fingerprints still match; :meth:`ModelConfig.from_dict` reads older files too).

Building a configuration checks it. The basal-encoder options are one nested
:class:`~samsvae_plus.nn.encoder_options.EncoderOptions`, flat among the arguments.

Nothing here imports torch or pandas, so the command line builds its parser from these
classes cheaply.
"""

from __future__ import annotations

from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, ClassVar

from samsvae_plus.errors import InputError, check_choice
from samsvae_plus.nn.encoder_options import EncoderOptions

# Each variational family of SAMS-VAE's guide, by name, as options of the one guide class.
GUIDES: dict[str, dict[str, bool]] = {
    "mean_field": {"embedding_given_mask": False, "sampled_shift": False},
    "correlated_basal": {"embedding_given_mask": False, "sampled_shift": True},
    "correlated_embedding": {"embedding_given_mask": True, "sampled_shift": False},
    "correlated": {"embedding_given_mask": True, "sampled_shift": True},
}
CPA_GUIDES = ("mean_field", "correlated_basal")
MASKS = ("bernoulli", "beta_bernoulli")
MASK_PROBABILITY_GUIDES = ("beta", "point")
PERTURBATION_PRIORS = ("normal", "gene_embedding")
ENCODER = "encoder"


def _encoder_field() -> Any:
    return field(default_factory=EncoderOptions, metadata={"help": "basal-encoder options"})


@dataclass(frozen=True)
class ModelConfig:
    """Base of the configurations: arguments, checks and the saved JSON object.

    A field named ``encoder`` holds :class:`EncoderOptions`, whose fields join the
    arguments; fields marked ``derived`` in their metadata are filled in when a model is
    built (widths of embeddings read from files) and are not arguments; fields with
    ``init=False`` are constants of the class that saved configs record.
    """

    # SAMS-VAE and CPA-VAE configs always named their basal encoder, the others only a
    # transformer; saved files and checkpoint fingerprints keep those keys.
    NAMES_MLP_ENCODER: ClassVar[bool] = False

    @classmethod
    def argument_fields(cls) -> list[Field]:
        """The fields a user sets, the encoder's among them, in declaration order."""
        arguments = []
        for f in fields(cls):
            if f.name == ENCODER:
                arguments.extend(_settable(fields(EncoderOptions)))
            elif _settable([f]):
                arguments.append(f)
        return arguments

    @classmethod
    def from_arguments(cls, **arguments: Any) -> ModelConfig:
        """The configuration of keyword arguments as the user classes take them (the
        encoder's options flat among the others)."""
        if any(f.name == ENCODER for f in fields(cls)):
            names = {f.name for f in fields(EncoderOptions)}
            encoder = {k: arguments.pop(k) for k in list(arguments) if k in names}
            arguments[ENCODER] = EncoderOptions(**encoder)
        return cls(**arguments)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object a saved model and a checkpoint fingerprint hold."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == ENCODER:
                out.update(value.to_dict(name_mlp=self.NAMES_MLP_ENCODER))
            elif not (f.metadata.get("derived") and value is None):
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> ModelConfig:
        """The configuration a saved model holds; keys a file of an older version lacks
        take their defaults."""
        own = {f.name for f in fields(cls)} - {ENCODER}
        encoder_keys = set()
        if any(f.name == ENCODER for f in fields(cls)):
            encoder_keys = {f.name for f in fields(EncoderOptions)}
        unknown = sorted(set(config) - own - encoder_keys)
        if unknown:
            raise InputError(
                f"the saved configuration has {unknown[0]!r}, which a {cls.__name__} does not "
                "know; load it with the version of samsvae_plus that saved it"
            )
        arguments = {f.name: config[f.name] for f in fields(cls) if f.init and f.name in config}
        if encoder_keys:
            arguments[ENCODER] = EncoderOptions.from_dict(config)
        return cls(**arguments)

    def _check_choice(self, name: str) -> None:
        """Refuse a value outside the field's declared choices."""
        check_choice(name, getattr(self, name), self.__dataclass_fields__[name].metadata["choices"])


def _settable(candidates) -> list[Field]:
    return [f for f in candidates if f.init and not f.metadata.get("derived")]


def _check_latent_dim(latent_dim: int) -> None:
    if latent_dim < 1:
        raise InputError(f"latent_dim must be at least 1, got {latent_dim}")


@dataclass(frozen=True)
class _Networks(ModelConfig):
    """Options every model of the family has."""

    # 20: on Norman's K562 cells it agreed best and most steadily with kept-out cells of
    # the trained perturbations; 50 collapsed on one seed of two and 100 on both
    # (docs/results.md, "Choosing the defaults").
    latent_dim: int = field(default=20, metadata={"help": "dimension of the latent space"})
    n_hidden: int = field(default=128, metadata={"help": "width of the encoder and decoder MLPs"})
    n_layers: int = field(default=2, metadata={"help": "depth of the encoder and decoder MLPs"})


@dataclass(frozen=True)
class _LatentShift(_Networks):
    """Options of the models whose perturbations shift the latent state (SAMS-VAE, CPA-VAE)."""

    NAMES_MLP_ENCODER: ClassVar[bool] = True

    # The basal encoder reads the sampled shift and subtracts it: an x-only encoder absorbs
    # the effects into z_basal (docs/results.md: the ablation's x-only encoder, and
    # "Choosing the defaults").
    guide: str = field(
        default="correlated_basal",
        metadata={"help": "variational family", "choices": tuple(GUIDES)},
    )
    encoder: EncoderOptions = _encoder_field()
    embedding_prior_scale: float = field(
        default=1.0, metadata={"help": "prior standard deviation beta of the embeddings"}
    )
    perturbation_prior: str = field(
        default="normal",
        metadata={
            "help": "prior of the effects: free per perturbation, or a learned function of a "
            "fixed gene embedding",
            "choices": PERTURBATION_PRIORS,
        },
    )
    basal_sees_shift: bool = field(
        default=False,
        metadata={
            "help": "mean-field guide: let the z_basal encoder read the cell's expected "
            "latent shift"
        },
    )
    gene_embedding_dim: int | None = field(
        default=None,
        metadata={"derived": True, "help": "width of the gene-embedding prior's embedding"},
    )


@dataclass(frozen=True)
class _LearnedMasks(_Networks):
    """Options of the variational distribution of learned masks (SAMS-VAE, SVAE+)."""

    mask_probability_guide: str = field(
        default="beta",
        metadata={
            "help": "q(pi) of Beta-Bernoulli masks: a learned Beta, or a point estimate",
            "choices": MASK_PROBABILITY_GUIDES,
        },
    )
    temperature: float = field(
        default=0.5,
        metadata={"help": "relaxation temperature of the straight-through mask samples"},
    )


@dataclass(frozen=True)
class SAMSVAEConfig(_LatentShift, _LearnedMasks):
    """Options of :class:`~samsvae_plus.model.family.SAMSVAE` (documented there)."""

    masks: str = field(
        default="bernoulli",
        metadata={"help": "mask prior: Bernoulli(mask_prior) or Beta-Bernoulli", "choices": MASKS},
    )
    mask_prior: float = field(default=0.01, metadata={"help": "prior mask probability alpha"})
    beta_prior: tuple[float, float] | None = field(
        default=None,
        metadata={"help": "(a, b) of Beta-Bernoulli masks; by default mean mask_prior, a = 1"},
    )

    def __post_init__(self) -> None:
        _check_latent_dim(self.latent_dim)
        for name in ("guide", "masks", "mask_probability_guide", "perturbation_prior"):
            self._check_choice(name)
        if not 0 < self.mask_prior < 1:
            raise InputError(f"mask_prior must lie strictly between 0 and 1, got {self.mask_prior}")
        if self.perturbation_prior == "gene_embedding" and self.masks != "bernoulli":
            raise InputError("perturbation_prior='gene_embedding' needs masks='bernoulli'")
        beta_prior = self.beta_prior
        if beta_prior is None:
            beta_prior = (1.0, (1.0 - self.mask_prior) / self.mask_prior)
        object.__setattr__(self, "beta_prior", tuple(beta_prior))


@dataclass(frozen=True)
class CPAVAEConfig(_LatentShift):
    """Options of :class:`~samsvae_plus.model.family.CPAVAE`: SAMS-VAE's without the masks'."""

    guide: str = field(
        default=_LatentShift.guide, metadata={"help": "variational family", "choices": CPA_GUIDES}
    )
    masks: str = field(default="fixed", init=False, metadata={"help": "every mask is 1"})

    def __post_init__(self) -> None:
        _check_latent_dim(self.latent_dim)
        for name in ("guide", "perturbation_prior"):
            self._check_choice(name)


@dataclass(frozen=True)
class SVAEPlusConfig(_LearnedMasks):
    """Options of :class:`~samsvae_plus.model.family.SVAEPlus` (documented there)."""

    beta2: float | None = field(
        default=None,
        metadata={
            "help": "beta_2 of the Beta(1, beta_2) mask-probability prior (default: latent_dim)"
        },
    )
    encoder: EncoderOptions = _encoder_field()

    def __post_init__(self) -> None:
        _check_latent_dim(self.latent_dim)
        self._check_choice("mask_probability_guide")
        beta2 = self.latent_dim if self.beta2 is None else self.beta2
        object.__setattr__(self, "beta2", float(beta2))


@dataclass(frozen=True)
class ConditionalVAEConfig(_Networks):
    """Options of :class:`~samsvae_plus.model.family.ConditionalVAE` (documented there)."""

    encoder: EncoderOptions = _encoder_field()

    def __post_init__(self) -> None:
        _check_latent_dim(self.latent_dim)


def field_default(f: Field) -> Any:
    """The default of a field, whether given as a value or a factory."""
    return f.default_factory() if f.default is MISSING else f.default
