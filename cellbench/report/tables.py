"""The leaderboard: every stored result as one table per dataset.

Measured rows are aggregated over training seeds (mean ± std, ``n_seeds``, and a 95 %
t-interval when there are ≥ 3 seeds). Reference models measured on synthetic data are
labelled by role: ``ceiling`` (oracle: the simulator's true latent state) and ``floor``
(untrained networks at step 0, the random ViT-S/16, pixel statistics, nuisance-only), and
each dataset's tables end with the computed ``chance`` row (recall 0.10 by construction: the
paper's "Random" row). The paper's numbers are a separate
block, "reported (paper, real RxRx3-core)", in their own table and CSV: a reported number
never shares a numeric column with a measured one (they were measured on different data).

Column order follows the paper's headline: CORUM recall at (0.05, 0.95) first, then HuMAP,
Reactome, SIGNOR, StringDB; compound–gene AP and AUC-ROC at the maximum concentration with
their z-scores (docs/metrics.md, "Compound–gene retrieval"); then cellbench's batch
diagnostics (docs/metrics.md, "Batch diagnostics"): batch
predictability from control wells (lower is better), replicate consistency across batches,
and the well-shortcut rate.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import polars as pl

from cellbench import registry
from cellbench.io import write_text_atomic
from cellbench.report import paper
from cellbench.report.paper import write_csv_atomic
from cellbench.report.render import to_markdown
from cellbench.report.store import is_preset_default, is_untrained, short_variant
from cellbench.train.presets import get_preset


@dataclass(frozen=True)
class Metric:
    key: str
    header: str
    task: str
    higher_is_better: bool | None = True


METRICS: tuple[Metric, ...] = (
    Metric("corum", "CORUM ↑", "gene_gene"),
    Metric("humap", "HuMAP ↑", "gene_gene"),
    Metric("reactome", "Reactome ↑", "gene_gene"),
    Metric("signor", "SIGNOR ↑", "gene_gene"),
    Metric("stringdb", "StringDB ↑", "gene_gene"),
    Metric("ap_max", "AP@max ↑", "compound_gene"),
    Metric("ap_max_z", "AP z ↑", "compound_gene"),
    Metric("auc_max", "AUC@max ↑", "compound_gene"),
    Metric("auc_max_z", "AUC z ↑", "compound_gene"),
    Metric("batch_predictability", "batch pred. ↓", "batch", False),
    Metric("replicate_consistency", "replicate cons. ↑", "batch"),
    Metric("well_shortcut_rate", "well shortcut ↓", "health", False),
)
METRIC_KEYS = tuple(m.key for m in METRICS)
GENE_SOURCES = ("corum", "humap", "reactome", "signor", "stringdb")
EXTRA_METRICS = (
    "ap_max_baseline",
    "auc_max_baseline",
    "batch_chance",
    "effective_rank",
    "prototype_usage",
)


def leaderboard_role(model: str) -> str:
    """The role column of ``model``: its card's ``role``, with reference rows shown among the
    floors (``ceiling`` / ``model`` / ``floor``)."""
    role = registry.role(model)
    return "floor" if role == "reference" else role


def floor_ceiling_required() -> tuple[str, ...]:
    """The rows a synthetic leaderboard must have: every card with role floor or ceiling."""
    return registry.models_with_role("floor", "ceiling")


REPORTED_LABEL = "reported (paper, real RxRx3-core)"

#: Recall at (0.05, 0.95) of a map whose similarities are random: 5 % + 5 % of all pairs, so
#: 0.10 of the annotated ones, by construction. The paper's "Random" row (CORUM .107) is this.
CHANCE_RECALL = 0.10
#: AUC-ROC of random scores, by construction.
CHANCE_AUC = 0.5
CHANCE_LABEL = "chance"


def chance_row(dataset: str, synthetic: bool = True) -> dict[str, Any]:
    """The computed chance row of ``dataset``: no model, no seeds, numbers by construction
    (gene–gene recall 0.10 for every source, AUC 0.5; AP at chance is the prevalence, shown
    beside every measured AP as its baseline, so it is left empty here)."""
    row: dict[str, Any] = {
        "dataset": dataset,
        "block": CHANCE_LABEL,
        "role": "floor",
        "model": CHANCE_LABEL,
        "display": CHANCE_LABEL,
        "variant": "computed",
        "synthetic": synthetic,
        "seeds": "",
        "n_seeds": 0,
        "provenance": CHANCE_LABEL,
        "source": CHANCE_LABEL,
    }
    for src in GENE_SOURCES:
        row[f"{src}_mean"] = CHANCE_RECALL
    row["auc_max_mean"] = CHANCE_AUC
    return row


def with_chance(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` (one or more datasets' measured rows) with each dataset's chance row last."""
    if not frame.height or "dataset" not in frame.columns:
        return frame
    rows = []
    for ds in dict.fromkeys(frame["dataset"].to_list()):
        d = frame.filter(pl.col("dataset") == ds)
        synthetic = bool(d["synthetic"].any()) if "synthetic" in d.columns else True
        rows.append(
            pl.concat([d, pl.DataFrame([chance_row(ds, synthetic)])], how="diagonal_relaxed")
        )
    return pl.concat(rows, how="diagonal_relaxed")


