"""The paper's Tables 1–5 as data: every cell equals the paper text; Figure 1's ratios;
the Table 2 z-score consistency flags; the committed CSVs are up to date."""

from __future__ import annotations

import math
import re
from pathlib import Path

import polars as pl
import pytest

from cellbench.errors import InputError
from cellbench.report import paper

REPO = Path(__file__).resolve().parents[1]
PAPER_TXT = REPO.parent / "shared" / "paper" / "cwa-msn-paper.txt"
COMMITTED = REPO / "leaderboard" / "paper"


def _paper_table_lines(number: int) -> list[str]:
    """The data lines of Table ``number`` read straight from the paper text: the lines after
    the caption (and its one or two header lines) up to the next blank line."""
    lines = PAPER_TXT.read_text(encoding="utf-8").splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(f"Table {number}:"))
    block = []
    for ln in lines[start + 1 :]:
        if not ln.strip():
            break
        block.append(ln.strip())
    # header lines do not end in a number / dash cell
    return [
        ln for ln in block if re.search(r"(\.\d{3}|\d|-)$", ln) and not ln.endswith("\\uparrow")
    ]


@pytest.mark.skipif(not PAPER_TXT.exists(), reason="paper text not beside the repository")
@pytest.mark.parametrize("number", [1, 2, 3, 4, 5])
def test_every_cell_equals_the_paper_text(number):
    table = paper.TABLES[number]
    expected = [ln.replace("\\sim", "∼") for ln in _paper_table_lines(number)]
    got = [" ".join(row).strip() for row in table.rows]
    assert got == expected
    # and the parsed numbers equal the printed tokens (".386" -> 0.386)
    df = paper.paper_table(number)
    score_cols = [c for c in table.columns if c in paper.GENE_SOURCES or re.match(r"(ap|auc)_", c)]
    for row_text, rec in zip(expected, df.iter_rows(named=True), strict=True):
        tokens = row_text.split()[-len(score_cols) :]
        for col, tok in zip(score_cols, tokens, strict=True):
            want = None if tok == "-" else float(tok.replace(",", ""))
            assert rec[col] == want, (number, rec["method"], col)


def test_specific_cells_without_the_paper_file():
    t1 = paper.paper_table(1)
    cwa = t1.filter(pl.col("model") == "cwa-msn").row(0, named=True)
    assert (cwa["corum"], cwa["humap"], cwa["reactome"], cwa["stringdb"]) == (
        0.386,
        0.447,
        0.158,
        0.327,
    )
    assert (cwa["images"], cwa["images_n"], cwa["parameters"], cwa["parameters_n"]) == (
        "0.2M",
        2e5,
        "22M",
        2.2e7,
    )
    op = t1.filter(pl.col("model") == "openphenom").row(0, named=True)
    assert (op["images"], op["images_n"], op["images_bound"]) == (">>10M", 1e7, "lower")
    clip = t1.filter(pl.col("model") == "cellclip").row(0, named=True)
    assert (clip["parameters"], clip["parameters_n"]) == ("1,477M", 1.477e9)
    p2 = t1.filter(pl.col("model") == "phenom-2").row(0, named=True)
    assert p2["perturbations"] == "N.A." and p2["perturbations_n"] is None
    assert "N.A.: Not available" in p2["note"] and "**: Not publicly available" in p2["note"]
    assert "*: Values from Lu et al. (2025)" in t1.filter(pl.col("model") == "molphenix")["note"][0]
    assert set(t1["provenance"]) == {"reported"} and set(t1["source"]) == {"CWA-MSN paper Table 1"}

    t2 = paper.paper_table(2)
    op2 = t2.filter(pl.col("model") == "openphenom").row(0, named=True)
    assert (
        op2["ap_mean"],
        op2["ap_std"],
        op2["ap_z"],
        op2["auc_mean"],
        op2["auc_std"],
        op2["auc_z"],
    ) == (0.274, 0.017, 3.89, 0.546, 0.014, 3.16)
    assert t2.filter(pl.col("model") == "phenom-2")["auc_mean"][0] is None

    t4 = paper.paper_table(4).filter(pl.col("model") == "cwa-msn").row(0, named=True)
    assert (t4["gpu_hours"], t4["gpu_hours_n"], t4["gpu_hours_bound"]) == ("<9", 9.0, "upper")
    t5 = paper.paper_table(5)
    assert t5.filter(pl.col("prototypes_n") == 1024)["corum"][0] == 0.386
    assert t5.filter(pl.col("row_type") == "n_relationships").select(paper.GENE_SOURCES).row(0) == (
        1209.0,
        958.0,
        569.0,
        1737.0,
    )


