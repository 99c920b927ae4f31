"""The leaderboard from a temporary results store of fake but well-formed result JSONs."""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest
from _report_fakes import write_model, write_result
from scipy import stats

from cellbench.report import tables
from cellbench.report.store import load_results, short_variant


@pytest.fixture()
def store(tmp_path):
    root = tmp_path / "results"
    write_model(root, "cwa-msn", [0.30, 0.32, 0.37])
    write_model(root, "single-well-msn", [0.20, 0.22, 0.21])
    write_model(root, "cropmae-cross", [0.25, 0.27])
    write_model(root, "cropmae-single", [0.24, 0.26])
    write_model(root, "oracle", [0.90, 0.91, 0.92])
    write_model(root, "random", [0.10, 0.11, 0.09])
    write_model(root, "nuisance-only", [0.05, 0.06, 0.07])
    write_model(root, "vit-wsl", [0.15])
    return root


def test_reader_is_tolerant_and_finds_seeds(store):
    recs = load_results(store)
    assert len(recs) == (3 + 3 + 2 + 2 + 3 + 3 + 3 + 1) * 4
    cwa = [r for r in recs if r["model"] == "cwa-msn" and r["task"] == "gene_gene"]
    assert sorted(r["seed"] for r in cwa) == [0, 1, 2]
    assert {r["variant"] for r in cwa} == {"quick"}
    assert load_results(store / "does-not-exist") == []


def test_reader_uses_the_results_store_and_skips_a_torn_file(tmp_path):
    # cellbench.results.ResultsStore.iter_results is the reader; a file that is not valid JSON
    # (only a foreign or half-copied file can be) is skipped with a warning, the others are read
    write_model(tmp_path, "cwa-msn", [0.3], tasks=("gene_gene",))
    bad = tmp_path / "synthetic-quick" / "cwa-msn" / "quick-seed9" / "gene_gene.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    with pytest.warns(UserWarning, match="quick-seed9"):
        recs = load_results(tmp_path)
    assert [(r["model"], r["seed"]) for r in recs] == [("cwa-msn", 0)]


def test_reader_skips_a_file_lying_at_another_records_path(tmp_path):
    # the one reader checks a file's identity against where it lies: a copied file is named
    path = write_result(tmp_path, "synthetic-quick", "cwa-msn", "quick-seed0", "gene_gene", 0, {})
    moved = path.parent.parent / "quick-seed1" / "gene_gene.json"
    moved.parent.mkdir()
    moved.write_text(path.read_text())
    warned: list[str] = []
    recs = load_results(tmp_path, warn=warned.append)
    assert [r["checkpoint"] for r in recs] == ["quick-seed0"]
    assert len(warned) == 1 and "quick-seed1" in warned[0] and "lies elsewhere" in warned[0]


def test_mean_std_and_interval_over_seeds(store):
    df = tables.leaderboard_frame(load_results(store))
    row = df.filter(pl.col("model") == "cwa-msn").row(0, named=True)
    vals = np.array([0.30, 0.32, 0.37])
    assert row["n_seeds"] == 3 and row["seeds"] == "0 1 2"
    assert row["corum_mean"] == pytest.approx(vals.mean())
    assert row["corum_std"] == pytest.approx(vals.std(ddof=1))
    lo, hi = stats.t.interval(0.95, df=2, loc=vals.mean(), scale=stats.sem(vals))
    assert (row["corum_ci_low"], row["corum_ci_high"]) == (pytest.approx(lo), pytest.approx(hi))
    # other sources and tasks are aggregated the same way
    assert row["humap_mean"] == pytest.approx(vals.mean() - 0.05)
    assert row["ap_max_mean"] == pytest.approx(0.26)  # 0.25, 0.26, 0.27
    assert row["batch_predictability_std"] == pytest.approx(0.1)
    assert row["ap_max_z_mean"] == pytest.approx(
        np.mean([(a - 0.2) / math.hypot(0.01, 0.003) for a in (0.25, 0.26, 0.27)])
    )
    two = df.filter(pl.col("model") == "cropmae-cross").row(0, named=True)
    assert two["n_seeds"] == 2 and two["corum_std"] == pytest.approx(np.std([0.25, 0.27], ddof=1))
    assert two["corum_ci_low"] is None  # no interval below 3 seeds
    one = df.filter(pl.col("model") == "vit-wsl").row(0, named=True)
    assert one["n_seeds"] == 1 and one["corum_std"] is None
    assert row["train_hours"] == pytest.approx(0.1)