def _norm_source(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _num(x: Any) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def _is_max(conc: Any) -> bool:
    return str(conc).strip().lower() == "max"


def metric_values(rec: dict[str, Any]) -> dict[str, float]:
    """The leaderboard metrics one result JSON contributes (tolerant of extra keys)."""
    task = rec.get("task")
    scores = rec.get("scores") or {}
    out: dict[str, float | None] = {}
    if task == "gene_gene":
        for src, vals in scores.items():
            key = _norm_source(src)
            if key in GENE_SOURCES and isinstance(vals, dict):
                out[key] = _num(vals.get("recall_0.05_0.95"))
                out[f"n_{key}"] = _num(vals.get("n_relationships"))
    elif task == "compound_gene":
        rows = scores.get("rows", []) if isinstance(scores, dict) else []
        for row in rows:
            if isinstance(row, dict) and _is_max(row.get("concentration")):
                out["ap_max"] = _num(row.get("average_precision"))
                out["auc_max"] = _num(row.get("auc_roc"))
                out["ap_max_z"] = _num(row.get("z_average_precision"))
                out["auc_max_z"] = _num(row.get("z_auc_roc"))
                out["ap_max_baseline"] = _num(row.get("average_precision_baseline"))
                out["auc_max_baseline"] = _num(row.get("auc_roc_baseline"))
    elif task == "batch":
        for k in ("batch_predictability", "batch_chance", "replicate_consistency"):
            out[k] = _num(scores.get(k))
    elif task == "health":
        for k in ("well_shortcut_rate", "effective_rank", "prototype_usage"):
            out[k] = _num(scores.get(k))
    return {k: v for k, v in out.items() if v is not None}


def _run_facts(rec: dict[str, Any]) -> dict[str, Any]:
    """Facts about the run behind a result: prototypes, training images, parameters, hours
    (``run_facts``, from :meth:`cellbench.results.ResultRecord.run_facts`)."""
    facts: dict[str, Any] = dict(rec.get("run_facts") or {})
    if rec.get("task") == "health":  # the training's own wall time, kept in its log: it
        v = _num((rec.get("scores") or {}).get("elapsed_s"))  # survives a run that reused it
        if v is not None:
            facts["train_seconds_log"] = v
    return facts


def long_results(records: Iterable[dict[str, Any]]) -> pl.DataFrame:
    """One row per (dataset, model, variant, seed, metric) with its value.

    When the same (dataset, model, variant, seed, metric) appears twice, the most recently
    created result wins.
    """
    rows = []
    for rec in sorted(records, key=lambda r: str(r.get("created", ""))):
        base = {
            "dataset": str(rec.get("dataset", "")),
            "model": str(rec.get("model", "")),
            "variant": str(rec.get("variant", rec.get("checkpoint", "default"))),
            "seed": None if rec.get("seed") is None else int(rec["seed"]),
            "synthetic": bool(rec.get("synthetic", False)),
        }
        facts = _run_facts(rec)
        for metric, value in {
            **metric_values(rec),
            **{f"fact_{k}": v for k, v in facts.items()},
        }.items():
            rows.append({**base, "metric": metric, "value": float(value)})
    schema = {
        "dataset": pl.String,
        "model": pl.String,
        "variant": pl.String,
        "seed": pl.Int64,
        "synthetic": pl.Boolean,
        "metric": pl.String,
        "value": pl.Float64,
    }
    if not rows:
        return pl.DataFrame(schema=schema)
    df = pl.DataFrame(rows, schema=schema)
    return df.unique(
        subset=["dataset", "model", "variant", "seed", "metric"], keep="last", maintain_order=True
    )


def t_interval(
    mean: float, std: float | None, n: int, level: float = 0.95
) -> tuple[float | None, float | None]:
    """Two-sided Student-t interval for a mean over ``n`` seeds (None when n < 3)."""
    if n < 3 or std is None:
        return None, None
    from scipy import stats

    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
    return mean - half, mean + half


def _display(model: str) -> str:
    try:
        from cellbench.registry import metadata

        name = metadata(model).get("display_name")
        return str(name) if name else model
    except Exception:  # noqa: BLE001 - unknown / third-party model: show its key
        return model


def leaderboard_frame(records: Iterable[dict[str, Any]]) -> pl.DataFrame:
    """The measured leaderboard: one row per (dataset, model, variant), aggregated over seeds.

    Columns: ``dataset, block ("measured"), role, model, display, variant, synthetic,
    n_seeds, seeds`` then for every metric ``<m>_mean, <m>_std, <m>_ci_low, <m>_ci_high,
    <m>_n`` (std needs ≥ 2 seeds, the interval ≥ 3), the run facts (``prototypes``,
    ``training_images``, ``parameters``, ``train_hours``) and ``provenance`` ("measured").
    Sorted per dataset: ceiling, then models by CORUM (best first), then floors.
    """
    long = long_results(records)
    keys = ["dataset", "model", "variant"]
    out_rows = []
    if long.height:
        groups = long.partition_by(keys, as_dict=True, maintain_order=True)
        for (dataset, model, variant), g in groups.items():
            seeds = sorted({s for s in g["seed"].to_list() if s is not None})
            untrained = is_untrained(variant)
            row: dict[str, Any] = {
                "dataset": dataset,
                "block": "measured",
                "role": "floor" if untrained else leaderboard_role(model),
                "model": model,
                "display": f"untrained {_display(model)}" if untrained else _display(model),
                "variant": variant,
                "synthetic": bool(g["synthetic"].any()),
                "seeds": " ".join(str(s) for s in seeds),
            }
            n_seeds = 0
            for metric in (*METRIC_KEYS, *EXTRA_METRICS, *(f"n_{s}" for s in GENE_SOURCES)):
                vals = g.filter(pl.col("metric") == metric)["value"].to_list()
                n = len(vals)
                mean = sum(vals) / n if n else None
                std = None
                if n >= 2:
                    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
                lo, hi = t_interval(mean, std, n) if mean is not None else (None, None)
                if metric in METRIC_KEYS:
                    row.update(
                        {
                            f"{metric}_mean": mean,
                            f"{metric}_std": std,
                            f"{metric}_ci_low": lo,
                            f"{metric}_ci_high": hi,
                            f"{metric}_n": n,
                        }
                    )
                    n_seeds = max(n_seeds, n)
                else:
                    row[metric] = mean
            for fact in (
                "prototypes",
                "training_images",
                "parameters",
                "train_seconds",
                "train_cpu_seconds",
            ):
                vals = (
                    train_seconds(g)
                    if fact == "train_seconds"
                    else g.filter(pl.col("metric") == f"fact_{fact}")["value"].to_list()
                )
                if fact == "train_cpu_seconds":  # ~0 where a run reused a finished training
                    vals = [v for v in vals if v > 1.0]
                row[fact] = sum(vals) / len(vals) if vals else None
            row["train_hours"] = row.pop("train_seconds") / 3600 if row["train_seconds"] else None
            cpu = row.pop("train_cpu_seconds")
            row["train_cpu_hours"] = cpu / 3600 if cpu else None
            row["n_seeds"] = n_seeds
            row["provenance"] = "measured"
            row["source"] = "synthetic" if row["synthetic"] else "measured"
            out_rows.append(row)
    if not out_rows:
        return pl.DataFrame(
            schema={
                "dataset": pl.String,
                "block": pl.String,
                "role": pl.String,
                "model": pl.String,
                "display": pl.String,
                "variant": pl.String,
                "n_seeds": pl.Int64,
                "corum_mean": pl.Float64,
            }
        )
    df = pl.DataFrame(out_rows, infer_schema_length=None)
    role_order = pl.col("role").replace_strict({"ceiling": 0, "model": 1, "floor": 2}, default=1)
    return (
        df.with_columns(_r=role_order)
        .sort(
            ["dataset", "_r", "corum_mean", "model", "variant"],
            descending=[False, False, True, False, False],
            nulls_last=True,
        )
        .drop("_r")
    )


def train_seconds(long: pl.DataFrame) -> list[float]:
    """Training seconds of the results in ``long`` (long_results rows): the training log's own
    time, else this command's (which is ~0 when the run reused a finished training)."""
    logged = long.filter(pl.col("metric") == "fact_train_seconds_log")["value"].to_list()
    return logged or long.filter(pl.col("metric") == "fact_train_seconds")["value"].to_list()


def reported_frame() -> pl.DataFrame:
    """The paper's rows for the leaderboard's reported block: Table 1 (gene–gene) joined with
    Table 2 (compound–gene at max), plus the ablation models of Tables 3–4."""
    t1 = paper.paper_table(1).filter(pl.col("row_type") != "n_relationships")
    gene = [
        t1.select(
            "model",
            "method",
            "corum",
            "humap",
            "reactome",
            "stringdb",
            pl.lit("Table 1").alias("tables"),
        )
    ]
    for n in (3, 4):
        t = paper.paper_table(n).filter(pl.col("row_type") == "method")
        t = t.filter(~pl.col("model").is_in(t1["model"].to_list()))
        gene.append(
            t.select(
                "model",
                "method",
                "corum",
                "humap",
                "reactome",
                "stringdb",
                pl.lit(f"Table {n}").alias("tables"),
            )
        )
    g = pl.concat(gene)
    t2 = paper.paper_table(2).select(
        "model",
        pl.col("method").alias("method_t2"),
        pl.col("ap_mean").alias("ap_max"),
        pl.col("ap_std").alias("ap_max_std"),
        pl.col("ap_z").alias("ap_max_z"),
        pl.col("auc_mean").alias("auc_max"),
        pl.col("auc_std").alias("auc_max_std"),
        pl.col("auc_z").alias("auc_max_z"),
    )
    df = g.join(t2, on="model", how="full", coalesce=True)
    df = df.with_columns(
        pl.coalesce("method", "method_t2").alias("method"),
        pl.when(pl.col("ap_max").is_not_null() & pl.col("tables").is_not_null())
        .then(pl.col("tables") + ", Table 2")
        .otherwise(pl.coalesce("tables", pl.lit("Table 2")))
        .alias("tables"),
        pl.lit(None, dtype=pl.Float64).alias("signor"),
    ).drop("method_t2")
    flagged = paper.table2_z_check().filter(pl.col("flagged"))
    flags = {(m, k) for m, k in zip(flagged["model"], flagged["metric"], strict=True)}
    df = df.with_columns(
        pl.col("model")
        .map_elements(lambda m: "†" if (m, "ap") in flags else "", return_dtype=pl.String)
        .alias("ap_max_z_flag"),
    )
    return df.select(
        pl.lit(REPORTED_LABEL).alias("block"),
        "model",
        "method",
        "corum",
        "humap",
        "reactome",
        "signor",
        "stringdb",
        "ap_max",
        "ap_max_std",
        "ap_max_z",
        "ap_max_z_flag",
        "auc_max",
        "auc_max_std",
        "auc_max_z",
        pl.lit("reported").alias("provenance"),
        ("CWA-MSN paper " + pl.col("tables")).alias("source"),
    ).sort("corum", descending=True, nulls_last=True)


# ----------------------------------------------------------------------------------------
# Formatting
# ----------------------------------------------------------------------------------------
def fmt_cell(
    mean: float | None,
    std: float | None = None,
    lo: float | None = None,
    hi: float | None = None,
    digits: int = 3,
) -> str:
    """``0.386 ± 0.012 [0.356, 0.416]``; ``0.386`` for one seed; ``–`` when missing."""
    if mean is None:
        return "–"
    s = f"{mean:.{digits}f}"
    if std is not None:
        s += f" ± {std:.{digits}f}"
    if lo is not None and hi is not None:
        s += f" [{lo:.{digits}f}, {hi:.{digits}f}]"
    return s


def _metric_digits(key: str) -> int:
    return 2 if key.endswith("_z") else 3


def markdown_measured(
    df: pl.DataFrame, *, metrics: Iterable[str] = METRIC_KEYS, intervals: bool = True
) -> str:
    """The measured rows as markdown; ``intervals=False`` drops the [95 %] part (terminal)."""
    metrics = [
        m for m in metrics if f"{m}_mean" in df.columns and df[f"{m}_mean"].is_not_null().any()
    ]
    headers = ["role", "model", "variant", "seeds", *[_HEADER[m] for m in metrics], "source"]
    rows = []
    for rec in df.iter_rows(named=True):
        seeds = "–" if rec.get("source") == CHANCE_LABEL else rec["n_seeds"]
        rows.append(
            [
                rec["role"],
                rec["display"],
                rec["variant"],
                seeds,
                *[
                    fmt_cell(
                        rec[f"{m}_mean"],
                        rec.get(f"{m}_std"),
                        rec.get(f"{m}_ci_low") if intervals else None,
                        rec.get(f"{m}_ci_high") if intervals else None,
                        _metric_digits(m),
                    )
                    for m in metrics
                ],
                rec.get("source") or rec.get("provenance") or "measured",
            ]
        )
    return to_markdown(headers, rows)


_HEADER = {m.key: m.header for m in METRICS}


def markdown_reported(rep: pl.DataFrame) -> str:
    headers = [
        "method",
        "CORUM ↑",
        "HuMAP ↑",
        "Reactome ↑",
        "StringDB ↑",
        "AP@max ↑",
        "AP z ↑",
        "AUC@max ↑",
        "AUC z ↑",
        "source",
    ]
    rows = []
    for r in rep.iter_rows(named=True):

        def f(v, d=3):
            return "–" if v is None else f"{v:.{d}f}"

        rows.append(
            [
                r["method"],
                f(r["corum"]),
                f(r["humap"]),
                f(r["reactome"]),
                f(r["stringdb"]),
                fmt_cell(r["ap_max"], r["ap_max_std"]),
                f(r["ap_max_z"], 2) + (r["ap_max_z_flag"] or ""),
                fmt_cell(r["auc_max"], r["auc_max_std"]),
                f(r["auc_max_z"], 2),
                f"reported ({r['source']})",
            ]
        )
    notes = [
        "± is the std over compound–gene sampling seeds as printed in the paper; the paper "
        "reports no SIGNOR recall.",
        "The paper's Random row is chance (a random map), not an untrained network.",
        "† printed z-score inconsistent with its own row (see leaderboard/paper/"
        "table2_zscore_check.csv); kept as printed.",
    ]
    return to_markdown(headers, rows, notes=notes)


def cross_vs_single(
    long: pl.DataFrame, metric: str = "corum", *, lower_is_better: bool = False
) -> pl.DataFrame:
    """Does cross-well beat single-well (MSN: cwa-msn vs single-well-msn; CropMAE:
    cropmae-cross vs cropmae-single)? Welch difference of means over seeds with a 95 %
    interval, per dataset and variant. A verdict needs ≥ 2 seeds on each side.
    ``lower_is_better`` for metrics such as the well-shortcut rate."""
    from scipy import stats

    pairs = (("MSN", "cwa-msn", "single-well-msn"), ("CropMAE", "cropmae-cross", "cropmae-single"))
    rows = []
    sel = long.filter(pl.col("metric") == metric) if long.height else long
    if sel.height:  # pair the two models' runs at the same budget: hashes differ by model
        sel = sel.with_columns(
            pl.col("variant").map_elements(short_variant, return_dtype=pl.String)
        )
    combos = (
        sorted(set(zip(sel["dataset"].to_list(), sel["variant"].to_list(), strict=True)))
        if sel.height
        else []
    )
    for dataset, variant in combos:
        for family, cross, single in pairs:

            def vals(model, dataset=dataset, variant=variant):
                return sel.filter(
                    (pl.col("dataset") == dataset)
                    & (pl.col("variant") == variant)
                    & (pl.col("model") == model)
                )["value"].to_list()

            a, b = vals(cross), vals(single)
            if not a or not b:
                continue
            diff = sum(a) / len(a) - sum(b) / len(b)
            lo = hi = None
            verdict = "not enough seeds (need ≥ 2 per model)"
            if len(a) >= 2 and len(b) >= 2:
                va = statistics.variance(a) / len(a)
                vb = statistics.variance(b) / len(b)
                se = math.sqrt(va + vb)
                if se > 0:
                    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
                    half = float(stats.t.ppf(0.975, dof)) * se
                else:
                    half = 0.0
                lo, hi = diff - half, diff + half
                cross_higher, cross_lower = lo > 0, hi < 0
                if lower_is_better:
                    cross_higher, cross_lower = cross_lower, cross_higher
                verdict = (
                    "cross-well better"
                    if cross_higher
                    else "single-well better"
                    if cross_lower
                    else "no clear difference"
                )
            rows.append(
                {
                    "dataset": dataset,
                    "variant": variant,
                    "family": family,
                    "metric": metric,
                    "cross": cross,
                    "single": single,
                    "n_cross": len(a),
                    "n_single": len(b),
                    "cross_mean": sum(a) / len(a),
                    "single_mean": sum(b) / len(b),
                    "difference": diff,
                    "ci_low": lo,
                    "ci_high": hi,
                    "verdict": verdict,
                }
            )
    return pl.DataFrame(rows, infer_schema_length=None)


def paired_difference(
    a: dict[int, float], b: dict[int, float], level: float = 0.95
) -> tuple[float, float | None, float | None, int]:
    """Mean of the per-seed differences ``a[s] - b[s]`` over the seeds both have, with its
    two-sided Student-t interval (None below 2 seeds); returns (mean, low, high, n)."""
    from scipy import stats

    diffs = [a[s] - b[s] for s in sorted(set(a) & set(b))]
    n = len(diffs)
    if not n:
        return math.nan, None, None, 0
    mean = sum(diffs) / n
    if n < 2:
        return mean, None, None, n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return mean, mean - half, mean + half, n


def direction(low: float | None, high: float | None, n: int) -> str:
    """ "above" / "below" only when the interval excludes zero."""
    if n < 2 or low is None or high is None:
        return "one seed only, not evidence"
    if low > 0:
        return "above"
    if high < 0:
        return "below"
    return "no clear difference"


def _trainer(model: str) -> str | None:
    try:
        return registry.metadata(model).get("trainer")
    except Exception:  # noqa: BLE001 - unknown / third-party model: no trainer known
        return None


#: the TrainConfig fields that make the network (its weights at a seed): two presets equal on
#: these initialise the same network, so one ``--steps 0`` run is the untrained floor of both
_NETWORK_FIELDS = (
    "arch",
    "embed_dim",
    "depth",
    "num_heads",
    "patch_size",
    "crop_size",
    "pooling",
    "pre_norm_embedding",
)


def _same_network(preset_a: str, preset_b: str) -> bool:
    try:
        a, b = get_preset(preset_a), get_preset(preset_b)
    except Exception:  # noqa: BLE001 - an unknown preset name: not known to be the same
        return False
    return all(getattr(a, f) == getattr(b, f) for f in _NETWORK_FIELDS)


def trained_vs_untrained(long: pl.DataFrame, metric: str = "corum") -> pl.DataFrame:
    """Does training beat the untrained network of the same architecture? For every trained
    variant, the per-seed difference to the ``--steps 0`` run of the same preset and seed
    (seed s initialises both), paired over seeds with a 95 % t-interval. The untrained run is
    the model's own, else that of a model with the same trainer (cross- and single-well
    variants of one method share the architecture and the initialisation)."""
    sel = long.filter((pl.col("metric") == metric) & pl.col("seed").is_not_null())
    rows: list[dict[str, Any]] = []
    if not sel.height:
        return pl.DataFrame(rows)
    sel = sel.with_columns(
        pl.col("variant").map_elements(short_variant, return_dtype=pl.String).alias("short")
    )

    def per_seed(g: pl.DataFrame) -> dict[int, float]:
        return dict(zip(g["seed"].to_list(), g["value"].to_list(), strict=True))

    groups = sel.partition_by(["dataset", "model", "variant"], as_dict=True, maintain_order=True)

    def preset_of(variant: str) -> str:
        return short_variant(variant).split("-steps")[0]

    # (dataset, model, preset) -> per-seed values of its --steps 0 run
    untrained = {
        (dataset, model, preset_of(variant)): per_seed(g)
        for (dataset, model, variant), g in groups.items()
        if is_untrained(variant)
    }
    for (dataset, model, variant), g in groups.items():
        if is_untrained(variant):
            continue
        preset = preset_of(variant)
        # the model's own untrained run first, then a same-trainer model's; the same preset
        # first, then one with the same network (``standard`` is ``quick`` trained longer)
        candidates = sorted(
            (m != model, p != preset, m, p)
            for (d, m, p) in untrained
            if d == dataset
            and (m == model or _trainer(m) is not None and _trainer(m) == _trainer(model))
            and (p == preset or _same_network(p, preset))
        )
        if not candidates:
            continue
        _, _, base_model, base_preset = candidates[0]
        base = (base_model, untrained[(dataset, base_model, base_preset)])
        ours = per_seed(g)
        diff, lo, hi, n = paired_difference(ours, base[1])
        if not n:
            continue
        verdict = direction(lo, hi, n)
        seeds = sorted(set(ours) & set(base[1]))
        rows.append(
            {
                "dataset": dataset,
                "model": model,
                "variant": variant,
                "untrained": base[0],
                "metric": metric,
                "n_seeds": n,
                "trained_mean": sum(ours[s] for s in seeds) / n,
                "untrained_mean": sum(base[1][s] for s in seeds) / n,
                "difference": diff,
                "ci_low": lo,
                "ci_high": hi,
                "verdict": verdict,
            }
        )
    return pl.DataFrame(rows, infer_schema_length=None)


def leaderboard_markdown(
    dataset: str,
    df: pl.DataFrame,
    rep: pl.DataFrame | None,
    comparisons: pl.DataFrame | None = None,
    *,
    intervals: bool = True,
    training: pl.DataFrame | None = None,
) -> str:
    """The markdown of one dataset's leaderboard: measured block, notes, the trained vs
    untrained and cross- vs single-well comparisons, reported block."""
    d = df.filter(pl.col("dataset") == dataset)
    synthetic = bool(d["synthetic"].any()) if "synthetic" in d.columns and d.height else False
    parts = [f"# Leaderboard — {dataset}", ""]
    parts.append(f"## measured by cellbench ({'synthetic screen' if synthetic else 'real data'})")
    parts.append("")
    parts.append(
        "Mean ± std over training seeds"
        + (", [95 % t-interval] with ≥ 3 seeds" if intervals else "")
        + ". Gene–gene "
        "columns: recall at (0.05, 0.95). AP/AUC at the maximum concentration; z = "
        "(μ − μ_b)/√(σ² + σ_b²) against the random-score baseline. Roles: ceiling = "
        "oracle (true latent state); floors = chance (computed: recall 0.10 by "
        "construction, the paper's Random row), untrained (the same architecture at "
        "step 0), random ViT-S/16 (a seeded random initialisation), nuisance-only and "
        "pixel statistics. Source: synthetic (measured on the simulator's screen), "
        "measured (real data), chance (computed)."
    )
    parts.append("")
    parts.append(markdown_measured(with_chance(d), intervals=intervals))
    if synthetic:
        missing = [m for m in floor_ceiling_required() if m not in d["model"].to_list()]
        if missing:
            parts.append(
                "Missing reference rows: "
                + ", ".join(missing)
                + " — run "
                + ", ".join(f"`cellbench run --model {m}`" for m in missing)
                + "."
            )
            parts.append("")
    if training is not None and training.height:
        t = training.filter(pl.col("dataset") == dataset)
        if t.height:
            parts.append(
                "### trained vs the untrained network of its architecture (paired over seeds)"
            )
            parts.append("")
            parts.append(
                "CORUM recall of each trained run minus that of the same network at step 0 "
                "(`--steps 0`, same seed: the same initialisation); mean over seeds with a 95 % "
                't-interval. "above" or "below" only when the interval excludes zero.'
            )
            parts.append("")
            parts.append(
                to_markdown(
                    [
                        "model",
                        "variant",
                        "untrained of",
                        "seeds",
                        "trained",
                        "untrained",
                        "difference",
                        "95 % interval",
                        "verdict",
                    ],
                    [
                        [
                            _display(r["model"]),
                            short_variant(r["variant"]),
                            _display(r["untrained"]),
                            r["n_seeds"],
                            f"{r['trained_mean']:.3f}",
                            f"{r['untrained_mean']:.3f}",
                            f"{r['difference']:+.3f}",
                            "–"
                            if r["ci_low"] is None
                            else f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]",
                            r["verdict"],
                        ]
                        for r in t.iter_rows(named=True)
                    ],
                )  # fmt: skip
            )
    if comparisons is not None and comparisons.height:
        c = comparisons.filter(pl.col("dataset") == dataset)
        if c.height:
            parts.append("### cross-well vs single-well (Welch 95 % interval over seeds)")
            parts.append("")
            parts.append(
                "CORUM recall: higher is better. Well-shortcut rate (training probe sites whose "
                "nearest neighbour is a site of the same well): lower is better."
            )
            parts.append("")
            names = {"corum": "CORUM recall", "well_shortcut_rate": "well-shortcut rate"}
            parts.append(
                to_markdown(
                    [
                        "metric",
                        "family",
                        "variant",
                        "cross − single",
                        "95 % interval",
                        "seeds (cross/single)",
                        "verdict",
                    ],
                    [
                        [
                            names.get(r["metric"], r["metric"]),
                            r["family"],
                            r["variant"],
                            f"{r['difference']:+.3f}",
                            "–"
                            if r["ci_low"] is None
                            else f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]",
                            f"{r['n_cross']}/{r['n_single']}",
                            r["verdict"],
                        ]
                        for r in c.iter_rows(named=True)
                    ],
                )
            )
    if rep is not None:
        parts.append(f"## {REPORTED_LABEL}")
        parts.append("")
        parts.append(
            "From the CWA-MSN paper (Tables 1–4), measured by its authors on the real "
            "RxRx3-core release. Not comparable to rows measured on a synthetic screen."
        )
        parts.append("")
        parts.append(markdown_reported(rep))
    return "\n".join(parts)


