"""Released weights on disk: a local file or folder, the Hugging Face cache, or the hub.

One resolution order for every released model (offline first): an explicit
``--checkpoint`` path, then the huggingface_hub cache, then a download — unless
``HF_HUB_OFFLINE`` is set, in which case a :class:`NotFoundError` says how to get the file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from cellbench.errors import NotFoundError


def offline() -> bool:
    """True when huggingface_hub is in offline mode: its own setting (``HF_HUB_OFFLINE``, parsed
    by huggingface_hub when it is imported), so cellbench and the library never disagree."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def hub_file(
    repo_id: str,
    filename: str,
    *,
    what: str,
    fix: str,
    checkpoint: str | os.PathLike | None = None,
    download: bool = True,
    companions: Sequence[str] = (),
) -> Path:
    """Local path of ``filename`` of ``repo_id``.

    ``checkpoint`` may be the file itself or a folder holding it. ``companions`` are small
    optional files fetched beside it (e.g. a config); failing to fetch them is not an error.
    ``what`` names the weights and ``fix`` says how to get them, in every error message.
    """
    if checkpoint is not None:
        path = Path(checkpoint)
        if path.is_dir():
            path = path / filename
        if not path.is_file():
            raise NotFoundError(f"{what} {path} do not exist; {fix}")
        return path
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    cached = try_to_load_from_cache(repo_id, filename)
    if isinstance(cached, str):
        return Path(cached)
    if not download or offline():
        raise NotFoundError(f"the {what} are not in the Hugging Face cache; {fix}")
    try:
        path = Path(hf_hub_download(repo_id, filename))
    except Exception as exc:  # network errors come in many types
        raise NotFoundError(
            f"could not download the {what} ({type(exc).__name__}); {fix}"
        ) from None
    for extra in companions:
        with contextlib.suppress(Exception):
            hf_hub_download(repo_id, extra)
    return path
