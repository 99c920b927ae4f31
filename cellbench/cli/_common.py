"""Shared CLI plumbing: turn user errors into a clear message and a non-zero exit."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import typer
from rich.console import Console

from cellbench.errors import CellbenchError

F = TypeVar("F", bound=Callable)

console = Console()
err_console = Console(stderr=True)


def user_errors(func: F) -> F:
    """Decorator: a :class:`CellbenchError` becomes ``error: ...`` on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except CellbenchError as exc:
            err_console.print(f"[bold red]error:[/bold red] {exc}", highlight=False)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]