def write_leaderboard(
    records: Iterable[dict[str, Any]],
    out_dir: str | Path | None,
    *,
    dataset: str | None = None,
    include_reported: bool = True,
    compact: bool = False,
) -> dict[str, str]:
    """Write ``leaderboard_<dataset>.csv`` and ``.md`` per dataset (and the reported block as
    ``leaderboard_reported.csv``, the cross- vs single-well comparison as
    ``cross_vs_single_well.csv``, trained vs untrained as ``trained_vs_untrained.csv``); returns {dataset: text} for the terminal: the markdown
    without intervals, or with ``compact`` the narrow table of :func:`compact_text`.
    ``out_dir=None`` writes nothing and only returns the texts."""
    records = list(records)
    out = Path(out_dir) if out_dir is not None else None
    df = leaderboard_frame(records)
    long = long_results(records)
    comparisons = pl.concat(
        [cross_vs_single(long), cross_vs_single(long, "well_shortcut_rate", lower_is_better=True)],
        how="diagonal_relaxed",
    )
    training = trained_vs_untrained(long)
    rep = reported_frame() if include_reported else None
    if rep is not None and out is not None:
        write_csv_atomic(rep, out / "leaderboard_reported.csv")
    datasets = sorted(set(df["dataset"].to_list())) if df.height else []
    if dataset is not None:
        datasets = [d for d in datasets if d == dataset]
    texts = {}
    for ds in datasets:
        d = df.filter(pl.col("dataset") == ds)
        if out is not None:
            write_csv_atomic(with_chance(d), out / f"leaderboard_{_safe(ds)}.csv")
            write_text_atomic(
                out / f"leaderboard_{_safe(ds)}.md",
                leaderboard_markdown(ds, df, rep, comparisons, training=training),
            )
        texts[ds] = (
            compact_text(ds, df, rep)
            if compact
            else leaderboard_markdown(ds, df, rep, comparisons, intervals=False, training=training)
        )
    if comparisons.height and out is not None:
        write_csv_atomic(comparisons, out / "cross_vs_single_well.csv")
    if training.height and out is not None:
        write_csv_atomic(training, out / "trained_vs_untrained.csv")
    return texts


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


