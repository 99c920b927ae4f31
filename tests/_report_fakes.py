"""A fake but well-formed results store for the report tests (docs/architecture.md "Results").

Files are written exactly where and how the store keeps them:
``{root}/{dataset}/{model}/{checkpoint}/{task}.json`` with the contract's keys (plus an
unknown extra key, which readers must tolerate).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

CONCENTRATIONS = ["0.0025", "0.01", "0.025", "0.1", "0.25", "1.0", "2.5", "10.0", "max"]
SOURCES = ("CORUM", "HuMAP", "Reactome", "SIGNOR", "StringDB")


def write_result(
    root,
    dataset,
    model,
    checkpoint,
    task,
    seed,
    scores,
    *,
    synthetic=True,
    config=None,
    timings=None,
    created=None,
) -> Path:
    path = Path(root) / dataset / model / checkpoint / f"{task}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    rec = {
        "model": model,
        "checkpoint": checkpoint,
        "dataset": dataset,
        "task": task,
        "provenance": "measured",
        "synthetic": synthetic,
        "seed": seed,
        "scores": scores,
        "config": config or {},
        "versions": {"cellbench": "0"},
        "hashes": {},
        "timings": timings or {},
        "created": created or f"2026-11-24T21:00:{seed:02d}",
        "unknown_future_key": {"a": 1},
    }
    path.write_text(json.dumps(rec))
    return path


def gene_scores(recalls: dict[str, float]) -> dict:
    return {
        s: {
            "n_relationships": 100 + i,
            "recall_0.05_0.95": recalls[s],
            "recall_0.1_0.9": recalls[s] + 0.05,
        }
        for i, s in enumerate(SOURCES)
        if s in recalls
    }


def compound_scores(ap_max: float, auc_max: float) -> dict:
    """Rows per concentration; AP/AUC rise with concentration to the given values at 10 µM."""
    rows = []
    for i, c in enumerate(CONCENTRATIONS):
        frac = 1.0 if c == "max" else (i + 1) / 8
        ap = 0.2 + (ap_max - 0.2) * frac
        auc = 0.5 + (auc_max - 0.5) * frac
        rows.append(
            {
                "concentration": c,
                "average_precision": ap,
                "average_precision_std": 0.01,
                "auc_roc": auc,
                "auc_roc_std": 0.012,
                "ap_quantile_0.5": ap,
                "ap_quantile_0.75": ap,
                "ap_quantile_0.95": ap,
                "average_precision_baseline": 0.2,
                "average_precision_baseline_std": 0.003,
                "auc_roc_baseline": 0.5,
                "auc_roc_baseline_std": 0.004,
                "z_average_precision": (ap - 0.2) / math.hypot(0.01, 0.003),
                "z_auc_roc": (auc - 0.5) / math.hypot(0.012, 0.004),
            }
        )
    return {"rows": rows}


def write_model(
    root,
    model,
    corums,
    *,
    dataset="synthetic-quick",
    variant="quick",
    ap=0.25,
    auc=0.55,
    config=None,
    tasks=("gene_gene", "compound_gene", "batch", "health"),
    synthetic=True,
):
    """One result per task and seed; seed i gets CORUM ``corums[i]`` (other sources = CORUM − .05)."""
    for seed, corum in enumerate(corums):
        ck = f"{variant}-seed{seed}"
        rec = {s: corum if s == "CORUM" else corum - 0.05 for s in SOURCES}
        if "gene_gene" in tasks:
            write_result(
                root,
                dataset,
                model,
                ck,
                "gene_gene",
                seed,
                gene_scores(rec),
                config=config,
                synthetic=synthetic,
                timings={"train_s": 0.2},
            )  # reused run
        if "compound_gene" in tasks:
            write_result(
                root,
                dataset,
                model,
                ck,
                "compound_gene",
                seed,
                compound_scores(ap + 0.01 * seed, auc + 0.01 * seed),
                config=config,
                synthetic=synthetic,
            )
        if "batch" in tasks:
            write_result(
                root,
                dataset,
                model,
                ck,
                "batch",
                seed,
                {
                    "batch_predictability": 0.3 + 0.1 * seed,
                    "batch_chance": 0.25,
                    "replicate_consistency": 0.5,
                },
                synthetic=synthetic,
            )
        if "health" in tasks:
            write_result(
                root,
                dataset,
                model,
                ck,
                "health",
                seed,
                {
                    "well_shortcut_rate": 0.2,
                    "effective_rank": 30.0,
                    "prototype_usage": 0.8,
                    "elapsed_s": 360.0,
                },  # the training's own time, from its log
                synthetic=synthetic,
            )