def test_floor_and_ceiling_rows(store, tmp_path):
    df = tables.leaderboard_frame(load_results(store))
    roles = dict(zip(df["model"], df["role"], strict=True))
    assert (
        roles["oracle"] == "ceiling"
        and roles["random"] == "floor"
        and roles["nuisance-only"] == "floor"
    )
    order = df["model"].to_list()
    assert order[0] == "oracle" and set(order[-2:]) == {"random", "nuisance-only"}
    # models between, best CORUM first
    assert order[1:-2] == [
        "cwa-msn",
        "cropmae-cross",
        "cropmae-single",
        "single-well-msn",
        "vit-wsl",
    ]
    # a synthetic leaderboard without them says which are missing and how to get them
    lone = tmp_path / "lone"
    write_model(lone, "cwa-msn", [0.3])
    text = tables.write_leaderboard(load_results(lone), tmp_path / "out")["synthetic-quick"]
    assert (
        "Missing reference rows: nuisance-only, oracle, random" in text
    )  # the cards with role floor or ceiling
    assert "`cellbench run --model oracle`" in text


def test_reported_and_measured_never_mixed(store, tmp_path):
    out = tmp_path / "leaderboard"
    texts = tables.write_leaderboard(load_results(store), out)
    assert set(texts) == {"synthetic-quick"}
    csv = pl.read_csv(out / "leaderboard_synthetic-quick.csv")
    # measured rows and the computed chance row, each labelled by its source
    assert set(csv["provenance"]) == {"measured", "chance"} and set(csv["block"]) == {
        "measured",
        "chance",
    }
    assert set(csv["source"]) == {"synthetic", "chance"}
    chance = csv.filter(pl.col("model") == "chance").row(0, named=True)
    assert chance["corum_mean"] == pytest.approx(0.10) and chance["role"] == "floor"
    assert not set(csv["model"]) & {"phenom-1", "phenom-2", "cellclip", "molphenix", "cloome"}
    rep = pl.read_csv(out / "leaderboard_reported.csv")
    assert set(rep["provenance"]) == {"reported"}
    assert set(rep["block"]) == {"reported (paper, real RxRx3-core)"}
    assert rep.filter(pl.col("model") == "cwa-msn")["corum"][0] == 0.386
    assert rep.filter(pl.col("model") == "openphenom")["ap_max_z_flag"][0] == "†"
    md = (out / "leaderboard_synthetic-quick.md").read_text()
    measured, reported = md.split("## reported (paper, real RxRx3-core)")
    assert "0.386" not in measured and "Phenom-2" not in measured
    assert "0.386" in reported and "± 0.0" not in reported.split("CWA-MSN (Ours)")[1].split("|")[1]
    assert "[" in measured  # intervals in the file
    # the terminal version is compact (no intervals) but has the same blocks
    assert "[0." not in texts["synthetic-quick"].split("### cross-well")[0]


def test_cross_vs_single_well_verdicts(store):
    long = tables.long_results(load_results(store))
    cmp = tables.cross_vs_single(long)
    msn = cmp.filter(pl.col("family") == "MSN").row(0, named=True)
    a, b = np.array([0.30, 0.32, 0.37]), np.array([0.20, 0.22, 0.21])
    res = stats.ttest_ind(a, b, equal_var=False)
    lo, hi = res.confidence_interval(0.95)
    assert msn["difference"] == pytest.approx(a.mean() - b.mean())
    assert (msn["ci_low"], msn["ci_high"]) == (pytest.approx(lo), pytest.approx(hi))
    assert msn["verdict"] == "cross-well better"
    crop = cmp.filter(pl.col("family") == "CropMAE").row(0, named=True)
    assert crop["verdict"] == "no clear difference"


def test_latest_result_wins_and_real_data_block(tmp_path):
    root = tmp_path / "r"
    write_model(root, "cwa-msn", [0.3], dataset="rxrx3-core", synthetic=False, tasks=("gene_gene",))
    # a re-run of the same variant and seed (checkpoint named differently), created later, wins
    write_result(
        root,
        "rxrx3-core",
        "cwa-msn",
        "quick_s0",
        "gene_gene",
        0,
        {"CORUM": {"n_relationships": 1209, "recall_0.05_0.95": 0.4, "recall_0.1_0.9": 0.5}},
        synthetic=False,
        created="2026-11-25T00:00:00",
    )
    df = tables.leaderboard_frame(load_results(root))
    assert df.height == 1 and df["corum_mean"][0] == pytest.approx(0.4)
    text = tables.write_leaderboard(load_results(root), tmp_path / "o")["rxrx3-core"]
    assert "real data" in text and "Missing reference rows" not in text


