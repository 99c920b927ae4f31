"""Generate a synthetic screen on disk, atomically, cached by configuration hash.

The screen is written into a temporary sibling directory, ``manifest.json`` (config, its
hash, simulator version, every file with size and SHA-256) is written last, and the
directory is renamed into place: a killed generation leaves only a ``.NAME.tmp-PID-*`` directory
that is never taken as a dataset, and that the next generation into the same parent removes once
process PID is gone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path

from cellbench.data.images import safe_join
from cellbench.data.synthetic.config import ScreenConfig, make_config
from cellbench.data.synthetic.simulate import simulate
from cellbench.data.synthetic.writer import GROUND_TRUTH, MANIFEST, write_bray, write_rxrx3
from cellbench.errors import CellbenchError, InputError
from cellbench.io import config_hash, sha256_file, write_json_atomic
from cellbench.paths import data_dir


def screen_hash(cfg: ScreenConfig) -> str:
    return config_hash(cfg.to_dict())


def default_location(cfg: ScreenConfig) -> Path:
    return data_dir() / f"{cfg.name}-{cfg.size}-seed{cfg.seed}-{screen_hash(cfg)}"


def read_manifest(root: str | os.PathLike) -> dict | None:
    path = Path(root) / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def is_complete(root: str | os.PathLike, cfg: ScreenConfig | None = None) -> bool:
    """Whether ``root`` holds a finished screen (of ``cfg`` when given): a manifest whose every
    file exists inside ``root``; a manifest naming a path outside ``root`` is never complete."""
    man = read_manifest(root)
    if not isinstance(man, dict):
        return False
    if cfg is not None and man.get("config_hash") != screen_hash(cfg):
        return False
    files = man.get("files", [])
    if not isinstance(files, list):
        return False
    try:
        return all(
            isinstance(f, dict)
            and isinstance(f.get("path"), str)
            and safe_join(root, f["path"]).is_file()
            for f in files
        )
    except InputError:  # a path escaping root: not a screen we wrote
        return False


_TMP = re.compile(r"^\..+\.tmp-(\d+)-[0-9a-f]{8}$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # exists under another user, or cannot tell: keep its folder
    return True


def remove_stale_temporaries(parent: Path) -> list[Path]:
    """Remove the ``.NAME.tmp-PID-xxxxxxxx`` folders in ``parent`` left by generations that were
    killed (their PID no longer runs); a live writer's folder is left alone."""
    removed: list[Path] = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = _TMP.match(entry.name)
        if m and entry.is_dir() and not entry.is_symlink() and not _pid_alive(int(m.group(1))):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _write(cfg: ScreenConfig, tmp: Path) -> dict:
    t0 = time.perf_counter()
    screen = simulate(cfg)
    if cfg.kind == "rxrx3":
        write_rxrx3(screen, tmp)
    else:
        write_bray(screen, tmp)
    screen.ground_truth().write_parquet(tmp / GROUND_TRUTH, compression="zstd", statistics=False)
    files = sorted(p for p in tmp.rglob("*") if p.is_file())
    manifest = {
        "name": cfg.name,
        "size": cfg.size,
        "seed": cfg.seed,
        "simulator_version": cfg.version,
        "config": cfg.to_dict(),
        "config_hash": screen_hash(cfg),
        "channels": list(cfg.channels),
        "n_wells": screen.layout.height,
        "n_sites": screen.n_sites,
        "image_size": cfg.image_size,
        "files": [
            {
                "path": p.relative_to(tmp).as_posix(),
                "bytes": p.stat().st_size,
                "sha256": sha256_file(p),
            }
            for p in files
        ],
    }
    # timing is deliberately not in the manifest: same seed -> identical bytes
    write_json_atomic(tmp / MANIFEST, manifest)
    manifest["_seconds"] = time.perf_counter() - t0
    return manifest


def generate_screen(
    name: str, size: str = "quick", seed: int = 0, out_dir: str | os.PathLike | None = None
) -> Path:
    """Write screen ``name`` at ``size``/``seed`` to ``out_dir`` (default: the cache) and
    return its directory; an existing complete screen of the same configuration is reused."""
    return generate_from_config(make_config(name, size, seed), out_dir)


def generate_from_config(cfg: ScreenConfig, out_dir: str | os.PathLike | None = None) -> Path:
    """Write the screen of ``cfg`` (e.g. a preset's config changed with ``dataclasses.replace``)
    to ``out_dir`` (default: the cache) and return its directory, as :func:`generate_screen`."""
    name, size, seed = cfg.name, cfg.size, cfg.seed
    target = Path(out_dir) if out_dir is not None else default_location(cfg)
    if is_complete(target, cfg):
        return target
    if target.exists():
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        elif out_dir is None:  # a stale cache entry of ours (e.g. a different version): replace
            shutil.rmtree(target)
        else:
            raise CellbenchError(
                f"{target} already exists and is not a complete {name} screen of this "
                f"configuration (size={size}, seed={seed}); remove it or pass another --out"
            )
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target.parent)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        _write(cfg, tmp)
        try:
            os.replace(tmp, target)
        except OSError:
            if not is_complete(target, cfg):  # not a concurrent writer that finished first
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def ensure_screen(name: str, size: str = "quick", seed: int = 0) -> Path:
    """The cached screen's directory, generating it once if needed."""
    return generate_screen(name, size, seed, out_dir=None)