# ----------------------------------------------------------------------------------------
# The paper's tables, measured (beside leaderboard/paper/table*.csv)
# ----------------------------------------------------------------------------------------
_PAPER_TABLE_MODELS: dict[int, tuple[str, ...]] = {
    1: ("random", "vit-imagenet", "cellprofiler", "vit-wsl", "openphenom", "cwa-msn"),
    2: ("openphenom", "vit-wsl", "cellprofiler", "vit-imagenet", "random", "cwa-msn"),
    3: ("random", "single-well-msn", "cwa-msn"),
    4: ("random", "cropmae-single", "cropmae-cross", "cwa-msn"),
    5: ("cwa-msn",),
}
_PAPER_TABLE_METRICS: dict[int, tuple[str, ...]] = {
    1: ("corum", "humap", "reactome", "signor", "stringdb"),
    2: ("ap_max", "ap_max_z", "auc_max", "auc_max_z"),
    3: ("corum", "humap", "reactome", "signor", "stringdb"),
    4: ("corum", "humap", "reactome", "signor", "stringdb"),
    5: ("corum", "humap", "reactome", "signor", "stringdb"),
}


def measured_paper_table(number: int, frame: pl.DataFrame, dataset: str) -> pl.DataFrame:
    """Table ``number`` of the paper rebuilt from measured rows of ``dataset`` (empty when
    none of its models were measured). Same models as the paper's table, mean ± std over
    seeds; Table 4 adds measured CPU hours per run, Table 5 groups CWA-MSN by prototypes."""
    models = _PAPER_TABLE_MODELS[number]
    metrics = _PAPER_TABLE_METRICS[number]
    d = frame.filter((pl.col("dataset") == dataset) & pl.col("model").is_in(list(models)))
    if number == 5:
        d = prototype_sweep(d)
    else:
        d = main_variants(d)
    cols = [f"{m}_{s}" for m in metrics for s in ("mean", "std", "ci_low", "ci_high")]
    if not d.height or all(
        d[f"{m}_mean"].is_null().all() for m in metrics if f"{m}_mean" in d.columns
    ):
        return pl.DataFrame()
    keep = ["dataset", "role", "model", "display", "variant", "n_seeds"]
    if number == 4:
        keep += ["train_cpu_hours", "train_hours"]
    if number == 5:
        keep.append("prototypes")
    if number != 2:  # the "# relationships" row of the paper's gene–gene tables
        keep += [f"n_{src}" for src in GENE_SOURCES]
    out = d.select([c for c in keep if c in d.columns] + [c for c in cols if c in d.columns])
    if number == 5:
        out = out.sort("prototypes")
    else:
        order = {m: i for i, m in enumerate(models)}
        out = (
            out.with_columns(
                _o=pl.col("model").replace_strict(order, default=99),
                _u=pl.col("variant").map_elements(is_untrained, return_dtype=pl.Boolean),
            )
            .sort(["_u", "_o"])
            .drop("_o", "_u")
        )
    return out.with_columns(
        pl.lit("measured").alias("provenance"),
        pl.lit(f"cellbench results store ({dataset})").alias("source"),
    )