@pytest.mark.parametrize(
    "text,value,bound",
    [
        ("1M", 1e6, "exact"),
        ("0.2M", 2e5, "exact"),
        (">>10M", 1e7, "lower"),
        ("1,477M", 1.477e9, "exact"),
        (">7K", 7e3, "lower"),
        ("∼4M", 4e6, "approx"),
        ("<9", 9.0, "upper"),
        ("2,048", 2048.0, "exact"),
        ("-", None, "missing"),
        ("N.A.", None, "missing"),
    ],
)
def test_parse_quantity(text, value, bound):
    got_value, got_bound = paper.parse_quantity(text)
    assert got_bound == bound
    assert got_value == (pytest.approx(value) if value is not None else None)


def test_parse_quantity_rejects_garbage():
    with pytest.raises(InputError, match="cannot parse"):
        paper.parse_quantity("ten million")


def test_auc_z_scores_reproduce_exactly_and_two_ap_cells_are_flagged():
    check = paper.table2_z_check()
    auc = check.filter(pl.col("metric") == "auc")
    assert auc.height == 6 and (auc["check"] == "exact").all()
    for rec in auc.iter_rows(named=True):  # the formula, by hand
        z = (rec["mean"] - 0.500) / math.sqrt(rec["std"] ** 2 + 0.004**2)
        assert round(z, 2) == pytest.approx(rec["z_reported"], abs=0.0051)
    flagged = check.filter(pl.col("flagged"))
    assert sorted(zip(flagged["model"], flagged["metric"], strict=True)) == [
        ("cwa-msn", "ap"),
        ("openphenom", "ap"),
    ]
    op = flagged.filter(pl.col("model") == "openphenom").row(0, named=True)
    assert op["z_reported"] == 3.89 and op["z_recomputed"] == pytest.approx(3.48, abs=0.005)
    assert op["check"] == "inconsistent"
    cwa = flagged.filter(pl.col("model") == "cwa-msn").row(0, named=True)
    assert cwa["z_reported"] == 3.55 and cwa["z_recomputed"] == pytest.approx(3.46, abs=0.005)
    # the rows copied from elsewhere agree within rounding and are not flagged
    others = check.filter(pl.col("model").is_in(["phenom-1", "phenom-2", "cellprofiler"]))
    assert (others["check"] == "within rounding").all() and not others["flagged"].any()
    # the printed value is kept, not "fixed"
    assert paper.paper_table(2).filter(pl.col("model") == "openphenom")["ap_z"][0] == 3.89
    assert "3.89†" in paper.render_markdown(2)


def test_figure1_ratios():
    fig1 = paper.figure1_data()
    assert fig1.height == 9
    assert "cellprofiler" not in fig1["model"].to_list() and "random" not in fig1["model"].to_list()
    cwa = fig1.filter(pl.col("model") == "cwa-msn").row(0, named=True)
    assert cwa["recall_per_million_images"] == pytest.approx(1.93)
    assert round(cwa["recall_per_billion_parameters"], 1) == 17.5
    assert cwa["recall_per_million_images_billion_parameters"] == pytest.approx(
        0.386 / (0.2 * 0.022)
    )
    op = fig1.filter(pl.col("model") == "openphenom").row(0, named=True)
    assert op["ratio_bound"] == "upper" and op["recall_per_million_images"] == pytest.approx(0.03)
    # CWA-MSN tops panels b–d, as the paper's Figure 1 says; Phenom-2 tops panel a
    for col in (
        "recall_per_million_images",
        "recall_per_billion_parameters",
        "recall_per_million_images_billion_parameters",
    ):
        assert fig1.sort(col, descending=True)["model"][0] == "cwa-msn"
    assert fig1.sort("corum", descending=True)["model"][0] == "phenom-2"


def test_rendering_markdown_and_latex():
    md = paper.render_markdown(1)
    assert "| Bray et al. | 0.2M | >7K | 1,477M | CellCLIP | .354 | .416 | .145 | .307 |" in md
    assert "MolPhenix\\*" in md  # escaped, not emphasis
    tex = paper.render_latex(1)
    assert r"$\gg$10M" in tex and r"\# Images" in tex and tex.count(r"\\") >= 12


def test_write_paper_tables_and_committed_copies_are_current(tmp_path):
    written = paper.write_paper_tables(tmp_path)
    names = {p.name for p in written}
    for number, table in paper.TABLES.items():
        assert {f"{table.stem}.csv", f"{table.stem}.md", f"{table.stem}.tex"} <= names, number
        fresh = pl.read_csv(tmp_path / f"{table.stem}.csv", infer_schema_length=None)
        assert fresh.height == len(table.rows)
        committed = COMMITTED / f"{table.stem}.csv"
        if committed.exists():
            assert committed.read_text() == (tmp_path / f"{table.stem}.csv").read_text(), (
                f"{committed} is stale: run `cellbench paper`"
            )
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temporaries
