"""The CWA-MSN paper's Tables 1–5 as data (provenance "reported").

Every cell below is transcribed verbatim from section 5 of the paper (Huang, Liao, Kim et al.
2025, "Efficient Cell Painting Image Representation Learning via Cross-Well Aligned Masked
Siamese Network"). The printed
text of each cell is kept (``".386"``, ``">>10M"``, ``"1,477M"``, ``"<9"``) and parsed into
numbers beside it (0.386, 1e7 flagged as a lower bound, 1.477e9, 9 flagged as an upper
bound), so a reader can check the transcription against the paper and a program can compute
with it. These numbers were measured by the paper's authors on the real RxRx3-core release;
cellbench never mixes them with numbers it measured itself.

Also here:

- :func:`table2_z_check` — recomputes Table 2's z-scores from each row with
  z = (μ − μ_b)/√(σ² + σ_b²) (docs/metrics.md, "Compound–gene retrieval") and flags the cells that are not
  consistent with their own row (OpenPhenom AP 3.89, CWA-MSN AP 3.55) instead of fixing them.
- :func:`figure1_data` — the nine methods of Figure 1 with the efficiency ratios
  (recall per million images, per billion parameters, per both).
- :func:`write_paper_tables` — ``table{1..5}_*.csv`` + ``.md`` + ``.tex`` and the z-check CSV.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from cellbench.errors import InputError
from cellbench.io import write_text_atomic
from cellbench.report.render import to_latex, to_markdown

PROVENANCE = "reported"
PAPER = "CWA-MSN paper"

# Printed method name (without footnote marks) -> cellbench model key. Models cellbench
# implements use their registry name, so reported and measured rows can be paired.
MODEL_KEYS: dict[str, str] = {
    "Random": "random",
    "ViT-ImageNet": "vit-imagenet",
    "CellProfiler": "cellprofiler",
    "ViT-WSL": "vit-wsl",
    "MolPhenix": "molphenix",
    "CLOOME": "cloome",
    "CellCLIP": "cellclip",
    "OpenPhenom": "openphenom",
    "CWA-MSN": "cwa-msn",
    "Phenom-1": "phenom-1",
    "Phenom-2": "phenom-2",
    "Single-Well-MSN": "single-well-msn",
    "CropMAE-Single": "cropmae-single",
    "CropMAE-Cross": "cropmae-cross",
}

GENE_SOURCES: tuple[str, ...] = ("corum", "humap", "reactome", "stringdb")
_GENE_HEADERS = ("CORUM", "hu.MAP", "Reactome", "StringDB")


@dataclass(frozen=True)
class PaperTable:
    """One table of the paper: its printed header and rows (text cells, verbatim)."""

    number: int
    slug: str
    caption: str
    headers: tuple[str, ...]
    columns: tuple[str, ...]  # machine names of the columns, same order as headers
    rows: tuple[tuple[str, ...], ...]
    footnotes: dict[str, str] = field(default_factory=dict)  # mark -> meaning
    row_notes: dict[str, str] = field(default_factory=dict)  # printed method -> remark

    @property
    def stem(self) -> str:
        return f"table{self.number}_{self.slug}"

    @property
    def source(self) -> str:
        return f"{PAPER} Table {self.number}"


# ----------------------------------------------------------------------------------------
# The transcription (paper, section 5). Row order and cell text exactly as printed.
# ----------------------------------------------------------------------------------------
TABLE1 = PaperTable(
    number=1,
    slug="gene_gene",
    caption="Gene–gene interaction benchmark results of different methods.",
    headers=(
        "Training Dataset",
        "# Images",
        "# Perturb.",
        "Parameters",
        "Method",
        "CORUM ↑",
        "hu.MAP ↑",
        "Reactome ↑",
        "StringDB ↑",
    ),
    columns=("training_dataset", "images", "perturbations", "parameters", "method", *GENE_SOURCES),
    rows=(
        ("-", "-", "-", "-", "Random", ".107", ".111", ".107", ".115"),
        ("ImageNet-1K", "1M", "-", "22M", "ViT-ImageNet", ".342", ".420", ".144", ".305"),
        ("-", "-", "-", "-", "CellProfiler", ".361", ".444", ".160", ".330"),
        ("Bray et al.", "0.2M", ">7K", "22M", "ViT-WSL", ".249", ".290", ".148", ".242"),
        ("Bray et al.", "0.2M", ">7K", "36M", "MolPhenix*", ".262", ".306", ".142", ".241"),
        ("Bray et al.", "0.2M", ">7K", "25M", "CLOOME*", ".328", ".406", ".135", ".278"),
        ("Bray et al.", "0.2M", ">7K", "1,477M", "CellCLIP", ".354", ".416", ".145", ".307"),
        ("RxRx3+cpg0016", ">>10M", ">>116K", "25M", "OpenPhenom", ".300", ".352", ".158", ".281"),
        ("Bray et al.", "0.2M", ">7K", "22M", "CWA-MSN (Ours)", ".386", ".447", ".158", ".327"),
        ("RPI-93M", "93M", "∼4M", "307M", "Phenom-1**", ".395", ".482", ".188", ".349"),
        ("PP-16M", "16M", "N.A.", "1,860M", "Phenom-2**", ".486", ".553", ".197", ".415"),
    ),
    footnotes={
        "*": "*: Values from Lu et al. (2025)",
        "**": "**: Not publicly available",
        "N.A.": "N.A.: Not available",
        "-": "-: not given in the paper",
    },
    row_notes={
        "OpenPhenom": (
            "the paper is inconsistent about OpenPhenom's training images: abstract "
            "'2.2M', §5.1 text '>10M', Table 1 '>>10M' (used here, as a lower bound)"
        ),
    },
)

TABLE2 = PaperTable(
    number=2,
    slug="compound_gene",
    caption=("Compound-gene interaction benchmark results at the maximum concentration level."),
    headers=(
        "Method",
        "AP Mean",
        "AP Std.",
        "AP Z-score ↑",
        "AUC-ROC Mean",
        "AUC-ROC Std.",
        "AUC-ROC Z-score ↑",
    ),
    columns=("method", "ap_mean", "ap_std", "ap_z", "auc_mean", "auc_std", "auc_z"),
    rows=(
        ("Phenom-2*", ".307", ".015", "6.04", "-", "-", "-"),
        ("Phenom-1*", ".290", ".017", "4.35", "-", "-", "-"),
        ("OpenPhenom**", ".274", ".017", "3.89", ".546", ".014", "3.16"),
        ("ViT-WSL", ".259", ".013", "3.37", ".546", ".016", "2.79"),
        ("CellProfiler", ".276", ".018", "3.34", "-", "-", "-"),
        ("CellCLIP**", ".257", ".015", "2.81", ".539", ".018", "2.12"),
        ("ViT-ImageNet", ".256", ".015", "2.75", ".527", ".018", "1.46"),
        ("Random", ".214", ".003", "0.00", ".500", ".004", "0.00"),
        ("CWA-MSN (ours)", ".267", ".015", "3.55", ".556", ".019", "2.88"),
    ),
    footnotes={
        "*": "*: Not publicly available",
        "**": "**: Evaluated using open models",
        "-": "-: not given in the paper",
    },
)

_REL = ("# relationships", "1,209", "958", "569", "1,737")

TABLE3 = PaperTable(
    number=3,
    slug="single_vs_cross_well",
    caption=(
        "Gene-gene interaction benchmark results between single-well and cross-well "
        "masked siamese networks."
    ),
    headers=("Model", *_GENE_HEADERS),
    columns=("method", *GENE_SOURCES),
    rows=(
        _REL,
        ("Random", ".107", ".111", ".107", ".115"),
        ("Single-Well-MSN", ".281", ".330", ".130", ".261"),
        ("CWA-MSN (Ours)", ".386", ".447", ".158", ".327"),
    ),
)

TABLE4 = PaperTable(
    number=4,
    slug="msn_vs_cropmae",
    caption="Gene–gene interaction benchmark comparison of CWA-MSN and CropMAE.",
    headers=("Training Time (GPU hours)", "Model", *_GENE_HEADERS),
    columns=("gpu_hours", "method", *GENE_SOURCES),
    rows=(
        ("", *_REL),
        ("-", "Random", ".107", ".111", ".107", ".115"),
        ("109", "CropMAE-Single", ".338", ".408", ".137", ".303"),
        ("14", "CropMAE-Cross", ".348", ".443", ".135", ".309"),
        ("<9", "CWA-MSN (Ours)", ".386", ".447", ".158", ".327"),
    ),
    footnotes={"<9": "<9: fewer than 9 GPU hours (upper bound)", "-": "-: not given in the paper"},
)

TABLE5 = PaperTable(
    number=5,
    slug="prototypes",
    caption=(
        "Optimization results for the number of prototypes in CWA-MSN based on "
        "gene-gene interaction prediction."
    ),
    headers=("Number of Prototypes", *_GENE_HEADERS),
    columns=("prototypes", *GENE_SOURCES),
    rows=(
        _REL,
        ("256", ".372", ".433", ".132", ".321"),
        ("512", ".344", ".401", ".151", ".311"),
        ("1,024", ".386", ".447", ".158", ".327"),
        ("2,048", ".369", ".438", ".141", ".314"),
    ),
)

TABLES: dict[int, PaperTable] = {t.number: t for t in (TABLE1, TABLE2, TABLE3, TABLE4, TABLE5)}


# ----------------------------------------------------------------------------------------
# Parsing printed cells
# ----------------------------------------------------------------------------------------
_SUFFIX = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9}
_QUANTITY = re.compile(
    r"^(?P<prefix>>>|>|<|∼|~|\\sim)?\s*(?P<num>\d[\d,]*(?:\.\d+)?|\.\d+)(?P<suffix>[KMB]?)$"
)


def parse_quantity(text: str) -> tuple[float | None, str]:
    """Parse a printed count such as ``"0.2M"``, ``"1,477M"``, ``">>10M"``, ``"∼4M"``, ``"<9"``.

    Returns ``(value, bound)``; bound is ``"exact"``, ``"lower"`` (``>``/``>>``: the true
    value is larger), ``"upper"`` (``<``), ``"approx"`` (``∼``), or ``"missing"`` for
    ``"-"``, ``"N.A."`` and empty cells (value None).
    """
    cell = text.strip()
    if cell in ("", "-", "N.A."):
        return None, "missing"
    m = _QUANTITY.match(cell)
    if not m:
        raise InputError(
            f"cannot parse the printed quantity {text!r}; write it as a number with an optional "
            "K/M/B suffix and an optional >, >>, < or ∼ prefix (e.g. '0.2M', '>>10M')"
        )
    value = float(m["num"].replace(",", "")) * _SUFFIX[m["suffix"]]
    prefix = m["prefix"] or ""
    bound = {"": "exact", ">": "lower", ">>": "lower", "<": "upper"}.get(prefix, "approx")
    return value, bound


def parse_score(text: str) -> float | None:
    """``".386"`` -> 0.386; ``"-"`` -> None."""
    cell = text.strip()
    if cell in ("", "-", "N.A."):
        return None
    return float(cell.replace(",", ""))


def split_method(printed: str) -> tuple[str, str]:
    """``"MolPhenix*"`` -> (``"MolPhenix"``, ``"*"``); ``"CWA-MSN (Ours)"`` -> (``"CWA-MSN"``, "")."""
    name = re.sub(r"\s*\((?:ours|Ours)\)", "", printed).strip()
    mark = re.search(r"\*+$", name)
    return (name[: mark.start()], mark.group()) if mark else (name, "")


def _row_notes(table: PaperTable, cells: dict[str, str]) -> list[str]:
    notes = []
    _, mark = split_method(cells.get("method", ""))
    if mark and mark in table.footnotes:
        notes.append(table.footnotes[mark])
    for col, cell in cells.items():
        if col == "method":
            continue
        for key in ("N.A.", "<9", "-"):
            if cell.strip() == key and key in table.footnotes and table.footnotes[key] not in notes:
                notes.append(table.footnotes[key])
        if cell.startswith(">>") and "'>>': much more than (lower bound)" not in notes:
            notes.append("'>>': much more than (lower bound)")
        elif (
            cell.startswith(">")
            and not cell.startswith(">>")
            and "'>': more than (lower bound)" not in notes
        ):
            notes.append("'>': more than (lower bound)")
        if cell.startswith("∼") and "'∼': approximately" not in notes:
            notes.append("'∼': approximately")
    return notes


_QUANTITY_COLUMNS = ("images", "perturbations", "parameters", "gpu_hours", "prototypes")


def paper_table(number: int) -> pl.DataFrame:
    """Table ``number`` (1–5) as a polars frame: printed cells, parsed numbers, provenance.

    Score columns are floats (``.386`` -> 0.386). Count columns keep the printed text and
    add ``<col>_n`` (a float) and ``<col>_bound`` (see :func:`parse_quantity`). Rows carry
    ``row_type`` ("n_relationships", "baseline" for Random, or "method"), ``model`` (the
    cellbench model key), ``note`` (the footnotes that apply), ``provenance`` and ``source``.
    """
    if number not in TABLES:
        raise InputError(f"the paper has Tables 1–5, not Table {number}; pass a number from 1 to 5")
    table = TABLES[number]
    records: list[dict] = []
    for i, row in enumerate(table.rows):
        cells = dict(zip(table.columns, row, strict=True))
        is_counts = "# relationships" in row
        if "method" in cells:
            method_text = cells["method"]
        else:  # Table 5: every row is CWA-MSN with a different number of prototypes
            method_text = "# relationships" if is_counts else "CWA-MSN"
            cells = {"method": method_text, **cells}
            if is_counts:
                cells[table.columns[0]] = ""
        name, _ = split_method(method_text)
        if is_counts:
            row_type = "n_relationships"
        elif name == "Random":
            row_type = "baseline"
        else:
            row_type = "method"
        rec: dict = {
            "table": number,
            "row": i,
            "row_type": row_type,
            "method": method_text,
            "model": MODEL_KEYS.get(name, ""),
        }
        for col in table.columns:
            cell = cells[col]
            if col == "method":
                continue
            if col in _QUANTITY_COLUMNS:
                value, bound = parse_quantity(cell)
                rec[col] = cell
                rec[f"{col}_n"] = value
                rec[f"{col}_bound"] = bound
            elif col == "training_dataset":
                rec[col] = cell
            else:
                rec[col] = parse_score(cell)
        notes = _row_notes(table, cells)
        if method_text in table.row_notes:
            notes.append(table.row_notes[method_text])
        rec["note"] = "; ".join(notes)
        rec["provenance"] = PROVENANCE
        rec["source"] = table.source
        records.append(rec)
    return pl.DataFrame(records, infer_schema_length=None)


# ----------------------------------------------------------------------------------------
# Table 2 z-scores
# ----------------------------------------------------------------------------------------
def z_score(mean: float, std: float, mean_b: float, std_b: float) -> float:
    """z = (μ − μ_b)/√(σ² + σ_b²): the model's metric against the random baseline over seeds.

    Inferred from Table 2 (docs/metrics.md, "Compound–gene retrieval"): it reproduces every AUC z-score of the table
    exactly from the printed means and stds.
    """
    denom = math.hypot(std, std_b)
    if denom == 0:
        return 0.0 if mean == mean_b else math.copysign(math.inf, mean - mean_b)
    return (mean - mean_b) / denom


def z_range(
    mean: float, std: float, mean_b: float, std_b: float, half: float = 0.0005
) -> tuple[float, float]:
    """Smallest and largest z reachable when every input may differ by ±``half`` from the
    printed (rounded) value — what rounding to three decimals can explain."""
    lo = z_score(mean - half, std + half, mean_b + half, std_b + half)
    hi = z_score(mean + half, max(std - half, 0.0), mean_b - half, max(std_b - half, 0.0))
    return lo, hi


def table2_z_check() -> pl.DataFrame:
    """Recompute every z-score of Table 2 from its own row; classify and flag each cell.

    ``check``: ``"exact"`` (the recomputed z rounds to the printed one, |Δ| ≤ 0.005),
    ``"within rounding"`` (some inputs within ±0.0005 of the printed ones give it), or
    ``"inconsistent"`` (no such inputs). ``flagged`` marks a cell as inconsistent with its
    own row: every ``"inconsistent"`` cell, and a non-exact cell in a row the authors
    evaluated themselves (rows that report AUC as well as AP: all seven of those rows' other
    z-scores reproduce *exactly* from the printed values, so the authors evidently computed
    z from the printed means and stds; the AP-only rows — Phenom-1, Phenom-2, CellProfiler —
    were taken from elsewhere and are only expected to agree within rounding). This flags
    OpenPhenom AP (3.89 printed, 3.48 recomputed) and CWA-MSN AP (3.55 vs 3.46). The printed
    values are kept; nothing is corrected.
    """
    df = paper_table(2)
    base = df.filter(pl.col("row_type") == "baseline").row(0, named=True)
    out = []
    for rec in df.iter_rows(named=True):
        own_eval = rec["auc_mean"] is not None
        for metric in ("ap", "auc"):
            mean, std, z_rep = rec[f"{metric}_mean"], rec[f"{metric}_std"], rec[f"{metric}_z"]
            if mean is None or z_rep is None:
                continue
            mb, sb = base[f"{metric}_mean"], base[f"{metric}_std"]
            z_rec = z_score(mean, std, mb, sb)
            lo, hi = z_range(mean, std, mb, sb)
            delta = z_rep - z_rec
            if abs(delta) <= 0.005 + 1e-9:
                check = "exact"
            elif lo - 0.005 <= z_rep <= hi + 0.005:
                check = "within rounding"
            else:
                check = "inconsistent"
            flagged = check == "inconsistent" or (check != "exact" and own_eval)
            reason = ""
            if flagged:
                reason = (
                    f"printed z {z_rep:.2f} but (μ−μ_b)/√(σ²+σ_b²) of this row's printed "
                    f"values is {z_rec:.2f}"
                    + (
                        "; no rounding of the inputs reaches it"
                        if check == "inconsistent"
                        else "; the row's other z-score reproduces exactly from printed values"
                    )
                )
            out.append(
                {
                    "method": rec["method"],
                    "model": rec["model"],
                    "metric": metric,
                    "mean": mean,
                    "std": std,
                    "baseline_mean": mb,
                    "baseline_std": sb,
                    "z_reported": z_rep,
                    "z_recomputed": round(z_rec, 4),
                    "delta": round(delta, 4),
                    "z_rounding_low": round(lo, 4),
                    "z_rounding_high": round(hi, 4),
                    "check": check,
                    "flagged": flagged,
                    "reason": reason,
                    "provenance": PROVENANCE,
                    "source": TABLE2.source,
                }
            )
    return pl.DataFrame(out)


# ----------------------------------------------------------------------------------------
# Figure 1 data
# ----------------------------------------------------------------------------------------
def figure1_data() -> pl.DataFrame:
    """The methods of Figure 1 with CORUM recall and the three efficiency ratios.

    Figure 1 shows the Table 1 methods that have both a training-set size and a parameter
    count: all rows except Random and CellProfiler (a handcrafted pipeline, "-" for both),
    i.e. nine methods. Ratios: recall / (images in millions), recall / (parameters in
    billions), recall / (millions × billions). OpenPhenom's ">>10M" images is a lower bound,
    so its per-image ratios are upper bounds (``ratio_bound == "upper"``). Example: CWA-MSN
    .386 / 0.2 = 1.93 per million images, .386 / 0.022 = 17.5 per billion parameters.
    """
    df = paper_table(1).filter(
        (pl.col("row_type") == "method")
        & pl.col("images_n").is_not_null()
        & pl.col("parameters_n").is_not_null()
    )
    return df.select(
        "method",
        "model",
        "training_dataset",
        "corum",
        pl.col("images").alias("images_text"),
        (pl.col("images_n") / 1e6).alias("images_millions"),
        pl.col("images_bound"),
        pl.col("parameters").alias("parameters_text"),
        (pl.col("parameters_n") / 1e9).alias("parameters_billions"),
        pl.col("parameters_bound"),
    ).with_columns(
        (pl.col("corum") / pl.col("images_millions")).alias("recall_per_million_images"),
        (pl.col("corum") / pl.col("parameters_billions")).alias("recall_per_billion_parameters"),
        (pl.col("corum") / (pl.col("images_millions") * pl.col("parameters_billions"))).alias(
            "recall_per_million_images_billion_parameters"
        ),
        pl.when(pl.col("images_bound") == "lower")
        .then(pl.lit("upper"))
        .otherwise(pl.lit("exact"))
        .alias("ratio_bound"),
        pl.lit(PROVENANCE).alias("provenance"),
        pl.lit(TABLE1.source).alias("source"),
    )


# ----------------------------------------------------------------------------------------
# Rendering and writing
# ----------------------------------------------------------------------------------------
def _display_rows(
    table: PaperTable, flags: dict[tuple[str, str], str] | None = None
) -> list[list[str]]:
    rows = []
    for row in table.rows:
        cells = list(row)
        if flags:
            method = row[table.columns.index("method")]
            for metric in ("ap", "auc"):
                if (method, metric) in flags:
                    j = table.columns.index(f"{metric}_z")
                    cells[j] = cells[j] + "†"
        rows.append(cells)
    return rows


def _notes(table: PaperTable, flagged: pl.DataFrame | None) -> list[str]:
    notes = [
        f"Source: {table.source} (provenance: {PROVENANCE}; measured by the paper's "
        "authors on the real RxRx3-core release)."
    ]
    notes += [v for k, v in table.footnotes.items() if k != "-"]
    notes += [f"Note ({method}): {remark}." for method, remark in table.row_notes.items()]
    if flagged is not None and flagged.height:
        for rec in flagged.iter_rows(named=True):
            notes.append(
                f"† {rec['method']} {rec['metric'].upper()} z-score: {rec['reason']} "
                "(kept as printed)."
            )
    return notes


def render_markdown(number: int) -> str:
    table = TABLES[number]
    flagged = _flagged() if number == 2 else None
    flags = (
        {(r["method"], r["metric"]): r["reason"] for r in flagged.iter_rows(named=True)}
        if flagged is not None
        else None
    )
    return to_markdown(
        table.headers,
        _display_rows(table, flags),
        title=f"Table {number}: {table.caption}",
        notes=_notes(table, flagged),
    )


def render_latex(number: int) -> str:
    table = TABLES[number]
    flagged = _flagged() if number == 2 else None
    flags = (
        {(r["method"], r["metric"]): r["reason"] for r in flagged.iter_rows(named=True)}
        if flagged is not None
        else None
    )
    return to_latex(
        table.headers,
        _display_rows(table, flags),
        caption=table.caption,
        label=f"tab:paper-{number}",
        notes=_notes(table, flagged),
        align="l" * (len(table.headers) - 4) + "rrrr" if number != 2 else "lrrrrrr",
    )


def _flagged() -> pl.DataFrame:
    return table2_z_check().filter(pl.col("flagged"))


def write_csv_atomic(df: pl.DataFrame, path: str | Path) -> Path:
    """Write a polars frame as CSV atomically (via :func:`cellbench.io.write_text_atomic`)."""
    return write_text_atomic(path, df.write_csv())


def write_paper_tables(out_dir: str | Path) -> list[Path]:
    """Write ``table{N}_<slug>.csv/.md/.tex`` for Tables 1–5, the Table 2 z-score check and
    Figure 1's data into ``out_dir``. Returns the written paths."""
    out = Path(out_dir)
    written: list[Path] = []
    for number, table in TABLES.items():
        written.append(write_csv_atomic(paper_table(number), out / f"{table.stem}.csv"))
        written.append(write_text_atomic(out / f"{table.stem}.md", render_markdown(number)))
        written.append(write_text_atomic(out / f"{table.stem}.tex", render_latex(number)))
    written.append(write_csv_atomic(table2_z_check(), out / "table2_zscore_check.csv"))
    return written