def main_variants(frame: pl.DataFrame) -> pl.DataFrame:
    """Keep one trained row per (dataset, model) and, when stored, its untrained row.

    The trained row is the model's ``quick`` preset as it is when stored, else the variant
    with the most seeds (ties: the shortest name, i.e. the plain preset rather than a sweep
    point such as ``quick-steps600-proto512``); a ``--steps 0`` run is never the model's row.
    """
    if not frame.height:
        return frame
    return (
        frame.with_columns(
            _untrained=pl.col("variant").map_elements(is_untrained, return_dtype=pl.Boolean),
            _default=pl.struct("model", "variant").map_elements(
                lambda r: is_preset_default(r["model"], r["variant"]), return_dtype=pl.Boolean
            ),
            _len=pl.col("variant").str.len_chars(),
        )
        .sort(["_default", "n_seeds", "_len"], descending=[True, True, False])
        .unique(subset=["dataset", "model", "_untrained"], keep="first", maintain_order=True)
        .sort(["_untrained"], maintain_order=True)
        .drop("_len", "_default", "_untrained")
    )


def prototype_sweep(frame: pl.DataFrame) -> pl.DataFrame:
    """Table 5's rows: the preset's own row and its ``--prototypes`` points at the same budget
    (other budgets of the same model, such as a longer run, are left out)."""
    d = frame.filter(pl.col("prototypes").is_not_null()) if "prototypes" in frame.columns else None
    if d is None or not d.height:
        return frame.clear()

    def budget(variant: str) -> str:
        return re.sub(r"-proto\d+", "", short_variant(variant))

    default = [
        budget(v) for m, v in zip(d["model"], d["variant"], strict=True) if is_preset_default(m, v)
    ]
    keep = [
        not is_untrained(v)
        and ("-proto" in v or is_preset_default(m, v))
        and (not default or budget(v) in default)
        for m, v in zip(d["model"], d["variant"], strict=True)
    ]
    return d.filter(pl.Series(keep, dtype=pl.Boolean))


