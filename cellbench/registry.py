"""Encoder registry: register, list and create encoders by name.

Modelled on timm's registry, with three sources of names:

1. **Model cards** – every ``models/<name>.toml`` that has a ``factory = "module:function"``
   key is a built-in model. The card is also the model's metadata record, and the one
   place that says which models are floors, ceilings and reference rows (its ``role``).
   Cards are read into a frozen :class:`ModelCard`; an unknown key is an error.
2. **Code** – ``register(name, "module:function")`` or the ``@register_encoder(name)``
   decorator, for encoders defined in a user's own session or package.
3. **Entry points** – third-party packages declare ``[project.entry-points."cellbench.encoders"]
   my-model = "my_pkg.encoders:create"`` and their model shows up in ``cellbench models``.

Factories are kept as ``"module:function"`` strings and imported only by :func:`create`,
so listing models (and ``cellbench --help``) never imports torch. A factory is called as
``factory(checkpoint=None, **kwargs)`` and returns a :class:`cellbench.encoders.base.Encoder`.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata as importlib_metadata
from importlib import resources
from pathlib import Path
from typing import Any

from cellbench.errors import CellbenchError, NotFoundError

ENTRY_POINT_GROUP = "cellbench.encoders"

#: Keys every model's metadata record has (values may be "per-run" for counts measured
#: when a checkpoint is trained).
REQUIRED_METADATA = (
    "name",
    "display_name",
    "family",
    "description",
    "parameters",
    "training_images",
    "training_perturbations",
    "counts_provenance",
    "embed_dim",
    "pooling",
    "input_channels",
    "weights_license",
    "citation",
)

#: What a model is on a leaderboard: ``model`` (scored and ranked), ``floor`` (a row a
#: trained model must beat: untrained network, nuisance-only), ``ceiling`` (the best score
#: the metrics can give: oracle), ``reference`` (a baseline row shown beside the floors but
#: not scored by every ``cellbench run``: pixel statistics).
ROLES = ("model", "floor", "ceiling", "reference")

_registered: dict[str, str | Callable[..., Any]] = {}
_registered_metadata: dict[str, dict[str, Any]] = {}


# --- model cards ---------------------------------------------------------------------------
def cards_dir() -> Path:
    """Directory of the model cards.

    ``$CELLBENCH_MODELS_DIR`` if set; else the copy shipped inside the package
    (``cellbench/model_cards``, a link to the repository's ``models/``); else ``models/``
    beside the package (a source checkout).
    """
    env = os.environ.get("CELLBENCH_MODELS_DIR")
    if env:
        return Path(env).expanduser()
    shipped = Path(str(resources.files("cellbench") / "model_cards"))
    if shipped.is_dir():
        return shipped
    return Path(__file__).resolve().parent.parent / "models"


_SECTION_KEYS: dict[str, frozenset[str] | None] = {
    "architecture": frozenset(
        {
            "backbone",
            "parameters",
            "embed_dim",
            "pooling",
            "input_size",
            "input_channels",
            "preprocessing",
        }
    ),
    "training": frozenset({"images", "perturbations", "data", "provenance"}),
    "weights": frozenset({"license", "source"}),
    "recipe": None,  # the training recipe: method-specific hyper-parameters, any keys
}


@dataclass(frozen=True)
class ModelCard:
    """One ``models/<name>.toml``, validated: unknown keys and bad values are errors.

    Top-level keys are the fields below (``name`` defaults to the file name); the tables
    ``[architecture]``, ``[training]`` and ``[weights]`` take only the keys of
    ``_SECTION_KEYS``; ``[recipe]`` is free-form.
    """

    name: str
    display_name: str
    family: str
    role: str
    description: str
    citation: str
    factory: str | None = None
    trainer: str | None = None  # the training method that trains it (``cellbench train``)
    highlight: bool = False  # the paper's proposed method: highlighted in figures
    notes: str | None = None
    architecture: Mapping[str, Any] = field(default_factory=dict)
    training: Mapping[str, Any] = field(default_factory=dict)
    weights: Mapping[str, Any] = field(default_factory=dict)
    recipe: Mapping[str, Any] = field(default_factory=dict)
    card_path: str = ""

    @classmethod
    def from_toml(cls, data: dict[str, Any], path: Path) -> ModelCard:
        """Validate one parsed card; every problem is a :class:`CellbenchError` naming the file."""

        def bad(problem: str) -> CellbenchError:
            return CellbenchError(f"model card {path}: {problem}; fix the file or remove it")

        fields = {f for f in cls.__dataclass_fields__ if f != "card_path"}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise bad(f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(fields))})")
        for section, allowed in _SECTION_KEYS.items():
            table = data.get(section, {})
            if not isinstance(table, dict):
                raise bad(f"[{section}] must be a table")
            extra = sorted(set(table) - allowed) if allowed is not None else []
            if extra and allowed is not None:
                raise bad(
                    f"unknown key(s) {', '.join(extra)} in [{section}] "
                    f"(allowed: {', '.join(sorted(allowed))})"
                )
        data = {"display_name": data.get("name", path.stem), **data}
        missing = [
            k for k in ("name", "family", "role", "description", "citation") if k not in data
        ]
        if missing:
            raise bad(f"missing key(s) {', '.join(missing)}")
        if data["role"] not in ROLES:
            raise bad(f"role {data['role']!r} is not one of {', '.join(ROLES)}")
        if not isinstance(data.get("highlight", False), bool):
            raise bad("highlight must be true or false")
        factory = data.get("factory")
        if factory is not None and (not isinstance(factory, str) or ":" not in factory):
            raise bad(f"factory must look like 'module:function', got {factory!r}")
        return cls(**data, card_path=str(path))


@lru_cache(maxsize=8)
def _read_cards(directory: str) -> dict[str, ModelCard]:
    cards: dict[str, ModelCard] = {}
    for path in sorted(Path(directory).glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise CellbenchError(
                f"model card {path} is not valid TOML ({exc}); fix the file or remove it"
            ) from None
        name = data.setdefault("name", path.stem)
        if name != path.stem:
            raise CellbenchError(
                f"model card {path} declares name {name!r}; rename the file to {name}.toml "
                "or fix its `name` key"
            )
        cards[name] = ModelCard.from_toml(data, path)
    return cards


def cards() -> dict[str, ModelCard]:
    """All model cards by name (read once per directory)."""
    return _read_cards(str(cards_dir()))


def models_with_role(*roles: str) -> tuple[str, ...]:
    """Names of the carded models whose ``role`` is one of ``roles``, sorted."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown role(s) {sorted(unknown)}; roles are {ROLES}")
    return tuple(name for name, card in sorted(cards().items()) if card.role in roles)


