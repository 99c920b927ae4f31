"""Inputs that are empty or hold missing values are named as such, not as something else."""

from __future__ import annotations

import polars as pl
import pytest

from cellbench.errors import InputError
from cellbench.evaluate import read_embeddings, read_metadata


def test_null_features_are_reported_as_null_not_nan(tmp_path):
    path = tmp_path / "e.parquet"
    pl.DataFrame(
        {"well_id": ["a", "b"], "feature_0": [1.0, None], "feature_1": [0.5, 0.2]}
    ).write_parquet(path)
    with pytest.raises(InputError, match=r"null \(missing\) feature values.*\['b'\]"):
        read_embeddings(path)


def test_zero_row_embeddings_are_reported_as_empty(tmp_path):
    path = tmp_path / "e.parquet"
    pl.DataFrame(
        {"well_id": [], "feature_0": []}, schema={"well_id": pl.Utf8, "feature_0": pl.Float32}
    ).write_parquet(path)
    with pytest.raises(InputError, match="is empty"):
        read_embeddings(path)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_zero_row_metadata_is_reported_as_empty(tmp_path, suffix):
    path = tmp_path / f"m{suffix}"
    frame = pl.DataFrame({"well_id": [], "gene": []}, schema={"well_id": pl.Utf8, "gene": pl.Utf8})
    frame.write_csv(path) if suffix == ".csv" else frame.write_parquet(path)
    with pytest.raises(InputError, match="is empty"):
        read_metadata(path)
