"""Compound-gene retrieval benchmark (the ``efaar_benchmarking`` algorithm after Nov 2024;
docs/metrics.md, "Compound–gene retrieval").

For every compound of the ground truth (``compound_gene_interactions.csv``) present in the map:

* score of (compound at concentration c, gene g) = ``|cos(compound_c, gene)|``;
* actives: the compound's genes with ``nM <= 1000``; the grey zone ``1000 < nM <= 10000`` is
  excluded; everything is intersected with the genes present in the map;
* the *pool* is every truth gene present in the map, **sorted**; the eligible negatives are the
  pool minus the compound's actives and grey-zone genes (still sorted);
* ``n_neg = max(2 * #actives, 20)``; a compound with no active in the map or fewer eligible
  negatives than ``n_neg`` is skipped;
* the exact draw, for seed ``s``: ``rng = np.random.default_rng(s)`` re-created for each
  compound, ``negatives = rng.choice(eligible, n_neg, replace=False)`` (eligible as a sorted
  numpy array of gene symbols). Targets are the sorted actives followed by those negatives. The
  reference draws from an unordered ``set`` (its result depends on PYTHONHASHSEED); sorting
  makes it reproducible, and the metrics do not depend on the order of the targets.
* per compound and concentration: average precision and ROC-AUC (scikit-learn's definitions,
  computed row-wise by :mod:`cellbench.metrics.ranking`); the ``max`` row scores each target by
  its largest ``|cos|`` over the concentrations at which the compound is in the map;
* per row (concentration or ``max``): mean AP and mean AUC over the compounds of that row and the
  AP quantiles 0.5 / 0.75 / 0.95 (``np.quantile``, linear);
* baseline: the same labels scored by uniform random numbers. The exact draw, for seed ``s``:
  one ``np.random.default_rng([s, 1])``; for each row in report order (ascending
  concentrations, then ``max``) and each compound of that row in name order,
  ``rng.random(n_targets)``;
* seeds ``0 .. N-1``; every number is reported as mean and standard deviation over seeds
  (``ddof=1``; 0 for a single seed);
* **z-score (cellbench's definition, inferred from the paper's Table 2 — the reference code has
  none):** ``z = (mu - mu_b) / sqrt(sigma^2 + sigma_b^2)`` with ``mu, sigma`` the mean and std
  over seeds of the model's metric and ``mu_b, sigma_b`` those of the random baseline.

Everything is vectorised: compounds with the same number of targets are scored together for
all seeds and rows at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from sklearn.metrics.pairwise import cosine_similarity

from cellbench.errors import InputError
from cellbench.metrics.ranking import ap_auc_rows
from cellbench.paths import compound_gene_truth_path
from cellbench.schema import COMPOUND, CRISPR

ACTIVE_NM = 1000.0
INACTIVE_NM = 10000.0
MIN_NEGATIVES = 20
QUANTILES: tuple[float, ...] = (0.5, 0.75, 0.95)
METRICS: tuple[str, ...] = ("average_precision", "auc_roc") + tuple(
    f"ap_quantile_{q}" for q in QUANTILES
)


def load_truth(path=None) -> pl.DataFrame:
    """The compound-gene ground truth (columns gene_symbol, nM_value, treatment, ...)."""
    return pl.read_csv(path or compound_gene_truth_path())


@dataclass
class CompoundPlan:
    """One scorable compound: its actives and its sorted eligible negatives (gene columns)."""

    name: str
    actives: np.ndarray  # gene column indices, sorted by gene symbol
    eligible: np.ndarray  # gene columns of the eligible negatives, in gene-symbol order
    n_neg: int
    rows: dict = field(default_factory=dict)  # concentration -> map row index

    @property
    def n_targets(self) -> int:
        return len(self.actives) + self.n_neg


def plan_compounds(
    map_table: pl.DataFrame, truth: pl.DataFrame
) -> tuple[list[CompoundPlan], list[str], dict]:
    """Which compounds can be scored, with what targets. Returns ``(plans, gene symbols of the
    score columns, counts)``."""
    genes_in_map = (
        map_table.with_row_index("_row")
        .filter(pl.col("perturbation_type") == CRISPR)
        .select("perturbation", "_row")
    )
    gene_row = dict(
        zip(genes_in_map["perturbation"].to_list(), genes_in_map["_row"].to_list(), strict=True)
    )
    pool = sorted(set(truth["gene_symbol"].unique().to_list()) & set(gene_row))
    compounds = map_table.with_row_index("_row").filter(
        (pl.col("perturbation_type") == COMPOUND) & pl.col("concentration").is_not_null()
    )
    present: dict[str, dict[float, int]] = {}
    for name, conc, row in compounds.select("perturbation", "concentration", "_row").iter_rows():
        present.setdefault(name, {})[float(conc)] = int(row)
    truth = truth.filter(pl.col("treatment").is_in(list(present)))
    col = {g: i for i, g in enumerate(pool)}
    plans: list[CompoundPlan] = []
    counts = {"compounds_in_truth_and_map": 0, "skipped_no_actives": 0, "skipped_few_negatives": 0}
    pool_set = set(pool)
    for name, group in sorted(truth.group_by("treatment"), key=lambda kv: kv[0][0]):
        name = name[0]
        counts["compounds_in_truth_and_map"] += 1
        nm = group["nM_value"].cast(pl.Float64)
        genes = group["gene_symbol"]
        actives = sorted(set(genes.filter(nm <= ACTIVE_NM).to_list()) & pool_set)
        grey = set(genes.filter((nm > ACTIVE_NM) & (nm <= INACTIVE_NM)).to_list())
        if not actives:
            counts["skipped_no_actives"] += 1
            continue
        eligible = sorted(pool_set - set(actives) - grey)
        n_neg = max(2 * len(actives), MIN_NEGATIVES)
        if len(eligible) < n_neg:
            counts["skipped_few_negatives"] += 1
            continue
        plans.append(
            CompoundPlan(
                name=name,
                actives=np.array([col[g] for g in actives], dtype=np.int64),
                eligible=np.array([col[g] for g in eligible], dtype=np.int64),
                n_neg=n_neg,
                rows=dict(sorted(present[name].items())),
            )
        )
    counts["compounds_scored"] = len(plans)
    counts["genes_in_pool"] = len(pool)
    return plans, pool, {**counts, "_gene_row": gene_row}


def draw_positions(seed: int, n_eligible: int, n_neg: int) -> np.ndarray:
    """``np.random.default_rng(seed).choice(n_eligible, n_neg, replace=False)``.

    ``Generator.choice(a, k, replace=False)`` on an array draws these positions and returns
    ``a[positions]``, so indexing the sorted eligible genes with them is the documented draw.
    The positions depend only on ``(seed, n_eligible, n_neg)``: compounds that share those
    reuse one draw (see :func:`draw_targets`)."""
    return np.random.default_rng(seed).choice(n_eligible, n_neg, replace=False)


def draw_targets(plan: CompoundPlan, seed: int, cache: dict | None = None) -> np.ndarray:
    """Gene columns of the compound's targets for ``seed`` (actives, then the drawn negatives)."""
    key = (seed, len(plan.eligible), plan.n_neg)
    if cache is None or key not in cache:
        positions = draw_positions(*key)
        if cache is not None:
            cache[key] = positions
    else:
        positions = cache[key]
    return np.concatenate([plan.actives, plan.eligible[positions]])


