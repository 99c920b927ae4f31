"""The data layer: synthetic screens, real-format loaders, channel mapping, pair sampling.

``load_dataset(name, data_dir=None, size='quick', seed=0)`` returns an
:class:`~cellbench.data.dataset.ImageDataset` for ``synthetic-rxrx3-core``,
``synthetic-bray``, ``rxrx3-core``, ``bray`` or ``folder``.
"""

from __future__ import annotations

import os

from cellbench.errors import NotFoundError

DATASETS = ("synthetic-rxrx3-core", "synthetic-bray", "rxrx3-core", "bray", "folder")
ALIASES = {"synthetic": "synthetic-rxrx3-core", "rxrx3": "rxrx3-core", "rxrx3_core": "rxrx3-core"}


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, size: str = "quick", seed: int = 0):
    """Open dataset ``name`` (generating a synthetic one on first use)."""
    key = ALIASES.get(name, name)
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
    raise NotFoundError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def generate_screen(*args, **kwargs):
    from cellbench.data.synthetic.generate import generate_screen as _gen

    return _gen(*args, **kwargs)


def ensure_screen(*args, **kwargs):
    from cellbench.data.synthetic.generate import ensure_screen as _ens

    return _ens(*args, **kwargs)


__all__ = ["DATASETS", "ensure_screen", "generate_screen", "load_dataset"]
