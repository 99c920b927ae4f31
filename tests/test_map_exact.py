"""The fast activity/consistency engine equals copairs called directly (Kalinin et al. 2025): AP
per well, mAP, p-values and BH-corrected p-values, on CRISPR/ORF/compound-like tables, ties,
groups of different sizes, single-replicate perturbations, float32 input and several blocks;
its null equals copairs' draw for draw; the copairs engine is refused when it would not fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
from copairs.compute import get_null_dists, random_ap
from copairs.map import average_precision, mean_average_precision

from cellbench.errors import CellbenchError, ResourceError
from cellbench.metrics import activity, map_exact
from cellbench.metrics.activity import activity_table, phenotypic_activity, phenotypic_consistency

NULL = 2000


@pytest.fixture(autouse=True)
def _own_copairs_cache(tmp_path, monkeypatch):
    """copairs caches its nulls under ~/.copairs; each test gets an empty one."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def copairs_activity(x, pert, ctrl, null_size=NULL, seed=0):
    """copairs' documented activity recipe, called directly: (per-well AP, per-group mAP)."""
    meta = pd.DataFrame({"pert": pert, "ref": np.where(ctrl, np.arange(len(pert)), -1)})
    ap = average_precision(
        meta,
        np.asarray(x, np.float64),
        ["pert", "ref"],
        [],
        [],
        ["pert", "ref"],
        progress_bar=False,
    )
    ap = ap[ap["ref"] == -1]
    maps = mean_average_precision(
        ap, ["pert", "ref"], null_size=null_size, threshold=0.05, seed=seed, progress_bar=False
    )
    return ap, maps.sort_values("pert").reset_index(drop=True)


def assert_same(ours: pl.DataFrame, ref: pd.DataFrame, label: str = "perturbation") -> None:
    assert ours[label].to_list() == ref[ref.columns[0]].astype(str).tolist()
    np.testing.assert_allclose(
        ours["mean_average_precision"].to_numpy(),
        ref["mean_average_precision"].to_numpy(),
        rtol=1e-12,
        atol=1e-15,
    )
    # p-values: the same null, so exactly the same numbers
    np.testing.assert_array_equal(ours["p_value"].to_numpy(), ref["p_value"].to_numpy())
    np.testing.assert_array_equal(
        ours["corrected_p_value"].to_numpy(), ref["corrected_p_value"].to_numpy()
    )
    np.testing.assert_array_equal(ours["retrieved"].to_numpy(), ref["below_corrected_p"].to_numpy())