def _std(x: np.ndarray, axis: int = 0) -> np.ndarray:
    return np.std(x, axis=axis, ddof=1) if x.shape[axis] > 1 else np.zeros(np.delete(x.shape, axis))


def compound_gene_benchmark(
    map_table: pl.DataFrame,
    map_features: np.ndarray,
    *,
    seeds: int | Sequence[int] = 100,
    truth: pl.DataFrame | None = None,
    progress=None,
) -> dict:
    """Score a map. Returns ``{"rows": [...], "counts": {...}, "per_seed": {...}}``.

    ``rows`` has one dict per concentration row (ascending, then ``"max"``) with every metric
    of :data:`METRICS` as mean over seeds, ``_std``, ``_baseline``, ``_baseline_std`` and the
    z-scores ``z_average_precision`` and ``z_auc_roc``. Raises :class:`InputError` when no
    compound can be scored.
    """
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seeds:
        raise InputError(
            "--seeds must be at least 1. Fix: pass --seeds 1 or more (the reference uses 100)."
        )
    truth = load_truth() if truth is None else truth
    plans, pool, counts = plan_compounds(map_table, truth)
    gene_row = counts.pop("_gene_row")
    if not plans:
        raise InputError(
            "no compound of the compound-gene ground truth can be scored in this map "
            f"({counts}). Fix: the map needs compounds named as in compound_gene_interactions.csv "
            "at canonical concentrations and their target genes."
        )
    features = np.asarray(map_features)
    if features.dtype not in (np.float32, np.float64):
        features = features.astype(np.float64)
    # |cos| in the map's own dtype, as the reference's cosine_similarity computes it
    comp_rows = sorted({r for p in plans for r in p.rows.values()})
    comp_pos = {r: i for i, r in enumerate(comp_rows)}
    abs_cos = np.abs(cosine_similarity(features[comp_rows], features[[gene_row[g] for g in pool]]))

    concs = sorted({c for p in plans for c in p.rows})
    row_names: list = concs + ["max"]
    n_s, n_c, n_r = len(seeds), len(plans), len(row_names)
    # which compound is in which row ("max" holds every scorable compound)
    member = np.zeros((n_r, n_c), dtype=bool)
    for c, p in enumerate(plans):
        for ri, conc in enumerate(concs):
            member[ri, c] = conc in p.rows
        member[-1, c] = True
    # baseline draw offsets: rows in order, compounds in name order within a row
    lengths = np.array([p.n_targets for p in plans])
    seg_len = np.where(member, lengths[None, :], 0)
    offsets = (np.cumsum(seg_len.ravel()) - seg_len.ravel()).reshape(n_r, n_c)
    total = int(seg_len.sum())
    uniforms = np.empty((n_s, total))
    for si, s in enumerate(seeds):
        uniforms[si] = np.random.default_rng([s, 1]).random(total)

    ap = np.full((2, n_s, n_r, n_c), np.nan)  # [model, baseline]
    auc = np.full((2, n_s, n_r, n_c), np.nan)
    by_len: dict[int, list[int]] = {}
    for c, p in enumerate(plans):
        by_len.setdefault(p.n_targets, []).append(c)
    done = 0
    draws: dict = {}
    for length, members in sorted(by_len.items()):
        group = np.array(members)
        n_act = np.array([len(plans[c].actives) for c in group])
        targets = np.empty((n_s, len(group), length), dtype=np.int64)
        for gi, c in enumerate(group):
            for si, s in enumerate(seeds):
                targets[si, gi] = draw_targets(plans[c], s, draws)
        labels_1 = np.arange(length)[None, :] < n_act[:, None]  # (G, L)
        for ri in range(n_r):
            in_row = member[ri, group]
            if not in_row.any():
                continue
            sub = group[in_row]
            t = targets[:, in_row]  # (S, G_r, L)
            if row_names[ri] == "max":
                pos = [[comp_pos[r] for r in plans[c].rows.values()] for c in sub]
                best = np.stack([abs_cos[p_].max(axis=0) for p_ in pos])  # (G_r, genes)
                scores = best[np.arange(len(sub))[None, :, None], t]
            else:
                conc = row_names[ri]
                srow = np.array([comp_pos[plans[c].rows[conc]] for c in sub])
                scores = abs_cos[srow[None, :, None], t]
            lab = np.broadcast_to(labels_1[in_row][None], scores.shape)
            a, u = ap_auc_rows(scores.reshape(-1, length), lab.reshape(-1, length))
            ap[0][:, ri, sub] = a.reshape(n_s, -1)
            auc[0][:, ri, sub] = u.reshape(n_s, -1)
            idx = offsets[ri, sub][:, None] + np.arange(length)[None, :]
            base = uniforms[:, idx]  # (S, G_r, L)
            a, u = ap_auc_rows(base.reshape(-1, length), lab.reshape(-1, length))
            ap[1][:, ri, sub] = a.reshape(n_s, -1)
            auc[1][:, ri, sub] = u.reshape(n_s, -1)
        done += len(group)
        if progress is not None:
            progress(done, n_c)

    rows = []
    per_seed = {}
    for ri, name in enumerate(row_names):
        m = member[ri]
        stats = {}
        for kind, tag in ((0, ""), (1, "_baseline")):
            a = ap[kind][:, ri, m]  # (S, compounds of the row)
            u = auc[kind][:, ri, m]
            values = {
                "average_precision": a.mean(axis=1),
                "auc_roc": u.mean(axis=1),
                **{f"ap_quantile_{q}": np.quantile(a, q, axis=1) for q in QUANTILES},
            }
            for metric, v in values.items():
                stats[f"{metric}{tag}"] = float(v.mean())
                stats[f"{metric}{tag}_std"] = float(_std(v))
                per_seed[(str(name), f"{metric}{tag}")] = v
        for metric in ("average_precision", "auc_roc"):
            num = stats[metric] - stats[f"{metric}_baseline"]
            den = np.sqrt(stats[f"{metric}_std"] ** 2 + stats[f"{metric}_baseline_std"] ** 2)
            stats[f"z_{metric}"] = float(num / den) if den > 0 else float("nan")
        rows.append(
            {
                "concentration": name if name == "max" else float(name),
                "n_compounds": int(m.sum()),
                **stats,
            }
        )
    return {
        "rows": rows,
        "counts": counts,
        "seeds": seeds,
        "per_seed": {f"{k[0]}|{k[1]}": v.tolist() for k, v in per_seed.items()},
    }
