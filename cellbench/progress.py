"""The one progress bar of long runs (training steps, embedded sites), silent when disabled.

A :class:`ProgressBar` shows the description, a bar, ``done/total``, an optional unit, any
named text fields (training: the loss and images per second), the elapsed time and the time
left. ``warn`` prints a warning above the bar, or to stderr when the bar is off.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class ProgressBar:
    """A rich progress bar over ``total`` units that starts at ``completed``.

    ``fields`` maps a field name to its text template, ``{}`` standing for the value (e.g.
    ``{"loss": "loss {}"}``); :meth:`update` sets the values. Use it as a context manager or
    call :meth:`close`. Disabled, every call does nothing (``warn`` writes to stderr).
    """

    def __init__(
        self,
        description: str,
        total: int,
        *,
        enabled: bool = True,
        completed: int = 0,
        unit: str | None = None,
        fields: Mapping[str, str] | None = None,
    ) -> None:
        self.enabled = enabled
        self._fields = dict(fields or {})
        if not enabled:
            return
        columns: list[ProgressColumn] = [
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
        ]
        if unit:
            columns.append(TextColumn(unit))
        for name, template in self._fields.items():
            columns.append(TextColumn(template.replace("{}", f"{{task.fields[{name}]}}")))
        columns += [TimeElapsedColumn(), TimeRemainingColumn()]
        self._progress = Progress(*columns, transient=False)
        self._progress.start()
        start: dict[str, Any] = {name: "-" for name in self._fields}
        self._task = self._progress.add_task(description, total=total, completed=completed, **start)

    def advance(self, n: int) -> None:
        """``n`` more units done."""
        if self.enabled:
            self._progress.advance(self._task, n)

    def update(self, completed: int, **values: str) -> None:
        """``completed`` units done; ``values`` set fields named in ``fields``."""
        if self.enabled:
            fields: dict[str, Any] = dict(values)  # (rich's own keywords are typed, fields Any)
            self._progress.update(self._task, completed=completed, **fields)

    def warn(self, message: str) -> None:
        if self.enabled:
            self._progress.console.print(f"[yellow]warning:[/yellow] {message}")
        else:
            print(f"warning: {message}", file=sys.stderr)

    def close(self) -> None:
        if self.enabled:
            self._progress.stop()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
