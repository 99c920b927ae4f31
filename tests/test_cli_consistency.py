"""One command line: --version, one dataset vocabulary with suggestions, -q/--quiet wherever
progress is printed, the same --device default everywhere, no silent choice of training screen."""

from __future__ import annotations

import click
import pytest
import typer
from typer.testing import CliRunner

import cellbench
from cellbench.cli import app

runner = CliRunner()


def _command(*path: str) -> click.Command:
    cmd = typer.main.get_command(app)
    for name in path:
        cmd = cmd.commands[name]
    return cmd


def _option(cmd: click.Command, name: str) -> click.Option:
    return next(p for p in cmd.params if name in p.opts)


def test_version():
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and cellbench.__version__ in res.output, res.output


@pytest.mark.parametrize(
    "args,bad,close",
    [
        (["run", "--model", "oracle", "--preset", "tiny", "--quiet"], "rxrx3-cor", "rxrx3-core"),
        (
            ["train", "--model", "cwa-msn", "--preset", "tiny", "--size", "tiny", "--quiet"],
            "synthetic-brya",
            "synthetic-bray",
        ),
        (
            ["embed", "--model", "pixel-stats", "--size", "tiny", "--quiet"],
            "synthetic-brya",
            "synthetic-bray",
        ),
        (["data", "info", "--size", "tiny"], "synthetic-brya", "synthetic-bray"),
        (["data", "generate", "--size", "tiny"], "synthetic-brya", "synthetic-bray"),
    ],
    ids=["run", "train", "embed", "data-info", "data-generate"],
)
def test_a_misspelt_dataset_is_refused_with_a_suggestion(args, bad, close, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = [*args[:2], bad, *args[2:]] if args[0] == "data" else [*args, "--data", bad]
    res = runner.invoke(app, args)
    text = " ".join(res.output.split())
    assert res.exit_code == 2 and isinstance(res.exception, SystemExit), (res.output, res.exception)
    assert f"Did you mean '{close}'" in text and "Use one of:" in text, text
    assert not any(tmp_path.iterdir())


def test_run_names_what_it_accepts_for_a_dataset_of_another_command():
    res = runner.invoke(app, ["run", "--model", "oracle", "--data", "synthetic-bray", "--quiet"])
    text = " ".join(res.output.split())
    assert res.exit_code == 2 and "synthetic-rxrx3-core, rxrx3-core" in text, text


def test_run_speaks_the_same_dataset_names():
    # the full name of the screen `run --data synthetic` means is accepted too: the next check
    # to fail is the model's, not the dataset's
    res = runner.invoke(
        app, ["run", "--model", "no-such-model", "--data", "synthetic-rxrx3-core", "--quiet"]
    )
    assert res.exit_code == 2 and "no-such-model" in res.output and "--data" not in res.output, (
        res.output
    )


@pytest.mark.parametrize(
    "path", [("run",), ("train",), ("embed",), ("evaluate",), ("data", "realism")]
)
def test_every_command_that_prints_progress_has_quiet(path):
    opts = _option(_command(*path), "--quiet").opts
    assert "-q" in opts and "--quiet" in opts, (path, opts)


def test_embed_device_defaults_like_run_and_train():
    defaults = {
        name: _option(_command(name), "--device").default for name in ("run", "train", "embed")
    }
    assert len(set(defaults.values())) == 1, defaults


def test_run_on_rxrx3_says_which_screen_a_trainable_model_trains_on(tmp_path):
    res = runner.invoke(
        app,
        [
            "run",
            "--model",
            "cwa-msn",
            "--preset",
            "tiny",
            "--data",
            "rxrx3-core",
            "--data-dir",
            str(tmp_path / "absent"),
            "--quiet",
        ],
    )
    text = " ".join(res.output.split())
    assert "trains on synthetic-bray" in text, text