def _hours(cpu: float | None, wall: float | None) -> str:
    """Table 4's training time: CPU hours, else (older results) wall hours, marked as such."""
    if cpu is not None:
        return f"{cpu:.3f}"
    return "–" if wall is None else f"{wall:.3f} (wall)"


def measured_paper_markdown(number: int, table: pl.DataFrame) -> str:
    metrics = [m for m in _PAPER_TABLE_METRICS[number] if f"{m}_mean" in table.columns]
    lead = ["model", "variant", "seeds"]
    if number == 4:
        lead.insert(0, "training time (CPU hours / run)")
    if number == 5:
        lead.insert(0, "number of prototypes")
    rows = []
    if number != 2 and table.height:
        counts = [
            cast("float | None", table[f"n_{m}"].max()) if f"n_{m}" in table.columns else None
            for m in metrics
        ]
        if any(c is not None for c in counts):
            rows.append(
                ["" for _ in lead[:-3]]
                + ["# relationships", "", ""]
                + ["–" if c is None else f"{c:,.0f}" for c in counts]
            )
    for r in table.iter_rows(named=True):
        cells = [r["display"], r["variant"], r["n_seeds"]]
        if number == 4:
            cells.insert(0, _hours(r.get("train_cpu_hours"), r.get("train_hours")))
        if number == 5:
            cells.insert(0, f"{int(r['prototypes']):,}")
        cells += [
            fmt_cell(
                r[f"{m}_mean"],
                r.get(f"{m}_std"),
                r.get(f"{m}_ci_low"),
                r.get(f"{m}_ci_high"),
                _metric_digits(m),
            )
            for m in metrics
        ]
        rows.append(cells)
    ds = table["dataset"][0]
    table_def = paper.TABLES[number]
    return to_markdown(
        lead + [_HEADER[m] for m in metrics],
        rows,
        title=f"Table {number} (measured by cellbench on {ds}): {table_def.caption}",
        notes=[
            f"Provenance: measured ({ds}); mean ± std over training seeds [95 % t-interval "
            "with ≥ 3 seeds]. Compare with the reported table beside it only in direction, "
            "not in value, when the data differ."
        ],
    )


