"""CLI command: ``cellbench train`` - train one encoder on one dataset."""

from __future__ import annotations

from pathlib import Path

import typer

from cellbench.cli._common import console, user_errors


def _parse_overrides(items: list[str]) -> dict[str, str]:
    from cellbench.errors import CellbenchError

    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CellbenchError(f"--set {item!r} is not KEY=VALUE; write e.g. --set lr=3e-4.")
        out[key.strip()] = value.strip()
    return out


def register(app: typer.Typer) -> None:
    """Add ``train`` to the app."""

    @app.command("train")
    @user_errors
    def train(
        model: str = typer.Option(
            ...,
            "--model",
            "-m",
            help="Encoder to train (cwa-msn, single-well-msn, cropmae-cross, cropmae-single, vit-wsl, infonce-cross, infonce-single).",
        ),
        preset: str = typer.Option(
            "quick", "--preset", "-p", help="tiny | quick | standard | paper."
        ),
        seed: int = typer.Option(0, "--seed", help="Seed: same seed, same weights (CPU)."),
        data: str = typer.Option(
            "synthetic-bray",
            "--data",
            "-d",
            help="synthetic-bray | synthetic-rxrx3-core | rxrx3-core | bray | folder.",
        ),
        size: str = typer.Option(
            "quick", "--size", help="Synthetic screen size: tiny | quick | full."
        ),
        data_dir: Path | None = typer.Option(
            None, "--data-dir", help="Local copy of a real dataset."
        ),
        prototypes: int | None = typer.Option(
            None, "--prototypes", help="Number of MSN prototypes."
        ),
        resume: bool = typer.Option(
            False, "--resume", help="Continue from the last checkpoint in --out."
        ),
        device: str = typer.Option("cpu", "--device", help="cpu | cuda | cuda:N."),
        out: Path | None = typer.Option(
            None, "--out", help="Run directory (default: under $CELLBENCH_HOME/runs)."
        ),
        time_budget: float | None = typer.Option(
            None, "--time-budget", help="Stop after this many seconds."
        ),
        set_: list[str] = typer.Option(
            [], "--set", help="Override a preset field: KEY=VALUE (repeatable)."
        ),
        probe: bool = typer.Option(
            True,
            "--probe/--no-probe",
            help="Score CORUM recall on the small synthetic probe screen at every health check.",
        ),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ) -> None:
        """Train an encoder; writes checkpoint.pt, model.pt and train_log.json."""
        from cellbench.data import check_dataset
        from cellbench.train.api import train_model

        data = check_dataset(data, command="`cellbench train`")

        overrides: dict = _parse_overrides(set_)
        if prototypes is not None:
            overrides["num_prototypes"] = prototypes
        if time_budget is not None:
            overrides["time_budget_s"] = time_budget
        path = train_model(
            model,
            data,
            preset=preset,
            seed=seed,
            out_dir=out,
            resume=resume,
            overrides=overrides,
            progress=not quiet,
            device=device,
            data_size=size,
            data_dir=data_dir,
            probe=probe,
        )
        console.print(f"model written to {path}")
        import json

        log_path = path.parent / "train_log.json"
        if log_path.exists():
            log = json.loads(log_path.read_text())
            console.print(f"{log['steps_done']}/{log['total_steps']} steps ({log['stopped']})")
            recalls = [
                (h["step"], h["probe_recall"]) for h in log.get("health", []) if "probe_recall" in h
            ]
            if recalls:
                trace = ", ".join(f"{r:.3f} @ {s}" for s, r in recalls)
                console.print(f"probe-screen CORUM recall (synthetic): {trace}")
            for warning in log.get("warnings", []):
                console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
