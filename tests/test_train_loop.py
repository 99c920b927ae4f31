"""The shared training loop: loss goes down, resume equals an uninterrupted run, determinism."""

from __future__ import annotations

import json

import pytest
import torch
from _train_fakes import FakeDataset  # noqa: I001

from cellbench.train.loop import train
from cellbench.train.presets import resolve


@pytest.fixture(scope="module")
def dataset():
    return FakeDataset()


def _run(dataset, tmp, *, model="cwa-msn", seed=0, resume=False, stop_at=None, **over):
    config = resolve("tiny", over)
    return train(
        model,
        dataset,
        config,
        seed=seed,
        out_dir=tmp,
        resume=resume,
        progress=False,
        stop_at=stop_at,
    )


def _weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_loss_decreases_and_health_moves(dataset, tmp_path):
    torch.set_num_threads(1)
    result = _run(dataset, tmp_path, max_steps=40, health_every=10)
    losses = [h["loss"] for h in result.log["history"]]
    assert sum(losses[-8:]) / 8 < sum(losses[:8]) / 8 - 0.1
    ce = [h["ce"] for h in result.log["history"]]
    me = [h["me_max"] for h in result.log["history"]]
    assert max(ce) - min(ce) > 1e-3 and max(me) - min(me) > 1e-3  # not frozen
    assert not result.log["warnings"]
    assert all(0 < h["proto_used"] <= 1 for h in result.log["history"])
    assert [h["step"] for h in result.log["health"]] == [10, 20, 30, 40]
    for rec in result.log["health"]:
        assert 0.0 <= rec["well_shortcut_rate"] <= 1.0 and rec["effective_rank"] >= 1.0
    log = json.loads((tmp_path / "train_log.json").read_text())
    assert log["steps_done"] == 40 and log["stopped"] == "completed"


def test_resume_equals_uninterrupted_run(dataset, tmp_path):
    torch.set_num_threads(1)
    full = _run(dataset, tmp_path / "full")
    # "killed" after step 7: only the step-5 checkpoint survives; resume runs steps 5..11
    killed = _run(dataset, tmp_path / "resumed", stop_at=7)
    assert killed.model_path is None and killed.stopped == "stop_at"
    assert torch.load(killed.checkpoint_path, weights_only=True)["step"] == 5
    resumed = _run(dataset, tmp_path / "resumed", resume=True)
    assert resumed.steps_done == full.steps_done == 12
    _assert_same(_weights(full.model_path), _weights(resumed.model_path))
    full_opt = torch.load(full.checkpoint_path, weights_only=True)["optimizer"]["state"]
    res_opt = torch.load(resumed.checkpoint_path, weights_only=True)["optimizer"]["state"]
    for k in full_opt:
        assert torch.equal(full_opt[k]["exp_avg"], res_opt[k]["exp_avg"])
    assert [h["loss"] for h in full.log["history"]] == [h["loss"] for h in resumed.log["history"]]


def test_same_seed_same_weights_other_seed_differs(dataset, tmp_path):
    torch.set_num_threads(1)
    a = _run(dataset, tmp_path / "a", max_steps=4, seed=3)
    b = _run(dataset, tmp_path / "b", max_steps=4, seed=3)
    c = _run(dataset, tmp_path / "c", max_steps=4, seed=4)
    _assert_same(_weights(a.model_path), _weights(b.model_path))
    wa, wc = _weights(a.model_path), _weights(c.model_path)
    assert any(not torch.equal(wa[k], wc[k]) for k in wa)


def test_same_seed_same_file_bytes(dataset, tmp_path):
    """model.pt and checkpoint.pt are byte-reproducible: their SHA-256 names the weights."""
    torch.set_num_threads(1)
    a = _run(dataset, tmp_path / "a", max_steps=4, seed=3)
    b = _run(dataset, tmp_path / "b", max_steps=4, seed=3)
    assert a.model_path.read_bytes() == b.model_path.read_bytes()
    assert a.checkpoint_path.read_bytes() == b.checkpoint_path.read_bytes()


def test_resume_keeps_the_wall_clock_times(dataset, tmp_path):
    torch.set_num_threads(1)
    _run(dataset, tmp_path, stop_at=7)
    resumed = _run(dataset, tmp_path, resume=True)
    times = [h.get("time_s") for h in resumed.log["history"]]
    assert all(t is not None and t >= 0 for t in times)


def test_resume_refuses_another_config(dataset, tmp_path):
    from cellbench.errors import CellbenchError

    _run(dataset, tmp_path, stop_at=6)
    with pytest.raises(CellbenchError, match="lr"):
        _run(dataset, tmp_path, resume=True, lr=0.5)