def write_measured_paper_tables(
    records: Iterable[dict[str, Any]], out_dir: str | Path
) -> list[Path]:
    """``table{N}_<slug>_measured_<dataset>.csv/.md`` for every table with measured rows."""
    frame = leaderboard_frame(records)
    out = Path(out_dir)
    written: list[Path] = []
    if not frame.height:
        return written
    for ds in sorted(set(frame["dataset"].to_list())):
        for number, table_def in paper.TABLES.items():
            t = measured_paper_table(number, frame, ds)
            if not t.height:
                continue
            stem = f"{table_def.stem}_measured_{_safe(ds)}"
            written.append(write_csv_atomic(t, out / f"{stem}.csv"))
            written.append(
                write_text_atomic(out / f"{stem}.md", measured_paper_markdown(number, t))
            )
    return written


def figure1_measured_rows(frame: pl.DataFrame, dataset: str) -> pl.DataFrame:
    """Measured rows for Figure 1's second version: one per model (its best-seeded variant),
    trained models only (role "model"); parameters from the run's config, else from the
    model card; training images only from the run's config (they are per run)."""
    d = frame.filter(
        (pl.col("dataset") == dataset)
        & (pl.col("role") == "model")
        & pl.col("corum_mean").is_not_null()
    )
    # the untrained ViT's recall: what a model of the same size that learned nothing would score
    floor = frame.filter(
        (pl.col("dataset") == dataset)
        & (pl.col("model") == "random")
        & pl.col("corum_mean").is_not_null()
    )["corum_mean"]
    floor_corum = float(cast(float, floor.mean())) if len(floor) else None
    rows = []
    for r in main_variants(d).iter_rows(named=True):
        model = r["model"]
        params = r.get("parameters")
        if not params:
            try:
                from cellbench.registry import metadata

                p = metadata(model).get("parameters")
                params = float(p) if isinstance(p, int | float) and p > 0 else None
            except Exception:  # noqa: BLE001 - unknown model: no parameter count
                params = None
        imgs = r.get("training_images")
        rows.append(
            {
                "method": r["display"],
                "model": model,
                "dataset": dataset,
                "corum": r["corum_mean"],
                "corum_std": r.get("corum_std"),
                "n_seeds": r["n_seeds"],
                "floor_corum": floor_corum,
                "images_millions": imgs / 1e6 if imgs else None,
                "parameters_billions": params / 1e9 if params else None,
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "method": pl.String,
            "model": pl.String,
            "dataset": pl.String,
            "corum": pl.Float64,
            "corum_std": pl.Float64,
            "n_seeds": pl.Int64,
            "floor_corum": pl.Float64,
            "images_millions": pl.Float64,
            "parameters_billions": pl.Float64,
        },
    )