def role(name: str) -> str:
    """The leaderboard role of ``name``: its card's, else ``"model"`` (plugins, code)."""
    card = cards().get(name)
    return card.role if card is not None else "model"


def is_highlighted(name: str) -> bool:
    """Whether ``name`` is the paper's proposed method (its card says ``highlight = true``)."""
    card = cards().get(name)
    return bool(card is not None and card.highlight)


def _flatten(card: ModelCard) -> dict[str, Any]:
    """A card's nested TOML tables flattened into the one metadata record of a model."""
    arch, training, weights = card.architecture, card.training, card.weights
    record: dict[str, Any] = {
        "name": card.name,
        "display_name": card.display_name,
        "family": card.family,
        "description": card.description,
        "role": card.role,
        "ours": card.trainer is not None,  # trained by cellbench
        "highlight": card.highlight,
        "trainer": card.trainer,
        "factory": card.factory,
        "backbone": arch.get("backbone"),
        "parameters": arch.get("parameters"),
        "embed_dim": arch.get("embed_dim"),
        "pooling": arch.get("pooling"),
        "input_size": arch.get("input_size"),
        "input_channels": arch.get("input_channels"),
        "preprocessing": arch.get("preprocessing", "self-standardise per image and channel"),
        "training_images": training.get("images"),
        "training_perturbations": training.get("perturbations"),
        "training_data": training.get("data"),
        "counts_provenance": training.get("provenance"),
        "weights_license": weights.get("license"),
        "weights_source": weights.get("source"),
        "citation": card.citation,
        "recipe": dict(card.recipe),
        "notes": card.notes,
        "card_path": card.card_path,
    }
    return record