def test_time_budget_stops_and_writes_a_model(dataset, tmp_path):
    result = _run(dataset, tmp_path, max_steps=10_000, time_budget_s=0.5)
    assert result.stopped == "time_budget" and 0 < result.steps_done < 10_000
    assert result.model_path.exists()


def test_trained_checkpoint_becomes_an_encoder(dataset, tmp_path):
    from cellbench.methods.msn import create

    result = _run(dataset, tmp_path, max_steps=2)
    enc = create(checkpoint=str(result.model_path))
    assert enc.channels == dataset.channels and enc.weights_sha256
    x = torch.randn(3, len(dataset.channels), 24, 24)
    out = enc.embed(x)
    assert out.shape == (3, enc.embed_dim) and torch.isfinite(out).all()
    # the embedding is the EMA target backbone's CLS token
    from cellbench.train.export import load_method

    method, _ = load_method(result.model_path)
    torch.testing.assert_close(out, method.embed_tokens(x))
    with pytest.raises(Exception, match="single-well-msn"):
        from cellbench.methods.msn import create_single_well

        create_single_well(checkpoint=str(result.model_path))


def test_cli_train_on_the_tiny_synthetic_screen(tmp_path, monkeypatch):
    import typer
    from typer.testing import CliRunner

    from cellbench.cli import train as train_cli

    monkeypatch.setenv("CELLBENCH_HOME", str(tmp_path / "home"))
    app = typer.Typer()
    train_cli.register(app)

    @app.command("noop")
    def _noop() -> None:  # a second command keeps typer in multi-command mode
        pass

    runner = CliRunner()
    out = tmp_path / "run"
    args = [
        "train",
        "--model",
        "cwa-msn",
        "--preset",
        "tiny",
        "--data",
        "synthetic-bray",
        "--size",
        "tiny",
        "--out",
        str(out),
        "--quiet",
        "--set",
        "max_steps=3",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / "model.pt").exists() and (out / "train_log.json").exists()
    assert json.loads((out / "train_log.json").read_text())["steps_done"] == 3
    bad = runner.invoke(app, ["train", "--model", "cwa-mns", "--quiet"])
    assert bad.exit_code == 2 and "cwa-msn" in bad.output
    bad = runner.invoke(app, args[:-1] + ["max_step=3"])
    assert bad.exit_code == 2 and "max_steps" in bad.output


def test_crop_larger_than_images_is_a_clear_error_and_writes_nothing(dataset, tmp_path):
    from cellbench.errors import CellbenchError

    with pytest.raises(CellbenchError, match="crop_size"):
        _run(dataset, tmp_path / "run", crop_size=64)
    assert not (tmp_path / "run").exists()


def test_zero_step_run_can_be_reused(dataset, tmp_path):
    """The untrained same-architecture network (`--steps 0`) writes a checkpoint too, so a
    second resume-run of the same directory reuses it instead of failing."""
    from cellbench.train.api import train_model

    first = train_model(
        "cwa-msn",
        dataset,
        preset="tiny",
        out_dir=tmp_path,
        resume=True,
        overrides={"max_steps": 0, "warmup_steps": 0},
        progress=False,
    )
    assert (tmp_path / "checkpoint.pt").exists()
    again = train_model(
        "cwa-msn",
        dataset,
        preset="tiny",
        out_dir=tmp_path,
        resume=True,
        overrides={"max_steps": 0, "warmup_steps": 0},
        progress=False,
    )
    assert again == first
    _assert_same(_weights(first), _weights(again))


def _train_app():
    import typer

    from cellbench.cli import train as train_cli

    app = typer.Typer()
    train_cli.register(app)

    @app.command("noop")
    def _noop() -> None:  # a second command keeps typer in multi-command mode
        pass

    return app


@pytest.mark.parametrize(
    ("setting", "needle"),
    [
        ("arch=nonexistent", "arch"),
        ("pooling=foo", "pooling"),
        ("num_prototypes=0", "num_prototypes"),
        ("lr=nan", "lr"),
        ("lr=-1e-3", "lr"),
        ("max_steps=-3", "max_steps"),
        ("betas=0.9", "betas"),
        ("betas=0.9,1.5", "betas"),
        ("mask_ratio=1.5", "mask_ratio"),
        ("patch_size=5", "patch_size"),
    ],
)
def test_bad_set_values_are_refused_before_training(tmp_path, setting, needle):
    from typer.testing import CliRunner

    out = tmp_path / "run"
    args = [
        "train",
        "--model",
        "cwa-msn",
        "--preset",
        "tiny",
        "--data",
        "synthetic-bray",
        "--size",
        "tiny",
        "--out",
        str(out),
        "--quiet",
        "--set",
        setting,
    ]
    res = CliRunner().invoke(_train_app(), args)
    text = " ".join(res.output.split())
    assert res.exit_code == 2 and "error" in text and needle in text, res.output
    assert isinstance(res.exception, SystemExit) and not out.exists()


