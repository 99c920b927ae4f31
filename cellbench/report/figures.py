"""The paper's figures, regenerated: Figure 1 (efficiency), Figure 3 (compound–gene over
concentration), and the ablation plots (single- vs cross-well, prototype sweep).

Every figure is written three times, atomically: ``<stem>.png`` (what a person looks at),
``<stem>.pdf`` (for a manuscript) and ``<stem>.csv`` — exactly the numbers drawn, one row
per bar or point, so any figure can be checked or re-plotted without cellbench.
matplotlib is imported inside the functions (Agg backend) to keep ``cellbench --help`` fast.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import TYPE_CHECKING, cast

import polars as pl

from cellbench.io import atomic_path
from cellbench.registry import is_highlighted
from cellbench.report.paper import figure1_data, write_csv_atomic
from cellbench.report.store import is_preset_default, is_untrained, short_variant

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.artist import Artist

HIGHLIGHT = "#d62728"  # the paper highlights its method in red
REPORTED = "#8c8c8c"
MEASURED = "#1f77b4"
MEASURED_HIGHLIGHT = "#ff7f0e"

FIG1_PANELS: tuple[tuple[str, str, str, str], ...] = (
    # panel, value column, axis label, annotation kind
    ("a", "corum", "CORUM recall at (0.05, 0.95)", "recall"),
    ("b", "recall_per_million_images", "recall per million training images", "images"),
    ("c", "recall_per_billion_parameters", "recall per billion parameters", "parameters"),
    (
        "d",
        "recall_per_million_images_billion_parameters",
        "recall per (million images × billion parameters)",
        "both",
    ),
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
        # no creation date in the PDF, so regenerating an unchanged figure changes no bytes
        for ext, kw in ((".png", {"dpi": 150}), (".pdf", {"metadata": {"CreationDate": None}})):
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
    return f"{v:.3f}".lstrip("0") if abs(v) >= 0.01 else f"{v:.2g}".lstrip("0")


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
        ann = {
            "recall": "",
            "images": f"{img} images",
            "parameters": f"{par} params",
            "both": f"{img} × {par}",
        }
        for panel, col, label, kind in FIG1_PANELS:
            rows.append(
                {
                    "panel": panel,
                    "axis_label": label,
                    "method": rec["method"].replace(" (Ours)", ""),
                    "model": rec["model"],
                    "kind": "reported",
                    "dataset": "rxrx3-core (paper)",
                    "value": float(rec[col]),
                    "error": None,
                    "bound": "upper"
                    if upper and panel != "a" and kind in ("images", "both")
                    else "exact",
                    "annotation": ann[kind],
                    "highlight": is_highlighted(rec["model"]),
                    "provenance": "reported",
                    "source": rec["source"],
                }
            )
    if measured is not None:
        for rec in measured.iter_rows(named=True):
            corum = rec.get("corum")
            if corum is None or (isinstance(corum, float) and math.isnan(corum)):
                continue
            images = rec.get("images_millions") or 0.0  # unknown: 0, not shown in panels b-d
            params = rec.get("parameters_billions") or 0.0
            img_ok = images > 0
            par_ok = params > 0
            img_t = _count_text(round(images, 4), "M") if img_ok else ""
            par_t = _count_text(round(params, 4), "B") if par_ok else ""
            floor = rec.get("floor_corum")
            floor_ratio = {
                "a": 1.0,
                "b": 1 / images if img_ok else None,
                "c": 1 / params if par_ok else None,
                "d": 1 / (images * params) if img_ok and par_ok else None,
            }
            values = {
                "a": (corum, "", True),
                "b": (corum / images if img_ok else None, f"{img_t} images", img_ok),
                "c": (corum / params if par_ok else None, f"{par_t} params", par_ok),
                "d": (
                    corum / (images * params) if img_ok and par_ok else None,
                    f"{img_t} × {par_t}",
                    img_ok and par_ok,
                ),
            }
            for panel, _col, label, _kind in FIG1_PANELS:
                value, note, ok = values[panel]
                if not ok:
                    continue
                std = rec.get("corum_std")
                err = None
                if std is not None and not (isinstance(std, float) and math.isnan(std)):
                    err = std if panel == "a" else std * value / corum if corum else None
                ratio = floor_ratio[panel]
                rows.append(
                    {
                        "panel": panel,
                        "axis_label": label,
                        "method": f"{rec['method']} (measured, n={rec.get('n_seeds', 1)})",
                        "model": rec["model"],
                        "kind": "measured",
                        "dataset": rec["dataset"],
                        "value": float(value),
                        "error": err,
                        "bound": "exact",
                        "annotation": note,
                        "untrained_floor": (
                            float(floor) * ratio if floor is not None and ratio else None
                        ),
                        "highlight": is_highlighted(rec["model"]),
                        "provenance": "measured",
                        "source": "cellbench results store",
                    }
                )
    out = pl.DataFrame(rows, infer_schema_length=None)
    if "untrained_floor" not in out.columns:
        out = out.with_columns(untrained_floor=pl.lit(None))
    return out.with_columns(
        pl.col("error").cast(pl.Float64), pl.col("untrained_floor").cast(pl.Float64)
    )


def render_figure1(plotted: pl.DataFrame, *, title: str):
    """Draw the four panels from :func:`figure1_plot_data`'s table; returns the figure."""
    plt = _pyplot()
    from matplotlib.patches import Patch

    n_max = max(plotted.filter(pl.col("panel") == p).height for p in "abcd")
    fig, axes = plt.subplots(2, 2, figsize=(14, 3.0 + 0.36 * n_max * 2), constrained_layout=True)
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
            ax.errorbar(
                [values[i] for i in with_err],
                with_err,
                xerr=[errs[i] for i in with_err],
                fmt="none",
                ecolor="black",
                capsize=2,
                lw=0.8,
            )
        for bar, kind, bound in zip(bars, d["kind"], d["bound"], strict=True):
            if kind == "measured":
                bar.set_hatch("//")
                bar.set_edgecolor("white")
            if bound == "upper":
                bar.set_hatch("..")
                bar.set_edgecolor("white")
        floors = d["untrained_floor"].to_list()
        fy = [i for i, f in enumerate(floors) if f is not None]
        if fy:  # where a measured model of the same size that learned nothing would sit
            ax.scatter(
                [floors[i] for i in fy], fy, marker="|", s=260, color="black", lw=2, zorder=4
            )
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
        for yi, v, ann, bound, err in zip(
            y, values, d["annotation"], d["bound"], errs, strict=True
        ):
            text = ("≤" if bound == "upper" else "") + _fmt(v)
            if ann:
                text += f"  ({ann})"
            x = (v + err) * 1.12 if log else v + err + max(values) * 0.01
            ax.text(x, yi, text, va="center", ha="left", fontsize=7.5)
        n_meas_a = plotted.filter((pl.col("panel") == "a") & (pl.col("kind") == "measured")).height
        n_meas = d.filter(pl.col("kind") == "measured").height
        if n_meas < n_meas_a:
            why = {
                "b": "training-image count",
                "c": "parameter count",
                "d": "training-image or parameter count",
            }[panel]
            ax.text(
                0.99,
                0.02,
                f"{n_meas_a - n_meas} measured model(s) not shown: {why} not "
                "recorded in their results",
                transform=ax.transAxes,
                ha="right",
                va="bottom",
                fontsize=7.5,
                style="italic",
                color="0.3",
            )
        ax.set_xlabel(label + (" — log scale" if log else ""), fontsize=9)
        ax.set_title(f"({panel}) {label}", fontsize=10, loc="left")
        ax.grid(axis="x", alpha=0.3, which="both" if not log else "major")
        ax.set_axisbelow(True)
        ax.spines[["top", "right"]].set_visible(False)
    handles: list[Artist] = [
        Patch(color=HIGHLIGHT, label="CWA-MSN (reported)"),
        Patch(color=REPORTED, label="other methods (reported, paper Table 1)"),
    ]
    if (plotted["bound"] == "upper").any():
        handles.append(
            Patch(
                facecolor=REPORTED,
                hatch="..",
                edgecolor="white",
                label="upper bound (OpenPhenom: >>10M images)",
            )
        )
    meas = plotted.filter(pl.col("kind") == "measured")
    if meas.filter(pl.col("highlight")).height:
        handles.append(
            Patch(
                facecolor=MEASURED_HIGHLIGHT,
                hatch="//",
                edgecolor="white",
                label="CWA-MSN (measured by cellbench, mean ± std over seeds)",
            )
        )
    if meas.filter(~pl.col("highlight")).height:
        handles.append(
            Patch(
                facecolor=MEASURED,
                hatch="//",
                edgecolor="white",
                label="other models (measured by cellbench, mean ± std over seeds)",
            )
        )
    if meas.height and meas["untrained_floor"].is_not_null().any():
        from matplotlib.lines import Line2D

        handles.append(
            Line2D(
                [],
                [],
                marker="|",
                color="black",
                lw=0,
                markersize=14,
                mew=2,
                label="measured: the untrained ViT's recall at the same size "
                "(a model that learned nothing)",
            )
        )
    leg = fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=min(len(handles), 3),
        fontsize=8.5,
        frameon=False,
    )
    leg.set_title(
        "*: values from Lu et al. (2025)   **: not publicly available   "
        "(annotations: training images in millions, M; parameters in billions, B)",
        prop={"size": 8},
    )
    fig.suptitle(title, fontsize=11)
    return fig


