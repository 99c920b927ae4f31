"""``cellbench data generate | show | info`` and the configuration-hash cache."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from cellbench.cli import app
from cellbench.data import ensure_screen, load_dataset

runner = CliRunner()


def test_generate_show_info(tmp_path):
    out = tmp_path / "bray"
    res = runner.invoke(
        app,
        ["data", "generate", "synthetic-bray", "--size", "tiny", "--seed", "2", "--out", str(out)],
    )
    assert res.exit_code == 0, res.output
    man = json.loads((out / "manifest.json").read_text())
    assert man["seed"] == 2 and man["n_sites"] == len(list((out / "images").glob("*.npz")))
    png = tmp_path / "m.png"
    res = runner.invoke(
        app, ["data", "show", "synthetic-bray", "--data-dir", str(out), "--out", str(png)]
    )
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = runner.invoke(
        app,
        [
            "data",
            "show",
            "synthetic-bray",
            "--data-dir",
            str(out),
            "--out",
            str(png),
            "-p",
            "DMSO",
            "-p",
            "NOT-A-DRUG",
        ],
    )
    assert res.exit_code == 2 and "NOT-A-DRUG" in res.output
    res = runner.invoke(app, ["data", "info", "synthetic-bray", "--data-dir", str(out)])
    assert res.exit_code == 0 and "channels DNA, ER, RNA, AGP," in " ".join(res.output.split())


def test_cli_errors_are_clear(tmp_path):
    res = runner.invoke(
        app, ["data", "generate", "synthetic-nope", "--size", "tiny", "--out", str(tmp_path / "x")]
    )
    assert res.exit_code == 2 and "synthetic-rxrx3-core" in res.output
    assert not (tmp_path / "x").exists()


def test_cache_by_configuration_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("CELLBENCH_HOME", str(tmp_path / "home"))
    path = ensure_screen("synthetic-bray", "tiny", 0)
    assert path.parent == tmp_path / "home" / "data" and path.name.startswith(
        "synthetic-bray-tiny-seed0-"
    )
    stamp = (path / "manifest.json").stat().st_mtime_ns
    ds = load_dataset("synthetic-bray", size="tiny", seed=0)
    assert ds.root == path and (path / "manifest.json").stat().st_mtime_ns == stamp  # reused
    assert ensure_screen("synthetic-bray", "tiny", 1) != path
    # an incomplete cache entry (no manifest) is regenerated, not trusted
    (path / "manifest.json").unlink()
    assert (ensure_screen("synthetic-bray", "tiny", 0) / "manifest.json").is_file()


def test_check_finds_a_modified_file(tmp_path):
    out = tmp_path / "rx"
    assert (
        runner.invoke(
            app, ["data", "generate", "synthetic-rxrx3-core", "--size", "tiny", "--out", str(out)]
        ).exit_code
        == 0
    )
    res = runner.invoke(app, ["data", "check", "synthetic-rxrx3-core", "--data-dir", str(out)])
    assert res.exit_code == 0 and "ok" in res.output
    gt = out / "ground_truth.parquet"
    gt.write_bytes(gt.read_bytes()[:-1] + b"x")
    res = runner.invoke(app, ["data", "check", "synthetic-rxrx3-core", "--data-dir", str(out)])
    assert res.exit_code == 2 and "ground_truth.parquet" in res.output


def _screen_copy(tmp_path):
    import shutil

    out = tmp_path / "rx"
    shutil.copytree(ensure_screen("synthetic-rxrx3-core", "tiny", 0), out)
    return out


def test_check_refuses_manifest_paths_outside_the_screen(tmp_path):
    """A manifest entry may not make `data check` look at files outside the data root."""
    from cellbench.io import sha256_file

    out = _screen_copy(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("not part of the screen")
    man = json.loads((out / "manifest.json").read_text())
    man["files"].append(
        {"path": "../secret.txt", "bytes": secret.stat().st_size, "sha256": sha256_file(secret)}
    )
    (out / "manifest.json").write_text(json.dumps(man))
    res = runner.invoke(app, ["data", "check", "synthetic-rxrx3-core", "--data-dir", str(out)])
    text = " ".join(res.output.split())
    assert res.exit_code == 2 and "../secret.txt" in text and "outside" in text, res.output


def test_check_reports_a_malformed_manifest(tmp_path):
    out = _screen_copy(tmp_path)
    (out / "manifest.json").write_text(json.dumps({"files": [{"name": "x"}]}))
    res = runner.invoke(app, ["data", "check", "synthetic-rxrx3-core", "--data-dir", str(out)])
    assert res.exit_code == 2 and "manifest" in res.output, res.output
    assert isinstance(res.exception, SystemExit)  # a clean exit, not a KeyError


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_generate_removes_stale_temporary_folders_of_dead_runs(tmp_path):
    """A killed `data generate` leaves `.NAME.tmp-PID-*`; the next run into the same parent
    removes those whose process is gone and leaves a live writer's alone."""
    import os

    stale = tmp_path / f".bray.tmp-{_dead_pid()}-deadbeef"
    (stale / "images").mkdir(parents=True)
    (stale / "images" / "half.npz").write_bytes(b"x")
    live = tmp_path / f".bray.tmp-{os.getpid()}-cafef00d"
    live.mkdir()
    other = tmp_path / ".other-thing"
    other.mkdir()
    res = runner.invoke(
        app,
        ["data", "generate", "synthetic-bray", "--size", "tiny", "--out", str(tmp_path / "bray")],
    )
    assert res.exit_code == 0, res.output
    assert not stale.exists() and live.is_dir() and other.is_dir()


def test_is_complete_refuses_manifest_paths_outside_the_screen(tmp_path):
    from cellbench.data.synthetic.generate import is_complete

    root = tmp_path / "s"
    root.mkdir()
    (tmp_path / "outside.txt").write_text("x")
    (root / "manifest.json").write_text(
        json.dumps({"files": [{"path": "../outside.txt", "bytes": 1, "sha256": "0"}]})
    )
    assert not is_complete(root)


def test_data_commands_do_not_generate_into_a_data_dir_without_a_screen(tmp_path):
    for args in (
        ["data", "info", "synthetic-bray"],
        ["data", "check", "synthetic-bray"],
        ["data", "show", "synthetic-bray", "--out", str(tmp_path / "m.png")],
    ):
        for target in (tmp_path / "absent", tmp_path / "empty"):
            if target.name == "empty":
                target.mkdir(exist_ok=True)
            res = runner.invoke(app, [*args, "--size", "tiny", "--data-dir", str(target)])
            text = " ".join(res.output.split())
            assert res.exit_code == 2 and isinstance(res.exception, SystemExit), (args, res.output)
            assert "cellbench data generate synthetic-bray" in text and f"--out {target}" in text, (
                text
            )
            assert target.name == "empty" or not target.exists()
    assert list((tmp_path / "empty").iterdir()) == [] and not (tmp_path / "m.png").exists()
