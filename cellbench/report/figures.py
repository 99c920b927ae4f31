"""The paper's figures, regenerated: Figure 1 (efficiency), Figure 3 (compound–gene over
concentration), and the ablation plots (single- vs cross-well, prototype sweep).

Every figure is written three times, atomically: ``<stem>.png`` (what a person looks at),
``<stem>.pdf`` (for a manuscript) and ``<stem>.csv`` — exactly the numbers drawn, one row
per bar or point, so any figure can be checked or re-plotted without cellbench.
matplotlib is imported inside the functions (Agg backend) to keep ``cellbench --help`` fast.
"""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl

from cellbench.io import atomic_path
from cellbench.report.paper import figure1_data, write_csv_atomic

HIGHLIGHT = "#d62728"  # the paper highlights its method in red
REPORTED = "#8c8c8c"
MEASURED = "#1f77b4"
MEASURED_HIGHLIGHT = "#ff7f0e"

FIG1_PANELS: tuple[tuple[str, str, str, str], ...] = (
    # panel, value column, axis label, annotation kind
    ("a", "corum", "CORUM recall at (0.05, 0.95)", "recall"),
    ("b", "recall_per_million_images", "recall per million training images", "images"),
    ("c", "recall_per_billion_parameters", "recall per billion parameters", "parameters"),
    ("d", "recall_per_million_images_billion_parameters",
     "recall per (million images × billion parameters)", "both"),
)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, out_dir: str | Path, stem: str, data: pl.DataFrame) -> list[Path]:
    """Write ``stem``.png/.pdf/.csv into ``out_dir`` atomically and close the figure."""
    out = Path(out_dir)
    paths = []
    try:
        for ext, kw in ((".png", {"dpi": 150}), (".pdf", {})):
            target = out / f"{stem}{ext}"
            with atomic_path(target, suffix=ext) as tmp:
                fig.savefig(tmp, bbox_inches="tight", **kw)
            paths.append(target)
    finally:
        _pyplot().close(fig)
    paths.append(write_csv_atomic(data, out / f"{stem}.csv"))
    return paths


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 1:
        return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
    return f"{v:.3f}".lstrip("0") if abs(v) >= 0.01 else f"{v:.2g}"


def _count_text(value: float, unit: str) -> str:
    return f"{value:g}{unit}"


# ----------------------------------------------------------------------------------------
# Figure 1
# ----------------------------------------------------------------------------------------
def figure1_plot_data(measured: pl.DataFrame | None = None) -> pl.DataFrame:
    """The long table Figure 1 draws: one row per (panel, method).

    Reported rows are :func:`cellbench.report.paper.figure1_data` (nine methods of Table 1).
    ``measured`` (optional) has columns ``method, model, dataset, corum, corum_std, n_seeds,
    images_millions, parameters_billions``; a measured method appears in panels b–d only
    when its training-image / parameter counts are known and non-zero.
    """
    rep = figure1_data()
    rows: list[dict] = []
    for rec in rep.iter_rows(named=True):
        upper = rec["ratio_bound"] == "upper"
        img = rec["images_text"]
        par = _count_text(rec["parameters_billions"], "B")
        ann = {"recall": "", "images": f"{img} images", "parameters": f"{par} params",
               "both": f"{img} × {par}"}
        for panel, col, label, kind in FIG1_PANELS:
            rows.append({
                "panel": panel, "axis_label": label, "method": rec["method"].replace(" (Ours)", ""),
                "model": rec["model"], "kind": "reported", "dataset": "rxrx3-core (paper)",
                "value": float(rec[col]), "error": None,
                "bound": "upper" if upper and panel != "a" and kind in ("images", "both") else "exact",
                "annotation": ann[kind], "highlight": rec["model"] == "cwa-msn",
                "provenance": "reported", "source": rec["source"],
            })
    if measured is not None:
        for rec in measured.iter_rows(named=True):
            corum = rec.get("corum")
            if corum is None or (isinstance(corum, float) and math.isnan(corum)):
                continue
            img = rec.get("images_millions")
            par = rec.get("parameters_billions")
            img_ok = img is not None and img > 0
            par_ok = par is not None and par > 0
            img_t = _count_text(round(img, 4), "M") if img_ok else ""
            par_t = _count_text(round(par, 4), "B") if par_ok else ""
            values = {
                "a": (corum, "", True),
                "b": (corum / img if img_ok else None, f"{img_t} images", img_ok),
                "c": (corum / par if par_ok else None, f"{par_t} params", par_ok),
                "d": (corum / (img * par) if img_ok and par_ok else None, f"{img_t} × {par_t}",
                      img_ok and par_ok),
            }
            for panel, _col, label, _kind in FIG1_PANELS:
                value, ann, ok = values[panel]
                if not ok:
                    continue
                std = rec.get("corum_std")
                err = None
                if std is not None and not (isinstance(std, float) and math.isnan(std)):
                    err = std if panel == "a" else std * value / corum if corum else None
                rows.append({
                    "panel": panel, "axis_label": label,
                    "method": f"{rec['method']} (measured, n={rec.get('n_seeds', 1)})",
                    "model": rec["model"], "kind": "measured", "dataset": rec["dataset"],
                    "value": float(value), "error": err, "bound": "exact", "annotation": ann,
                    "highlight": rec["model"] == "cwa-msn", "provenance": "measured",
                    "source": "cellbench results store",
                })
    return pl.DataFrame(rows, infer_schema_length=None).with_columns(
        pl.col("error").cast(pl.Float64)
    )