def figure1(
    out_dir: str | Path, *, measured: pl.DataFrame | None = None, stem: str | None = None
) -> list[Path]:
    """Write Figure 1: reported-only when ``measured`` is None, else with measured rows."""
    plotted = figure1_plot_data(measured)
    if measured is None or not (plotted["kind"] == "measured").any():
        stem = stem or "figure1_efficiency_reported"
        title = (
            "Figure 1 — gene–gene recall and efficiency (reported: CWA-MSN paper Table 1, "
            "real RxRx3-core)"
        )
    else:
        stem = stem or "figure1_efficiency_with_measured"
        datasets = ", ".join(sorted(set(plotted.filter(pl.col("kind") == "measured")["dataset"])))
        title = (
            "Figure 1 — reported (paper Table 1, real RxRx3-core) and measured by cellbench "
            f"(hatched; {datasets}).\nMeasured recall on a synthetic screen is not comparable "
            "in absolute value to the reported numbers."
        )
    fig = render_figure1(plotted, title=title)
    return save_figure(fig, out_dir, stem, plotted)


# ----------------------------------------------------------------------------------------
# Figure 3: compound–gene AP and AUC-ROC over concentration
# ----------------------------------------------------------------------------------------
def _conc_value(c) -> float | None:
    """Concentration as float µM; None for the "max" aggregate."""
    if str(c).strip().lower() == "max":
        return None
    return float(c)


