"""CLI commands: ``cellbench models`` (the registry as a table) and ``cellbench embed``."""

from __future__ import annotations

from pathlib import Path

import typer

from cellbench.cli._common import console, user_errors


def _count(value) -> str:
    if isinstance(value, bool) or value is None:
        return "-"
    if isinstance(value, int | float):
        if value == 0:
            return "-"
        for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
            if value >= scale:
                return f"{value / scale:.3g}{unit}"
        return str(value)
    return str(value)


@user_errors
def models(
    pattern: str | None = typer.Argument(None, help="shell-style filter, e.g. 'cropmae*'"),
    details: str | None = typer.Option(None, "--show", help="print one model's full card"),
) -> None:
    """List every registered encoder with its model-card metadata (no model is loaded)."""
    from rich.table import Table

    from cellbench import registry

    if details:
        import json

        console.print_json(json.dumps(registry.metadata(details), default=str))
        return
    table = Table(title="cellbench encoders", show_lines=False)
    table.add_column("name", no_wrap=True)
    for column in ("family", "params", "images", "perts", "dim", "pooling", "channels", "licence"):
        table.add_column(column, overflow="fold")
    for name in registry.list_models(pattern):
        m = registry.metadata(name)
        channels = m.get("input_channels")
        channels = " ".join(channels) if isinstance(channels, list) else str(channels or "-")
        counts_tag = (
            "†" if m.get("counts_provenance") == "reported" and m.get("training_images") else ""
        )
        licence = str(m.get("weights_license") or "-").split(" (")[0]
        table.add_row(
            name + (" *" if m.get("ours") else ""),
            str(m.get("family") or "-"),
            _count(m.get("parameters")),
            _count(m.get("training_images")) + counts_tag,
            _count(m.get("training_perturbations")),
            str(m.get("embed_dim") or "-"),
            str(m.get("pooling") or "-"),
            channels,
            licence,
        )
    console.print(table)
    console.print(
        "* trained by cellbench (`cellbench train --model NAME`)   † counts reported by the paper\n"
        "`cellbench models --show NAME` prints a full model card."
    )


@user_errors
def embed(
    model: str = typer.Option(
        ..., "--model", "-m", help="registered model name (see `cellbench models`)"
    ),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="trained checkpoint or weights file/dir"
    ),
    data: str = typer.Option(
        "synthetic",
        "--data",
        "-d",
        help="synthetic (= synthetic-rxrx3-core) | synthetic-bray | rxrx3-core | bray | folder",
    ),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="local copy of the dataset"),
    size: str = typer.Option("quick", "--size", help="synthetic screen size: tiny | quick | full"),
    seed: int = typer.Option(0, "--seed", help="synthetic screen seed"),
    out: Path | None = typer.Option(
        None, "--out", help="output directory or .parquet file (default: the cache)"
    ),
    batch_size: int = typer.Option(64, "--batch-size", help="tiles per forward pass"),
    max_tiles: int | None = typer.Option(
        None, "--max-tiles", help="at most this many tiles per site"
    ),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | cuda:N."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
) -> None:
    """Embed every well of a dataset with a model: one parquet row per well (well_id, feature_*).

    Sites are cut into the model's tiles, embedded in batches, averaged to sites and wells.
    Cached by model + weights + data; a killed run resumes where it stopped.
    """
    from cellbench.data import check_dataset, load_dataset
    from cellbench.device import check_device
    from cellbench.embed import check_out, create_for_dataset, embed_dataset
    from cellbench.paths import embeddings_dir

    check_dataset(data, command="`cellbench embed`")
    check_device(device)
    if out is not None:
        check_out(out)
    dataset = load_dataset(data, data_dir=data_dir, size=size, seed=seed)
    encoder = create_for_dataset(model, dataset, checkpoint=checkpoint)
    target = out if out is not None else embeddings_dir() / str(getattr(dataset, "name", data))
    path = embed_dataset(
        encoder,
        dataset,
        target,
        batch_size=batch_size,
        progress=not quiet,
        max_tiles=max_tiles,
        device=device,
    )
    if quiet:
        typer.echo(str(path))
    else:
        console.print(f"{model} embeddings of {getattr(dataset, 'name', data)} -> {path}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("models")(models)
    app.command("embed")(embed)
