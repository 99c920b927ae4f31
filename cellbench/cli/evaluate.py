"""CLI: ``cellbench evaluate`` - score well-level embeddings against their metadata, or one
JUMP-style profiles table (``--profiles``)."""

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
    "activity": "phenotypic activity",
    "consistency": "phenotypic consistency",
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
    if "n_rows" in m:
        console.print(
            f"map: {m['n_rows']} rows ({m['n_gene_rows']} gene, {m['n_compound_rows']} compound-concentration) "
            f"from {m['n_wells']} wells · align={cfg['align']} · null={cfg['null']} · seeds={cfg['seeds']}"
        )
    else:
        console.print(
            f"{m['n_wells']} wells ({m['n_control_wells']} controls) · align={cfg['align']}"
        )
    if "gene_gene" in scores:
        t = Table(title="gene-gene recall (headline: CORUM at 0.05/0.95)")
        for col in ("source", "# relationships", "recall 0.05/0.95", "recall 0.1/0.9"):
            t.add_column(col, justify="left" if col == "source" else "right")
        for source, row in scores["gene_gene"].items():
            t.add_row(
                source,
                str(row["n_relationships"]),
                _fmt(row["recall_0.05_0.95"]),
                _fmt(row["recall_0.1_0.9"]),
            )
        console.print(t)
    if "compound_gene" in scores:
        t = Table(title="compound-gene retrieval (mean ± std over seeds; baseline = random scores)")
        for col in (
            "concentration",
            "compounds",
            "mean AP",
            "AP baseline",
            "z(AP)",
            "mean AUC",
            "AUC baseline",
            "z(AUC)",
        ):
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
    for task, label in (
        ("activity", "phenotypic activity"),
        ("consistency", "phenotypic consistency"),
    ):
        if task in scores:
            sc = scores[task]
            n = sc.get("n_perturbations", sc.get("n_targets"))
            unit = "perturbations" if task == "activity" else "targets"
            console.print(
                f"{label}: {_fmt(sc['fraction_retrieved'])} of {n} {unit} retrieved "
                f"(corrected p < {cfg['threshold']}; mean mAP {_fmt(sc['mean_map'])})"
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
        embeddings: Path = typer.Option(
            None,
            "--embeddings",
            help="Well embeddings parquet: well_id + feature_0..feature_N (with --metadata).",
        ),
        metadata: Path = typer.Option(
            None,
            "--metadata",
            help="Well metadata, CSV or parquet: the RxRx3-core layout (metadata_rxrx3_core.csv) or Metadata_* columns.",
        ),
        profiles: Path = typer.Option(
            None,
            "--profiles",
            help="One JUMP-style profiles table (parquet or CSV): Metadata_* columns + numeric feature columns. Instead of --embeddings/--metadata.",
        ),
        out: Path = typer.Option(
            ...,
            "--out",
            help="Folder for the result CSVs and results.json (new, or an earlier result folder: it is replaced as a whole).",
        ),
        tasks: str = typer.Option(
            None,
            "--tasks",
            help="Comma-separated tasks: gene_gene, compound_gene, batch, activity, consistency. Default: activity,consistency,batch for Metadata_* inputs, else gene_gene,compound_gene,batch.",
        ),
        align: Align = typer.Option(
            Align.pca_centerscale,
            "--align",
            help="Batch alignment fitted on the control wells (use none for profiles that are already normalised).",
        ),
        null: Null = typer.Option(
            Null.all, "--null", help="Gene-gene null: all map rows, or genes only."
        ),
        seeds: int = typer.Option(
            100, "--seeds", help="Compound-gene seeds 0..N-1 (the reference uses 100)."
        ),
        sources: str = typer.Option(
            "CORUM,HuMAP,Reactome,SIGNOR,StringDB",
            "--sources",
            help="Gene-gene annotation sources (comma-separated).",
        ),
        perturbation: str = typer.Option(
            None,
            "--perturbation",
            help="Profiles: the perturbation column (default: Metadata_JCP2022, Metadata_broad_sample or Metadata_Symbol).",
        ),
        batch: str = typer.Option(
            None,
            "--batch",
            help="Profiles: the batch column (default: Metadata_Batch or Metadata_Source, else the plate).",
        ),
        plate: str = typer.Option(
            None, "--plate", help="Profiles: the plate column (default: Metadata_Plate)."
        ),
        well: str = typer.Option(
            None, "--well", help="Profiles: the well column (default: Metadata_Well)."
        ),
        control: str = typer.Option(
            None,
            "--control",
            help="Profiles: the negative controls as COL=VALUE (default: Metadata_pert_type=negcon).",
        ),
        target: str = typer.Option(
            None,
            "--target",
            help="The annotation column phenotypic consistency groups by (default for profiles: Metadata_target, Metadata_gene or Metadata_Symbol).",
        ),
        perturbation_type: str = typer.Option(
            None,
            "--perturbation-type",
            help="Profiles: CRISPR, ORF or COMPOUND for the whole table, or the column holding it (default: Metadata_perturbation_type or Metadata_experiment_type).",
        ),
        null_size: int = typer.Option(
            100_000, "--null-size", help="Activity/consistency: size of copairs' permutation null."
        ),
        threshold: float = typer.Option(
            0.05,
            "--threshold",
            help="Activity/consistency: corrected p-value below which a perturbation (target) counts as retrieved.",
        ),
        activity_engine: str = typer.Option(
            "fast",
            "--activity-engine",
            metavar="[fast|copairs]",
            help="Activity/consistency engine: fast (cellbench's exact block engine, bounded memory) or copairs (copairs itself; memory grows with treated x control wells). Same numbers.",
        ),
        quiet: bool = typer.Option(
            False, "--quiet", "-q", help="No progress bars or tables (for scripts)."
        ),
    ) -> None:
        """Score well embeddings or profiles: gene-gene recall, compound-gene retrieval, batch
        diagnostics, phenotypic activity and consistency (copairs mAP)."""
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        from cellbench.errors import InputError
        from cellbench.evaluate import STAGES, evaluate_files, evaluate_profiles_file
        from cellbench.maps.profiles import ProfileOptions

        if profiles is not None and (embeddings is not None or metadata is not None):
            raise InputError(
                "--profiles is one table; it replaces --embeddings/--metadata. Fix: pass either --profiles or both --embeddings and --metadata."
            )
        if profiles is None and (embeddings is None or metadata is None):
            raise InputError(
                "nothing to score. Fix: pass --profiles FILE, or both --embeddings FILE and --metadata FILE."
            )
        source_list = [x.strip() for x in sources.split(",") if x.strip()]
        task_list = None if tasks is None else [x.strip() for x in tasks.split(",") if x.strip()]
        options = {
            "align": align.value,
            "null": null.value,
            "seeds": seeds,
            "sources": source_list,
            "tasks": task_list,
            "null_size": null_size,
            "threshold": threshold,
            "activity_engine": activity_engine,
        }
        popts = ProfileOptions(
            perturbation=perturbation,
            batch=batch,
            plate=plate,
            well=well,
            control=control,
            target=target if profiles is not None else None,
            perturbation_type=perturbation_type,
        )
        if profiles is not None:

            def run(progress=None):
                return evaluate_profiles_file(
                    profiles, out, progress=progress, profile_options=popts, **options
                )
        else:

            def run(progress=None):
                return evaluate_files(
                    embeddings,
                    metadata,
                    out,
                    progress=progress,
                    profile_options=popts,
                    target=target,
                    **options,
                )

        if quiet:
            result = run()
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
                        ids[stage] = bars.add_task(
                            STAGE_LABELS.get(stage, stage), total=max(total, 1)
                        )
                    bars.update(ids[stage], completed=done, total=max(total, 1))

                result = run(progress)
                for task_id in ids.values():
                    bars.update(task_id, completed=bars.tasks[task_id].total)
            print_result(result)
        if quiet:
            return
        timings = result["timings"]
        line = " · ".join(f"{k} {timings[k]:.1f}s" for k in STAGES if k in timings)
        total = sum(timings.values())
        console.print(f"wrote {out}/ ({', '.join(result['files'])}) · {line} · total {total:.1f}s")
