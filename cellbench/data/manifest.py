"""Check a data folder against its ``manifest.json`` (every file: size and SHA-256).

Every path in the manifest goes through :func:`cellbench.data.images.safe_join`, the one join
for paths read from a file: an entry such as ``../secret.txt`` is refused, never looked at.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cellbench.data.images import safe_join
from cellbench.errors import InputError
from cellbench.io import sha256_file

MANIFEST = "manifest.json"


def verify_manifest(root: str | os.PathLike) -> list[str]:
    """Problems found when checking every file the manifest of ``root`` lists.

    Raises :class:`InputError` for a manifest that cannot be trusted at all: unreadable, not
    the expected layout, or naming a path outside ``root``.
    """
    path = Path(root) / MANIFEST
    fix = "regenerate the folder with `cellbench data generate`, or restore its manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable manifest ({exc}); {fix}") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, list) or not all(
        isinstance(f, dict)
        and isinstance(f.get("path"), str)
        and isinstance(f.get("bytes"), int)
        and isinstance(f.get("sha256"), str)
        for f in files
    ):
        raise InputError(f"{path}: every entry of 'files' needs a path, bytes and sha256; {fix}")
    problems = []
    for f in files:
        try:
            target = safe_join(root, f["path"])
        except InputError:
            raise InputError(
                f"{path}: the entry {f['path']!r} points outside the data folder {Path(root).resolve()}; {fix}"
            ) from None
        if not target.is_file():
            problems.append(f"{f['path']}: missing")
        elif target.stat().st_size != f["bytes"] or sha256_file(target) != f["sha256"]:
            problems.append(f"{f['path']}: content differs from the manifest (corrupt or modified)")
    return problems
