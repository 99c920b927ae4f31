"""CLI commands: ``leaderboard`` (all stored results as tables) and ``paper`` (the paper's
tables and figures, reported and measured). Thin: the work is in :mod:`cellbench.report`."""

from __future__ import annotations

from pathlib import Path

import typer

from cellbench.cli._common import console, err_console, user_errors


def _warn(message: str) -> None:
    err_console.print(f"warning: {message}", markup=False, highlight=False, soft_wrap=True)


def _print_markdown(text: str) -> None:
    """Print markdown as text (not rendered): wide tables stay intact and can be pasted."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


@user_errors
def leaderboard(
    results: Path | None = typer.Option(
        None,
        "--results",
        help="Results store root (default: the committed leaderboard/results "
        "when cellbench runs from its repository checkout, else $CELLBENCH_HOME/results).",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Write the CSV and markdown files into this folder (default: print only).",
    ),
    dataset: str | None = typer.Option(
        None, "--dataset", help="Only this dataset (e.g. synthetic-quick)."
    ),
    wide: bool = typer.Option(
        False, "--wide", help="Every column, as markdown (wider than a terminal)."
    ),
    html: Path | None = typer.Option(
        None, "--html", help="Also write a self-contained HTML page here."
    ),
    figures_dir: Path | None = typer.Option(
        None,
        "--figures",
        help="Figures to embed in the HTML page (default: the results' sibling figures/).",
    ),
    with_paper: bool = typer.Option(
        False, "--paper", help="Also regenerate the paper's tables and figures (needs --out)."
    ),
) -> None:
    """All stored results, one table per dataset: measured rows (mean ± std over seeds),
    floors (chance, untrained, random ViT-S/16, ...) and the ceiling on synthetic data, and
    the paper's reported rows as a separate block. Headline: CORUM recall at (0.05, 0.95).
    Prints a table that fits 100 columns; --wide prints every column."""
    from cellbench.errors import CellbenchError
    from cellbench.report.build import build_leaderboard, build_paper

    if with_paper and out is None:
        raise CellbenchError(
            "--paper writes the paper's tables and figures: pass --out FOLDER "
            "(e.g. --out leaderboard) to say where."
        )
    root, texts = build_leaderboard(
        results, out, dataset, warn=_warn, compact=not wide, html=html, figures_dir=figures_dir
    )
    if not texts:
        console.print(
            f"No measured results in {root} yet — run `cellbench run --model cwa-msn`, "
            "or pass --results DIR.",
            soft_wrap=True,
            highlight=False,
        )
    for text in texts.values():
        _print_markdown(text)
    if with_paper and out is not None:  # (--paper without --out was refused above)
        written = build_paper(
            out, root, dataset, warn=lambda _m: None
        )  # same records: warned above already
        console.print(f"paper tables and figures: {len(written)} files under {out}")
    if texts and out is not None:
        console.print(f"written: {out}/leaderboard_*.csv and .md", soft_wrap=True, highlight=False)
    if html is not None:
        console.print(f"written: {html}", soft_wrap=True, highlight=False)


@user_errors
def paper(
    out: Path = typer.Option(
        Path("leaderboard"),
        "--out",
        help="Output folder (tables go to OUT/paper, figures to OUT/figures).",
    ),
    results: Path | None = typer.Option(
        None,
        "--results",
        help="Results store root for the measured versions (default: $CELLBENCH_HOME/results).",
    ),
    dataset: str | None = typer.Option(
        None, "--dataset", help="Only measured results of this dataset."
    ),
) -> None:
    """Regenerate the CWA-MSN paper: Tables 1–5 as CSV/markdown/LaTeX (reported, with the
    Table 2 z-score check) and beside them the same tables from measured results; Figure 1
    (reported, and with measured rows), Figure 3 and the ablation plots (PNG, PDF, CSV)."""
    from cellbench.report.build import build_paper

    written = build_paper(out, results, dataset, warn=_warn)
    figs = sorted(p for p in written if p.suffix == ".png")
    console.print(f"wrote {len(written)} files under {out}")
    for p in figs:
        console.print(f"  figure: {p}", soft_wrap=True, highlight=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("leaderboard")(leaderboard)
    app.command("paper")(paper)