def test_cli_leaderboard_and_paper(store, tmp_path):
    from typer.testing import CliRunner

    from cellbench.cli import app

    runner = CliRunner()
    out = tmp_path / "lb"
    res = runner.invoke(app, ["leaderboard", "--results", str(store), "--out", str(out)])
    assert res.exit_code == 0, res.output
    # the terminal table (compact by default; --wide gives the markdown of the files)
    assert any(line.startswith("Oracle (ground truth)") for line in res.output.splitlines())
    assert "reported (paper, real RxRx3-core)" in res.output
    assert (out / "leaderboard_synthetic-quick.csv").exists()

    res = runner.invoke(app, ["paper", "--results", str(store), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "paper" / "table1_gene_gene.tex").exists()
    t3 = pl.read_csv(
        out / "paper" / "measured" / "table3_single_vs_cross_well_measured_synthetic-quick.csv"
    )
    assert t3["model"].to_list() == ["random", "single-well-msn", "cwa-msn"]
    assert set(t3["provenance"]) == {"measured"}
    for stem in (
        "figure1_efficiency_reported",
        "figure1_efficiency_with_measured_synthetic-quick",
        "figure3_compound_gene_synthetic-quick",
        "ablation_single_vs_cross_well",
    ):
        for ext in (".png", ".pdf", ".csv"):
            assert (out / "figures" / f"{stem}{ext}").exists(), stem + ext

    # bad input: a clear message, exit code 2, nothing written
    empty_out = tmp_path / "none"
    res = runner.invoke(
        app, ["leaderboard", "--results", str(tmp_path / "missing"), "--out", str(empty_out)]
    )
    assert res.exit_code == 2 and "no results directory" in res.output
    res = runner.invoke(
        app, ["paper", "--results", str(store), "--dataset", "nope", "--out", str(empty_out)]
    )
    assert res.exit_code == 2 and "synthetic-quick" in res.output
    assert not empty_out.exists()


def test_pipeline_checkpoint_names_and_nested_config(tmp_path):
    # `cellbench run` names checkpoints "{preset}-seed{seed}[-proto{N}]" and keeps the trainer's
    # config nested; seeds must aggregate and the prototype count must be found
    for seed, corum in enumerate((0.30, 0.34)):
        write_result(
            tmp_path,
            "synthetic-quick",
            "cwa-msn",
            f"quick-seed{seed}-proto512",
            "gene_gene",
            seed,
            {"CORUM": {"n_relationships": 10, "recall_0.05_0.95": corum, "recall_0.1_0.9": corum}},
            config={"preset": "quick", "prototypes": None, "train": {"num_prototypes": 512}},
            timings={"train": 720.0, "train_cpu": 2160.0 if seed else 0.3},  # seed 0 reused
        )
    df = tables.leaderboard_frame(load_results(tmp_path))
    assert df.height == 1
    row = df.row(0, named=True)
    assert (row["variant"], row["n_seeds"], row["prototypes"]) == ("quick-proto512", 2, 512)
    assert row["corum_mean"] == pytest.approx(0.32) and row["train_hours"] == pytest.approx(0.2)
    # Table 4's CPU hours: the training's CPU seconds (all threads), not its wall time
    assert row["train_cpu_hours"] == pytest.approx(0.6)
    assert tables._hours(row["train_cpu_hours"], row["train_hours"]) == "0.600"
    assert tables._hours(None, row["train_hours"]) == "0.200 (wall)"


def test_nan_scores_are_missing_not_zero(tmp_path):
    # the compound-gene engine writes z = NaN when both stds are 0; json keeps it as NaN
    scores = {
        "rows": [
            {"concentration": 10.0, "average_precision": 0.3, "auc_roc": 0.6},
            {
                "concentration": "max",
                "average_precision": 0.3,
                "auc_roc": 0.6,
                "z_average_precision": float("nan"),
                "z_auc_roc": 1.5,
            },
        ]
    }
    write_result(tmp_path, "synthetic-quick", "cwa-msn", "quick-seed0", "compound_gene", 0, scores)
    row = tables.leaderboard_frame(load_results(tmp_path)).row(0, named=True)
    assert row["ap_max_mean"] == pytest.approx(0.3) and row["auc_max_z_mean"] == pytest.approx(1.5)
    assert row["ap_max_z_mean"] is None and row["ap_max_z_n"] == 0


def test_probe_trace_line():
    from cellbench.report.run_summary import probe_trace
    from cellbench.results import ResultRecord

    def health(history):
        return ResultRecord(
            "cwa-msn", "quick-seed0", "synthetic-quick", "health", {"history": history}
        )

    line = probe_trace(
        health(
            [{"step": 0, "probe_recall": 0.1}, {"step": 100}, {"step": 200, "probe_recall": 0.25}]
        )
    )
    assert "0.100 @ step 0" in line and "0.250 @ step 200" in line
    assert probe_trace(None) is None and probe_trace(health([{"step": 5}])) is None


def test_cross_vs_single_lower_is_better_flips_the_verdict():
    rows = []
    for model, values in (
        ("cwa-msn", [0.02, 0.03, 0.025]),
        ("single-well-msn", [0.30, 0.35, 0.32]),
    ):
        for seed, v in enumerate(values):
            rows.append(
                {
                    "dataset": "d",
                    "model": model,
                    "variant": "quick",
                    "seed": seed,
                    "metric": "well_shortcut_rate",
                    "value": v,
                }
            )
    long = pl.DataFrame(rows)
    low = tables.cross_vs_single(long, "well_shortcut_rate", lower_is_better=True).row(
        0, named=True
    )
    high = tables.cross_vs_single(long, "well_shortcut_rate").row(0, named=True)
    assert low["difference"] < 0 and low["verdict"] == "cross-well better"
    assert high["verdict"] == "single-well better"


def test_training_hours_come_from_the_training_log_when_a_run_was_reused():
    base = {
        "dataset": "d",
        "model": "cwa-msn",
        "checkpoint": "quick-seed0",
        "seed": 0,
        "synthetic": True,
        "provenance": "measured",
        "config": {},
    }
    records = [
        {
            **base,
            "task": "gene_gene",
            "timings": {"train": 0.1},
            "scores": {"CORUM": {"recall_0.05_0.95": 0.2, "n_relationships": 10}},
        },
        {**base, "task": "health", "timings": {"train": 0.1}, "scores": {"elapsed_s": 7200.0}},
    ]
    row = tables.leaderboard_frame(records).row(0, named=True)
    assert row["train_hours"] == pytest.approx(2.0)


def _set_simulator(root, model, version):
    for path in root.glob(f"*/{model}/*/*.json"):
        rec = json.loads(path.read_text())
        path.write_text(json.dumps({**rec, "simulator_version": version}))


def test_results_of_two_simulator_versions_are_never_mixed(tmp_path):
    from typer.testing import CliRunner

    from cellbench.cli import app
    from cellbench.report.store import newest_simulator

    root = tmp_path / "r"
    write_model(root, "cwa-msn", [0.30, 0.32])  # 2 seeds x 4 tasks, old simulator
    write_model(root, "random", [0.10])  # 4 results, new simulator
    write_model(root, "oracle", [0.9], dataset="other")  # another dataset, one version only
    _set_simulator(root, "cwa-msn", "cellbench-sim-1.9")
    _set_simulator(root, "random", "cellbench-sim-1.10")  # newer: 10 > 9 numerically
    _set_simulator(root, "oracle", "cellbench-sim-1.4")

    kept, warnings = newest_simulator(load_results(root))
    assert {r["model"] for r in kept} == {"random", "oracle"}
    assert len(warnings) == 1 and "synthetic-quick" in warnings[0]
    assert "cellbench-sim-1.9" in warnings[0] and "keeping only cellbench-sim-1.10" in warnings[0]
    assert "dropped 8 result(s)" in warnings[0]

    res = CliRunner().invoke(
        app, ["leaderboard", "--results", str(root), "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 0, res.output
    assert "warning: synthetic-quick" in res.output and "dropped 8" in res.output
    board = pl.read_csv(tmp_path / "o" / "leaderboard_synthetic-quick.csv")
    assert "cwa-msn" not in board["model"].to_list() and "random" in board["model"].to_list()

    # results without a version beside versioned ones are a mix too; all unversioned is not
    write_model(root, "vit-wsl", [0.15], dataset="other")
    _, warnings = newest_simulator(load_results(root))
    assert any("other" in w and "unknown" in w and "dropped 4" in w for w in warnings)
    unversioned = [{"dataset": "rxrx3-core", "model": "m"}] * 2
    assert newest_simulator(unversioned) == (unversioned, [])


def _variant(model, **kw):
    """A real content-named variant (checkpoint id without its seed), as `cellbench run`
    names it."""
    from cellbench import registry
    from cellbench.pipeline import checkpoint_id

    preset = kw.pop("preset", "quick")
    ck = checkpoint_id(
        model, registry.metadata(model), preset, 0, kw.get("prototypes"), kw.get("steps")
    )
    return ck.rsplit("-seed", 1)[0]


def _cfg(steps, prototypes=64):
    """A run's resolved training config (distinct configs are distinct weights)."""
    return {"train": {"max_steps": steps, "num_prototypes": prototypes}}


def test_main_rows_prototype_sweep_and_pairing_use_content_named_variants(tmp_path):
    # a model's row is its trained preset, never its shorter-named --steps 0 run; Table 5 keeps
    # the sweep's budget only; cross vs single pairs runs whose hashes differ by model
    root = tmp_path / "results"
    default = _variant("cwa-msn")
    write_model(root, "cwa-msn", [0.30, 0.32, 0.37], variant=default, config=_cfg(600))
    write_model(
        root, "cwa-msn", [0.20, 0.21, 0.22], variant=_variant("cwa-msn", steps=0), config=_cfg(0)
    )
    write_model(
        root,
        "cwa-msn",
        [0.25, 0.26, 0.24],
        variant=_variant("cwa-msn", preset="standard"),
        config=_cfg(2400),
    )
    write_model(
        root,
        "cwa-msn",
        [0.28, 0.29, 0.27],
        variant=_variant("cwa-msn", prototypes=256),
        config=_cfg(600, 256),
    )
    write_model(root, "single-well-msn", [0.20, 0.22, 0.21], variant=_variant("single-well-msn"))
    frame = tables.leaderboard_frame(load_results(root))
    t3 = tables.measured_paper_table(3, frame, "synthetic-quick")
    assert t3["variant"].to_list() == [
        _variant("single-well-msn"),
        default,
        _variant("cwa-msn", steps=0),
    ]
    assert t3["display"][2].startswith("untrained")
    t5 = tables.measured_paper_table(5, frame, "synthetic-quick")
    assert t5["variant"].to_list() == [default, _variant("cwa-msn", prototypes=256)]
    cmp = tables.cross_vs_single(tables.long_results(load_results(root)))
    row = cmp.filter(pl.col("family") == "MSN").row(0, named=True)
    assert row["variant"] == "quick-steps600"
    assert row["difference"] == pytest.approx(np.mean([0.30, 0.32, 0.37]) - 0.21)


def test_trained_vs_untrained_pairs_seeds_and_shares_a_trainers_untrained_run(tmp_path):
    # each trained variant minus the --steps 0 run of the same seed; single-well MSN has no
    # untrained run of its own and shares CWA-MSN's (same trainer, same network); the
    # standard preset is quick trained longer, so quick's untrained run is its floor too
    root = tmp_path / "results"
    trained, untrained = [0.30, 0.32, 0.37], [0.20, 0.25, 0.21]
    write_model(root, "cwa-msn", trained, variant=_variant("cwa-msn"), config=_cfg(600))
    write_model(root, "cwa-msn", untrained, variant=_variant("cwa-msn", steps=0), config=_cfg(0))
    write_model(
        root,
        "cwa-msn",
        [0.22, 0.24],
        variant=_variant("cwa-msn", preset="standard"),
        config=_cfg(2400),
    )
    write_model(root, "single-well-msn", [0.19, 0.22, 0.20], variant=_variant("single-well-msn"))
    write_model(root, "cropmae-single", [0.3, 0.3, 0.3], variant=_variant("cropmae-single"))
    res = tables.trained_vs_untrained(tables.long_results(load_results(root)))
    by = {(r["model"], short_variant(r["variant"])): r for r in res.iter_rows(named=True)}
    assert set(by) == {
        ("cwa-msn", "quick-steps600"),
        ("cwa-msn", "standard-steps2400"),
        ("single-well-msn", "quick-steps600"),
    }  # CropMAE has no untrained run stored: no row
    row = by[("cwa-msn", "quick-steps600")]
    ref = stats.ttest_rel(trained, untrained)
    lo, hi = ref.confidence_interval(0.95)
    assert row["difference"] == pytest.approx(np.mean(trained) - np.mean(untrained))
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(lo), pytest.approx(hi))
    assert row["verdict"] == ("above" if lo > 0 else "no clear difference")
    sw = by[("single-well-msn", "quick-steps600")]
    assert sw["untrained"] == "cwa-msn" and sw["verdict"] == "no clear difference"
    std = by[("cwa-msn", "standard-steps2400")]
    assert std["n_seeds"] == 2 and std["difference"] == pytest.approx(0.005)