@pytest.mark.parametrize("betas", ["0.9,0.95", "(0.9, 0.95)", "[0.9,0.95]", "0.9 0.95"])
def test_betas_accept_a_pair_in_any_common_syntax(betas):
    assert resolve("tiny", {"betas": betas}).betas == (0.9, 0.95)
    assert resolve("tiny", {"betas": [0.9, 0.95]}).betas == (0.9, 0.95)


def test_prototypes_are_not_gradient_clipped(dataset, tmp_path):
    """With a vanishing clip norm the clipped (encoder) gradients fall far below AdamW's eps, so
    the encoder hardly moves in one step, while the unclipped prototypes take a full ~lr step."""
    from cellbench.methods.msn import MSN
    from cellbench.train.loop import clipped_parameters

    torch.set_num_threads(1)
    config = resolve(
        "tiny",
        {
            "max_steps": 1,
            "warmup_steps": 0,
            "clip_grad": 1e-12,
            "weight_decay": 0.0,
            "final_weight_decay": 0.0,
        },
    )
    method = MSN(config, 3)
    names = {id(p): n for n, p in method.named_parameters()}
    clipped = {names[id(p)] for p in clipped_parameters(method)}
    assert "prototypes" not in clipped and "head.0.weight" in clipped
    assert any(n.startswith("backbone.") for n in clipped)
    assert not any(n.startswith("target_") for n in clipped)  # no gradient, never clipped

    torch.manual_seed(0)
    before = MSN(config, 3).state_dict()
    result = train(
        "cwa-msn", dataset, config, seed=0, out_dir=tmp_path, progress=False, health=False
    )
    after = _weights(result.model_path)
    proto_step = (after["prototypes"] - before["prototypes"]).abs().max()
    head_step = (after["head.0.weight"] - before["head.0.weight"]).abs().max()
    assert proto_step > 0.3 * config.lr
    assert head_step < 1e-3 * config.lr


def test_schedule_horizon_stretches_lr_wd_and_ema(dataset, tmp_path):
    """Default: EMA momentum reaches ema_end at the last step; with schedule_horizon 1.25 (the
    official MSN code) the schedules span 1.25x the steps: after 8 of 10 scheduled steps the
    momentum is 0.996 + 0.004 * 7/9, and lr and weight decay stop short of their ends."""
    from cellbench.train import schedules

    torch.set_num_threads(1)
    plain = _run(dataset, tmp_path / "plain", max_steps=8, warmup_steps=0, health_every=100)
    assert plain.log["history"][-1]["ema"] == pytest.approx(1.0)
    assert plain.log["history"][-1]["wd"] == pytest.approx(0.4)
    long = _run(
        dataset,
        tmp_path / "long",
        max_steps=8,
        warmup_steps=0,
        health_every=100,
        schedule_horizon=1.25,
    )
    last = long.log["history"][-1]
    assert last["step"] == 8
    assert last["ema"] == pytest.approx(0.996 + 0.004 * 7 / 9)
    assert last["lr"] == pytest.approx(schedules.warmup_cosine(7, 10, 1e-3, 0))
    assert last["lr"] > plain.log["history"][-1]["lr"]
    assert last["wd"] == pytest.approx(schedules.cosine(7, 10, 0.04, 0.4)) and last["wd"] < 0.4


def test_checkpoint_without_new_config_fields_resumes(dataset, tmp_path):
    """A checkpoint written before a config field existed resumes when the run uses that
    field's default (here: schedule_horizon)."""
    torch.set_num_threads(1)
    _run(dataset, tmp_path, stop_at=6)
    ckpt = tmp_path / "checkpoint.pt"
    state = torch.load(ckpt, weights_only=True)
    del state["config"]["schedule_horizon"]
    torch.save(state, ckpt)
    resumed = _run(dataset, tmp_path, resume=True)
    assert resumed.steps_done == 12 and resumed.stopped == "completed"


def test_a_damaged_best_weights_file_is_a_plain_error(dataset, tmp_path):
    """A corrupt ``best_heldout.pt`` is named as such (no torch traceback or advice)."""
    from cellbench.errors import InputError
    from cellbench.train.heldout import restore_best

    path = tmp_path / "best_heldout.pt"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(InputError, match="best-weights file") as err:
        restore_best(path, None, [], [])
    assert "weights_only" not in str(err.value) and "\x1b[" not in str(err.value)
