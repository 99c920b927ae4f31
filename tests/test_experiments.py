"""Every experiment runs end to end on the tiny screens (``python -m experiments.NAME``'s own
``main``, with small arguments) and writes the CSV its nox session publishes."""

from __future__ import annotations

import ast
import importlib
import math
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments import (  # noqa: E402
    budget_curve,
    digits_check,
    msn_bootstrap,
    msn_init_information,
    nuisance_ablation,
    pair_signal,
    readout_diagnostics,
    signal_check,
)
from experiments._common import OUT_DIR, mean_interval  # noqa: E402

#: every experiment module (``experiments/*.py`` but the private ``_common``), found on disk so a
#: new experiment is checked without being listed here
EXPERIMENTS = sorted(
    p.stem for p in (Path(__file__).resolve().parents[1] / "experiments").glob("[!_]*.py")
)


@pytest.fixture(params=EXPERIMENTS)
def experiment(request):
    """Each experiment module in turn."""
    return importlib.import_module(f"experiments.{request.param}")


def test_mean_interval_by_hand():
    mean, half = mean_interval([1.0, 2.0, 3.0], kind="t")
    assert mean == 2.0 and half == pytest.approx(4.302653 * 1.0 / math.sqrt(3), rel=1e-6)
    mean, half = mean_interval([1.0, 3.0], kind="normal")
    assert mean == 2.0 and half == pytest.approx(1.96 * math.sqrt(2) / math.sqrt(2))
    assert math.isnan(mean_interval([1.0])[1])
    with pytest.raises(ValueError):
        mean_interval([1.0, 2.0], kind="bootstrap")


def test_no_experiment_writes_outside_leaderboard_experiments(experiment):
    """No path literal of an experiment points into leaderboard/ but under OUT_DIR."""
    tree = ast.parse(Path(experiment.__file__).read_text())
    paths = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.startswith("leaderboard")
    ]
    assert all(p.startswith(str(OUT_DIR)) for p in paths), paths


def test_pair_signal(tmp_path):
    out = tmp_path / "pair_signal.csv"
    pair_signal.main(
        ["--screens", "synthetic-bray:tiny", "--sizes", "16", "--batches", "2"]
        + ["--batch-size", "8", "--out", str(out)]
    )
    table = pl.read_csv(out)
    assert set(table["pairing"]) == {"cross-well", "single-well"}
    assert {"oracle", "pixel-stats"} <= set(table["features"])
    assert table["accuracy"].is_between(0, 1).all() and (table["chance"] == 0.125).all()
    assert (table["batches"] == 2).all()


def test_nuisance_ablation(tmp_path):
    out = tmp_path / "nuisance_ablation.csv"
    nuisance_ablation.main(
        ["--screen", "synthetic-bray:tiny", "--variants", "as simulated", "none"]
        + ["--batches", "2", "--batch-size", "8", "--out", str(out)]
    )
    table = pl.read_csv(out)
    assert set(table["removed"]) == {"as simulated", "none"}
    assert table["accuracy"].is_between(0, 1).all()
    oracle = table.filter(pl.col("features") == "oracle (true latent)")["accuracy"]
    assert oracle.n_unique() == 1  # the biology is the same whatever term is removed


@pytest.mark.slow
def test_digits_check():
    digits = digits_check.DigitsDataset(n=96)
    curve = digits_check.run(
        "infonce-single", steps=2, eval_every=1, dataset=digits, n_eval=64, preset="tiny"
    )
    assert [r["step"] for r in curve] == [0, 1, 2]
    assert all(0 <= r["crop_pair_id"] <= 1 for r in curve) and "loss" in curve[-1]
    assert "crop_pair_id" in digits_check.format_curve("infonce", curve)


def test_msn_bootstrap(tmp_path):
    out = tmp_path / "msn_bootstrap.csv"
    variant = "quick preset (K = 64)"
    msn_bootstrap.main(
        ["--size", "tiny", "--steps", "2", "--variants", variant, "--batches", "1"]
        + ["--root", str(tmp_path / "runs"), "--out", str(out)]
    )
    row = pl.read_csv(out).row(0, named=True)
    assert row["variant"] == variant and row["steps"] == 2
    assert math.isfinite(row["ce_over_log_k"]) and row["ce_over_log_k"] > 0
    assert 0 <= row["init_crop_id_pixel_stats"] <= 1 and row["chance"] == round(1 / 64, 4)


