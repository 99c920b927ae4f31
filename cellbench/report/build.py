"""One call per command: rebuild the leaderboard, or the paper's tables and figures.

``build_leaderboard`` is what ``cellbench leaderboard`` runs; ``build_paper`` is what
``cellbench paper`` runs. Output layout under ``out`` (``cellbench leaderboard`` writes only
when given ``--out``; ``cellbench paper`` defaults to ``./leaderboard``)::

    leaderboard_<dataset>.csv/.md, leaderboard_reported.csv, cross_vs_single_well.csv
    paper/table{1..5}_*.csv/.md/.tex, paper/table2_zscore_check.csv      (reported)
    paper/measured/table{N}_*_measured_<dataset>.csv/.md                  (measured)
    figures/figure1_efficiency_reported.*, figures/figure1_efficiency_with_measured_<dataset>.*
    figures/figure3_compound_gene_<dataset>.*, figures/ablation_*.*      (png, pdf, csv)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cellbench.errors import NotFoundError
from cellbench.paths import checkout_root
from cellbench.report import figures, paper, tables
from cellbench.report.store import load_results, newest_simulator

Warn = Callable[[str], None]


def default_results_dir() -> Path:
    """Where the leaderboard reads results by default: the committed ``leaderboard/results``
    when the package runs from its repository checkout, else ``$CELLBENCH_HOME/results``."""
    from cellbench import paths

    root = checkout_root()
    if root is not None and (root / "leaderboard" / "results").is_dir():
        return root / "leaderboard" / "results"
    return paths.results_dir()


def _records(
    results: str | Path | None,
    dataset: str | None,
    warn: Warn | None = None,
    default: Path | None = None,
):
    from cellbench import paths

    explicit = results is not None
    root = Path(results) if results is not None else (default or paths.results_dir())
    if explicit and not root.exists():
        raise NotFoundError(
            f"no results directory at {root}; pass the folder that holds "
            "<dataset>/<model>/<checkpoint>/<task>.json files (default: "
            f"{paths.results_dir()}), or run `cellbench run --model cwa-msn` first"
        )
    records = load_results(root, warn)
    if dataset is not None:
        known = sorted({str(r.get("dataset")) for r in records})
        records = [r for r in records if r.get("dataset") == dataset]
        if not records:
            raise NotFoundError(
                f"no stored results for dataset {dataset!r} in {root}; datasets with results: "
                f"{', '.join(known) or 'none'} — pick one of them or leave --dataset out"
            )
    records, warnings = newest_simulator(records)
    if warn is not None:
        for message in warnings:
            warn(message)
    return root, records


def build_leaderboard(
    results: str | Path | None = None,
    out: str | Path | None = None,
    dataset: str | None = None,
    warn: Warn | None = None,
    *,
    compact: bool = False,
    html: str | Path | None = None,
    figures_dir: str | Path | None = None,
) -> tuple[Path, dict[str, str]]:
    """The leaderboard: returns (results root, {dataset: terminal text}); writes its files
    only into ``out`` when given, and the HTML page only to ``html`` when given. ``warn``
    gets one message per dataset whose results mixed simulator versions."""
    root, records = _records(results, dataset, warn, default=default_results_dir())
    texts = tables.write_leaderboard(records, out, dataset=dataset, compact=compact)
    if html is not None:
        from cellbench.report.html import write_html

        write_html(
            records, html, figures_dir=figures_dir or root.parent / "figures", dataset=dataset
        )
    return root, texts


def build_paper(
    out: str | Path = "leaderboard",
    results: str | Path | None = None,
    dataset: str | None = None,
    warn: Warn | None = None,
) -> list[Path]:
    """Write the paper's tables (reported and measured) and every figure; returns the paths."""
    out = Path(out)
    _root, records = _records(results, dataset, warn)
    written = paper.write_paper_tables(out / "paper")
    written += tables.write_measured_paper_tables(records, out / "paper" / "measured")
    fig_dir = out / "figures"
    written += figures.figure1(fig_dir)
    frame = tables.leaderboard_frame(records)
    if frame.height:
        for ds in sorted(set(frame["dataset"].to_list())):
            rows = tables.figure1_measured_rows(frame, ds)
            if rows.height:
                written += figures.figure1(
                    fig_dir,
                    measured=rows,
                    stem=f"figure1_efficiency_with_measured_{tables._safe(ds)}",
                )
    written += figures.figure3(records, fig_dir)
    written += figures.figure_single_vs_cross(records, fig_dir)
    written += figures.figure_prototypes(records, fig_dir)
    return written
