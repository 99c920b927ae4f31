"""The leaderboard as one self-contained HTML page (``cellbench leaderboard --html PATH``).

One sortable table per dataset: measured rows as mean ± the half-width of a 95 % t-interval
over training seeds, the floors (chance, untrained networks, the random ViT-S/16, ...) and the
ceiling (oracle) marked, and below them, never sorted with them, the paper's reported rows.
Every row names its source (synthetic / measured / chance / reported) and carries its
provenance (simulator version, config hash, data hash, checkpoint ids) in a ``title``
attribute. Figure 1, Figure 3 and the simulator montage are embedded as base64 data URIs
when their PNGs exist, so the page is one file with no outside requests.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl

from cellbench.io import write_text_atomic
from cellbench.paths import checkout_root
from cellbench.report import tables
from cellbench.report.store import is_untrained, short_variant

MONTAGE = Path("docs") / "images" / "simulator_montage.png"

_CSS = """
body{font:13px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1600px;
color:#1d2330;background:#fff;padding:0 20px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 6px}
p.lead{color:#4a5568;margin:4px 0 12px;max-width:1100px}
.wrap{overflow-x:auto;border:1px solid #d9dee7;border-radius:6px}
table.lb{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums;white-space:nowrap}
table.lb th,table.lb td{padding:4px 7px;border-bottom:1px solid #edf0f5;text-align:right}
table.lb th:first-child,table.lb td:first-child,table.lb td.txt,table.lb th.txt{text-align:left}
table.lb td{background:#fff}
table.lb td:first-child{position:sticky;left:0;z-index:1;box-shadow:1px 0 0 #edf0f5}
table.lb thead th{background:#f4f6fa;position:sticky;top:0;z-index:2;cursor:pointer;user-select:none;font-weight:600}
table.lb thead th:hover{background:#e8ecf4}
table.lb thead th.asc::after{content:" ▲";font-size:10px}table.lb thead th.desc::after{content:" ▼";font-size:10px}
tr.ceiling td{background:#eef7ee}tr.floor td{background:#fbf5ea}tr.chance td{background:#f6eee0;font-style:italic}
tr.highlight td{background:#eaf1fd;font-weight:600}
tbody.reported td{background:#f7f7fa;color:#505a6b}
tbody.reported tr.sep td{background:#e9ebf2;color:#1d2330;font-weight:600;text-align:left;cursor:default}
.badge{display:inline-block;font-size:11px;padding:0 6px;border-radius:8px;margin-left:6px;vertical-align:1px;
font-style:normal;font-weight:500}
.b-ceiling{background:#cfe9cf;color:#1f5a1f}.b-floor{background:#f3dfb8;color:#6b4a0d}
.b-reported{background:#dcdff0;color:#303a72}.b-chance{background:#ead8b8;color:#5c410c}
.b-model{background:#dde7f7;color:#1f3f73}
td.na{color:#a0a8b8}
.figs{display:flex;flex-wrap:wrap;gap:18px;margin-top:10px}
figure{margin:0;border:1px solid #d9dee7;border-radius:6px;padding:8px;background:#fff;max-width:760px}
figure img{max-width:100%;height:auto;display:block}figcaption{font-size:12px;color:#4a5568;margin-top:4px}
.legend{display:flex;flex-wrap:wrap;gap:6px 18px;max-width:1200px}.legend>span{white-space:nowrap}
footer{margin-top:30px;color:#6b7587;font-size:12px}
"""

_JS = """
document.querySelectorAll('table.lb').forEach(function(t){
  var body=t.querySelector('tbody.sortable');
  t.querySelectorAll('thead th').forEach(function(th,i){
    th.addEventListener('click',function(){
      var asc=th.classList.contains('desc')?true:th.classList.contains('asc')?false:th.dataset.type==='text';
      t.querySelectorAll('thead th').forEach(function(h){h.classList.remove('asc','desc')});
      th.classList.add(asc?'asc':'desc');
      var rows=Array.prototype.slice.call(body.rows);
      rows.sort(function(a,b){
        var x=a.cells[i].dataset.v,y=b.cells[i].dataset.v;
        if(th.dataset.type==='text'){x=x||'';y=y||'';return asc?x.localeCompare(y):y.localeCompare(x);}
        var nx=(x===undefined||x==='')?null:parseFloat(x),ny=(y===undefined||y==='')?null:parseFloat(y);
        if(nx===null&&ny===null)return 0;if(nx===null)return 1;if(ny===null)return -1;
        return asc?nx-ny:ny-nx;});
      rows.forEach(function(r){body.appendChild(r)});
    });
  });
});
"""

_METRICS = tables.METRICS
_KIND_BADGE = {
    "ceiling": ("ceiling", "b-ceiling"),
    "chance": ("floor: chance", "b-chance"),
    "untrained": ("floor: untrained", "b-floor"),
    "random": ("floor: random ViT-S/16", "b-floor"),
    "floor": ("floor", "b-floor"),
    "reported": ("reported", "b-reported"),
}


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def data_uri(path: str | Path) -> str:
    """A PNG file as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def row_kind(row: dict[str, Any]) -> str:
    """What a measured or computed row is: ceiling, chance, untrained, random (the random
    ViT-S/16), floor (another floor or reference row) or model."""
    if row.get("source") == tables.CHANCE_LABEL:
        return "chance"
    if is_untrained(str(row.get("variant", ""))):
        return "untrained"
    if row.get("model") == "random":
        return "random"
    role = row.get("role")
    return role if role in ("ceiling", "floor") else "model"


def _half_width(std: float | None, n: int | None) -> float | None:
    """Half-width of the two-sided 95 % Student-t interval for a mean over ``n`` seeds."""
    if std is None or not n or n < 2:
        return None
    from scipy import stats

    return float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)


def _metric_td(row: dict[str, Any], key: str) -> str:
    mean = row.get(f"{key}_mean")
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return '<td class="na" data-v="">–</td>'
    digits = 2 if key.endswith("_z") else 3
    n = row.get(f"{key}_n") or 0
    std = row.get(f"{key}_std")
    half = _half_width(std, n)
    text = f"{mean:.{digits}f}" + ("" if half is None else f" ± {half:.{digits}f}")
    if row.get("source") == tables.CHANCE_LABEL:
        tip = "by construction (chance)"
    elif half is None:
        tip = f"{n} seed: no interval" if n == 1 else "no interval"
    else:
        tip = (
            f"95 % t-interval over {n} seeds: [{mean - half:.{digits}f}, {mean + half:.{digits}f}]"
            f"; std {std:.{digits}f}"
        )
    return f'<td data-v="{mean!r}" title="{_e(tip)}">{_e(text)}</td>'


def provenance(records: Iterable[dict[str, Any]]) -> dict[tuple[str, str, str], str]:
    """Per (dataset, model, variant): simulator version(s), config hash(es), data hash(es)
    and the checkpoint ids behind the row, as one line for a ``title`` attribute."""
    facts: dict[tuple[str, str, str], dict[str, set[str]]] = {}
    for rec in records:
        key = (
            str(rec.get("dataset", "")),
            str(rec.get("model", "")),
            str(rec.get("variant", rec.get("checkpoint", ""))),
        )
        f = facts.setdefault(
            key, {"simulator": set(), "config": set(), "data": set(), "checkpoint": set()}
        )
        hashes = rec.get("hashes") or {}
        if rec.get("simulator_version"):
            f["simulator"].add(str(rec["simulator_version"]))
        # the record's identity (ResultRecord.config_id), else its checkpoint's weights
        conf = rec.get("config_id") or rec.get("weights_key")
        if conf:
            f["config"].add(str(conf))
        if hashes.get("data"):
            f["data"].add(str(hashes["data"]))
        if rec.get("checkpoint"):
            f["checkpoint"].add(str(rec["checkpoint"]))

    def join(values: set[str]) -> str:
        return ", ".join(sorted(values)) or "–"

    return {
        k: (
            f"simulator version: {join(f['simulator'])}\nconfig hash: {join(f['config'])}\n"
            f"data hash: {join(f['data'])}\ncheckpoint id: {join(f['checkpoint'])}"
        )
        for k, f in facts.items()
    }


def _measured_rows(d: pl.DataFrame, prov: dict[tuple[str, str, str], str]) -> list[str]:
    from cellbench.registry import is_highlighted

    kinds_of = [(m, is_untrained(v)) for m, v in zip(d["model"], d["variant"], strict=True)]
    many = {k for k in kinds_of if kinds_of.count(k) > 1}
    out = []
    for r, key in zip(d.iter_rows(named=True), kinds_of, strict=True):
        kind = row_kind(r)
        classes = [
            kind if kind in ("ceiling", "chance") else "floor" if kind != "model" else "model"
        ]
        try:
            if kind == "model" and is_highlighted(r["model"]):
                classes.append("highlight")
        except Exception:  # noqa: BLE001 - an unknown model is simply not highlighted
            pass
        if kind == "chance":
            tip = (
                "computed, not a model: recall at (0.05, 0.95) of a random map is 0.10 by "
                "construction (the paper's Random row); AUC-ROC 0.5"
            )
        else:
            tip = prov.get((r["dataset"], r["model"], r["variant"]), "")
        name = r["display"]
        if kind != "chance" and key in many:
            name += f" · {short_variant(r['variant'])}"
        badge = ""
        if kind in _KIND_BADGE:
            label, css = _KIND_BADGE[kind]
            badge = f'<span class="badge {css}">{_e(label)}</span>'
        seeds = "" if kind == "chance" else r.get("n_seeds")
        cells = [
            f'<td class="txt" data-v="{_e(name)}">{_e(name)}{badge}</td>',
            f'<td class="txt" data-v="{_e(r["variant"])}" title="{_e(r["variant"])}">'
            f"{_e(short_variant(r['variant']))}</td>",
            f'<td data-v="{_e(seeds)}">{_e(seeds if seeds != "" else "–")}</td>',
            f'<td class="txt" data-v="{_e(r.get("source"))}">{_e(r.get("source"))}</td>',
        ]
        cells += [_metric_td(r, m.key) for m in _METRICS]
        out.append(
            f'<tr class="{" ".join(classes)}" data-kind="{kind}" title="{_e(tip)}">'
            + "".join(cells)
            + "</tr>"
        )
    return out


def _reported_rows(rep: pl.DataFrame) -> list[str]:
    out = []
    for r in rep.iter_rows(named=True):
        name = r["method"]
        chance = r.get("model") == "random"  # the paper's Random row is chance
        label = f"{name} (= chance)" if chance else name
        cells = [
            f'<td class="txt">{_e(label)}<span class="badge b-reported">reported</span></td>',
            '<td class="txt">–</td>',
            "<td>–</td>",
            '<td class="txt">reported</td>',
        ]
        for m in _METRICS:
            v = r.get(m.key)
            if v is None:
                cells.append('<td class="na">–</td>')
                continue
            digits = 2 if m.key.endswith("_z") else 3
            std = r.get(f"{m.key}_std")
            text = f"{v:.{digits}f}" + ("" if std is None else f" ± {std:.{digits}f}")
            if m.key == "ap_max_z" and r.get("ap_max_z_flag"):
                text += r["ap_max_z_flag"]
            cells.append(f"<td>{_e(text)}</td>")
        tip = f"reported: {r['source']}" + (
            "; the paper's Random row is chance (a random map)" if chance else ""
        )
        out.append(
            f'<tr class="reported" data-kind="reported" title="{_e(tip)}">'
            + "".join(cells)
            + "</tr>"
        )
    return out


def _table(dataset: str, d: pl.DataFrame, rep: pl.DataFrame | None, prov: dict) -> str:
    head = [
        '<th class="txt" data-type="text">model</th>',
        '<th class="txt" data-type="text">variant</th>',
        '<th data-type="num">seeds</th>',
        '<th class="txt" data-type="text">source</th>',
    ]
    head += [f'<th data-type="num" title="{_e(m.key)}">{_e(m.header)}</th>' for m in _METRICS]
    body = "\n".join(_measured_rows(d, prov))
    parts = [
        f'<div class="wrap"><table class="lb" data-dataset="{_e(dataset)}">',
        "<thead><tr>" + "".join(head) + "</tr></thead>",
        f'<tbody class="sortable">\n{body}\n</tbody>',
    ]
    if rep is not None and rep.height:
        sep = (
            f'<tr class="sep"><td colspan="{len(head)}">{_e(tables.REPORTED_LABEL)} — not '
            "comparable in value with the rows above</td></tr>"
        )
        parts.append(
            '<tbody class="reported">\n'
            + sep
            + "\n"
            + "\n".join(_reported_rows(rep))
            + "\n</tbody>"
        )
    parts.append("</table></div>")
    return "\n".join(parts)


def _interval(lo: Any, hi: Any) -> str:
    return "–" if lo is None else f"[{lo:+.3f}, {hi:+.3f}]"


def _comparisons(dataset: str, training: pl.DataFrame, crossing: pl.DataFrame) -> str:
    """The two questions the leaderboard answers with intervals: does training beat the
    untrained network of the same architecture (paired over seeds), and does cross-well
    beat single-well (Welch, over seeds)? CORUM recall at (0.05, 0.95)."""
    rows = []
    if training.height:
        for r in training.filter(pl.col("dataset") == dataset).iter_rows(named=True):
            rows.append(
                [
                    f"{tables._display(r['model'])} ({short_variant(r['variant'])})",
                    f"untrained {tables._display(r['untrained'])}",
                    f"{r['trained_mean']:.3f} vs {r['untrained_mean']:.3f}",
                    f"{r['difference']:+.3f}",
                    _interval(r["ci_low"], r["ci_high"]),
                    str(r["n_seeds"]),
                    r["verdict"],
                ]
            )
    if crossing.height:
        sel = crossing.filter((pl.col("dataset") == dataset) & (pl.col("metric") == "corum"))
        for r in sel.iter_rows(named=True):
            rows.append(
                [
                    f"{tables._display(r['cross'])} ({r['variant']})",
                    tables._display(r["single"]),
                    f"{r['cross_mean']:.3f} vs {r['single_mean']:.3f}",
                    f"{r['difference']:+.3f}",
                    _interval(r["ci_low"], r["ci_high"]),
                    f"{r['n_cross']}/{r['n_single']}",
                    r["verdict"],
                ]
            )
    if not rows:
        return ""
    head = ["run", "compared with", "CORUM", "difference", "95 % interval", "seeds", "verdict"]
    return (
        "<h3>Does training help, and does cross-well pairing?</h3>"
        '<p class="lead">Trained runs against the same network at step 0 (paired over seeds: '
        "the same seed is the same initialisation), and cross-well against single-well "
        "(Welch interval over seeds). A direction is named only when the 95 % interval "
        "excludes zero.</p>"
        '<div class="wrap"><table class="cmp"><thead><tr>'
        + "".join(f'<th class="txt">{_e(h)}</th>' for h in head)
        + "</tr></thead><tbody>"
        + "".join(
            "<tr>" + "".join(f'<td class="txt">{_e(c)}</td>' for c in row) + "</tr>" for row in rows
        )
        + "</tbody></table></div>"
    )


def _figures(figures_dir: Path | None, datasets: list[str]) -> list[tuple[str, Path]]:
    """(caption, path) of the Figure 1 and Figure 3 PNGs found in ``figures_dir``: the
    reported Figure 1, and the per-dataset figures of the datasets on the page."""
    if figures_dir is None or not Path(figures_dir).is_dir():
        return []
    found = []
    for p in sorted(Path(figures_dir).glob("figure[13]_*.png")):
        per_dataset = p.stem.startswith("figure3_") or "_with_measured_" in p.stem
        if per_dataset and not any(p.stem.endswith(tables._safe(ds)) for ds in datasets):
            continue
        found.append((f"Figure {p.stem[6]}: {p.stem.split('_', 1)[1].replace('_', ' ')}", p))
    return found


def render_html(
    records: Iterable[dict[str, Any]],
    *,
    figures_dir: str | Path | None = None,
    montage: str | Path | None = None,
    dataset: str | None = None,
    include_reported: bool = True,
) -> str:
    """The page as text (see the module docstring)."""
    records = list(records)
    frame = tables.leaderboard_frame(records)
    prov = provenance(records)
    rep = tables.reported_frame() if include_reported else None
    long = tables.long_results(records)
    training = tables.trained_vs_untrained(long)
    crossing = tables.cross_vs_single(long)
    datasets = sorted(set(frame["dataset"].to_list())) if frame.height else []
    if dataset is not None:
        datasets = [d for d in datasets if d == dataset]
    sections = []
    for ds in datasets:
        d = tables.with_chance(frame.filter(pl.col("dataset") == ds))
        synthetic = bool(d["synthetic"].any()) if "synthetic" in d.columns else False
        kind = (
            "synthetic screen (source: synthetic)" if synthetic else "real data (source: measured)"
        )
        sections.append(
            f'<section><h2 id="{_e(tables._safe(ds))}">{_e(ds)}</h2>'
            f'<p class="lead">Measured by cellbench on a {kind}. Cells: mean ± half-width '
            "of the 95 % t-interval over training seeds (one seed: the mean alone; hover "
            "a cell for the interval, a row for its provenance). Click a column to sort. Below "
            "the measured rows, never sorted with them: the paper's reported rows, "
            "measured by its authors on the real RxRx3-core release.</p>"
            + _table(ds, d, rep, prov)
            + _comparisons(ds, training, crossing)
            + "</section>"
        )
    if not sections:
        sections.append(
            '<p class="lead">No measured results yet — run <code>cellbench run --model '
            "cwa-msn</code>.</p>"
        )
    figs = _figures(Path(figures_dir) if figures_dir else None, datasets)
    if montage is not None and Path(montage).is_file():
        figs.append(("Simulator montage: sites of the synthetic screen", Path(montage)))
    fig_html = ""
    if figs:
        fig_html = (
            '<section><h2>Figures</h2><div class="figs">'
            + "".join(
                f'<figure><img src="{data_uri(p)}" alt="{_e(c)}">'
                f"<figcaption>{_e(c)}</figcaption></figure>"
                for c, p in figs
            )
            + "</div></section>"
        )
    legend = (
        '<p class="legend">'
        '<span><span class="badge b-ceiling">ceiling</span> oracle: the simulator\'s true '
        "latent state, the best the metrics can give</span>"
        '<span><span class="badge b-chance">floor: chance</span> computed: recall 0.10 by '
        "construction — the paper's Random row</span>"
        '<span><span class="badge b-floor">floor: untrained</span> the same architecture at '
        "step 0</span>"
        '<span><span class="badge b-floor">floor: random ViT-S/16</span> a seeded random '
        "initialisation</span>"
        '<span><span class="badge b-reported">reported</span> the CWA-MSN paper, real data'
        "</span></p>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>cellbench leaderboard</title><style>{_CSS}</style></head><body>"
        "<h1>cellbench leaderboard</h1>"
        '<p class="lead">Cell Painting encoders scored by gene–gene recall at (0.05, 0.95) '
        "(CORUM first), compound–gene retrieval at the highest concentration and batch "
        "diagnostics (↑ higher is better, ↓ lower is better). Every number is labelled by "
        "its source: synthetic (measured on the simulator's screen), measured (real data), "
        "chance (computed) or reported (the paper).</p>"
        + legend
        + "\n".join(sections)
        + fig_html
        + "<footer>Generated by <code>cellbench leaderboard --html</code>.</footer>"
        f"<script>{_JS}</script></body></html>\n"
    )


def write_html(
    records: Iterable[dict[str, Any]],
    path: str | Path,
    *,
    figures_dir: str | Path | None = None,
    montage: str | Path | None = None,
    dataset: str | None = None,
) -> Path:
    """Write the page atomically; ``montage`` defaults to the repository's
    ``docs/images/simulator_montage.png`` when cellbench runs from its checkout."""
    if montage is None:
        root = checkout_root()
        montage = root / MONTAGE if root is not None else None
    return write_text_atomic(
        path, render_html(records, figures_dir=figures_dir, montage=montage, dataset=dataset)
    )
