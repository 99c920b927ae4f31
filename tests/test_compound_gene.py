"""Compound-gene benchmark: equal to a direct, slow, per-compound scikit-learn implementation
of the reference algorithm (docs/metrics.md, "Compound–gene retrieval"), seeds included."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.metrics.pairwise import cosine_similarity

from cellbench.errors import InputError
from cellbench.metrics.compound_gene import METRICS, compound_gene_benchmark, load_truth


def slow_reference(
    table: pl.DataFrame, feats: np.ndarray, truth: pl.DataFrame, seeds: list[int]
) -> list[dict]:
    """The algorithm as written in docs/metrics.md, one compound, concentration and seed at a time."""
    recs = table.with_row_index("row").to_dicts()
    gene_row = {r["perturbation"]: r["row"] for r in recs if r["perturbation_type"] == "CRISPR"}
    present: dict[str, dict[float, int]] = {}
    for r in recs:
        if r["perturbation_type"] == "COMPOUND" and r["concentration"] is not None:
            present.setdefault(r["perturbation"], {})[r["concentration"]] = r["row"]
    pool = sorted(set(truth["gene_symbol"].to_list()) & set(gene_row))
    # one |cos| matrix of every compound row against the pool genes, as the reference's
    # compute_similarities does (one cosine_similarity call; a row-by-row call rounds the last
    # bit differently and would break exact ties differently)
    comp_rows = sorted(r for d in present.values() for r in d.values())
    sim = np.abs(cosine_similarity(feats[comp_rows], feats[[gene_row[g] for g in pool]]))
    sim_row = {r: i for i, r in enumerate(comp_rows)}
    sim_col = {g: i for i, g in enumerate(pool)}
    per_seed: dict = {}  # (row, metric) -> list over seeds
    for seed in seeds:
        scored = []  # (name, labels, {conc: scores})
        for name in sorted(set(truth["treatment"].to_list()) & set(present)):
            t = truth.filter(pl.col("treatment") == name)
            actives = sorted(
                {g for g, nm in zip(t["gene_symbol"], t["nM_value"], strict=True) if nm <= 1000}
                & set(pool)
            )
            grey = {
                g
                for g, nm in zip(t["gene_symbol"], t["nM_value"], strict=True)
                if 1000 < nm <= 10000
            }
            if not actives:
                continue
            eligible = np.array(sorted(set(pool) - set(actives) - grey))
            n_neg = max(2 * len(actives), 20)
            if len(eligible) < n_neg:
                continue
            rng = np.random.default_rng(seed)
            negatives = rng.choice(eligible, n_neg, replace=False)
            targets = list(actives) + list(negatives)
            labels = np.array([1] * len(actives) + [0] * n_neg)
            by_conc = {}
            for conc, row in sorted(present[name].items()):
                by_conc[conc] = sim[sim_row[row], [sim_col[g] for g in targets]]
            by_conc["max"] = np.max(np.vstack(list(by_conc.values())), axis=0)
            scored.append((name, labels, by_conc))
        concs = sorted({c for _, _, d in scored for c in d if c != "max"})
        rng_b = np.random.default_rng([seed, 1])
        for row in concs + ["max"]:
            aps, aucs, baps, baucs = [], [], [], []
            for _name, labels, by_conc in scored:
                if row not in by_conc:
                    continue
                aps.append(average_precision_score(labels, by_conc[row]))
                aucs.append(roc_auc_score(labels, by_conc[row]))
                random_scores = rng_b.random(len(labels))
                baps.append(average_precision_score(labels, random_scores))
                baucs.append(roc_auc_score(labels, random_scores))
            for tag, a, u in (("", aps, aucs), ("_baseline", baps, baucs)):
                values = {"average_precision": np.mean(a), "auc_roc": np.mean(u)}
                for q in (0.5, 0.75, 0.95):
                    values[f"ap_quantile_{q}"] = np.quantile(a, q)
                for k, v in values.items():
                    per_seed.setdefault((row, k + tag), []).append(v)
    rows = []
    for row in sorted({r for r, _ in per_seed if r != "max"}) + ["max"]:
        out = {"concentration": row}
        for k in [m + tag for tag in ("", "_baseline") for m in METRICS]:
            v = np.array(per_seed[(row, k)])
            out[k] = v.mean()
            out[k + "_std"] = v.std(ddof=1) if len(v) > 1 else 0.0
        for m in ("average_precision", "auc_roc"):
            den = np.sqrt(out[m + "_std"] ** 2 + out[m + "_baseline_std"] ** 2)
            out[f"z_{m}"] = (out[m] - out[m + "_baseline"]) / den if den > 0 else np.nan
        rows.append(out)
    return rows


def make_map(seed: int = 0, n_genes: int = 90, n_compounds: int = 30, integer: bool = False):
    """A map of truth genes (plus unrelated genes) and truth compounds at some canonical
    concentrations (plus compounds outside the truth)."""
    truth = load_truth()
    rng = np.random.default_rng(seed)
    truth_genes = sorted(set(truth["gene_symbol"].to_list()))
    # the compounds with most rows, so that many have actives among the chosen genes
    top = (
        truth.group_by("treatment")
        .len()
        .sort(["len", "treatment"], descending=[True, False])["treatment"]
        .to_list()
    )
    compounds = list(rng.choice(top[:80], n_compounds, replace=False)) + ["NOT_IN_TRUTH"]
    wanted = set(truth.filter(pl.col("treatment").is_in(compounds))["gene_symbol"].to_list())
    genes = sorted(
        set(rng.choice(sorted(wanted), min(len(wanted), n_genes // 2), replace=False))
        | set(rng.choice(truth_genes, n_genes // 2, replace=False))
    )
    genes += ["EMPTY_control", "FAKEGENE1"]
    rows = [("CRISPR", g, None) for g in genes]
    concs = [0.01, 0.1, 1.0, 10.0]
    for c in compounds:
        for conc in concs:
            if rng.random() < 0.7:
                rows.append(("COMPOUND", c, conc))
    table = pl.DataFrame(
        rows, schema=["perturbation_type", "perturbation", "concentration"], orient="row"
    )
    d = 6
    feats = (
        rng.integers(-2, 3, size=(table.height, d)).astype(float)
        if integer
        else rng.normal(size=(table.height, d))
    )
    return table, feats, truth


@pytest.mark.parametrize(
    "seed, integer, dtype", [(0, False, np.float64), (1, True, np.float64), (2, False, np.float32)]
)
def test_equal_to_slow_reference(seed, integer, dtype):
    table, feats, truth = make_map(seed, integer=integer)
    feats = feats.astype(dtype)
    seeds = [0, 1, 2, 3]
    fast = compound_gene_benchmark(table, feats, seeds=seeds, truth=truth)
    slow = slow_reference(table, feats, truth, seeds)
    assert [r["concentration"] for r in fast["rows"]] == [r["concentration"] for r in slow]
    assert fast["counts"]["compounds_scored"] > 5
    for f, s in zip(fast["rows"], slow, strict=True):
        for key, value in s.items():
            if key == "concentration":
                continue
            assert f[key] == pytest.approx(value, rel=1e-10, abs=1e-12), (f["concentration"], key)


def test_single_seed_and_nonzero_seed_offsets():
    table, feats, truth = make_map(3)
    fast = compound_gene_benchmark(table, feats, seeds=[7], truth=truth)
    slow = slow_reference(table, feats, truth, [7])
    for f, s in zip(fast["rows"], slow, strict=True):
        assert f["average_precision"] == pytest.approx(s["average_precision"], rel=1e-10)
        assert f["average_precision_std"] == 0.0 and np.isnan(f["z_auc_roc"])


def test_signal_beats_baseline_when_compounds_copy_their_targets():
    """Planted truth: each compound embedding is the mean of its active targets -> high AP, z > 0."""
    table, feats, truth = make_map(4)
    recs = table.to_dicts()
    gene_row = {
        r["perturbation"]: i for i, r in enumerate(recs) if r["perturbation_type"] == "CRISPR"
    }
    act = truth.filter(pl.col("nM_value") <= 1000)
    for i, r in enumerate(recs):
        if r["perturbation_type"] == "COMPOUND":
            targets = [
                gene_row[g]
                for g in act.filter(pl.col("treatment") == r["perturbation"])["gene_symbol"]
                if g in gene_row
            ]
            if targets:
                feats[i] = feats[targets].mean(axis=0)
    out = compound_gene_benchmark(table, feats, seeds=5, truth=truth)
    best = out["rows"][-1]
    assert best["concentration"] == "max"
    assert best["average_precision"] > best["average_precision_baseline"] + 0.2
    assert best["z_average_precision"] > 3 and best["auc_roc"] > 0.8


def test_no_scorable_compound_is_an_input_error():
    table, feats, truth = make_map(0)
    genes_only = table.filter(pl.col("perturbation_type") == "CRISPR")
    with pytest.raises(InputError, match="no compound"):
        compound_gene_benchmark(genes_only, feats[: genes_only.height], seeds=2, truth=truth)
    with pytest.raises(InputError, match="seeds"):
        compound_gene_benchmark(table, feats, seeds=0, truth=truth)
