"""Map building: labelling rules, control-fitted alignment (vs efaar), aggregation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

from cellbench.errors import InputError
from cellbench.maps.aggregate import aggregate_wells
from cellbench.maps.align import (
    TVN,
    CenterScale,
    Identity,
    PCACenterScale,
    Spherize,
    make_aligner,
)
from cellbench.maps.build import build_map
from cellbench.maps.labels import wells_from_rxrx3
from cellbench.schema import WELL_COLUMNS


def _metadata() -> pl.DataFrame:
    rows = [
        # well_id, experiment, plate, address, gene, treatment, conc, type
        ("gene-001_1_A01", "gene-001", 1, "A01", "EMPTY_control", "EMPTY_control", None, "CRISPR"),
        ("gene-001_1_A02", "gene-001", 1, "A02", "RPLP2", "RPLP2_guide_1", None, "CRISPR"),
        ("gene-001_1_A03", "gene-001", 1, "A03", "RPLP2", "RPLP2_guide_4", None, "CRISPR"),
        (
            "gene-001_1_A04",
            "gene-001",
            1,
            "A04",
            "CRISPR_control",
            "CRISPR_control",
            None,
            "CRISPR",
        ),
        ("gene-002_1_A01", "gene-002", 1, "A01", "EMPTY_control", "EMPTY_control", None, "CRISPR"),
        ("gene-002_1_A02", "gene-002", 1, "A02", "RPLP2", "RPLP2_guide_2", None, "CRISPR"),
        ("compound-001_1_A01", "compound-001", 1, "A01", "", "EMPTY_control", None, "COMPOUND"),
        ("compound-001_1_A02", "compound-001", 1, "A02", "", "ABT-199", 1.0, "COMPOUND"),
        ("compound-001_1_A03", "compound-001", 1, "A03", "", "ABT-199", 1.0, "COMPOUND"),
        ("compound-001_1_A04", "compound-001", 1, "A04", "", "ABT-199", 0.25, "COMPOUND"),
        ("compound-001_1_A05", "compound-001", 1, "A05", "", "ABT-199", 0.3, "COMPOUND"),
    ]
    cols = [
        "well_id",
        "experiment_name",
        "plate",
        "address",
        "gene",
        "treatment",
        "concentration",
        "perturbation_type",
    ]
    df = pl.DataFrame(rows, schema=cols, orient="row")
    return df.with_columns(pl.lit("").alias("SMILES"), pl.lit("HUVEC").alias("cell_type"))


def test_labels_follow_rxrx3_rules():
    wells = wells_from_rxrx3(_metadata())
    assert tuple(wells.columns) == tuple(WELL_COLUMNS)
    by_id = {r["well_id"]: r for r in wells.iter_rows(named=True)}
    assert by_id["gene-001_1_A02"]["perturbation"] == "RPLP2"  # guides collapse to genes
    assert by_id["gene-001_1_A03"]["perturbation"] == "RPLP2"
    assert by_id["gene-001_1_A04"]["perturbation"] == "CRISPR_control"
    assert not by_id["gene-001_1_A04"]["is_control"]  # CRISPR_control is not a control
    assert by_id["gene-001_1_A01"]["is_control"] and by_id["compound-001_1_A01"]["is_control"]
    assert by_id["compound-001_1_A02"]["perturbation"] == "ABT-199"
    assert by_id["compound-001_1_A02"]["concentration"] == 1.0
    assert by_id["gene-001_1_A02"]["concentration"] is None
    assert by_id["gene-002_1_A02"]["batch"] == "gene-002"


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda m: m.drop("treatment"), "treatment"),
        (lambda m: pl.concat([m, m.head(1)]), "duplicate well ids"),
        (lambda m: m.with_columns(pl.lit("ORF").alias("perturbation_type")), "perturbation_type"),
        (lambda m: m.with_columns(pl.lit("").alias("treatment")), "empty treatment"),
    ],
)
def test_labels_reject_bad_metadata(mutate, needle):
    with pytest.raises(InputError, match=needle):
        wells_from_rxrx3(mutate(_metadata()))


def _batches(seed=0, n_batches=3, per_batch=40, d=6):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_batches * per_batch, d)) * rng.uniform(0.5, 2, size=d)
    batch = np.repeat([f"b{i}" for i in range(n_batches)], per_batch)
    X += np.repeat(rng.normal(scale=3, size=(n_batches, d)), per_batch, axis=0)
    control = rng.random(len(X)) < 0.4
    control[::per_batch] = True
    return X, batch, control


def test_centerscale_equals_efaar():
    from efaar_benchmarking.efaar import centerscale_on_controls

    X, batch, control = _batches()
    md = pd.DataFrame({"pert": np.where(control, "CTRL", "x"), "batch": batch})
    ref = centerscale_on_controls(X, md, "pert", "CTRL", batch_col="batch")
    np.testing.assert_allclose(
        CenterScale().fit_transform(X, batch, control), ref, rtol=1e-10, atol=1e-12
    )


def test_tvn_equals_efaar():
    from efaar_benchmarking.efaar import tvn_on_controls

    X, batch, control = _batches(seed=1)
    md = pd.DataFrame({"pert": np.where(control, "CTRL", "x"), "batch": batch})
    ref = tvn_on_controls(X, md, "pert", "CTRL", batch_col="batch")
    np.testing.assert_allclose(TVN().fit_transform(X, batch, control), ref, rtol=1e-7, atol=1e-9)


def test_pca_centerscale_is_pca_on_all_controls_then_per_batch_scaling():
    from sklearn.decomposition import PCA

    X, batch, control = _batches(seed=2)
    Z = PCACenterScale().fit_transform(X, batch, control)
    P = PCA(svd_solver="full").fit(X[control]).transform(X)
    for b in np.unique(batch):
        ctrl = (batch == b) & control
        np.testing.assert_allclose(Z[ctrl].mean(axis=0), 0, atol=1e-10)
        np.testing.assert_allclose(Z[ctrl].std(axis=0), 1, rtol=1e-10)
        mine = Z[batch == b]
        expected = (P[batch == b] - P[ctrl].mean(axis=0)) / P[ctrl].std(axis=0)
        np.testing.assert_allclose(mine, expected, rtol=1e-8, atol=1e-10)


def test_spherize_whitens_each_batch_controls():
    X, batch, control = _batches(seed=3)
    eps = 1e-2
    Z = Spherize(epsilon=eps).fit_transform(X, batch, control)
    for b in np.unique(batch):
        ctrl = (batch == b) & control
        C = np.cov(X[ctrl], rowvar=False)
        # ZCA with regularisation: cov(Z_ctrl) = C (C + eps I)^-1
        np.testing.assert_allclose(
            np.cov(Z[ctrl], rowvar=False), C @ np.linalg.inv(C + eps * np.eye(len(C))), atol=1e-8
        )
        np.testing.assert_allclose(Z[ctrl].mean(axis=0), 0, atol=1e-10)


@pytest.mark.parametrize("name", ["pca-centerscale", "centerscale", "tvn", "spherize"])
def test_batch_without_controls_is_named(name):
    X, batch, control = _batches()
    control[batch == "b1"] = False
    with pytest.raises(InputError, match="'b1'"):
        make_aligner(name).fit(X, batch, control)


def test_identity_needs_no_controls_and_unknown_name_fails():
    X, batch, control = _batches()
    assert Identity().fit_transform(X, batch, np.zeros(len(X), bool)) is X
    with pytest.raises(InputError, match="unknown alignment"):
        make_aligner("zca")


def test_transform_refuses_unseen_batch():
    X, batch, control = _batches()
    aligner = CenterScale().fit(X, batch, control)
    with pytest.raises(InputError, match="not seen"):
        aligner.transform(X[:3], np.array(["new"] * 3))


def test_aggregate_means_drops_and_counts():
    wells = wells_from_rxrx3(_metadata())
    X = np.arange(wells.height * 2, dtype=np.float32).reshape(-1, 2)
    with pytest.warns(UserWarning, match="non-canonical"):
        table, feats, report = aggregate_wells(X, wells)
    assert report.n_compound_controls_dropped == 1
    assert report.n_noncanonical_dropped == 1 and report.noncanonical_values == [0.3]
    rows = {
        (r["perturbation_type"], r["perturbation"], r["concentration"]): i
        for i, r in enumerate(table.iter_rows(named=True))
    }
    assert set(rows) == {
        ("CRISPR", "EMPTY_control", None),
        ("CRISPR", "RPLP2", None),
        ("CRISPR", "CRISPR_control", None),
        ("COMPOUND", "ABT-199", 1.0),
        ("COMPOUND", "ABT-199", 0.25),
    }
    ids = wells["well_id"].to_list()

    def mean_of(*well_ids):
        return X[[ids.index(w) for w in well_ids]].astype(np.float64).mean(axis=0)

    assert feats.dtype == np.float32  # float32 wells give a float32 map
    np.testing.assert_allclose(
        feats[rows[("CRISPR", "RPLP2", None)]],
        mean_of("gene-001_1_A02", "gene-001_1_A03", "gene-002_1_A02"),
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        feats[rows[("CRISPR", "EMPTY_control", None)]],
        mean_of("gene-001_1_A01", "gene-002_1_A01"),
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        feats[rows[("COMPOUND", "ABT-199", 1.0)]],
        mean_of("compound-001_1_A02", "compound-001_1_A03"),
        rtol=1e-6,
    )
    assert table["n_wells"].to_list()[rows[("CRISPR", "RPLP2", None)]] == 3


def test_build_map_aligns_then_aggregates():
    wells = wells_from_rxrx3(_metadata())
    X = np.random.default_rng(0).normal(size=(wells.height, 3))
    with pytest.warns(UserWarning):
        table, feats = build_map(X, wells, align="centerscale")
    aligned = CenterScale().fit_transform(
        X, wells["batch"].to_numpy(), wells["is_control"].to_numpy()
    )
    with pytest.warns(UserWarning):
        _, expected, _ = aggregate_wells(aligned, wells)
    np.testing.assert_allclose(feats, expected)
    assert table.height == 5


@pytest.mark.parametrize("name", ["pca-centerscale", "centerscale", "tvn", "spherize"])
def test_constant_embeddings_align_without_a_runtime_warning(name):
    """A collapsed encoder (every well the same vector) is scored, not a source of numpy/sklearn
    RuntimeWarnings leaking to the user."""
    import warnings

    from cellbench.maps.align import make_aligner

    X = np.ones((40, 8), np.float32)
    batch = np.array(["a", "b"] * 20)
    control = np.arange(40) % 4 < 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Z = make_aligner(name).fit_transform(X, batch, control)
    assert np.isfinite(Z).all()


def test_pca_centerscale_with_fewer_controls_than_features_keeps_the_supported_components():
    """10 control wells in 64 features span 9 centred directions. sklearn keeps 10 components;
    the 10th holds only rounding noise, which the per-batch scaling blew up into the one axis
    of every well (all cosines +-1, recall 0). The aligner keeps the 9 the controls support,
    warns with the counts, and equals PCA(9) + per-batch scaling computed by sklearn."""
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(5)
    X = rng.normal(size=(200, 64)) * 3 + 5
    batch = np.repeat(["b1", "b2"], 100)
    control = np.zeros(200, bool)
    control[:5] = control[100:105] = True
    with pytest.warns(
        UserWarning, match=r"10 control wells \(per batch: 'b1' 5, 'b2' 5\).*9 of 10"
    ):
        Z = PCACenterScale().fit_transform(X, batch, control)
    assert Z.shape == (200, 9)
    P = PCA(n_components=9, svd_solver="full").fit(X[control]).transform(X)
    for b in ("b1", "b2"):
        ctrl = (batch == b) & control
        expected = (P[batch == b] - P[ctrl].mean(axis=0)) / P[ctrl].std(axis=0)
        np.testing.assert_allclose(Z[batch == b], expected, rtol=1e-8, atol=1e-10)
    Zn = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    cos = (Zn @ Zn.T)[np.triu_indices(200, k=1)]
    assert np.mean(np.abs(cos) > 0.99) < 0.01  # not one axis carrying every well


def test_tvn_with_fewer_controls_than_features_warns_and_stays_finite():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(120, 40))
    batch = np.repeat(["p1", "p2"], 60)
    control = np.zeros(120, bool)
    control[:6] = control[60:66] = True
    with pytest.warns(UserWarning, match="'tvn': 12 control wells"):
        Z = TVN().fit_transform(X, batch, control)
    assert Z.shape == (120, 11) and np.isfinite(Z).all() and np.abs(Z).max() < 1e3
