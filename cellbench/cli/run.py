"""CLI command: ``cellbench run`` - one model end to end, printed beside its floor and ceiling."""

from __future__ import annotations

from typing import Any

import typer

from cellbench.cli._common import console, err_console, user_errors

#: what ``run --data`` takes: the screen it embeds and scores (``synthetic`` = synthetic-rxrx3-core)
RUN_DATA = ("synthetic-rxrx3-core", "rxrx3-core")


def _say_training_screen(model: str, preset: str) -> None:
    """A trainable model scored on the real screen is trained on a synthetic one: say which."""
    from cellbench import registry
    from cellbench.pipeline import DATA_SIZE, TRAIN_DATA

    if registry.metadata(model).get("trainer"):
        err_console.print(
            f"note: {model} trains on {TRAIN_DATA} (synthetic, size {DATA_SIZE.get(preset, preset)}), "
            "then embeds and scores rxrx3-core; pass --checkpoint to score weights trained elsewhere.",
            highlight=False,
            soft_wrap=True,
        )


def register(app: typer.Typer) -> None:
    """Add ``run`` to the app."""

    @app.command("run")
    @user_errors
    def run(
        model: str = typer.Option(
            ..., "--model", "-m", help="A registered encoder (see `cellbench models`)."
        ),
        data: str = typer.Option(
            "synthetic",
            "--data",
            "-d",
            help="Screen to score: 'synthetic' (= synthetic-rxrx3-core, default) or 'rxrx3-core' (real; needs --data-dir or network).",
        ),
        data_dir: str = typer.Option(
            None, "--data-dir", help="Folder holding a local copy of the real dataset."
        ),
        preset: str = typer.Option(
            "quick",
            help="Training preset: tiny, quick (default, minutes on a CPU), standard, paper (GPU).",
        ),
        seed: int = typer.Option(
            0, help="Seed of training / random initialisation (the screens stay fixed)."
        ),
        prototypes: int = typer.Option(None, help="MSN only: number of prototypes (paper: 1024)."),
        device: str = typer.Option("cpu", help="cpu, cuda or cuda:N."),
        checkpoint: str = typer.Option(None, help="Evaluate these weights instead of training."),
        steps: int = typer.Option(
            None,
            help="Override the preset's training steps (0: the untrained network of the same architecture).",
        ),
        eval_seeds: int = typer.Option(
            100, "--eval-seeds", help="Seeds of the compound-gene benchmark (reference: 100)."
        ),
        floors: bool = typer.Option(
            True, help="Also score the Random, oracle and nuisance-only rows when missing."
        ),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    ) -> None:
        """Data → train (or load) → embed → evaluate → store, then print the leaderboard row.

        Every finished step is reused when the command is run again.
        """
        from cellbench.data import check_dataset
        from cellbench.pipeline import floor_ceiling, run_pipeline
        from cellbench.report.run_summary import print_run_summary

        data = check_dataset(data, RUN_DATA, command="`cellbench run`")
        data = "synthetic" if data == "synthetic-rxrx3-core" else data
        if data == "rxrx3-core" and checkpoint is None:
            _say_training_screen(model, preset)

        options: dict[str, Any] = dict(
            data=data,
            data_dir=data_dir,
            preset=preset,
            device=device,
            eval_seeds=eval_seeds,
            progress=not quiet,
        )
        result = run_pipeline(
            model, seed=seed, prototypes=prototypes, checkpoint=checkpoint, steps=steps, **options
        )
        if not quiet:
            state = "reused stored results" if result.reused else "done"
            timing = ", ".join(f"{k} {v:.0f}s" for k, v in result.timings.items())
            console.print(
                f"[green]{model}[/green] ({result.checkpoint}) on {result.dataset}: {state}"
                + (f" — {timing}" if timing else "")
            )
        others = []
        if floors and data == "synthetic":
            for name in floor_ceiling():
                if name != model:
                    others.append(run_pipeline(name, seed=0, **options))
        print_run_summary(result, others, console=console)
