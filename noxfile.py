"""nox sessions: tests, lint, bench (performance bars), paper (tables and figures), leaderboard,
prototypes (Table 5 sweep) and budget (the experiments: budget curve, pair signal and the
other diagnostics, written to leaderboard/experiments/).

Each session installs cellbench into its own virtualenv, so it also checks that the
package installs cleanly from the tree.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (the README's test line)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff (lint, import order, formatting) and mypy on cellbench/ ([tool.mypy] in pyproject)."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # mypy reads the installed libraries' types, so it checks the package in its own env
    session.install("-e", ".", "mypy")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Performance bars: every benchmark prints its figures, its ratio and its bar."""
    session.install("-e", ".[test]")
    import pathlib

    for script in sorted(pathlib.Path("benchmarks").glob("bench_*.py")):
        session.run("python", str(script), *session.posargs)


@nox.session
def paper(session: nox.Session) -> None:
    """Regenerate the paper's tables and figures (reported + measured) into leaderboard/."""
    session.install("-e", ".")
    session.run("cellbench", "paper", "--results", "leaderboard/results", "--out", "leaderboard")


@nox.session
def leaderboard(session: nox.Session) -> None:
    """Measure models on the synthetic screen (quick preset) and rebuild leaderboard/.

    Long: about 3-10 minutes per trained model and seed on 2 CPU cores (about 3 CPU-hours in
    all). Pass model names to restrict it, e.g. ``nox -s leaderboard -- cwa-msn``. Every
    trainable model is also run at ``--steps 0`` (the untrained network of its own
    architecture, which its verdict compares with); CWA-MSN also at the ``standard`` preset
    (2,400 steps, 3 seeds) and for 9,600 steps (seed 0: the longest CPU budget measured).
    Results go to the store in $CELLBENCH_HOME and are copied to leaderboard/results/.
    """
    session.install("-e", ".")
    models = session.posargs or [
        "random",
        "pixel-stats",
        "oracle",
        "nuisance-only",
        "cwa-msn",
        "single-well-msn",
        "infonce-cross",
        "infonce-single",
        "cropmae-cross",
        "cropmae-single",
        "vit-wsl",
    ]
    deterministic = {"pixel-stats", "oracle", "nuisance-only"}  # no seed to vary
    # the untrained network of each architecture (CLS pooling: MSN, InfoNCE; mean: CropMAE)
    untrained = {"cwa-msn", "infonce-cross", "cropmae-cross"}
    common = ("--eval-seeds", "100", "--no-floors", "--quiet")
    for model in models:
        for seed in ["0"] if model in deterministic else ["0", "1", "2"]:
            session.run("cellbench", "run", "--model", model, "--seed", seed, *common)
            if model in untrained:
                session.run(
                    "cellbench", "run", "--model", model, "--seed", seed, "--steps", "0", *common
                )
            if model == "cwa-msn":
                session.run(
                    "cellbench", "run", "--model", model, "--seed", seed, "--preset", "standard",
                    *common,
                )  # fmt: skip
    if "cwa-msn" in models:
        session.run(
            "cellbench", "run", "--model", "cwa-msn", "--seed", "0", "--steps", "9600", *common
        )
    _publish(session)


@nox.session
def prototypes(session: nox.Session) -> None:
    """Table 5 on the synthetic screen: CWA-MSN with 256/512/1,024/2,048 prototypes, 3 seeds."""
    session.install("-e", ".")
    for seed in ("0", "1", "2"):
        for k in ("256", "512", "1024", "2048"):
            session.run(
                "cellbench",
                "run",
                "--model",
                "cwa-msn",
                "--prototypes",
                k,
                "--seed",
                seed,
                "--eval-seeds",
                "100",
                "--no-floors",
                "--quiet",
            )
    _publish(session)


@nox.session
def budget(session: nox.Session) -> None:
    """The experiments (``python -m experiments.NAME``): the CPU budget curve and the signal
    diagnostics, each written to leaderboard/experiments/ (the only place their CSVs live)."""
    session.install("-e", ".")
    out = "leaderboard/experiments"
    curve = ("python", "-m", "experiments.budget_curve", "--out", f"{out}/budget_curve")
    session.run(
        *curve,
        "--steps",
        "0",
        "600",
        "2400",
        "--seeds",
        "0",
        "1",
        "2",
        "--eval-seeds",
        "100",
    )
    session.run(
        *curve, "--steps", "4800", "--seeds", "0", "--eval-seeds", "100", "--skip-references"
    )
    session.run(
        "python",
        "-m",
        "experiments.pair_signal",
        "--screens",
        "synthetic-bray:quick",
        "synthetic-rxrx3-core:quick",
        "synthetic-bray:full",
        "--out",
        f"{out}/pair_signal.csv",
    )
    session.run(
        "python",
        "-m",
        "experiments.nuisance_ablation",
        "--denser",
        "--out",
        f"{out}/nuisance_ablation.csv",
    )
    session.run("python", "-m", "experiments.msn_bootstrap", "--out", f"{out}/msn_bootstrap.csv")
    session.run(
        "python",
        "-m",
        "experiments.msn_init_information",
        "--seeds",
        "0",
        "1",
        "2",
        "--out",
        f"{out}/msn_init_information.csv",
    )
    session.run(
        "python",
        "-m",
        "experiments.signal_check",
        "--seeds",
        "0",
        "1",
        "2",
        "--out",
        f"{out}/signal_check.csv",
    )
    session.run(
        "python",
        "-m",
        "experiments.readout_diagnostics",
        "--out",
        f"{out}/readout_diagnostics.csv",
    )
    _publish(session)


def _publish(session: nox.Session) -> None:
    """Copy the results store into leaderboard/results and rebuild tables and figures from it."""
    session.run(
        "python",
        "-c",
        "import shutil, cellbench.paths as p; "
        "shutil.copytree(p.results_dir(), 'leaderboard/results', dirs_exist_ok=True)",
    )
    session.run("cellbench", "paper", "--results", "leaderboard/results", "--out", "leaderboard")
    # after the figures, so the page embeds the ones just drawn
    session.run(
        "cellbench",
        "leaderboard",
        "--results",
        "leaderboard/results",
        "--out",
        "leaderboard",
        "--html",
        "leaderboard/index.html",
        "--figures",
        "leaderboard/figures",
    )