def compound_curves(records) -> pl.DataFrame:
    """Per (dataset, model, variant, concentration): AP and AUC-ROC over training seeds.

    ``ap``/``auc`` are the means over seeds; ``ap_err``/``auc_err`` the std over seeds when
    there are ≥ 2 seeds (``err_kind == "seeds"``), else the result's own std over the
    negative-sampling seeds of the benchmark (``err_kind == "sampling"``). The random
    baseline (``*_baseline``, ``*_baseline_std``) is averaged over all results.
    """
    rows = []
    for rec in records:
        if rec.get("task") != "compound_gene":
            continue
        for r in (rec.get("scores") or {}).get("rows", []):
            if not isinstance(r, dict) or r.get("average_precision") is None:
                continue
            c = r.get("concentration")
            rows.append(
                {
                    "dataset": str(rec["dataset"]),
                    "model": str(rec["model"]),
                    "variant": str(rec.get("variant", "default")),
                    "seed": rec.get("seed"),
                    "concentration": "max"
                    if _conc_value(c) is None
                    else f"{float(cast(float, c)):g}",
                    "concentration_um": _conc_value(c),
                    "ap": float(r["average_precision"]),
                    "ap_std": _f(r.get("average_precision_std")),
                    "auc": _f(r.get("auc_roc")),
                    "auc_std": _f(r.get("auc_roc_std")),
                    "ap_baseline": _f(r.get("average_precision_baseline")),
                    "ap_baseline_std": _f(r.get("average_precision_baseline_std")),
                    "auc_baseline": _f(r.get("auc_roc_baseline")),
                    "auc_baseline_std": _f(r.get("auc_roc_baseline_std")),
                }
            )
    if not rows:
        return pl.DataFrame()
    df = pl.DataFrame(rows, infer_schema_length=None)
    keys = ["dataset", "model", "variant", "concentration"]
    agg = df.group_by(keys, maintain_order=True).agg(
        pl.col("concentration_um").first(),
        pl.col("seed").n_unique().alias("n_seeds"),
        pl.col("ap").mean().alias("ap_mean"),
        pl.col("ap").std().alias("ap_seed_std"),
        pl.col("ap_std").mean().alias("ap_sampling_std"),
        pl.col("auc").mean().alias("auc_mean"),
        pl.col("auc").std().alias("auc_seed_std"),
        pl.col("auc_std").mean().alias("auc_sampling_std"),
        pl.col("ap_baseline").mean(),
        pl.col("ap_baseline_std").mean(),
        pl.col("auc_baseline").mean(),
        pl.col("auc_baseline_std").mean(),
    )
    seeds_ok = pl.col("n_seeds") >= 2
    return (
        agg.with_columns(
            pl.when(seeds_ok)
            .then(pl.col("ap_seed_std"))
            .otherwise(pl.col("ap_sampling_std"))
            .alias("ap_err"),
            pl.when(seeds_ok)
            .then(pl.col("auc_seed_std"))
            .otherwise(pl.col("auc_sampling_std"))
            .alias("auc_err"),
            pl.when(seeds_ok).then(pl.lit("seeds")).otherwise(pl.lit("sampling")).alias("err_kind"),
        )
        .drop("ap_seed_std", "ap_sampling_std", "auc_seed_std", "auc_sampling_std")
        .sort(["dataset", "model", "variant", "concentration_um"], nulls_last=True)
    )


def _f(x) -> float | None:
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None