def screen(seed: int, n: int = 500, d: int = 24, n_perts: int = 60, ctrl_frac: float = 0.2):
    """Random wells, replicate counts from 1 to 12, a few strong perturbations."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 13, n_perts)
    pert = np.repeat([f"P{i:03d}" for i in range(n_perts)], sizes)
    n_ctrl = int(ctrl_frac * len(pert)) + 5
    pert = np.concatenate([pert, np.full(n_ctrl, "DMSO")])
    ctrl = pert == "DMSO"
    x = rng.standard_normal((len(pert), d)).astype(np.float32)
    shift = rng.standard_normal((n_perts, d)).astype(np.float32)
    strong = rng.random(n_perts) < 0.3
    for i in np.nonzero(strong)[0]:
        x[pert == f"P{i:03d}"] += shift[i]
    return x, pert, ctrl


@pytest.mark.parametrize("seed", [0, 1])
def test_activity_equals_copairs_per_well_and_per_perturbation(seed):
    x, pert, ctrl = screen(seed)
    assert (np.unique(pert[~ctrl], return_counts=True)[1] == 1).any()  # single-replicate ones
    ours = phenotypic_activity(x, pert, ctrl, null_size=NULL, seed=seed)
    keep = ctrl | np.isin(pert, ours.per_perturbation["perturbation"].to_list())
    _, map_ref = copairs_activity(x[keep], pert[keep], ctrl[keep], seed=seed)
    assert_same(ours.per_perturbation, map_ref)
    assert 0 < ours.fraction_retrieved < 1


@pytest.mark.parametrize("sort_above", [0, 10**9], ids=["sorted-rows", "per-positive-passes"])
def test_ap_per_well_equals_copairs_with_ties_and_several_blocks(sort_above):
    """Integer features make many similarities exactly equal (copairs ranks a positive before a
    tied negative); duplicated wells tie exactly; a tiny block forces many blocks. Both ranking
    paths (rows sorted once, one pass per positive) give copairs' numbers."""
    rng = np.random.default_rng(3)
    x, pert, ctrl = screen(3, n=300, d=3)
    x = rng.integers(-2, 3, x.shape).astype(np.float64)
    x[np.abs(x).sum(axis=1) == 0, 0] = 1.0
    x[np.nonzero(ctrl)[0][:5]] = x[np.nonzero(~ctrl)[0][:5]]
    labels, counts = np.unique(pert, return_counts=True)
    keep = ctrl | np.isin(pert, labels[counts > 1])
    x, pert, ctrl = x[keep], pert[keep], ctrl[keep]
    ap_ref, _ = copairs_activity(x, pert, ctrl)
    queries, controls = np.nonzero(~ctrl)[0], np.nonzero(ctrl)[0]
    _, codes = np.unique(pert[queries], return_inverse=True)
    a, b = activity._within_group_pairs(codes.ravel())
    ap, n_pos, n_neg = map_exact.exact_average_precision(
        x,
        queries,
        controls,
        a,
        queries[b],
        block_bytes=12 * len(controls) * 7,
        sort_above=sort_above,
    )
    np.testing.assert_allclose(ap, ap_ref["average_precision"].to_numpy(), rtol=1e-12, atol=0)
    np.testing.assert_array_equal(n_pos, ap_ref["n_pos_pairs"].to_numpy())
    np.testing.assert_array_equal(n_pos + n_neg, ap_ref["n_total_pairs"].to_numpy())
    ours = phenotypic_activity(x, pert, ctrl, null_size=NULL)
    assert_same(ours.per_perturbation, copairs_activity(x, pert, ctrl)[1])


@pytest.mark.parametrize("integer", [False, True], ids=["continuous", "tied"])
def test_many_replicates_equal_copairs(integer):
    """Perturbations with 40-60 replicates (39-59 positives per well: the sorted-rows path),
    beside ones with 2-4 (few positives), continuous or heavily tied features: AP per well, mAP
    and p-values equal copairs', and the two ranking paths agree exactly."""
    rng = np.random.default_rng(11)
    sizes = np.array([60, 50, 40, 2, 3, 4])
    pert = np.repeat([f"P{i}" for i in range(len(sizes))], sizes)
    pert = np.concatenate([pert, np.full(120, "NTC")])
    ctrl = pert == "NTC"
    x = rng.standard_normal((len(pert), 8))
    if integer:
        x = rng.integers(-2, 3, x.shape).astype(np.float64)
        x[np.abs(x).sum(axis=1) == 0, 0] = 1.0
    x[pert == "P0"] += 1.5  # one active perturbation
    x = x.astype(np.float32)
    ap_ref, map_ref = copairs_activity(x, pert, ctrl)
    queries, controls = np.nonzero(~ctrl)[0], np.nonzero(ctrl)[0]
    _, codes = np.unique(pert[queries], return_inverse=True)
    a, b = activity._within_group_pairs(codes.ravel())
    got = [
        map_exact.exact_average_precision(x, queries, controls, a, queries[b], sort_above=s)
        for s in (0, 10**9)
    ]
    for arr_sorted, arr_passes in zip(*got, strict=True):
        np.testing.assert_array_equal(arr_sorted, arr_passes)
    np.testing.assert_allclose(got[0][0], ap_ref["average_precision"].to_numpy(), rtol=1e-12)
    ours = phenotypic_activity(x, pert, ctrl, null_size=NULL)
    assert_same(ours.per_perturbation, map_ref)
    assert ours.per_perturbation.filter(pl.col("perturbation") == "P0")["retrieved"].item()


