"""nox sessions: tests, lint, bench (performance bars), paper (tables and figures), leaderboard.

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
    """Ruff: lint and import order."""
    session.install("ruff")
    session.run("ruff", "check", ".")


@nox.session
def bench(session: nox.Session) -> None:
    """Performance bars P1-P8: every benchmark prints its figures, its ratio and its bar."""
    session.install("-e", ".[test]")
    import pathlib

    for script in sorted(pathlib.Path("benchmarks").glob("bench_*.py")):
        session.run("python", str(script), *session.posargs)


@nox.session
def paper(session: nox.Session) -> None:
    """Regenerate the paper's tables and figures (reported + measured) into leaderboard/."""
    session.install("-e", ".")
    session.run("cellbench", "paper", "--out", "leaderboard")


@nox.session
def leaderboard(session: nox.Session) -> None:
    """Measure every model on the synthetic screen (quick preset, 3 seeds) and rebuild leaderboard/.

    Long: about 10 minutes per trained model and seed on 2 CPU cores.
    """
    session.install("-e", ".")
    seeds = session.posargs or ["0", "1", "2"]
    models = ["random", "pixel-stats", "oracle", "nuisance-only", "cwa-msn", "single-well-msn",
              "infonce-cross", "cropmae-cross", "cropmae-single", "vit-wsl"]
    for model in models:
        for seed in seeds:
            session.run("cellbench", "run", "--model", model, "--seed", seed, "--quiet")
    session.run("cellbench", "leaderboard", "--out", "leaderboard")
    session.run("cellbench", "paper", "--out", "leaderboard")