def _labels(df: pl.DataFrame) -> dict[tuple[str, str], str]:
    """Legend label per (model, variant): the display name, plus the variant when a model has
    several."""
    from cellbench.report.tables import _display

    variants: dict[str, set[str]] = {}
    for m, v in zip(df["model"], df["variant"], strict=True):
        variants.setdefault(m, set()).add(v)

    def label(m: str, v: str, many: bool) -> str:
        if is_untrained(v):  # `cellbench run --steps 0`: the network before training
            preset = short_variant(v).split("-steps0")[0]
            return f"untrained {preset} ViT ({_display(m)} architecture)"
        return f"{_display(m)} ({v})" if many else _display(m)

    return {(m, v): label(m, v, len(vs) > 1) for m, vs in variants.items() for v in vs}


_LINESTYLES = ("-", "--", "-.", ":")


def _linestyles(keys: list[tuple[str, str]], colors: dict) -> dict[tuple[str, str], str]:
    """A line style per key, changing each time the 9 non-red tab10 colours come round again,
    so no two curves share both colour and style (up to 36 curves)."""
    out, i = {}, 0
    for k in keys:
        if colors[k] == HIGHLIGHT:
            out[k] = "-"
        else:
            out[k] = _LINESTYLES[(i // 9) % len(_LINESTYLES)]
            i += 1
    return out


def _highlight_key(keys: list[tuple[str, str]]) -> tuple[str, str] | None:
    """The CWA-MSN curve to highlight: the default run's ("quick"), else the first trained one."""
    msn = [k for k in keys if is_highlighted(k[0]) and not is_untrained(k[1])]
    preferred = [k for k in msn if is_preset_default(k[0], k[1])]
    candidates = preferred or msn
    return candidates[0] if candidates else None


def _colors(keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    plt = _pyplot()
    cmap = plt.get_cmap("tab10")
    out, i = {}, 0
    chosen = _highlight_key(keys)
    for k in keys:
        if k == chosen:
            out[k] = HIGHLIGHT
        else:
            c = cmap(i % 10)
            if c[:3] == (0.8392156862745098, 0.15294117647058825, 0.1568627450980392):  # tab10 red
                i += 1
                c = cmap(i % 10)
            out[k] = c
            i += 1
    return out


def figure3(records, out_dir: str | Path, *, dataset: str | None = None) -> list[Path]:
    """Figure 3 per dataset: AP and AUC-ROC over concentration (log axis) for every measured
    model, the "max" aggregate beside it, and the random baseline as a grey band
    (mean ± std). Writes ``figure3_compound_gene_<dataset>.png/.pdf/.csv``."""
    curves = compound_curves(records)
    if not curves.height:
        return []
    written: list[Path] = []
    for ds in sorted(set(curves["dataset"].to_list())):
        if dataset is not None and ds != dataset:
            continue
        d = one_variant_per_model(curves.filter(pl.col("dataset") == ds))
        written += save_figure(
            _render_figure3(d, ds), out_dir, f"figure3_compound_gene_{_safe(ds)}", d
        )
    return written


def one_variant_per_model(d: pl.DataFrame) -> pl.DataFrame:
    """Figure 3's rows: per model its main variant - the preset's own ("quick"/"default"),
    else the one with the most seeds (ties: first by name) - plus the untrained network
    (``*-steps0``) as a floor. Budget and prototype variants have their own figures."""
    keep = []
    for _model, g in d.group_by("model", maintain_order=True):
        seeds = g.group_by("variant", maintain_order=True).agg(pl.col("n_seeds").max())
        untrained = seeds.filter(
            pl.col("variant").map_elements(is_untrained, return_dtype=pl.Boolean)
        )
        trained = seeds.filter(~pl.col("variant").is_in(untrained["variant"].to_list()))
        own = trained.filter(
            pl.col("variant").map_elements(
                functools.partial(is_preset_default, _model[0]), return_dtype=pl.Boolean
            )
        )
        pick = own if own.height else trained.sort(["n_seeds", "variant"], descending=[True, False])
        chosen = set(pick["variant"][:1].to_list())
        chosen |= set(untrained["variant"].to_list())
        keep.append(g.filter(pl.col("variant").is_in(sorted(chosen))))
    return pl.concat(keep) if keep else d


def _render_figure3(d: pl.DataFrame, ds: str):
    plt = _pyplot()
    labels = _labels(d)
    # order the legend by AP at max, best first
    at_max = d.filter(pl.col("concentration") == "max").sort("ap_mean", descending=True)
    keys = list(dict.fromkeys(zip(at_max["model"], at_max["variant"], strict=True)))
    keys += [k for k in dict.fromkeys(zip(d["model"], d["variant"], strict=True)) if k not in keys]
    colors = _colors(keys)
    styles = _linestyles(keys, colors)
    fig, axes = plt.subplots(
        2,
        2,
        figsize=(11, 7.5),
        sharey="row",
        gridspec_kw={"width_ratios": [5, 1], "wspace": 0.05},
        constrained_layout=True,
    )
    for row, (metric, name) in enumerate(
        (("ap", "mean average precision (AP)"), ("auc", "mean AUC-ROC"))
    ):
        ax, axm = axes[row]
        curve = d.filter(pl.col("concentration") != "max")
        base = (
            curve.group_by("concentration_um")
            .agg(pl.col(f"{metric}_baseline").mean(), pl.col(f"{metric}_baseline_std").mean())
            .sort("concentration_um")
            .drop_nulls()
        )
        if base.height:
            x = base["concentration_um"].to_list()
            m = base[f"{metric}_baseline"].to_numpy()
            s = base[f"{metric}_baseline_std"].to_numpy()
            ax.fill_between(
                x, m - s, m + s, color="0.8", zorder=0, label="random baseline (mean ± std)"
            )
            ax.plot(x, m, color="0.5", lw=1, ls="--", zorder=1)
        bmax = d.filter(pl.col("concentration") == "max")
        if bmax[f"{metric}_baseline"].is_not_null().any():
            bm = float(cast(float, bmax[f"{metric}_baseline"].mean()))
            bs = float(cast("float | None", bmax[f"{metric}_baseline_std"].mean()) or 0.0)
            axm.axhspan(bm - bs, bm + bs, color="0.8", zorder=0)
            axm.axhline(bm, color="0.5", lw=1, ls="--", zorder=1)
        for j, key in enumerate(keys):
            g = curve.filter((pl.col("model") == key[0]) & (pl.col("variant") == key[1]))
            hl = colors[key] == HIGHLIGHT
            if g.height:
                ax.errorbar(
                    g["concentration_um"].to_list(),
                    g[f"{metric}_mean"].to_list(),
                    yerr=g[f"{metric}_err"].fill_null(0.0).to_list(),
                    color=colors[key],
                    marker="o",
                    ms=4 if not hl else 5,
                    lw=2.2 if hl else 1.3,
                    capsize=2,
                    ls=styles[key],
                    label=labels[key],
                    zorder=3 if hl else 2,
                )
            gm = bmax.filter((pl.col("model") == key[0]) & (pl.col("variant") == key[1]))
            if gm.height and gm[f"{metric}_mean"][0] is not None:
                xj = (j - (len(keys) - 1) / 2) * 0.6 / max(len(keys), 1)
                axm.errorbar(
                    [xj],
                    [gm[f"{metric}_mean"][0]],
                    yerr=[gm[f"{metric}_err"].fill_null(0.0)[0]],
                    color=colors[key],
                    marker="o",
                    ms=5,
                    capsize=2,
                    zorder=3,
                )
        ax.set_xscale("log")
        ticks = sorted(set(curve["concentration_um"].drop_nulls().to_list()))
        if ticks:
            ax.set_xticks(ticks)
            ax.set_xticklabels([f"{t:g}" for t in ticks], fontsize=8)
            ax.minorticks_off()
        ax.set_ylabel(name)
        ax.grid(alpha=0.3, which="major")
        ax.spines[["top", "right"]].set_visible(False)
        axm.set_xlim(-0.5, 0.5)
        axm.set_xticks([])
        axm.grid(axis="y", alpha=0.3)
        axm.spines[["top", "right"]].set_visible(False)
        if row == 1:
            ax.set_xlabel("compound concentration (µM, log scale)")
            axm.set_xlabel("max over\nconcentrations")
    fig.suptitle(
        f"Figure 3 — compound–gene benchmark over concentration ({ds}, measured; "
        "one training variant per model)",
        fontsize=11,
        x=0.02,
        ha="left",
    )
    err_kinds = set(d["err_kind"].to_list())
    note = (
        "error bars: std over training seeds"
        if err_kinds == {"seeds"}
        else "error bars: std over training seeds (≥ 2 seeds)\nor over the benchmark's "
        "negative-sampling seeds (1 seed)"
    )
    handles, lbls = axes[0][0].get_legend_handles_labels()
    fig.legend(
        handles,
        lbls,
        loc="outside right center",
        fontsize=8.5,
        frameon=False,
        title=note.replace(": ", ":\n", 1),
        title_fontsize=7.5,
    )
    return fig


def _safe(name: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


# ----------------------------------------------------------------------------------------
# Ablations: single- vs cross-well (Tables 3–4), prototype count (Table 5)
# ----------------------------------------------------------------------------------------
SOURCE_LABELS = {
    "corum": "CORUM",
    "humap": "HuMAP",
    "reactome": "Reactome",
    "signor": "SIGNOR",
    "stringdb": "StringDB",
}
ABLATION_PAIRS = (
    ("MSN", "single-well-msn", "cwa-msn", 3),
    ("CropMAE", "cropmae-single", "cropmae-cross", 4),
)


def _gene_long(records) -> pl.DataFrame:
    from cellbench.report.tables import long_results

    return long_results(records)


def single_vs_cross_data(records) -> pl.DataFrame:
    """What the single- vs cross-well plot draws: measured (per dataset: mean, std and each
    seed per model and source) and reported (paper Tables 3–4) rows."""
    from cellbench.report import paper
    from cellbench.report.tables import train_seconds

    long = _gene_long(records)
    rows: list[dict] = []
    if long.height:
        gene = long.filter(pl.col("metric").is_in(list(SOURCE_LABELS)))
        timed = long.filter(pl.col("metric").str.starts_with("fact_train_seconds"))
        for ds in sorted(set(gene["dataset"].to_list())):
            for family, single, cross, _t in ABLATION_PAIRS:
                g = gene.filter((pl.col("dataset") == ds) & pl.col("model").is_in([single, cross]))
                if set(g["model"].to_list()) != {single, cross}:
                    continue
                # the variant both models share with the most seeds (ties: the smaller budget)
                counts = g.group_by("variant").agg(
                    pl.col("model").n_unique().alias("m"), pl.col("seed").n_unique().alias("n")
                )
                counts = counts.filter(pl.col("m") == 2).with_columns(
                    steps=pl.col("variant").str.extract(r"steps(\d+)").cast(pl.Int64).fill_null(0)
                )
                counts = counts.sort(["n", "steps", "variant"], descending=[True, False, False])
                if not counts.height:
                    continue
                variant = counts["variant"][0]
                g = g.filter(pl.col("variant") == variant)
                for model in (single, cross):
                    h = train_seconds(
                        timed.filter(
                            (pl.col("dataset") == ds)
                            & (pl.col("model") == model)
                            & (pl.col("variant") == variant)
                        )
                    )
                    cpu_h = sum(h) / len(h) / 3600 if h else None
                    for src in SOURCE_LABELS:
                        vals = g.filter((pl.col("model") == model) & (pl.col("metric") == src))
                        if not vals.height:
                            continue
                        v = vals["value"]
                        base = {
                            "block": "measured",
                            "dataset": ds,
                            "family": family,
                            "model": model,
                            "variant": variant,
                            "source": src,
                            "n_seeds": v.len(),
                            "hours": cpu_h,
                            "hours_unit": "CPU hours per run (measured)",
                        }
                        rows.append(
                            {
                                **base,
                                "kind": "mean",
                                "seed": None,
                                "value": float(cast(float, v.mean())),
                                "std": float(cast(float, v.std())) if v.len() >= 2 else None,
                            }
                        )
                        for seed, val in zip(vals["seed"], v, strict=True):
                            rows.append(
                                {
                                    **base,
                                    "kind": "seed",
                                    "seed": seed,
                                    "value": float(val),
                                    "std": None,
                                }
                            )
    for family, single, cross, table in ABLATION_PAIRS:
        t = paper.paper_table(table).filter(pl.col("model").is_in([single, cross]))
        for rec in t.iter_rows(named=True):
            for src in ("corum", "humap", "reactome", "stringdb"):
                rows.append(
                    {
                        "block": "reported",
                        "dataset": "rxrx3-core (paper)",
                        "family": family,
                        "model": rec["model"],
                        "variant": f"paper Table {table}",
                        "source": src,
                        "n_seeds": None,
                        "hours": rec.get("gpu_hours_n"),
                        "hours_unit": "GPU hours (paper)" if rec.get("gpu_hours_n") else None,
                        "kind": "reported",
                        "seed": None,
                        "value": rec[src],
                        "std": None,
                    }
                )
    return pl.DataFrame(rows, infer_schema_length=None).with_columns(
        pl.col("std").cast(pl.Float64),
        pl.col("hours").cast(pl.Float64),
        pl.col("seed").cast(pl.Int64),
        pl.col("n_seeds").cast(pl.Int64),
    )


def _hours_text(h, unit) -> str:
    if h is None:
        return ""
    if unit and unit.startswith("GPU"):
        return f", {'<' if h == 9 else ''}{h:g} GPU-h"
    return f", {h:.2f} CPU-h/run"


def figure_single_vs_cross(
    records,
    out_dir: str | Path,
    *,
    dataset: str | None = None,
    stem: str = "ablation_single_vs_cross_well",
) -> list[Path]:
    """Grouped bars per source: single- vs cross-well for MSN and CropMAE; top row measured
    (mean ± std over seeds, dots = seeds), bottom row the paper's Tables 3–4."""
    from cellbench.report.tables import _display

    data = single_vs_cross_data(records)
    if dataset is not None:
        data = data.filter((pl.col("block") == "reported") | (pl.col("dataset") == dataset))
    measured_ds = sorted(set(data.filter(pl.col("block") == "measured")["dataset"].to_list()))
    if not measured_ds:
        return []
    plt = _pyplot()
    written = []
    for ds in measured_ds:
        d = data.filter((pl.col("block") == "reported") | (pl.col("dataset") == ds))
        fig, axes = plt.subplots(2, 2, figsize=(12, 7.5), constrained_layout=True)
        for col, (family, single, cross, table) in enumerate(ABLATION_PAIRS):
            for row, block in enumerate(("measured", "reported")):
                ax = axes[row][col]
                g = d.filter((pl.col("block") == block) & (pl.col("family") == family))
                if not g.height:
                    ax.text(
                        0.5,
                        0.5,
                        f"no measured {family} pair yet",
                        ha="center",
                        va="center",
                        transform=ax.transAxes,
                        color="0.4",
                    )
                    ax.set_axis_off()
                    continue
                sources = [s for s in SOURCE_LABELS if s in set(g["source"].to_list())]
                for k, (model, color) in enumerate(
                    ((single, "#7f7f7f"), (cross, HIGHLIGHT if model_is_ours(cross) else MEASURED))
                ):
                    m = g.filter(
                        (pl.col("model") == model) & pl.col("kind").is_in(["mean", "reported"])
                    )
                    vals = {r["source"]: r for r in m.iter_rows(named=True)}
                    xs = [i + (k - 0.5) * 0.38 for i, s in enumerate(sources) if s in vals]
                    ys = [vals[s]["value"] for s in sources if s in vals]
                    es = [vals[s]["std"] or 0.0 for s in sources if s in vals]
                    first = next(iter(vals.values()))
                    n = first["n_seeds"]
                    extras = ([f"n={n}"] if n else []) + (
                        [_hours_text(first["hours"], first["hours_unit"]).lstrip(", ")]
                        if first["hours"] is not None
                        else []
                    )
                    label = _display(model) + (f" ({', '.join(extras)})" if extras else "")
                    ax.bar(
                        xs,
                        ys,
                        width=0.36,
                        color=color,
                        label=label,
                        yerr=es if any(es) else None,
                        capsize=3,
                        ecolor="black",
                    )
                    seeds = g.filter((pl.col("model") == model) & (pl.col("kind") == "seed"))
                    for i, s in enumerate(sources):
                        sv = seeds.filter(pl.col("source") == s)["value"].to_list()
                        ax.scatter(
                            [i + (k - 0.5) * 0.38] * len(sv), sv, s=10, color="black", zorder=3
                        )
                ax.set_xticks(range(len(sources)))
                ax.set_xticklabels([SOURCE_LABELS[s] for s in sources])
                ax.set_ylabel("recall at (0.05, 0.95)")
                where = (
                    f"measured, {ds}"
                    if block == "measured"
                    else f"reported, paper Table {table} (real RxRx3-core)"
                )
                ax.set_title(f"{family}: single- vs cross-well — {where}", fontsize=10, loc="left")
                ax.legend(fontsize=8, frameon=False, loc="upper right")
                top = max(
                    cast(float, g["value"].max()) + (cast("float | None", g["std"].max()) or 0.0),
                    0.05,
                )
                ax.set_ylim(0, top * 1.3)
                ax.grid(axis="y", alpha=0.3)
                ax.set_axisbelow(True)
                ax.spines[["top", "right"]].set_visible(False)
        fig.suptitle(
            "Single- vs cross-well sampling (bars: mean ± std over seeds; dots: seeds). "
            "Measured and reported rows are on different data.",
            fontsize=10,
        )
        name = stem if len(measured_ds) == 1 and dataset is None else f"{stem}_{_safe(ds)}"
        written += save_figure(fig, out_dir, name, d)
    return written


def model_is_ours(model: str) -> bool:
    """Whether ``model`` is the paper's proposed method (``highlight = true`` on its card)."""
    return is_highlighted(model)


def prototype_sweep_data(records) -> pl.DataFrame:
    """CWA-MSN recall per number of prototypes: measured (per dataset, over seeds) and the
    paper's Table 5. The number of prototypes is read from each result's config."""
    from cellbench.report import paper

    long = _gene_long(records)
    rows: list[dict] = []
    if long.height:
        msn = long.filter(pl.col("model") == "cwa-msn").with_columns(
            base=pl.col("variant").str.replace(r"-proto\d+", "")
        )
        # the sweep: the runs that differ only in their prototype count, i.e. share a base
        # variant (e.g. "quick" and "quick-proto256"), taking per dataset the base with the
        # most prototype counts - never a run trained for another budget
        swept = msn.filter(pl.col("variant").str.contains(r"-proto\d+"))
        if swept.height:
            best = (
                swept.group_by("dataset", "base")
                .agg(pl.col("variant").n_unique().alias("k"))
                .sort(["dataset", "k"], descending=[False, True])
                .unique("dataset", keep="first")
            )
            msn = msn.join(best.select("dataset", "base"), on=["dataset", "base"], how="inner")
        protos = msn.filter(pl.col("metric") == "fact_prototypes").select(
            "dataset", "variant", "seed", pl.col("value").alias("prototypes")
        )
        gene = msn.filter(pl.col("metric").is_in(list(SOURCE_LABELS))).join(
            protos, on=["dataset", "variant", "seed"], how="inner", nulls_equal=True
        )
        # one value per (prototypes, seed, source): the latest run
        gene = gene.unique(
            subset=["dataset", "prototypes", "seed", "metric"], keep="last", maintain_order=True
        )
        for (ds, p, src), g in gene.partition_by(
            ["dataset", "prototypes", "metric"], as_dict=True, maintain_order=True
        ).items():
            v = g["value"]
            base = {
                "block": "measured",
                "dataset": ds,
                "prototypes": int(p),
                "source": src,
                "n_seeds": v.len(),
            }
            rows.append(
                {
                    **base,
                    "kind": "mean",
                    "seed": None,
                    "value": float(cast(float, v.mean())),
                    "std": float(cast(float, v.std())) if v.len() >= 2 else None,
                }
            )
            for seed, val in zip(g["seed"], v, strict=True):
                rows.append(
                    {**base, "kind": "seed", "seed": seed, "value": float(val), "std": None}
                )
    t5 = paper.paper_table(5).filter(pl.col("row_type") == "method")
    for rec in t5.iter_rows(named=True):
        for src in ("corum", "humap", "reactome", "stringdb"):
            rows.append(
                {
                    "block": "reported",
                    "dataset": "rxrx3-core (paper)",
                    "prototypes": int(rec["prototypes_n"]),
                    "source": src,
                    "n_seeds": None,
                    "kind": "reported",
                    "seed": None,
                    "value": rec[src],
                    "std": None,
                }
            )
    return pl.DataFrame(rows, infer_schema_length=None).with_columns(
        pl.col("std").cast(pl.Float64),
        pl.col("seed").cast(pl.Int64),
        pl.col("n_seeds").cast(pl.Int64),
    )


def figure_prototypes(
    records, out_dir: str | Path, *, dataset: str | None = None, stem: str = "ablation_prototypes"
) -> list[Path]:
    """Recall vs number of prototypes (log2 axis): measured (mean ± std over seeds, dots =
    seeds) beside the paper's Table 5. Needs ≥ 2 measured prototype counts."""
    data = prototype_sweep_data(records)
    measured = data.filter(pl.col("block") == "measured")
    if dataset is not None:
        measured = measured.filter(pl.col("dataset") == dataset)
    datasets = [
        ds
        for ds in sorted(set(measured["dataset"].to_list()))
        if measured.filter(pl.col("dataset") == ds)["prototypes"].n_unique() >= 2
    ]
    if not datasets:
        return []
    plt = _pyplot()
    cmap = plt.get_cmap("tab10")
    colors = {s: cmap(i) for i, s in enumerate(SOURCE_LABELS)}
    written = []
    for ds in datasets:
        d = pl.concat(
            [measured.filter(pl.col("dataset") == ds), data.filter(pl.col("block") == "reported")]
        )
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), constrained_layout=True)
        for ax, block, where in (
            (axes[0], "measured", f"measured, {ds}"),
            (axes[1], "reported", "reported, paper Table 5 (real RxRx3-core)"),
        ):
            g = d.filter(pl.col("block") == block)
            for i, src in enumerate(SOURCE_LABELS):
                m = g.filter(
                    (pl.col("source") == src) & pl.col("kind").is_in(["mean", "reported"])
                ).sort("prototypes")
                if not m.height:
                    continue
                n = cast("int | None", m["n_seeds"].max())
                # sources side by side around each prototype count (display only; the CSV
                # keeps the true count)
                dodge = 2 ** ((i - 2) * 0.035) if block == "measured" else 1.0
                ax.errorbar(
                    [p * dodge for p in m["prototypes"].to_list()],
                    m["value"].to_list(),
                    yerr=m["std"].fill_null(0.0).to_list() if block == "measured" else None,
                    marker="o",
                    capsize=3,
                    color=colors[src],
                    lw=2.2 if src == "corum" else 1.2,
                    label=SOURCE_LABELS[src] + (f" (n={n} seeds)" if n else ""),
                )
                s = g.filter((pl.col("source") == src) & (pl.col("kind") == "seed"))
                if s.height:
                    ax.scatter(
                        [p * dodge for p in s["prototypes"].to_list()],
                        s["value"].to_list(),
                        s=9,
                        color=colors[src],
                        alpha=0.6,
                        zorder=3,
                    )
            ax.set_xscale("log", base=2)
            ticks = sorted(set(g["prototypes"].to_list()))
            ax.set_xticks(ticks)
            ax.set_xticklabels([f"{t:,}" for t in ticks])
            ax.minorticks_off()
            ax.set_xlabel("number of prototypes (log₂ scale)")
            ax.set_ylabel("recall at (0.05, 0.95)")
            ax.set_title(f"CWA-MSN prototype count — {where}", fontsize=10, loc="left")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8, frameon=False)
            ax.spines[["top", "right"]].set_visible(False)
        name = stem if len(datasets) == 1 and dataset is None else f"{stem}_{_safe(ds)}"
        written += save_figure(fig, out_dir, name, d)
    return written
