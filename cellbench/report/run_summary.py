"""What ``cellbench run`` prints: the model's row between its floor and ceiling, the paper's
reported rows for comparison (labelled as such), and a plain verdict against the untrained ViT."""

from __future__ import annotations

from typing import Any

import polars as pl


def row_models() -> tuple[str, ...]:
    """The reference rows printed beside a run: every card with role floor, ceiling or reference."""
    from cellbench.registry import models_with_role

    return models_with_role("floor", "ceiling", "reference")


def _row(frame: pl.DataFrame, model: str, variant: str | None) -> dict | None:
    """The row of ``model`` (and ``variant`` when given; else its only row)."""
    rows = [r for r in frame.iter_rows(named=True) if r["model"] == model]
    if variant is not None:
        rows = [r for r in rows if r.get("variant") == variant]
    return rows[0] if len(rows) == 1 else None


def verdict(frame: pl.DataFrame, model: str, variant: str | None = None) -> str | None:
    """One sentence comparing the model's CORUM recall with the untrained ViT (``random``).

    ``variant`` names the run's row (its checkpoint without the seed) when the model has
    several (trained for different budgets, a custom checkpoint...).
    """
    if model in row_models():
        return None
    m, r = _row(frame, model, variant), _row(frame, "random", None)
    if m is None or r is None:
        return None
    mm, rm = m.get("corum_mean"), r.get("corum_mean")
    if mm is None or rm is None:
        return None
    # 'clearly above' needs intervals that do not overlap; with one seed we can only compare means
    lo, hi = m.get("corum_ci_low"), r.get("corum_ci_high")
    if lo is not None and hi is not None:
        clear = lo > hi
        how = "its 95 % interval lies above" if clear else "its 95 % interval overlaps or lies below"
    else:
        clear = None
        how = "one seed only, which is not evidence; run --seed 1 and --seed 2 for an interval"
    if mm > rm and clear:
        word = "ABOVE"
    elif mm > rm and clear is None:
        word = "above"
    elif mm > rm:
        word = "above but not clearly"
    else:
        word = "NOT above"
    line = (f"{model}: CORUM recall {mm:.3f} vs untrained ViT (random) {rm:.3f} -> {word} the "
            f"untrained ViT ({how}). Synthetic screen; compare with the reported rows only in "
            "direction, never in value.")
    if word != "ABOVE":
        line += (" The budget curve in leaderboard/README.md shows what longer CPU training and "
                 "the contrastive positive control reach.")
    return line


def print_run_summary(result: Any, others: list[Any], *, console) -> pl.DataFrame:
    """Print the measured rows of this dataset for the model and its references."""
    from cellbench.paths import results_dir
    from cellbench.report.store import load_results, variant_of
    from cellbench.report.tables import (
        leaderboard_frame,
        markdown_measured,
        markdown_reported,
        reported_frame,
    )

    wanted = {result.model, *row_models()}

    def warn(message: str) -> None:
        console.print(f"warning: {message}", markup=False, highlight=False, soft_wrap=True)

    records = [r for r in load_results(results_dir(), warn=warn)
               if r.get("dataset") == result.dataset and r.get("model") in wanted]
    frame = leaderboard_frame(records)
    label = "synthetic (measured)" if result.dataset.startswith("synthetic") else "measured"
    console.print(f"\n[bold]{result.dataset}[/bold] — {label}; mean ± std over the stored seeds\n")
    console.print(markdown_measured(frame, intervals=False), highlight=False, markup=False, soft_wrap=True)
    rep = reported_frame().filter(pl.col("model").is_in([result.model, "random"]))
    if rep.height:
        console.print("\n[bold]reported[/bold] (CWA-MSN paper, real RxRx3-core — not comparable in value)\n")
        console.print(markdown_reported(rep), highlight=False, markup=False, soft_wrap=True)
    trace = probe_trace(result.records.get("health"))
    if trace:
        console.print("\n" + trace, highlight=False, markup=False, soft_wrap=True)
    line = verdict(frame, result.model, variant_of(result.checkpoint))
    if line:
        console.print("\n" + line, highlight=False, markup=False, soft_wrap=True)
    return frame


def probe_trace(health: dict | None) -> str | None:
    """One line: the probe-screen CORUM recall at each health check of the training run."""
    history = ((health or {}).get("scores") or {}).get("history") or []
    points = [(h["step"], h["probe_recall"]) for h in history if h.get("probe_recall") is not None]
    if not points:
        return None
    shown = ", ".join(f"{r:.3f} @ step {s}" for s, r in points)
    return (f"While training, CORUM recall on the small synthetic probe screen was {shown} "
            "(step 0 = the untrained network; noisy: 150 genes).")
