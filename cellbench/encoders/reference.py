"""Reference "encoders" of the synthetic screen: ``oracle`` and ``nuisance-only``.

The simulator knows, per well, the biological latent state it drew (``latent_*``) and the
technical nuisance it added (``nuisance_*``: batch, plate, well-position effects). Embedding
wells with these columns brackets every real encoder:

* ``oracle`` – the true biology: the best score the metrics can give on this screen;
* ``nuisance-only`` – pure batch effect: what an encoder that learned only the shortcut
  scores (after alignment it should be near the random floor).

They read ``dataset.ground_truth`` (well_id + ``latent_*`` + ``nuisance_*``) instead of
pixels, so they set ``embeds_wells = True`` and the pipeline skips the images.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from cellbench.encoders.base import Encoder
from cellbench.errors import InputError


class GroundTruthEncoder(Encoder):
    """Embeds each well as the numeric ground-truth columns starting with ``prefix``."""

    embeds_wells = True

    def __init__(self, prefix: str, name: str) -> None:
        super().__init__()
        self.prefix = prefix
        self.name = name
        self.channels = ()
        self.embed_dim = 0  # known once a dataset is seen

    def embed(self, images: Any) -> Any:
        raise InputError(
            f"{self.name} embeds wells from the simulator's ground truth, not images; "
            "use cellbench.embed.embed_dataset (or `cellbench embed`) with a synthetic dataset"
        )

    def embed_wells(self, dataset: Any) -> tuple[list[str], np.ndarray]:
        import polars as pl

        truth = getattr(dataset, "ground_truth", None)
        if truth is None:
            raise InputError(
                f"{self.name} needs the simulator's ground truth, and this dataset has none; "
                "use it with the synthetic screen (`--data synthetic`)"
            )
        numeric = [
            name
            for name, dtype in truth.schema.items()
            if name.startswith(self.prefix) and (dtype.is_numeric() or dtype == pl.Boolean)
        ]
        if not numeric:
            raise InputError(
                f"the ground truth has no numeric `{self.prefix}*` columns for {self.name}; "
                "regenerate the synthetic screen with a cellbench version that writes them"
            )
        table = truth.select("well_id", *numeric)
        values = table.select(pl.col(numeric).cast(pl.Float32)).to_numpy()
        if not np.isfinite(values).all():
            raise InputError(
                f"the ground truth's `{self.prefix}*` columns hold NaN/inf; regenerate the screen"
            )
        self.embed_dim = len(numeric)
        self.feature_names = numeric
        return table["well_id"].cast(pl.Utf8).to_list(), np.ascontiguousarray(values, np.float32)


def create_oracle(checkpoint: str | os.PathLike | None = None) -> Encoder:
    if checkpoint is not None:
        raise InputError("oracle has no weights; drop --checkpoint")
    return GroundTruthEncoder("latent_", "oracle")


def create_nuisance_only(checkpoint: str | os.PathLike | None = None) -> Encoder:
    if checkpoint is not None:
        raise InputError("nuisance-only has no weights; drop --checkpoint")
    return GroundTruthEncoder("nuisance_", "nuisance-only")