def render_figure1(plotted: pl.DataFrame, *, title: str):
    """Draw the four panels from :func:`figure1_plot_data`'s table; returns the figure."""
    plt = _pyplot()
    from matplotlib.patches import Patch

    n_max = max(plotted.filter(pl.col("panel") == p).height for p in "abcd")
    fig, axes = plt.subplots(2, 2, figsize=(14, 3.0 + 0.36 * n_max * 2), constrained_layout=True)
    has_measured = (plotted["kind"] == "measured").any()
    for ax, (panel, _col, label, _kind) in zip(axes.flat, FIG1_PANELS, strict=True):
        d = plotted.filter(pl.col("panel") == panel).sort("value")
        values = d["value"].to_list()
        colors = []
        for kind, hl in zip(d["kind"], d["highlight"], strict=True):
            if kind == "measured":
                colors.append(MEASURED_HIGHLIGHT if hl else MEASURED)
            else:
                colors.append(HIGHLIGHT if hl else REPORTED)
        y = list(range(d.height))
        errs = [e if e is not None else 0.0 for e in d["error"].to_list()]
        bars = ax.barh(y, values, color=colors)
        with_err = [i for i, e in enumerate(errs) if e > 0]
        if with_err:
            ax.errorbar([values[i] for i in with_err], with_err, xerr=[errs[i] for i in with_err],
                        fmt="none", ecolor="black", capsize=2, lw=0.8)
        for bar, kind, bound in zip(bars, d["kind"], d["bound"], strict=True):
            if kind == "measured":
                bar.set_hatch("//")
                bar.set_edgecolor("white")
            if bound == "upper":
                bar.set_hatch("..")
                bar.set_edgecolor("white")
        ax.set_yticks(y)
        ax.set_yticklabels(d["method"].to_list(), fontsize=8.5)
        for tick, hl in zip(ax.get_yticklabels(), d["highlight"], strict=True):
            if hl:
                tick.set_fontweight("bold")
        log = panel != "a"
        if log:
            ax.set_xscale("log")
            lo, hi = min(values), max(values)
            ax.set_xlim(lo / 3, hi * 25)
        else:
            ax.set_xlim(0, max(values) * 1.28)
        for yi, v, ann, bound, err in zip(y, values, d["annotation"], d["bound"], errs, strict=True):
            text = ("≤" if bound == "upper" else "") + _fmt(v)
            if ann:
                text += f"  ({ann})"
            x = (v + err) * 1.12 if log else v + err + max(values) * 0.01
            ax.text(x, yi, text, va="center", ha="left", fontsize=7.5)
        ax.set_xlabel(label + (" — log scale" if log else ""), fontsize=9)
        ax.set_title(f"({panel}) {label}", fontsize=10, loc="left")
        ax.grid(axis="x", alpha=0.3, which="both" if not log else "major")
        ax.set_axisbelow(True)
        ax.spines[["top", "right"]].set_visible(False)
    handles = [Patch(color=HIGHLIGHT, label="CWA-MSN (reported)"),
               Patch(color=REPORTED, label="other methods (reported, paper Table 1)")]
    if (plotted["bound"] == "upper").any():
        handles.append(Patch(facecolor=REPORTED, hatch="..", edgecolor="white",
                             label="upper bound (OpenPhenom: >>10M images)"))
    if has_measured:
        handles += [Patch(facecolor=MEASURED_HIGHLIGHT, hatch="//", edgecolor="white",
                          label="CWA-MSN (measured by cellbench)"),
                    Patch(facecolor=MEASURED, hatch="//", edgecolor="white",
                          label="other models (measured by cellbench, mean ± std over seeds)")]
    leg = fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 3),
                     fontsize=8.5, frameon=False)
    leg.set_title("*: values from Lu et al. (2025)   **: not publicly available   "
                  "(annotations: training images in millions, M; parameters in billions, B)",
                  prop={"size": 8})
    fig.suptitle(title, fontsize=11)
    return fig


def figure1(out_dir: str | Path, *, measured: pl.DataFrame | None = None,
            stem: str | None = None) -> list[Path]:
    """Write Figure 1: reported-only when ``measured`` is None, else with measured rows."""
    plotted = figure1_plot_data(measured)
    if measured is None or not (plotted["kind"] == "measured").any():
        stem = stem or "figure1_efficiency_reported"
        title = ("Figure 1 — gene–gene recall and efficiency (reported: CWA-MSN paper Table 1, "
                 "real RxRx3-core)")
    else:
        stem = stem or "figure1_efficiency_with_measured"
        datasets = ", ".join(sorted(set(plotted.filter(pl.col("kind") == "measured")["dataset"])))
        title = ("Figure 1 — reported (paper Table 1, real RxRx3-core) and measured by cellbench "
                 f"(hatched; {datasets}).\nMeasured recall on a synthetic screen is not comparable "
                 "in absolute value to the reported numbers.")
    fig = render_figure1(plotted, title=title)
    return save_figure(fig, out_dir, stem, plotted)