def test_msn_init_information(tmp_path):
    out = tmp_path / "msn_init_information.csv"
    msn_init_information.main(
        ["--size", "tiny", "--preset", "tiny", "--digits", "64", "--batches", "2"]
        + ["--out", str(out)]
    )
    table = pl.read_csv(out)
    assert table.height == 6  # 3 (dataset, pairing) x 2 poolings x 1 seed
    assert set(table["pairing"]) == {"single-well", "cross-well"}
    assert set(table["pooling"]) == {"cls", "mean"}
    assert (table["info_ci_low"] <= table["info_over_log_k"]).all()
    assert table["argmax_agreement"].is_between(0, 1).all()
    assert (table["chance"] == round(1 / 16, 4)).all()  # the tiny preset's 16 prototypes
    bray = table.filter(pl.col("dataset") == "synthetic-bray-tiny")
    assert bray["simulator_version"].is_not_null().all()


def test_msn_init_information_cls_is_the_training_step():
    """With CLS pooling the measured assignments are exactly a training step's (same views,
    same generator draws), and a batch's information is 0 when its targets are all equal."""
    from cellbench.data import load_dataset
    from cellbench.data.sampling import PairSampler
    from cellbench.train.distributed import slice_batch
    from cellbench.train.loop import step_generator
    from cellbench.train.methods import build_method, method_defaults
    from cellbench.train.presets import resolve

    dataset = load_dataset("synthetic-bray", size="tiny", seed=0)
    config = resolve("tiny", method_defaults("cwa-msn", "tiny"))
    sampler = PairSampler(dataset, cross_well=True, batch_size=config.batch_size, seed=0)
    torch.manual_seed(0)
    method = build_method("cwa-msn", config, len(dataset.channels)).train()
    inputs = slice_batch(sampler.batch_at(0), 0, 1, "cpu")
    probs, targets = msn_init_information.assignments(method, inputs, step_generator(0, 0))
    with torch.no_grad():
        _, out = method(inputs, step_generator(0, 0))
    assert torch.allclose(probs, out["anchor_probs"]) and torch.allclose(targets, out["targets"])
    assert probs.shape[0] == (config.n_random_views + config.n_focal_views) * targets.shape[0]
    same = targets[:1].expand_as(targets)
    info = msn_init_information.batch_information(probs, same)
    assert info["info"] == pytest.approx(0.0, abs=1e-6)
    assert info["agreement"] == info["agreement_shuffled"]


def test_same_site_pairs_pair_each_anchor_with_itself():
    from cellbench.data import load_dataset
    from cellbench.data.sampling import PairSampler

    dataset = load_dataset("synthetic-bray", size="tiny", seed=0)
    plain = PairSampler(dataset, cross_well=False, batch_size=8, seed=0)
    same = msn_bootstrap.SameSitePairs(plain)
    batch = same.batch_at(3)
    assert np.array_equal(batch.target, batch.anchor)
    assert np.array_equal(batch.anchor, plain.batch_at(3).anchor)
    assert same.n_perturbations == plain.n_perturbations


@pytest.mark.slow
def test_signal_check(tmp_path):
    out = tmp_path / "signal_check.csv"
    signal_check.main(
        ["--size", "tiny", "--preset", "tiny", "--steps", "2", "--models", "infonce-cross"]
        + ["--eval-seeds", "2", "--root", str(tmp_path / "root"), "--out", str(out)]
    )
    table = pl.read_csv(out)
    assert table["model"].to_list() == [
        "pixel-stats",
        "oracle",
        "untrained quick ViT",
        "infonce-cross",
    ]
    assert table["corum"].is_between(0, 1).all()
    assert table["simulator_version"][0].endswith(signal_check.TAG)
    screen = signal_check.diagnostic_screen("synthetic-bray", tmp_path / "root", "tiny")
    assert screen.manifest["config"]["technical_variation"] is False


@pytest.mark.slow
def test_readout_diagnostics(tmp_path):
    out = tmp_path / "readout_diagnostics.csv"
    readout_diagnostics.main(["--size", "tiny", "--out", str(out)])
    table = pl.read_csv(out)
    assert len(table) == 6 and table["corum_recall"].is_between(0, 1).all()
    assert (table["dataset"] == "synthetic-rxrx3-core-tiny").all()


@pytest.mark.slow
def test_budget_curve(tmp_path):
    torch.set_num_threads(1)
    out = tmp_path / "budget_curve"
    budget_curve.main(
        ["--preset", "tiny", "--steps", "0", "--seeds", "0", "--models", "cwa-msn"]
        + ["--skip-references", "--eval-seeds", "2", "--out", str(out)]
    )
    table = pl.read_csv(out.with_suffix(".csv"))
    assert table["model"].to_list() == ["cwa-msn"] and table["steps"].to_list() == [0]
    assert table["n_seeds"].to_list() == [1] and 0 <= table["corum_mean"][0] <= 1
    assert out.with_suffix(".png").stat().st_size > 0
    assert OUT_DIR == Path("leaderboard/experiments")
