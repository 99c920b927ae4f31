"""CLI commands: ``cellbench data generate | show | info``."""

from __future__ import annotations

from pathlib import Path

import typer

from cellbench.cli._common import console, user_errors

SYNTHETIC = ("synthetic-rxrx3-core", "synthetic-bray")
DATASET_HELP = (
    "synthetic-rxrx3-core (alias synthetic) | synthetic-bray | rxrx3-core | bray | folder"
)

data_app = typer.Typer(
    help="Synthetic screens and image datasets: generate, look, check.", no_args_is_help=True
)


@data_app.command("generate")
@user_errors
def generate(
    name: str = typer.Argument(..., help="synthetic-rxrx3-core or synthetic-bray"),
    size: str = typer.Option("quick", "--size", help="tiny | quick | full"),
    seed: int = typer.Option(0, "--seed"),
    out: Path | None = typer.Option(None, "--out", help="output directory (default: the cache)"),
) -> None:
    """Write a synthetic screen in the real dataset's file layout (atomic, cached by config)."""
    import time

    from cellbench.data import check_dataset

    name = check_dataset(name, SYNTHETIC, command="`cellbench data generate`", option="NAME")

    from cellbench.data.synthetic import generate_screen
    from cellbench.data.synthetic.generate import read_manifest

    if out is not None:
        from cellbench.io import check_writable

        check_writable(out)
    t0 = time.perf_counter()
    path = generate_screen(name, size, seed, out)
    man = read_manifest(path) or {}
    mb = sum(f["bytes"] for f in man.get("files", [])) / 1e6
    console.print(
        f"{name} ({size}, seed {seed}): {man.get('n_wells')} wells, {man.get('n_sites')} sites, "
        f"{man.get('image_size')} px, {mb:.1f} MB in {time.perf_counter() - t0:.1f} s -> {path}"
    )


@data_app.command("show")
@user_errors
def show(
    name: str = typer.Argument(..., help=DATASET_HELP),
    out: Path = typer.Option(..., "--out", help="PNG file to write"),
    size: str = typer.Option("tiny", "--size"),
    seed: int = typer.Option(0, "--seed"),
    data_dir: Path | None = typer.Option(None, "--data-dir"),
    rows: int = typer.Option(6, "--rows"),
    cols: int = typer.Option(6, "--cols"),
    perturbation: list[str] | None = typer.Option(
        None, "--perturbation", "-p", help="rows to show (repeatable)"
    ),
) -> None:
    """A PNG montage: sites by perturbation x batch, channels as a false-colour composite."""
    from cellbench.data import load_dataset
    from cellbench.data.montage import write_montage

    ds = load_dataset(name, data_dir=data_dir, size=size, seed=seed)
    console.print(f"wrote {write_montage(ds, out, rows, cols, seed, perturbation)}")


@data_app.command("info")
@user_errors
def info(
    name: str = typer.Argument(..., help=DATASET_HELP),
    size: str = typer.Option("tiny", "--size"),
    seed: int = typer.Option(0, "--seed"),
    data_dir: Path | None = typer.Option(None, "--data-dir"),
) -> None:
    """Open a dataset and print its wells, sites, batches and channels."""
    from cellbench.data import load_dataset

    ds = load_dataset(name, data_dir=data_dir, size=size, seed=seed)
    img = ds.read_sites([0])
    console.print(
        f"{ds.name}: {ds.wells.height} wells, {ds.sites.height} sites, "
        f"{ds.wells['batch'].n_unique()} batches, channels {', '.join(ds.channels)}, "
        f"images {img.shape[2]}x{img.shape[3]} uint8 ({ds.intensity_scaling}), root {ds.root}"
    )


@data_app.command("check")
@user_errors
def check(
    name: str = typer.Argument(..., help=DATASET_HELP),
    size: str = typer.Option("tiny", "--size"),
    seed: int = typer.Option(0, "--seed"),
    data_dir: Path | None = typer.Option(None, "--data-dir"),
) -> None:
    """Verify a dataset: manifest hashes (synthetic screens) and every image decodes."""
    import numpy as np

    from cellbench.data import load_dataset
    from cellbench.data.manifest import verify_manifest
    from cellbench.errors import InputError

    if data_dir is not None and (Path(data_dir) / "manifest.json").is_file():
        problems = verify_manifest(data_dir)
        if problems:
            raise InputError(
                f"{data_dir}: {len(problems)} file(s) fail the manifest check: "
                f"{'; '.join(problems[:5])}. Regenerate it with `cellbench data generate`"
            )
    ds = load_dataset(name, data_dir=data_dir, size=size, seed=seed)
    if data_dir is None and getattr(ds, "manifest", None) is not None:
        problems = verify_manifest(ds.root)
        if problems:
            raise InputError(
                f"{ds.root}: {len(problems)} file(s) fail the manifest check: "
                f"{'; '.join(problems[:5])}. Regenerate it with `cellbench data generate`"
            )
    n = len(ds)
    for start in range(0, n, 256):
        ds.read_sites(np.arange(start, min(start + 256, n)))  # raises naming the bad file
    console.print(
        f"{ds.name}: ok — {ds.wells.height} wells, {n} sites, channels {', '.join(ds.channels)}"
    )


@data_app.command("realism")
@user_errors
def realism(
    name: str = typer.Argument("synthetic-rxrx3-core", help="a synthetic screen with knockouts"),
    size: str = typer.Option("quick", "--size", help="tiny | quick | full"),
    seed: int = typer.Option(0, "--seed"),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="a generated screen's folder"),
    out: Path = typer.Option(
        Path("realism"), "--out", help="folder for realism.json, realism.md and realism.png"
    ),
    vit: bool = typer.Option(
        True,
        "--vit/--no-vit",
        help="also embed with an untrained ViT-S/16 (a few minutes on a CPU)",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress lines"),
) -> None:
    """How real does a synthetic screen look? Fixed features only, beside real screens' values."""
    from cellbench.data import load_dataset
    from cellbench.errors import InputError
    from cellbench.report import realism as R

    if name != "synthetic-rxrx3-core":
        raise InputError(
            f"the realism report measures CRISPR knockouts; {name!r} has none. "
            "Use synthetic-rxrx3-core"
        )
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; pass a folder")
    ds = load_dataset(name, data_dir=data_dir, size=size, seed=seed)
    report = R.build_report(
        ds,
        name=name,
        size=size,
        seed=seed,
        vit=vit,
        progress=(lambda m: None) if quiet else (lambda m: console.print(f"[dim]{m}[/dim]")),
    )
    paths = R.write_report(report, out)
    console.print(R.markdown(report))
    console.print("wrote " + ", ".join(str(p) for p in paths))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.add_typer(data_app, name="data")
