"""Atomic writes: all or nothing, and files get the usual permissions (not mkstemp's 0600)."""

from __future__ import annotations

import os
import stat

import pytest

from cellbench.io import atomic_path, write_json_atomic


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_atomic_write_uses_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        import importlib

        import cellbench.io as io

        importlib.reload(io)  # the module reads the umask once, at import
        path = io.write_json_atomic(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(old)
        importlib.reload(io)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert write_json_atomic(tmp_path / "s.json", {"b": 2}).read_text().strip().startswith("{")
