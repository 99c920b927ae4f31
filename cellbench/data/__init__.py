"""The data layer: synthetic screens, real-format loaders, channel mapping, pair sampling.

``load_dataset(name, data_dir=None, size='quick', seed=0)`` returns an
:class:`~cellbench.data.dataset.ImageDataset` for ``synthetic-rxrx3-core``,
``synthetic-bray``, ``rxrx3-core``, ``bray`` or ``folder``.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence

from cellbench.errors import NotFoundError

DATASETS = ("synthetic-rxrx3-core", "synthetic-bray", "rxrx3-core", "bray", "folder")
ALIASES = {"synthetic": "synthetic-rxrx3-core", "rxrx3": "rxrx3-core", "rxrx3_core": "rxrx3-core"}


def _suggest(name: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=3)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def check_dataset(
    name: str,
    accepted: Sequence[str] = DATASETS,
    command: str = "this command",
    option: str = "--data",
) -> str:
    """The canonical name of dataset ``name`` (aliases resolved), one of ``accepted``; a
    :class:`NotFoundError` with the close names otherwise. Every command that takes a dataset
    speaks this one vocabulary (:data:`DATASETS` and :data:`ALIASES`)."""
    key = ALIASES.get(name, name)
    if key in accepted:
        return key
    spelled = [*accepted, *(a for a, k in ALIASES.items() if k in accepted)]
    if key in DATASETS:
        raise NotFoundError(
            f"{command} does not take {option} {name!r}; it takes one of: {', '.join(accepted)}."
        )
    raise NotFoundError(
        f"unknown dataset {name!r} for {option}.{_suggest(name, spelled)} "
        f"Use one of: {', '.join(accepted)} (aliases: "
        f"{', '.join(a for a, k in ALIASES.items() if k in accepted) or 'none'})."
    )


def load_dataset(
    name: str, data_dir: str | os.PathLike | None = None, size: str = "quick", seed: int = 0
):
    """Open dataset ``name`` (generating a synthetic one on first use)."""
    key = check_dataset(name, command="load_dataset")
    if key.startswith("synthetic-"):
        from cellbench.data.synthetic.loader import load_synthetic

        return load_synthetic(key, size=size, seed=seed, data_dir=data_dir)
    if key == "rxrx3-core":
        from cellbench.data.rxrx3 import load_rxrx3

        return load_rxrx3(data_dir)
    if key == "bray":
        from cellbench.data.bray import load_bray

        return load_bray(data_dir)
    if key == "folder":
        from cellbench.data.folder import FolderDataset

        if data_dir is None:
            raise NotFoundError("the folder dataset needs --data-dir (a folder with wells.csv)")
        return FolderDataset(data_dir)
    raise NotFoundError(
        f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}"
    )  # pragma: no cover


def generate_screen(*args, **kwargs):
    from cellbench.data.synthetic.generate import generate_screen as _gen

    return _gen(*args, **kwargs)


def ensure_screen(*args, **kwargs):
    from cellbench.data.synthetic.generate import ensure_screen as _ens

    return _ens(*args, **kwargs)


__all__ = [
    "ALIASES",
    "DATASETS",
    "check_dataset",
    "ensure_screen",
    "generate_screen",
    "load_dataset",
]