def test_near_ties_within_float32_screening_error_are_ranked_as_copairs_does():
    """Controls whose cosine to a positive differs by a few float32 ulps: the float32 matrix
    product cannot order them, the exact recomputation must."""
    rng = np.random.default_rng(5)
    d = 64
    base = rng.standard_normal((40, d))
    pert = np.repeat([f"G{i}" for i in range(10)], 4)
    ctrl_rows = np.repeat(base[:20], 6, axis=0) + 1e-7 * rng.standard_normal((120, d))
    x = np.concatenate([base, ctrl_rows])
    pert = np.concatenate([pert, np.full(len(ctrl_rows), "NTC")])
    ctrl = pert == "NTC"
    ap_ref, map_ref = copairs_activity(x, pert, ctrl)
    ours = phenotypic_activity(x, pert, ctrl, null_size=NULL)
    assert_same(ours.per_perturbation, map_ref)


def test_activity_table_crispr_orf_compound_equal_copairs():
    """Three perturbation types, each against its own controls; compounds per concentration."""
    frames, xs = [], []
    for k, ptype in enumerate(["CRISPR", "ORF", "COMPOUND"]):
        x, pert, ctrl = screen(10 + k, n=300)
        conc = np.where(
            ctrl | (ptype != "COMPOUND"), np.nan, np.where(np.arange(len(pert)) % 2, 1.0, 10.0)
        )
        frames.append(
            pl.DataFrame(
                {
                    "perturbation": pert,
                    "perturbation_type": [ptype] * len(pert),
                    "concentration": conc,
                    "is_control": ctrl,
                }
            ).with_columns(pl.col("concentration").fill_nan(None))
        )
        xs.append(x)
    wells, x = pl.concat(frames), np.concatenate(xs)
    table, scores = activity_table(x, wells, null_size=NULL)
    assert set(table["perturbation_type"].to_list()) == {"CRISPR", "ORF", "COMPOUND"}
    units = activity._units(wells)
    for ptype in ("CRISPR", "ORF", "COMPOUND"):
        rows = (wells["perturbation_type"] == ptype).to_numpy()
        ctrl = wells["is_control"].to_numpy()[rows]
        u = units[rows]
        labels, counts = np.unique(u[~ctrl], return_counts=True)
        keep = ctrl | np.isin(u, labels[counts > 1])
        _, ref = copairs_activity(x[rows][keep], u[keep], ctrl[keep])
        ours = table.filter(pl.col("perturbation_type") == ptype)
        ref = ref.assign(
            _p=ref["pert"].str.split("\x1f").str[0],
            _c=ref["pert"].str.split("\x1f").str[1].replace("", None).astype(float),
        ).sort_values(["_p", "_c"], na_position="last")
        assert ours["perturbation"].to_list() == ref["_p"].tolist()
        np.testing.assert_allclose(
            ours["mean_average_precision"].to_numpy(), ref["mean_average_precision"], rtol=1e-12
        )
        np.testing.assert_array_equal(ours["p_value"].to_numpy(), ref["p_value"].to_numpy())
        np.testing.assert_array_equal(
            ours["corrected_p_value"].to_numpy(), ref["corrected_p_value"].to_numpy()
        )
    assert scores["per_type"]["COMPOUND"]["n_perturbations"] > 60  # two doses = two units


def test_float32_input_gives_copairs_numbers_on_its_float64_values():
    """The fast engine keeps float32 features (no float64 copy of the table) and still equals
    copairs on the same values in float64; so does the copairs engine."""
    x, pert, ctrl = screen(7)
    assert x.dtype == np.float32
    f32 = phenotypic_activity(x, pert, ctrl, null_size=NULL).per_perturbation
    f64 = phenotypic_activity(x.astype(np.float64), pert, ctrl, null_size=NULL).per_perturbation
    ref = phenotypic_activity(x, pert, ctrl, null_size=NULL, engine="copairs").per_perturbation
    assert f32.equals(f64)
    assert_same(f32, ref.to_pandas().rename(columns={"retrieved": "below_corrected_p"}))


