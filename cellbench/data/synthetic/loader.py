"""Synthetic screens read through the REAL loaders (same code path), plus ground truth."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from cellbench.data.dataset import ImageDataset
from cellbench.data.synthetic.generate import ensure_screen, is_complete, read_manifest
from cellbench.data.synthetic.writer import GROUND_TRUTH, MANIFEST
from cellbench.errors import InputError


def open_synthetic(root: str | os.PathLike):
    """Open a generated screen directory (must carry a complete manifest)."""
    root = Path(root)
    if not is_complete(root):
        raise InputError(
            f"{root} is not a complete synthetic screen (no manifest.json or files missing); "
            "regenerate it with `cellbench data generate NAME --out DIR`"
        )
    man = read_manifest(root)
    assert man is not None  # (a complete screen has its manifest)
    ds: ImageDataset
    if man["config"]["kind"] == "rxrx3":
        from cellbench.data.rxrx3 import RxRx3Dataset

        ds = RxRx3Dataset(root, name=man["name"])
    else:
        from cellbench.data.bray import BrayDataset

        ds = BrayDataset(root, name=man["name"])
    ds.manifest = man
    try:
        ds.ground_truth = pl.read_parquet(root / GROUND_TRUTH)
    except Exception as exc:
        raise InputError(
            f"{root / GROUND_TRUTH}: cannot read the ground truth ({exc}); the file is "
            "corrupt — regenerate the screen with `cellbench data generate`"
        ) from exc
    ds.synthetic = True
    return ds


def load_synthetic(name: str, size: str = "quick", seed: int = 0, data_dir=None):
    """The screen in ``data_dir`` (which must hold a complete generated screen; nothing is ever
    generated into a folder the user named), or the cached screen of ``name``/``size``/``seed``,
    generated once into the cache."""
    if data_dir is None:
        return open_synthetic(ensure_screen(name, size, seed))
    root = Path(data_dir)
    if not (root / MANIFEST).is_file():
        where = (
            "does not exist"
            if not root.exists()
            else "holds no generated screen (no manifest.json)"
        )
        raise InputError(
            f"--data-dir {root} {where}; generate one there with "
            f"`cellbench data generate {name} --size {size} --seed {seed} --out {root}`, "
            "or drop --data-dir to use the cached screen"
        )
    return open_synthetic(root)
