"""User-facing errors: each says what is wrong and how to fix it.

The CLI turns a :class:`CellbenchError` into a red message and a non-zero exit,
without a traceback. Raise it (never a bare ValueError) from any entry point a
user reaches, with a message that names the problem *and* the fix.
"""


class CellbenchError(Exception):
    """An error caused by the user's input or environment, with a fix in its message."""


class InputError(CellbenchError):
    """Bad input data: NaN features, ids that do not line up, a batch without controls..."""


class NotFoundError(CellbenchError):
    """An unknown name (model, dataset, preset) or a missing file/weight."""


class ResourceError(CellbenchError):
    """A computation that would not fit this machine (memory), with the way around it."""
