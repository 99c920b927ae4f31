"""The ``cellbench`` command line (typer).

One small module per command group; each holds thin functions that validate
options and call the library. No science lives here.
"""

from __future__ import annotations

import typer

from cellbench.cli import data as _data
from cellbench.cli import evaluate as _evaluate
from cellbench.cli import models as _models
from cellbench.cli import report as _report
from cellbench.cli import run as _run
from cellbench.cli import train as _train

app = typer.Typer(
    name="cellbench",
    help=(
        "Does a Cell Painting image encoder capture biology or batch effects?\n\n"
        "Train and evaluate encoders on RxRx3-core-style data: gene-gene recall and "
        "compound-gene retrieval, scored exactly as the field scores them."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _show_version(value: bool) -> None:
    if value:
        from cellbench import __version__

        typer.echo(f"cellbench {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False,
        "--version",
        is_eager=True,
        callback=_show_version,
        help="Print cellbench's version and exit.",
    ),
) -> None:
    return None  # the app's help (above) describes the program; this callback only adds --version


for _module in (_run, _train, _evaluate, _models, _data, _report):
    _module.register(app)


def main() -> None:  # pragma: no cover - console entry
    app()
