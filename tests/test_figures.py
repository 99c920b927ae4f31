"""Figures: files written (PNG, PDF, CSV), the CSV holds exactly the numbers drawn."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from cellbench.report import figures
from cellbench.report.paper import figure1_data

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _bars_by_panel(fig) -> dict[str, list[float]]:
    out = {}
    for ax, (panel, *_rest) in zip(fig.axes, figures.FIG1_PANELS, strict=False):
        out[panel] = sorted(p.get_width() for p in ax.patches)
    return out


def _assert_files(paths, stem):
    names = {p.name for p in paths}
    assert names == {f"{stem}.png", f"{stem}.pdf", f"{stem}.csv"}
    for p in paths:
        assert p.stat().st_size > 0
    png = next(p for p in paths if p.suffix == ".png")
    assert png.read_bytes()[:8] == PNG_MAGIC
    pdf = next(p for p in paths if p.suffix == ".pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-"


def test_figure1_reported_files_and_ratios(tmp_path):
    paths = figures.figure1(tmp_path)
    _assert_files(paths, "figure1_efficiency_reported")
    csv = pl.read_csv(tmp_path / "figure1_efficiency_reported.csv")
    assert csv.height == 4 * 9 and set(csv["kind"]) == {"reported"}
    cwa = {
        r["panel"]: r["value"]
        for r in csv.filter(pl.col("model") == "cwa-msn").iter_rows(named=True)
    }
    assert cwa["a"] == pytest.approx(0.386)
    assert cwa["b"] == pytest.approx(1.93)  # .386 / 0.2M images
    assert round(cwa["c"], 1) == 17.5  # .386 / 0.022B parameters
    assert cwa["d"] == pytest.approx(0.386 / (0.2 * 0.022))
    # the CSV reproduces the ratios computed from Table 1 for every method
    data = figure1_data()
    for panel, col, *_ in figures.FIG1_PANELS:
        want = dict(zip(data["model"], data[col], strict=True))
        got = dict(zip(*csv.filter(pl.col("panel") == panel).select("model", "value"), strict=True))
        assert got == pytest.approx(want)
    assert (
        csv.filter((pl.col("model") == "openphenom") & (pl.col("panel") == "b"))["bound"][0]
        == "upper"
    )


def test_figure1_csv_equals_the_drawn_bars(tmp_path):
    measured = pl.DataFrame(
        {
            "method": ["CWA-MSN", "Random"],
            "model": ["cwa-msn", "random"],
            "dataset": ["synthetic-quick"] * 2,
            "corum": [0.31, 0.10],
            "corum_std": [0.02, 0.01],
            "n_seeds": [3, 3],
            "images_millions": [0.004, None],
            "parameters_billions": [0.0219, 0.0219],
        }
    )
    figures.figure1(tmp_path, measured=measured)
    csv = pl.read_csv(tmp_path / "figure1_efficiency_with_measured.csv")
    # a measured model without a training-image count is on panels a and c only
    rnd = csv.filter(pl.col("model") == "random")
    assert sorted(rnd["panel"]) == ["a", "c"] and set(rnd["kind"]) == {"measured"}
    assert csv.filter(
        (pl.col("kind") == "measured") & (pl.col("model") == "cwa-msn") & (pl.col("panel") == "b")
    )["value"][0] == pytest.approx(0.31 / 0.004)
    fig = figures.render_figure1(figures.figure1_plot_data(measured), title="t")
    try:
        drawn = _bars_by_panel(fig)
    finally:
        figures._pyplot().close(fig)
    for panel in "abcd":
        assert drawn[panel] == pytest.approx(sorted(csv.filter(pl.col("panel") == panel)["value"]))


# --- Figure 3 and the ablation plots, from a fake results store --------------------------
from _report_fakes import write_model  # noqa: E402

from cellbench.report.store import load_results  # noqa: E402


@pytest.fixture()
def records(tmp_path):
    root = tmp_path / "results"
    write_model(
        root,
        "cwa-msn",
        [0.30, 0.32, 0.37],
        ap=0.26,
        auc=0.56,
        config={"prototypes": 1024},
    )
    write_model(root, "single-well-msn", [0.20, 0.22, 0.21], ap=0.24, auc=0.53)
    write_model(root, "random", [0.1], ap=0.2, auc=0.5)
    for p, corum in ((256, 0.28), (512, 0.27)):
        write_model(
            root,
            "cwa-msn",
            [corum, corum + 0.02],
            variant=f"quick-p{p}",
            config={"prototypes": p},
            tasks=("gene_gene",),
        )
    return load_results(root)


def test_figure3_files_and_numbers(records, tmp_path):
    paths = figures.figure3(records, tmp_path)
    _assert_files(paths, "figure3_compound_gene_synthetic-quick")
    csv = pl.read_csv(tmp_path / "figure3_compound_gene_synthetic-quick.csv")
    # every model and the 8 concentrations + max
    assert set(csv["model"]) == {"cwa-msn", "single-well-msn", "random"}
    assert csv.filter(pl.col("model") == "single-well-msn").height == 9
    # AP at max for CWA-MSN: mean over seeds of 0.26, 0.27, 0.28; error = std over seeds
    row = csv.filter((pl.col("model") == "cwa-msn") & (pl.col("concentration") == "max")).row(
        0, named=True
    )
    assert row["ap_mean"] == pytest.approx(0.27) and row["n_seeds"] == 3
    assert row["ap_err"] == pytest.approx(0.01) and row["err_kind"] == "seeds"
    rnd = csv.filter((pl.col("model") == "random") & (pl.col("concentration") == "max")).row(
        0, named=True
    )
    assert rnd["err_kind"] == "sampling" and rnd["ap_err"] == pytest.approx(0.01)
    assert row["ap_baseline"] == pytest.approx(0.2) and row["auc_baseline_std"] == pytest.approx(
        0.004
    )
    # the drawn curves are the CSV's numbers
    curves = figures.compound_curves(records).filter(pl.col("dataset") == "synthetic-quick")
    fig = figures._render_figure3(curves, "synthetic-quick")
    try:
        drawn = [
            tuple(np.round(np.asarray(line.get_ydata(), dtype=float), 9))
            for line in fig.axes[0].lines
        ]
    finally:
        figures._pyplot().close(fig)
    for model in ("cwa-msn", "single-well-msn", "random"):
        want = (
            csv.filter((pl.col("model") == model) & (pl.col("concentration") != "max"))
            .sort("concentration_um")["ap_mean"]
            .to_numpy()
        )
        assert tuple(np.round(want, 9)) in drawn, model


def test_figure3_keeps_one_training_variant_per_model_and_the_untrained_floor():
    rows = [
        ("cwa-msn", "quick", 3),
        ("cwa-msn", "quick-steps2400", 3),
        ("cwa-msn", "quick-steps0", 3),
        ("infonce-cross", "quick-steps600", 3),
        ("infonce-cross", "quick-steps2400", 2),
        ("random", "default", 1),
    ]
    d = pl.DataFrame(
        [
            {"model": m, "variant": v, "n_seeds": n, "concentration": c}
            for m, v, n in rows
            for c in ("1", "max")
        ]
    )
    kept = figures.one_variant_per_model(d)
    assert sorted(set(zip(kept["model"], kept["variant"], strict=True))) == [
        ("cwa-msn", "quick"),
        ("cwa-msn", "quick-steps0"),
        ("infonce-cross", "quick-steps600"),
        ("random", "default"),
    ]
    assert kept.height == 8  # both concentrations of each kept curve


def test_single_vs_cross_plot(records, tmp_path):
    paths = figures.figure_single_vs_cross(records, tmp_path)
    _assert_files(paths, "ablation_single_vs_cross_well")
    csv = pl.read_csv(tmp_path / "ablation_single_vs_cross_well.csv")
    m = csv.filter(
        (pl.col("block") == "measured") & (pl.col("kind") == "mean") & (pl.col("source") == "corum")
    )
    got = dict(zip(m["model"], m["value"], strict=True))
    assert got["cwa-msn"] == pytest.approx(np.mean([0.30, 0.32, 0.37]))
    assert got["single-well-msn"] == pytest.approx(np.mean([0.20, 0.22, 0.21]))
    sd = m.filter(pl.col("model") == "cwa-msn")["std"][0]
    assert sd == pytest.approx(np.std([0.30, 0.32, 0.37], ddof=1))
    seeds = csv.filter(
        (pl.col("kind") == "seed") & (pl.col("model") == "cwa-msn") & (pl.col("source") == "corum")
    )
    assert sorted(seeds["value"]) == pytest.approx([0.30, 0.32, 0.37])
    rep = csv.filter((pl.col("block") == "reported") & (pl.col("source") == "corum"))
    assert dict(zip(rep["model"], rep["value"], strict=True)) == {
        "single-well-msn": 0.281,
        "cwa-msn": 0.386,
        "cropmae-single": 0.338,
        "cropmae-cross": 0.348,
    }
    assert rep.filter(pl.col("model") == "cropmae-single")["hours"][0] == 109
    # measured hours: the training log's 360 s, not the 0.2 s of a command that reused the run
    assert m["hours"].to_list() == pytest.approx([0.1, 0.1])


def test_prototype_sweep_plot(records, tmp_path):
    paths = figures.figure_prototypes(records, tmp_path)
    _assert_files(paths, "ablation_prototypes")
    csv = pl.read_csv(tmp_path / "ablation_prototypes.csv")
    m = csv.filter(
        (pl.col("block") == "measured") & (pl.col("kind") == "mean") & (pl.col("source") == "corum")
    )
    got = dict(zip(m["prototypes"], m["value"], strict=True))
    assert got == pytest.approx({256: 0.29, 512: 0.28, 1024: np.mean([0.30, 0.32, 0.37])})
    rep = csv.filter((pl.col("block") == "reported") & (pl.col("source") == "corum"))
    assert dict(zip(rep["prototypes"], rep["value"], strict=True)) == {
        256: 0.372,
        512: 0.344,
        1024: 0.386,
        2048: 0.369,
    }


def test_no_measured_data_writes_no_measured_figures(tmp_path):
    assert figures.figure3([], tmp_path) == []
    assert figures.figure_single_vs_cross([], tmp_path) == []
    assert figures.figure_prototypes([], tmp_path) == []
    assert not list(tmp_path.iterdir())


def test_many_curves_never_share_colour_and_style():
    from cellbench.report.figures import _colors, _linestyles

    keys = [(f"model{i}", "quick") for i in range(30)] + [("cwa-msn", "quick")]
    colors = _colors(keys)
    styles = _linestyles(keys, colors)
    pairs = [
        (tuple(colors[k]) if not isinstance(colors[k], str) else colors[k], styles[k]) for k in keys
    ]
    assert len(set(pairs)) == len(keys)


def test_prototype_sweep_ignores_runs_of_another_budget(tmp_path):
    root = tmp_path / "r"
    write_model(
        root,
        "cwa-msn",
        [0.10, 0.12],
        variant="quick",
        config={"prototypes": 64},
        tasks=("gene_gene",),
    )
    write_model(
        root,
        "cwa-msn",
        [0.50, 0.52],
        variant="quick-steps4800",
        config={"prototypes": 64},
        tasks=("gene_gene",),
    )
    write_model(
        root,
        "cwa-msn",
        [0.20, 0.22],
        variant="quick-proto256",
        config={"prototypes": 256},
        tasks=("gene_gene",),
    )
    data = figures.prototype_sweep_data(load_results(root))
    m = data.filter(
        (pl.col("block") == "measured") & (pl.col("kind") == "mean") & (pl.col("source") == "corum")
    )
    assert dict(zip(m["prototypes"], m["value"], strict=True)) == pytest.approx(
        {64: 0.11, 256: 0.21}
    )