# --- registration --------------------------------------------------------------------------
def register(
    name: str,
    factory: str | Callable[..., Any],
    *,
    metadata: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> None:
    """Register an encoder factory under ``name``.

    ``factory`` is a callable or a lazy ``"module:function"`` string. ``metadata`` fills the
    model's record when it has no card in ``models/``.
    """
    if isinstance(factory, str) and ":" not in factory:
        raise ValueError(f"factory string must look like 'module:function', got {factory!r}")
    if not overwrite and (name in _registered or name in _builtin_factories()):
        raise CellbenchError(
            f"an encoder named {name!r} is already registered; pick another name or pass "
            "overwrite=True"
        )
    _registered[name] = factory
    if metadata is not None:
        _registered_metadata[name] = dict(metadata)


def register_encoder(name: str, **metadata: Any) -> Callable[[Callable[..., Any]], Callable]:
    """Decorator form of :func:`register`: ``@register_encoder("my-model", embed_dim=64)``."""

    def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
        register(name, factory, metadata=metadata or None, overwrite=True)
        return factory

    return decorator


def unregister(name: str) -> None:
    """Remove a code-registered encoder (tests, interactive sessions)."""
    _registered.pop(name, None)
    _registered_metadata.pop(name, None)


def _builtin_factories() -> dict[str, str]:
    return {name: card.factory for name, card in cards().items() if card.factory}


def _entry_points() -> dict[str, importlib_metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP)}


def list_models(pattern: str | None = None) -> list[str]:
    """Names of all available encoders (cards, code registrations, plugins), sorted.

    ``pattern`` is an optional shell-style filter, as in ``timm.list_models("vit*")``.
    """
    import fnmatch

    names = set(_builtin_factories()) | set(_registered) | set(_entry_points())
    if pattern:
        names = {n for n in names if fnmatch.fnmatch(n, pattern)}
    return sorted(names)


def _not_found(name: str) -> NotFoundError:
    available = list_models()
    close = difflib.get_close_matches(name, available, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return NotFoundError(
        f"unknown model {name!r}.{hint} Run `cellbench models` to list the "
        f"{len(available)} registered models, or register your own (docs/adding-an-encoder.md)."
    )


def _resolve(name: str) -> str | Callable[..., Any]:
    if name in _registered:
        return _registered[name]
    builtin = _builtin_factories()
    if name in builtin:
        return builtin[name]
    eps = _entry_points()
    if name in eps:
        return eps[name].value
    raise _not_found(name)


def _load_factory(spec: str | Callable[..., Any], name: str) -> Callable[..., Any]:
    if callable(spec):
        return spec
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise NotFoundError(
            f"model {name!r} is registered with factory {spec!r}, but importing "
            f"{module_name!r} failed ({exc}); install the package that provides it "
            "(or its optional extra) and try again"
        ) from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise NotFoundError(
            f"model {name!r}: module {module_name!r} has no factory {attr!r}; fix the "
            "`factory` key of its model card or its entry point"
        ) from None


def metadata(name: str) -> dict[str, Any]:
    """The metadata record of ``name``: its model card, else what it was registered with."""
    card = cards().get(name)
    if card is not None:
        return _flatten(card)
    eps = _entry_points()
    if name in _registered_metadata or name in _registered or name in eps:
        record = dict.fromkeys(REQUIRED_METADATA)
        record.update({"name": name, "display_name": name, "family": "plugin"})
        if name in eps and name not in _registered:
            # a plugin's factory may carry its record as a `cellbench_metadata` dict
            # (importing the plugin only now, when its metadata is asked for)
            with contextlib.suppress(Exception):
                record.update(getattr(eps[name].load(), "cellbench_metadata", {}) or {})
        record.update(_registered_metadata.get(name, {}))
        return record
    raise _not_found(name)


def create(name: str, checkpoint: str | os.PathLike | None = None, **kwargs: Any):
    """Build the encoder ``name`` (in eval mode), loading ``checkpoint`` when given.

    Extra ``kwargs`` go to the factory (e.g. ``channels=dataset.channels`` for models that
    adapt to the data's channels, ``input_size=`` for a crop size).
    """
    factory = _load_factory(_resolve(name), name)
    encoder = factory(checkpoint=checkpoint, **kwargs)
    encoder.name = name
    record = metadata(name)
    if getattr(encoder, "metadata", None):
        record = {**record, **{k: v for k, v in encoder.metadata.items() if v is not None}}
    encoder.metadata = record
    return encoder.eval()