@pytest.mark.parametrize("sort_above", [4, 10**9], ids=["sorted-rows", "per-positive-passes"])
def test_consistency_equals_copairs_with_and_without_compound(sort_above, monkeypatch):
    """~13 perturbations per target (12 positives, some masked as same-compound): both ranking
    paths, with the negatives mask, give copairs' numbers."""
    monkeypatch.setattr(map_exact, "SORT_ABOVE", sort_above)
    rng = np.random.default_rng(2)
    n = 150
    target = np.array([f"T{i % 11}" for i in range(n)])
    target[:3] = "lonely"  # one base only once compound groups it: not scored
    compound = np.array([f"C{i // 2}" for i in range(n)])  # two doses per compound
    compound[:3] = "C_lonely"
    x = rng.standard_normal((n, 12)) + 0.7 * (np.arange(n) % 11 == 0)[:, None]
    for comp in (None, compound):
        ours = phenotypic_consistency(x, target, comp, null_size=NULL).per_target
        keep = np.isin(target, ours["target"].to_list())
        meta = pd.DataFrame(
            {"target": target[keep], "base": (np.arange(n) if comp is None else comp)[keep]}
        )
        ap = average_precision(
            meta, x[keep], ["target"], ["base"], [], ["target"], progress_bar=False
        )
        ref = mean_average_precision(
            ap, ["target"], null_size=NULL, threshold=0.05, seed=0, progress_bar=False
        )
        assert_same(ours, ref.sort_values("target").reset_index(drop=True), label="target")


def test_null_equals_copairs_draw_for_draw(tmp_path, monkeypatch):
    """Chunked generation = copairs.compute.random_ap; the per-configuration seeds and the
    cache files are copairs' own, so either engine may fill the cache for the other."""
    monkeypatch.setattr(map_exact, "_NULL_CHUNK_BYTES", 1000)
    np.testing.assert_array_equal(
        map_exact.random_ap_chunked(777, 3, 90, 12), random_ap(777, 3, 90, 12)
    )
    confs = np.array([[1, 50], [3, 50], [3, 70000]])  # 70000: copairs' uint32 index case
    ref = get_null_dists(confs, 300, seed=4, cache_dir=tmp_path / "copairs", progress_bar=False)
    ours = map_exact.null_distributions(confs, 300, seed=4)
    np.testing.assert_array_equal(ours, ref)
    cached = sorted(p.name for p in (tmp_path / "home" / ".copairs" / "seed4" / "ns300").iterdir())
    assert cached == ["n50_k1.npy", "n50_k3.npy", "n70000_k3.npy"]


def test_copairs_engine_refused_when_it_would_not_fit(monkeypatch):
    x, pert, ctrl = screen(0)
    monkeypatch.setattr(activity, "available_memory", lambda: 2**20)
    with pytest.raises(ResourceError) as err:
        phenotypic_activity(x, pert, ctrl, null_size=NULL, engine="copairs")
    assert isinstance(err.value, CellbenchError)
    msg = str(err.value)
    assert "pairs" in msg and "GB" in msg and "engine='fast'" in msg and "--tasks" in msg
    # the fast engine needs no pair list and runs
    assert phenotypic_activity(x, pert, ctrl, null_size=NULL).per_perturbation.height > 0


def test_copairs_memory_estimate_grows_with_pairs_and_null():
    small = activity.copairs_memory_estimate(10**6, 1000, 500, 1)
    assert activity.copairs_memory_estimate(10**8, 1000, 500, 1) > 50 * small
    # the release size: 200k treated x 20k controls = 4e9 pairs -> hundreds of GB
    assert activity.copairs_memory_estimate(4 * 10**9, 100_000, 20_000, 4) > 300 * 2**30


def test_bad_engine_and_zero_profile_are_input_errors():
    x, pert, ctrl = screen(0)
    with pytest.raises(CellbenchError, match="engine"):
        phenotypic_activity(x, pert, ctrl, engine="gpu")
    x[0] = 0
    with pytest.raises(CellbenchError, match="all zeros"):
        phenotypic_activity(x, pert, ctrl)
