"""Atomic file output and hashing.

Every file cellbench writes goes through :func:`atomic_path`: it is written to a
temporary file in the same directory and renamed into place, so a killed run
never leaves a half-written file that a later run would take as complete. A folder
of results that belong together goes through :func:`atomic_dir`: it is written as a
whole beside its target and swapped in, so it always holds one run's complete output.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cellbench.errors import InputError


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# read once at import (os.umask can only be read by setting it, which is not thread-safe)
_UMASK = _read_umask()


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    On an exception the temporary file is removed and ``target`` is left untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=suffix or ".tmp", dir=target.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp makes 0600 files: give the result the usual umask mode
            os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``target``; on success it replaces ``target`` as a
    whole (the old folder is moved aside, then removed).

    On an exception the temporary folder is removed and ``target`` is left untouched. When two
    writers finish at once, the folder is one of their outputs, never a mix of both.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes 0700 folders
        _swap_in(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_in(new: Path, target: Path, attempts: int = 100) -> None:
    for _ in range(attempts):
        try:
            os.rename(new, target)  # succeeds when target is absent (or an empty folder)
            return
        except OSError:
            try:
                mode = os.lstat(target).st_mode  # one look: another writer may move it any time
            except FileNotFoundError:  # moved aside by another writer just now: try again
                continue
            if not stat.S_ISDIR(mode):  # a file or a link is not a result folder to replace
                raise
        aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        try:
            os.rename(target, aside)  # replaces the empty placeholder
        except FileNotFoundError:  # another writer moved it first: try again
            aside.rmdir()
            continue
        try:
            os.rename(new, target)
        except OSError:  # another writer swapped theirs in meanwhile: move it aside too
            shutil.rmtree(aside, ignore_errors=True)
            continue
        shutil.rmtree(aside, ignore_errors=True)
        return
    raise OSError(f"could not replace {target}: other writers kept replacing it")


def check_writable(target: str | os.PathLike, option: str = "--out") -> Path:
    """Raise an :class:`InputError` naming the fix unless ``target`` can be created or replaced:
    its nearest existing folder must be a writable folder (not a file). Run it before any work."""
    target = Path(target)
    probe = target.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(
            f"{option} {target} lies under {probe}, which is a file. Fix: pass a path in a folder."
        )
    try:  # os.access is not enough (it says yes to root on a read-only mount)
        fd, name = tempfile.mkstemp(prefix=".cellbench-write-check.", dir=probe)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise InputError(
            f"{option} {target}: cannot write in {probe} ({exc.strerror or exc}). "
            "Fix: pass a folder you can write to, or fix its permissions."
        ) from None
    return target


def write_bytes_atomic(target: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text_atomic(target: str | os.PathLike, text: str) -> Path:
    return write_bytes_atomic(target, text.encode("utf-8"))


def write_json_atomic(target: str | os.PathLike, obj: Any) -> Path:
    return write_text_atomic(target, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def torch_save_atomic(target: str | os.PathLike, obj: Any) -> Path:
    """``torch.save(obj)`` to ``target`` atomically, byte-reproducibly.

    Given a path, torch names the archive's records after the file (``<name>/data.pkl``), and
    the file written is the random temporary one: the same object would hash differently on
    every save. Given a file object, torch names them ``archive/...``: a fixed name.
    """
    import torch

    with atomic_path(target) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)
    return Path(target)


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_FORBIDDEN_GLOBAL = re.compile(r"GLOBAL (\S+) was not an allowed global")


def plain_message(exc: BaseException) -> str:
    """An exception's message fit for a one-line error: ANSI codes removed, whitespace folded,
    and torch's advice to re-load with ``weights_only=False`` (which would run code from the
    file) cut off."""
    text = " ".join(_ANSI.sub("", str(exc)).split())
    for marker in (
        " In PyTorch 2.6",
        " Re-running `torch.load`",
        " Please file an issue",
        " Check the documentation of torch.load",
    ):
        if marker in text:
            text = text[: text.index(marker)]
    return text.strip() or type(exc).__name__


def load_torch_weights(path: str | os.PathLike, *, what: str, fix: str) -> Any:
    """``torch.load(path, weights_only=True)`` (tensors and plain values, never code), with
    every failure a :class:`InputError` that says what is wrong with the file: a folder, empty,
    not a PyTorch file, pickled Python objects, or damaged -- then ``fix``."""
    import zipfile

    import torch

    path = Path(path)
    if path.is_dir():
        inside = sorted(
            p.name for p in path.iterdir() if p.suffix in (".pt", ".pth", ".safetensors", ".bin")
        )
        hint = f" (it holds {', '.join(inside[:3])})" if inside else ""
        raise InputError(
            f"{what} {path} is a folder, not a file{hint}; pass the file itself. {fix}"
        )
    if not path.is_file():
        raise InputError(f"{what} {path} does not exist. {fix}")
    if path.stat().st_size == 0:
        raise InputError(
            f"{what} {path} is empty (0 bytes): an interrupted copy or download. {fix}"
        )
    try:
        with open(
            path, "rb"
        ) as handle:  # a file object: torch would hand a *.safetensors path elsewhere
            return torch.load(handle, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling fails in many ways
        raw = _ANSI.sub("", str(exc))
        found = _FORBIDDEN_GLOBAL.search(raw)
        if found:
            problem = (
                f"holds pickled Python objects ({found.group(1)}), which cellbench does not load "
                "because loading them could run code; only tensors and plain values are read"
            )
        elif not zipfile.is_zipfile(path):
            problem = (
                f"is not a PyTorch file, or is damaged ({type(exc).__name__}: {plain_message(exc)})"
            )
        else:
            problem = f"is damaged ({type(exc).__name__}: {plain_message(exc)})"
        raise InputError(f"{what} {path} {problem}. {fix}") from None


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes (streamed)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def config_hash(config: Any, length: int = 12) -> str:
    """Short stable hash of a JSON-serialisable configuration (keys sorted)."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]