# ----------------------------------------------------------------------------------------
# The terminal table: a few columns that fit 100 characters
# ----------------------------------------------------------------------------------------
#: (metric key, header) of the compact table: the headline recall, a second source, the
#: compound–gene AP, and the two nuisance diagnostics.
COMPACT_METRICS: tuple[tuple[str, str], ...] = (
    ("corum", "CORUM ↑"),
    ("humap", "HuMAP ↑"),
    ("ap_max", "AP@max ↑"),
    ("batch_predictability", "batch ↓"),
    ("well_shortcut_rate", "shortcut ↓"),
)
COMPACT_WIDTH = 100


def _compact_cell(mean: Any, std: Any = None) -> str:
    if mean is None:
        return "–"
    return f"{mean:.3f}" + ("" if std is None else f"±{std:.3f}")


def _fit(text: str, width: int) -> str:
    text = str(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def _text_table(headers: list[str], rows: list[list[str]], first_max: int) -> list[str]:
    """Left-aligned first column (cut at ``first_max``), the others padded to their widths."""
    rows = [[_fit(r[0], first_max), *r[1:]] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return " ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [line(headers), line(["─" * w for w in widths])] + [line(r) for r in rows]


def compact_text(dataset: str, df: pl.DataFrame, rep: pl.DataFrame | None = None) -> str:
    """One dataset's leaderboard for an 80–100 column terminal: model, seeds, CORUM, HuMAP,
    AP@max, batch predictability, well-shortcut rate (mean±std over seeds) and the source of
    every row (synthetic / measured / chance); the paper's rows below, as their own block."""
    import textwrap

    d = with_chance(df.filter(pl.col("dataset") == dataset))
    synthetic = bool(d["synthetic"].any()) if "synthetic" in d.columns and d.height else False
    # a model's rows are told apart by their variant; its untrained row is named "untrained ..."
    kinds = [(m, is_untrained(v)) for m, v in zip(d["model"], d["variant"], strict=True)]
    many = {k for k in kinds if kinds.count(k) > 1}
    rows = []
    for r, kind in zip(d.iter_rows(named=True), kinds, strict=True):
        label = r["display"]
        if kind in many:
            label += f" {short_variant(r['variant'])}"
        seeds = "–" if r.get("source") == CHANCE_LABEL else str(r["n_seeds"])
        rows.append(
            [
                label,
                seeds,
                *[_compact_cell(r.get(f"{k}_mean"), r.get(f"{k}_std")) for k, _ in COMPACT_METRICS],
                r.get("source") or "measured",
            ]
        )
    headers = ["model", "seeds", *[h for _, h in COMPACT_METRICS], "source"]
    data_kind = "synthetic screen" if synthetic else "real data"
    lines = [f"{dataset} — measured by cellbench ({data_kind}); mean±std over training seeds", ""]
    lines += _text_table(headers, rows, 24)
    if synthetic:
        missing = [m for m in floor_ceiling_required() if m not in d["model"].to_list()]
        if missing:
            lines += [
                "",
                *textwrap.wrap(
                    "Missing reference rows: "
                    + ", ".join(missing)
                    + " — run "
                    + ", ".join(f"`cellbench run --model {m}`" for m in missing)
                    + ".",
                    COMPACT_WIDTH,
                ),
            ]
    if rep is not None and rep.height:
        lines += ["", f"{REPORTED_LABEL}: CWA-MSN paper, not comparable in value", ""]
        rrows = [
            [
                r["method"] + (" (= chance)" if r["model"] == "random" else ""),
                _compact_cell(r["corum"]),
                _compact_cell(r["humap"]),
                _compact_cell(r["ap_max"], r["ap_max_std"]),
                "reported",
            ]
            for r in rep.iter_rows(named=True)
        ]
        lines += _text_table(["method", "CORUM ↑", "HuMAP ↑", "AP@max ↑", "source"], rrows, 40)
    notes = (
        "CORUM/HuMAP: gene–gene recall at (0.05, 0.95); AP@max: compound–gene AP at the highest "
        "concentration; batch: batch predictability from controls; shortcut: well-shortcut rate. "
        "chance = recall 0.10 by construction (the paper's Random row); untrained = the same "
        "architecture at step 0; random ViT-S/16 = a seeded random initialisation. "
        "--wide: every column with intervals; --html PATH: a sortable page."
    )
    lines += ["", *textwrap.wrap(notes, COMPACT_WIDTH)]
    return "\n".join(lines) + "\n"
