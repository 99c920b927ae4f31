"""The synthetic screen: determinism, real-format layout, planted biology, batch effects."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from cellbench.data.synthetic import SIMULATOR_VERSION, generate_screen, make_config
from cellbench.data.synthetic import biology as B
from cellbench.data.synthetic.generate import is_complete
from cellbench.data.synthetic.simulate import simulate
from cellbench.errors import CellbenchError, NotFoundError
from cellbench.schema import CANONICAL_CONCENTRATIONS, RXRX3_METADATA_COLUMNS


@pytest.fixture(scope="module")
def rx_dir(tmp_path_factory):
    return generate_screen("synthetic-rxrx3-core", "tiny", 0, tmp_path_factory.mktemp("s") / "rx")


def _file_bytes(root):
    man = json.loads((root / "manifest.json").read_text())
    return {f["path"]: (root / f["path"]).read_bytes() for f in man["files"]}


def test_same_seed_same_bytes_different_seed_differs(rx_dir, tmp_path):
    again = generate_screen("synthetic-rxrx3-core", "tiny", 0, tmp_path / "again")
    assert _file_bytes(rx_dir) == _file_bytes(again)
    assert (rx_dir / "manifest.json").read_bytes() == (again / "manifest.json").read_bytes()
    other = generate_screen("synthetic-rxrx3-core", "tiny", 1, tmp_path / "other")
    a, b = _file_bytes(rx_dir), _file_bytes(other)
    shard = "data/train-00000-of-00001.parquet"
    assert a[shard] != b[shard]
    assert a["ground_truth.parquet"] != b["ground_truth.parquet"]


def test_bray_same_seed_same_bytes(tmp_path):
    one = generate_screen("synthetic-bray", "tiny", 3, tmp_path / "a")
    two = generate_screen("synthetic-bray", "tiny", 3, tmp_path / "b")
    assert _file_bytes(one) == _file_bytes(two)


def test_manifest_and_metadata_follow_the_real_release(rx_dir):
    man = json.loads((rx_dir / "manifest.json").read_text())
    assert (
        man["simulator_version"] == SIMULATOR_VERSION
        and man["config"]["version"] == SIMULATOR_VERSION
    )
    assert len(man["config_hash"]) == 12 and all(len(f["sha256"]) == 64 for f in man["files"])
    meta = pl.read_csv(rx_dir / "metadata_rxrx3_core.csv", infer_schema_length=None)
    assert tuple(meta.columns) == RXRX3_METADATA_COLUMNS
    ids = meta["experiment_name"] + "_" + meta["plate"].cast(pl.Utf8) + "_" + meta["address"]
    assert (ids == meta["well_id"]).all()
    crispr = meta.filter(pl.col("treatment").str.contains("_guide_"))
    assert crispr["treatment"].str.contains(r"^[A-Z0-9-]+_guide_\d+$").all()
    assert crispr["concentration"].null_count() == crispr.height
    comp = meta.filter(
        (pl.col("perturbation_type") == "COMPOUND") & (pl.col("treatment") != "EMPTY_control")
    )
    assert comp["gene"].null_count() == comp.height
    assert set(comp["concentration"].unique().to_list()) == set(CANONICAL_CONCENTRATIONS)
    # EMPTY_control on every plate of both plate types, CRISPR_control on gene plates
    per_plate = meta.group_by("experiment_name", "plate").agg(
        (pl.col("treatment") == "EMPTY_control").sum().alias("empty")
    )
    assert (per_plate["empty"] > 0).all()
    assert meta["experiment_name"].str.starts_with("compound-").any()
    assert (meta["treatment"] == "CRISPR_control").any()


def test_ground_truth_columns(rx_dir):
    gt = pl.read_parquet(rx_dir / "ground_truth.parquet")
    meta = pl.read_csv(rx_dir / "metadata_rxrx3_core.csv", infer_schema_length=None)
    assert gt["well_id"].to_list() == meta["well_id"].to_list()
    assert [c for c in gt.columns if c.startswith("latent_")] == [f"latent_{t}" for t in B.TRAITS]
    assert sum(c.startswith("nuisance_") for c in gt.columns) >= 10


def test_unknown_names_and_occupied_out_dir(tmp_path):
    with pytest.raises(NotFoundError):
        make_config("synthetic-nope", "tiny")
    with pytest.raises(NotFoundError):
        make_config("synthetic-bray", "huge")
    occupied = tmp_path / "occ"
    occupied.mkdir()
    (occupied / "x.txt").write_text("mine")
    with pytest.raises(CellbenchError, match="not a complete"):
        generate_screen("synthetic-bray", "tiny", 0, occupied)
    assert (occupied / "x.txt").read_text() == "mine"


def test_killed_generation_is_never_complete(tmp_path, monkeypatch):
    from cellbench.data.synthetic import generate as gen

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(gen, "write_bray", boom)
    with pytest.raises(KeyboardInterrupt):
        generate_screen("synthetic-bray", "tiny", 0, tmp_path / "k")
    assert not (tmp_path / "k").exists() and not is_complete(tmp_path / "k")
    assert list(tmp_path.iterdir()) == []


def test_relationships_planted_oracle_cosine():
    """Known CORUM pairs are more similar in the planted effects than random pairs, but
    the ceiling is below 1: many genes have no phenotype and not every pair is planted."""
    bio = B.make_biology(0)
    idx = bio.gene_index()
    corum = sorted(B.known_pairs("CORUM", bio.genes))
    # the paper's "# relationships" row (Tables 3-5): counts among the 735 RxRx3-core genes
    counts = {s: len(B.known_pairs(s, bio.genes)) for s in B.ANNOTATION_SOURCES}
    assert counts == {"CORUM": 1209, "HuMAP": 958, "Reactome": 569, "SIGNOR": 495, "StringDB": 1737}
    unit = bio.effects / (np.linalg.norm(bio.effects, axis=1, keepdims=True) + 1e-12)
    cos = np.array([unit[idx[a]] @ unit[idx[b]] for a, b in corum])
    rng = np.random.default_rng(0)
    r = rng.integers(0, len(bio.genes), (5000, 2))
    r = r[r[:, 0] != r[:, 1]]
    rand = np.einsum("ij,ij->i", unit[r[:, 0]], unit[r[:, 1]])
    assert cos.mean() > rand.mean() + 0.3
    assert 0.3 < bio.active.mean() < 0.8  # a large share of genes has no visible phenotype
    both_active = np.array([bio.active[idx[a]] and bio.active[idx[b]] for a, b in corum])
    assert both_active.mean() < 0.9  # recall ceiling well below 1
    assert any(
        p not in B.known_pairs("StringDB", bio.genes) and p not in set(corum) for p in bio.planted
    )


def test_compound_effects_follow_hill_curves():
    bio, comp = B.make_biology(0), B.rxrx3_compounds(0)
    c = np.zeros(8, dtype=np.int64) + int(np.argmax(np.bincount(comp.target_compound)))
    eff = B.compound_effect(bio, comp, c, np.array(CANONICAL_CONCENTRATIONS))
    norms = np.linalg.norm(eff, axis=1)
    assert norms[-1] > norms[0] and np.all(np.isfinite(eff))
    assert len(comp.names) == 779


def _site_features(imgs):
    """Statistics of per-image, per-channel standardised sites (affine nuisance removed)."""
    x = imgs.astype(np.float32)
    x = (x - x.mean(axis=(2, 3), keepdims=True)) / (x.std(axis=(2, 3), keepdims=True) + 1e-6)
    h = x.shape[-1]
    quadrants = x.reshape(*x.shape[:2], 2, h // 2, 2, h // 2).mean(axis=(3, 5)).reshape(len(x), -1)
    grad = np.abs(np.diff(x, axis=-1)).mean(axis=(2, 3))
    skew = (x**3).mean(axis=(2, 3))
    return np.concatenate([quadrants, grad, skew], axis=1)


def test_well_shortcut_survives_per_image_standardisation():
    """Two wells of the same perturbation can be told apart from standardised image statistics
    (the shortcut that cross-well training must remove is really there)."""
    from dataclasses import replace

    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    cfg = replace(make_config("synthetic-bray", "tiny", 0), sites_per_well=16)
    screen = simulate(cfg)
    images = screen.render_all()
    lay = screen.layout.filter(pl.col("kind") == "compound")
    accs = []
    for _, grp in list(lay.group_by("treatment", maintain_order=True))[:8]:
        a, b = grp["well_index"].to_list()[:2]
        sel = np.flatnonzero(np.isin(screen.site_well, [a, b]))
        y = screen.site_well[sel] == a
        clf = LogisticRegression(C=0.5, max_iter=3000)
        accs.append(cross_val_score(clf, _site_features(images[sel]), y, cv=4).mean())
    assert np.mean(accs) > 0.75  # chance is 0.5


def test_nuisance_only_predicts_the_batch(rx_dir):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.preprocessing import StandardScaler

    gt = pl.read_parquet(rx_dir / "ground_truth.parquet")
    meta = pl.read_csv(rx_dir / "metadata_rxrx3_core.csv", infer_schema_length=None)
    x = StandardScaler().fit_transform(gt.select(pl.col("^nuisance_.*$")).to_numpy())
    acc = cross_val_score(
        LogisticRegression(max_iter=2000), x, meta["experiment_name"].to_numpy(), cv=3
    ).mean()
    assert acc > 0.95


def test_oracle_recall_far_above_nuisance_and_below_one(rx_dir):
    """Scored by the evaluation engine: the true latent recalls CORUM well but not perfectly;
    the nuisance parameters, once aligned on controls, carry no biology."""
    from cellbench.evaluate import evaluate_arrays

    meta = pl.read_csv(
        rx_dir / "metadata_rxrx3_core.csv",
        infer_schema_length=None,
        schema_overrides={"SMILES": pl.Utf8, "gene": pl.Utf8},
    )
    gt = pl.read_parquet(rx_dir / "ground_truth.parquet")

    def corum(prefix):
        x = gt.select(pl.col(f"^{prefix}.*$")).to_numpy().astype(np.float32)
        res = evaluate_arrays(
            gt["well_id"].to_list(), x, meta, tasks=("gene_gene",), sources=("CORUM",)
        )
        return res["scores"]["gene_gene"]["CORUM"]["recall_0.05_0.95"]

    oracle, nuisance = corum("latent_"), corum("nuisance_")
    # tiny's 60 genes are a dense CORUM subset, so its null is hard (quick: oracle ~0.57)
    assert 0.15 < oracle < 0.9
    assert nuisance < oracle / 2


def test_rendering_does_not_depend_on_threads():
    screen = simulate(make_config("synthetic-rxrx3-core", "tiny", 4))
    one = np.concatenate([im for _, im in screen.iter_chunks(chunk=40, threads=1)])
    two = np.concatenate([im for _, im in screen.iter_chunks(chunk=40, threads=2)])
    np.testing.assert_array_equal(one, two)
    assert one.shape == (screen.n_sites, 6, 32, 32) and one.std() > 5


def test_training_and_evaluation_presets_share_biology_not_nuisance():
    rx = simulate(make_config("synthetic-rxrx3-core", "tiny", 0))
    bray = simulate(make_config("synthetic-bray", "tiny", 0))
    assert not np.allclose(rx.nuisance["gain"][0, :2], bray.nuisance["gain"][0, :2])
    assert not set(rx.layout["batch"].to_list()) & set(bray.layout["batch"].to_list())
    # the same seed gives both presets the same gene programs (training transfers)
    assert B.make_biology(0) is B.make_biology(0)
    comp = B.bray_compounds(0, 16)
    assert set(comp.target_gene.tolist()) <= set(range(len(B.make_biology(0).genes)))


def test_no_technical_variation_is_an_option_that_leaves_default_screens_alone():
    """``technical_variation=False`` draws the nuisance of ``remove_terms(..., "none")`` and
    names another screen; the default config hashes as it did before the field existed."""
    import dataclasses

    from cellbench.data.synthetic.generate import screen_hash
    from cellbench.data.synthetic.nuisance import remove_terms

    cfg = make_config("synthetic-bray", "tiny", 0)
    assert "technical_variation" not in cfg.to_dict()  # the published hash and manifest
    clean = dataclasses.replace(cfg, technical_variation=False)
    assert clean.to_dict()["technical_variation"] is False
    assert screen_hash(clean) != screen_hash(cfg)
    as_drawn, without = simulate(cfg), simulate(clean)
    expected = remove_terms(as_drawn.nuisance, "none")
    assert expected.keys() == without.nuisance.keys()
    for key, value in expected.items():
        np.testing.assert_array_equal(without.nuisance[key], value, err_msg=key)
    assert not np.array_equal(without.nuisance["illum_amp"], as_drawn.nuisance["illum_amp"])
    np.testing.assert_array_equal(without.latent, as_drawn.latent)  # the same biology
    with pytest.raises(ValueError, match="unknown variant"):
        remove_terms(as_drawn.nuisance, "everything")
