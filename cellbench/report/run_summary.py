"""What ``cellbench run`` prints: the model's row between its floor and ceiling, the paper's
reported rows for comparison (labelled as such), and a verdict against the untrained network of
the run's own architecture, over seeds."""

from __future__ import annotations

from typing import Any

import polars as pl

from cellbench.report.store import short_variant
from cellbench.report.tables import CHANCE_RECALL, direction, paired_difference
from cellbench.results import ResultRecord


def row_models() -> tuple[str, ...]:
    """The reference rows printed beside a run: every card with role floor, ceiling or reference."""
    from cellbench.registry import models_with_role

    return models_with_role("floor", "ceiling", "reference")


def _per_seed(long: pl.DataFrame, model: str, variant: str, metric: str) -> dict[int, float]:
    d = long.filter(
        (pl.col("model") == model)
        & (pl.col("variant") == variant)
        & (pl.col("metric") == metric)
        & pl.col("seed").is_not_null()
    )
    return dict(zip(d["seed"].to_list(), d["value"].to_list(), strict=True))


def verdict(
    long: pl.DataFrame,
    model: str,
    variant: str | None = None,
    untrained_variant: str | None = None,
    metric: str = "corum",
) -> str | None:
    """One sentence comparing the run's CORUM recall with the untrained network of its own
    architecture (``untrained_variant``: the same preset at ``--steps 0``, when stored).

    ``long`` is :func:`cellbench.report.tables.long_results`; ``variant`` the run's row (its
    checkpoint without the seed; needed when the model has several). The comparison is paired
    by seed: the mean per-seed difference and its 95 % t-interval (≥ 2 seeds); "above" or
    "below" only when the interval excludes zero, "no clear difference" otherwise, and "one
    seed only, not evidence" for a single seed. Without a stored untrained run the
    comparison is with chance (recall 0.10 by construction) and the line says how to add it.
    """
    if model in row_models() or not long.height:
        return None
    if variant is None:
        variants = set(long.filter(pl.col("model") == model)["variant"].to_list())
        if len(variants) != 1:
            return None
        variant = variants.pop()
    ours = _per_seed(long, model, variant, metric)
    if not ours:
        return None
    if untrained_variant is not None and variant == untrained_variant:
        mean = sum(ours.values()) / len(ours)
        return (
            f"{model} ({short_variant(variant)}) is the untrained network itself: CORUM recall "
            f"{mean:.3f} over {len(ours)} seed(s), the floor its trained runs are compared with."
        )
    base = _per_seed(long, model, untrained_variant, metric) if untrained_variant else {}
    name = f"{model} ({short_variant(variant)})"
    mean = sum(ours.values()) / len(ours)
    if base and untrained_variant:
        against = f"the untrained ViT of its architecture ({short_variant(untrained_variant)})"
        ref = sum(base[s] for s in ours if s in base) / max(len(set(ours) & set(base)), 1)
        missing = ""
    else:
        against = f"chance ({CHANCE_RECALL:.3f} by construction)"
        base = {s: CHANCE_RECALL for s in ours}
        ref = CHANCE_RECALL
        seeds = " ".join(str(s) for s in sorted(ours))
        missing = " The untrained ViT of this architecture is not stored" + (
            f": run `cellbench run --model {model} --steps 0` for seed(s) {seeds} "
            "to compare with it."
            if untrained_variant
            else "."
        )
    diff, lo, hi, n = paired_difference(ours, base)
    if n == 0:
        return (
            f"{name}: CORUM recall {mean:.3f}; {against} has no seed in common with this "
            "run, so no comparison."
        )
    word = direction(lo, hi, n)
    interval = (
        "" if lo is None else f", 95 % t-interval [{lo:+.3f}, {hi:+.3f}] over {n} paired seeds"
    )
    line = (
        f"{name}: CORUM recall {mean:.3f} vs {against} {ref:.3f}: difference {diff:+.3f}"
        f"{interval} -> {word}."
    )
    if n < 2:
        line += " Run --seed 1 and --seed 2 (and the same for the untrained run) for an interval."
    line += missing
    line += " Synthetic screen; compare with the reported rows only in direction, never in value."
    if word != "above":
        line += (
            " leaderboard/README.md shows what else was measured on this screen, the "
            "contrastive positive control included."
        )
    return line


def untrained_variant_of(result: Any) -> str | None:
    """The variant of the run's architecture before training (same preset, ``--steps 0``),
    or None for a model cellbench does not train."""
    from cellbench import registry
    from cellbench.pipeline import untrained_checkpoint_id
    from cellbench.report.store import variant_of

    if not registry.metadata(result.model).get("trainer"):
        return None
    rec = next((r for r in result.records.values() if r.config), None)
    if rec is None or not rec.config.get("preset"):
        return None
    return variant_of(
        untrained_checkpoint_id(
            result.model, rec.config["preset"], rec.seed or 0, rec.config.get("prototypes")
        )
    )


def print_run_summary(result: Any, others: list[Any], *, console) -> pl.DataFrame:
    """Print the measured rows of this dataset for the model and its references."""
    from cellbench.paths import results_dir
    from cellbench.report.store import load_results, variant_of
    from cellbench.report.tables import (
        leaderboard_frame,
        long_results,
        markdown_measured,
        markdown_reported,
        reported_frame,
        with_chance,
    )

    wanted = {result.model, *row_models()}

    def warn(message: str) -> None:
        console.print(f"warning: {message}", markup=False, highlight=False, soft_wrap=True)

    records = [
        r
        for r in load_results(results_dir(), warn=warn)
        if r.get("dataset") == result.dataset and r.get("model") in wanted
    ]
    frame = leaderboard_frame(records)
    label = "synthetic (measured)" if result.dataset.startswith("synthetic") else "measured"
    console.print(f"\n[bold]{result.dataset}[/bold] — {label}; mean ± std over the stored seeds\n")
    console.print(
        markdown_measured(with_chance(frame), intervals=False),
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    rep = reported_frame().filter(pl.col("model").is_in([result.model, "random"]))
    if rep.height:
        console.print(
            "\n[bold]reported[/bold] (CWA-MSN paper, real RxRx3-core — not comparable in value)\n"
        )
        console.print(markdown_reported(rep), highlight=False, markup=False, soft_wrap=True)
    trace = probe_trace(result.records.get("health"))
    if trace:
        console.print("\n" + trace, highlight=False, markup=False, soft_wrap=True)
    line = verdict(
        long_results(records),
        result.model,
        variant_of(result.checkpoint),
        untrained_variant_of(result),
    )
    if line:
        console.print("\n" + line, highlight=False, markup=False, soft_wrap=True)
    return frame


def probe_trace(health: ResultRecord | None) -> str | None:
    """One line: the probe-screen CORUM recall at each health check of the training run."""
    history = (health.scores.get("history") if health is not None else None) or []
    points = [(h["step"], h["probe_recall"]) for h in history if h.get("probe_recall") is not None]
    if not points:
        return None
    shown = ", ".join(f"{r:.3f} @ step {s}" for s, r in points)
    return (
        f"While training, CORUM recall on the small synthetic probe screen was {shown} "
        "(step 0 = the untrained network; noisy: 150 genes)."
    )
