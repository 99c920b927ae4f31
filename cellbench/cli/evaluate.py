"""CLI: ``cellbench evaluate`` - score a well-level embeddings parquet against its metadata."""

from __future__ import annotations

import math
from enum import StrEnum
from pathlib import Path

import typer

from cellbench.cli._common import console, err_console, user_errors


class Align(StrEnum):
    pca_centerscale = "pca-centerscale"
    centerscale = "centerscale"
    tvn = "tvn"
    spherize = "spherize"
    none = "none"


class Null(StrEnum):
    all = "all"
    genes = "genes"


STAGE_LABELS = {
    "read": "reading embeddings",
    "map": "aligning + aggregating",
    "gene_gene": "gene-gene recall",
    "compound_gene": "compound-gene (seeds)",
    "batch": "batch diagnostics",
    "write": "writing results",
}


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def print_result(result: dict) -> None:
    """Readable tables of a result dict (as returned by ``evaluate_files``)."""
    from rich.table import Table

    cfg = result["config"]
    scores = result["scores"]
    m = result["map"]
    console.print(
        f"map: {m['n_rows']} rows ({m['n_gene_rows']} gene, {m['n_compound_rows']} compound-concentration) "
        f"from {m['n_wells']} wells · align={cfg['align']} · null={cfg['null']} · seeds={cfg['seeds']}"
    )
    if "gene_gene" in scores:
        t = Table(title="gene-gene recall (headline: CORUM at 0.05/0.95)")
        for col in ("source", "# relationships", "recall 0.05/0.95", "recall 0.1/0.9"):
            t.add_column(col, justify="left" if col == "source" else "right")
        for source, row in scores["gene_gene"].items():
            t.add_row(source, str(row["n_relationships"]), _fmt(row["recall_0.05_0.95"]), _fmt(row["recall_0.1_0.9"]))
        console.print(t)
    if "compound_gene" in scores:
        t = Table(title="compound-gene retrieval (mean ± std over seeds; baseline = random scores)")
        for col in ("concentration", "compounds", "mean AP", "AP baseline", "z(AP)", "mean AUC", "AUC baseline", "z(AUC)"):
            t.add_column(col, justify="right")
        for r in scores["compound_gene"]["rows"]:
            t.add_row(
                str(r["concentration"]),
                str(r["n_compounds"]),
                f"{_fmt(r['average_precision'])} ± {_fmt(r['average_precision_std'])}",
                f"{_fmt(r['average_precision_baseline'])} ± {_fmt(r['average_precision_baseline_std'])}",
                _fmt(r["z_average_precision"], 2),
                f"{_fmt(r['auc_roc'])} ± {_fmt(r['auc_roc_std'])}",
                f"{_fmt(r['auc_roc_baseline'])} ± {_fmt(r['auc_roc_baseline_std'])}",
                _fmt(r["z_auc_roc"], 2),
            )
        console.print(t)
    if "batch" in scores:
        b = scores["batch"]
        bp, rc = b.get("batch_predictability", {}), b.get("replicate_consistency", {})
        if "batch_accuracy" in bp:
            console.print(
                f"batch predictability from controls: accuracy {_fmt(bp['batch_accuracy'])} "
                f"(chance {_fmt(bp['batch_chance'])}; lower is better)"
            )
        if "replicate_consistency" in rc:
            console.print(
                f"cross-batch replicate consistency: {_fmt(rc['replicate_consistency'])} of "
                f"{rc['n_perturbations']} perturbations (chance 0.05; higher is better)"
            )
    for task, reason in result.get("skipped", {}).items():
        console.print(f"[yellow]skipped {task}:[/yellow] {reason}")
    for message in result.get("warnings", []):
        console.print(f"[yellow]warning:[/yellow] {message}")


def register(app: typer.Typer) -> None:
    """Add ``evaluate`` to the app."""

    @app.command("evaluate")
    @user_errors
    def evaluate(
        embeddings: Path = typer.Option(..., "--embeddings", help="Well embeddings parquet: well_id + feature_0..feature_N."),
        metadata: Path = typer.Option(..., "--metadata", help="Well metadata CSV in the RxRx3-core layout (metadata_rxrx3_core.csv)."),
        out: Path = typer.Option(..., "--out", help="Folder for gene_gene.csv, compound_gene.csv, batch.csv, results.json (new, or an earlier result folder: it is replaced as a whole)."),
        align: Align = typer.Option(Align.pca_centerscale, "--align", help="Batch alignment fitted on EMPTY_control wells."),
        null: Null = typer.Option(Null.all, "--null", help="Gene-gene null: all map rows, or genes only."),
        seeds: int = typer.Option(100, "--seeds", help="Compound-gene seeds 0..N-1 (the reference uses 100)."),
        sources: str = typer.Option(
            "CORUM,HuMAP,Reactome,SIGNOR,StringDB", "--sources", help="Gene-gene annotation sources (comma-separated)."
        ),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bars or tables (for scripts)."),
    ) -> None:
        """Score well embeddings: gene-gene recall, compound-gene retrieval, batch diagnostics."""
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        from cellbench.evaluate import STAGES, evaluate_files

        source_list = [x.strip() for x in sources.split(",") if x.strip()]
        options = {"align": align.value, "null": null.value, "seeds": seeds, "sources": source_list}
        if quiet:
            result = evaluate_files(embeddings, metadata, out, **options)
        else:
            with Progress(
                TextColumn("{task.description:<26}"),
                BarColumn(),
                TextColumn("{task.percentage:>5.0f}%"),
                TimeElapsedColumn(),
                console=err_console,
                transient=False,
            ) as bars:
                ids: dict[str, int] = {}

                def progress(stage: str, done: float, total: float) -> None:
                    if stage not in ids:
                        ids[stage] = bars.add_task(STAGE_LABELS.get(stage, stage), total=max(total, 1))
                    bars.update(ids[stage], completed=done, total=max(total, 1))

                result = evaluate_files(embeddings, metadata, out, progress=progress, **options)
                for task_id in ids.values():
                    bars.update(task_id, completed=bars.tasks[task_id].total)
            print_result(result)
        if quiet:
            return
        timings = result["timings"]
        line = " · ".join(f"{k} {timings[k]:.1f}s" for k in STAGES if k in timings)
        total = sum(timings.values())
        console.print(f"wrote {out}/ ({', '.join(result['files'])}) · {line} · total {total:.1f}s")
