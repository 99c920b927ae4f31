"""`cellbench leaderboard`: a table that fits a terminal, files only where --out says, the
committed results by default in the checkout, and a self-contained HTML page."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest
from _report_fakes import write_model
from typer.testing import CliRunner

from cellbench import registry
from cellbench.cli import app
from cellbench.pipeline import checkpoint_id
from cellbench.report import build
from cellbench.report.store import load_results, variant_of

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent


def _variant(model="cwa-msn", steps=None):
    return variant_of(checkpoint_id(model, registry.metadata(model), "quick", 0, None, steps))


@pytest.fixture()
def store(tmp_path):
    root = tmp_path / "results"
    write_model(
        root,
        "cwa-msn",
        [0.30, 0.32, 0.37],
        variant=_variant(),
        config={"config_hash": "c0ffee1234"},
    )
    write_model(root, "cwa-msn", [0.11, 0.10, 0.12], variant=_variant(steps=0))
    write_model(root, "single-well-msn", [0.20, 0.22, 0.21], variant=_variant("single-well-msn"))
    write_model(root, "oracle", [0.90, 0.91, 0.92], variant="none")
    write_model(root, "random", [0.10, 0.11, 0.09], variant="default")
    write_model(root, "nuisance-only", [0.05, 0.06, 0.07], variant="none")
    write_model(root, "vit-wsl", [0.15], variant="released")
    for path in root.rglob("*.json"):  # provenance as `cellbench run` stores it
        rec = json.loads(path.read_text())
        rec["simulator_version"] = "cellbench-sim-2.0"
        rec["hashes"] = {"data": "da7a5eed", "embeddings": "e" * 64}
        path.write_text(json.dumps(rec))
    return root


def test_the_default_table_fits_100_columns_and_writes_nothing(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["leaderboard", "--results", str(store)])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert max(len(line) for line in lines) <= 100, max(lines, key=len)
    header = next(line for line in lines if line.startswith("model"))
    for col in ("seeds", "CORUM ↑", "HuMAP ↑", "AP@max ↑", "batch ↓", "shortcut ↓", "source"):
        assert col in header
    assert any(line.startswith("chance") and line.rstrip().endswith("chance") for line in lines)
    assert any(line.startswith("untrained CWA-MSN ") for line in lines)
    assert any(line.startswith("random ViT-S/16") and "synthetic" in line for line in lines)
    assert any(line.rstrip().endswith("reported") for line in lines)  # the paper's rows, labelled
    assert "0.330±0.036" in res.output  # CWA-MSN's CORUM mean±std over three seeds
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]  # no ./leaderboard written
    assert "written" not in res.output


def test_wide_prints_every_column_and_out_writes_files(store, tmp_path):
    out = tmp_path / "lb"
    res = runner.invoke(app, ["leaderboard", "--results", str(store), "--wide", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "| ceiling | Oracle" in res.output and "replicate cons." in res.output
    assert "| floor | chance | computed |" in res.output
    assert (out / "leaderboard_synthetic-quick.csv").exists() and (
        out / "leaderboard_reported.csv"
    ).exists()


def test_paper_needs_out(store):
    res = runner.invoke(app, ["leaderboard", "--results", str(store), "--paper"])
    assert res.exit_code == 2 and "--out" in res.output


def test_default_results_are_the_committed_ones_in_the_checkout(monkeypatch, tmp_path):
    from cellbench import paths

    assert build.checkout_root() == REPO  # the tests run from the checkout
    assert build.default_results_dir() == REPO / "leaderboard" / "results"
    monkeypatch.setattr(build, "checkout_root", lambda: None)  # an installed package
    assert build.default_results_dir() == paths.results_dir()


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables, self.imgs, self.rows, self._tbody, self.text = [], [], [], None, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.tables.append(a)
        elif tag == "tbody":
            self._tbody = a.get("class")
        elif tag == "tr" and "data-kind" in a:
            self.rows.append({**a, "tbody": self._tbody})
        elif tag == "img":
            self.imgs.append(a)

    def handle_data(self, data):
        self.text.append(data)


def _png(path: Path, w: int = 40, h: int = 30) -> Path:
    """A small valid RGB PNG (a gradient), without an imaging library."""
    raw = b"".join(
        b"\x00" + b"".join(bytes((x * 6 % 256, y * 8 % 256, 160)) for x in range(w))
        for y in range(h)
    )

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return path


def _page(store, tmp_path):
    figs = tmp_path / "figures"
    _png(figs / "figure1_efficiency_reported.png")
    _png(figs / "figure3_compound_gene_synthetic-quick.png")
    _png(figs / "figure3_compound_gene_other.png")
    page = tmp_path / "site" / "leaderboard.html"
    res = runner.invoke(
        app, ["leaderboard", "--results", str(store), "--html", str(page), "--figures", str(figs)]
    )
    assert res.exit_code == 0, res.output
    return page


def test_html_page_has_tables_rows_labels_and_embedded_figures(store, tmp_path):
    page = _page(store, tmp_path)
    text = page.read_text()
    p = _Page()
    p.feed(text)
    assert [t.get("data-dataset") for t in p.tables if t.get("class") == "lb"] == [
        "synthetic-quick"
    ]
    assert [t.get("class") for t in p.tables] == ["lb", "cmp"]
    kinds = [r["data-kind"] for r in p.rows]
    assert kinds.count("ceiling") == 1 and kinds.count("chance") == 1
    assert kinds.count("untrained") == 1 and kinds.count("random") == 1
    assert {r["data-kind"] for r in p.rows if r["tbody"] == "reported"} == {"reported"}
    assert all(r["tbody"] == "sortable" for r in p.rows if r["data-kind"] != "reported")
    words = " ".join(p.text)
    for label in (
        "floor: chance",
        "floor: untrained",
        "floor: random ViT-S/16",
        "ceiling",
        "reported",
        "Random (= chance)",
    ):
        assert label in words, label
    # mean ± half-width of the 95 % t-interval over the three seeds (0.30, 0.32, 0.37)
    assert "0.330 ± 0.090" in words
    # provenance on hover
    cwa = next(r for r in p.rows if r["data-kind"] == "model" and "steps600" in r["title"])
    for fact in (
        "simulator version: cellbench-sim-2.0",
        "config hash: c0ffee1234",
        "data hash: da7a5eed",
        f"checkpoint id: {_variant()}-seed0",
    ):
        assert fact in cwa["title"], fact
    # the two questions, answered with intervals: CWA-MSN vs its own step-0 network (paired:
    # differences .19, .22, .25 -> mean .22) and cross- vs single-well MSN
    assert "Does training help, and does cross-well pairing?" in words
    assert "+0.220" in words and "untrained CWA-MSN" in words
    assert "cross-well better" in words
    srcs = [i["src"] for i in p.imgs]
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    alts = " ".join(i["alt"] for i in p.imgs)
    assert "Figure 1" in alts and "Figure 3" in alts and "other" not in alts
    if (REPO / "docs" / "images" / "simulator_montage.png").exists():
        assert "montage" in alts
    assert "http://" not in text and "https://" not in text  # self-contained
    assert not list(page.parent.glob("*.tmp*"))


def test_html_rows_are_one_per_weights(tmp_path):
    """`quick-seed0` and `quick-steps600-seed0` of the same training config: one HTML row."""
    from cellbench.report.html import render_html

    train = {"max_steps": 600, "warmup_steps": 60}
    root = tmp_path / "r"
    write_model(
        root, "cwa-msn", [0.3], variant="quick", config={"train": train}, tasks=("gene_gene",)
    )
    write_model(
        root,
        "cwa-msn",
        [0.3],
        variant="quick-steps600",
        config={"train": train},
        tasks=("gene_gene",),
    )
    p = _Page()
    p.feed(render_html(load_results(root), include_reported=False))
    assert [r["data-kind"] for r in p.rows] == ["model", "chance"]


def test_html_renders_in_headless_chromium(store, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip(
            "chromium not installed: no headless browser on PATH to render the page "
            "(apt-get install chromium to run this check)"
        )
    page = _page(store, tmp_path)
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--screenshot={shot}",
            "--window-size=1400,1000",
            page.as_uri(),
        ],
        check=True,
        timeout=120,
        capture_output=True,
    )
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", data[16:24])
    assert (w, h) == (1400, 1000) and len(data) > 20_000  # a rendered page, not a blank one
