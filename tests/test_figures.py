"""Figures: files written (PNG, PDF, CSV), the CSV holds exactly the numbers drawn."""

from __future__ import annotations

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
    cwa = {r["panel"]: r["value"] for r in csv.filter(pl.col("model") == "cwa-msn").iter_rows(named=True)}
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
    assert csv.filter((pl.col("model") == "openphenom") & (pl.col("panel") == "b"))["bound"][0] == "upper"


def test_figure1_csv_equals_the_drawn_bars(tmp_path):
    measured = pl.DataFrame({
        "method": ["CWA-MSN", "Random"], "model": ["cwa-msn", "random"],
        "dataset": ["synthetic-quick"] * 2, "corum": [0.31, 0.10], "corum_std": [0.02, 0.01],
        "n_seeds": [3, 3], "images_millions": [0.004, None], "parameters_billions": [0.0219, 0.0219],
    })
    figures.figure1(tmp_path, measured=measured)
    csv = pl.read_csv(tmp_path / "figure1_efficiency_with_measured.csv")
    # a measured model without a training-image count is on panels a and c only
    rnd = csv.filter(pl.col("model") == "random")
    assert sorted(rnd["panel"]) == ["a", "c"] and set(rnd["kind"]) == {"measured"}
    assert csv.filter((pl.col("kind") == "measured") & (pl.col("model") == "cwa-msn")
                      & (pl.col("panel") == "b"))["value"][0] == pytest.approx(0.31 / 0.004)
    fig = figures.render_figure1(figures.figure1_plot_data(measured), title="t")
    try:
        drawn = _bars_by_panel(fig)
    finally:
        figures._pyplot().close(fig)
    for panel in "abcd":
        assert drawn[panel] == pytest.approx(sorted(csv.filter(pl.col("panel") == panel)["value"]))
