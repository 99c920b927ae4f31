"""How real does a screen look? Model-free measurements beside what real screens show.

Every quantity is measured with *fixed* features — per-channel intensity statistics, texture,
and nuclear-mask statistics from an Otsu segmentation of the DNA channel — or with the
simulator's own ground truth, never with a trained model, so a screen can be calibrated
against real screens without looking at any model's score. The real-world anchors:

* nuclei per site: JUMP cpg0016 holds ~1.54e9 cells over ~7.68e6 sites (~130-360 per site);
* cells per training view: MSN's 224 px random view of a 520x696 Bray et al. image holds
  ~15-100 cells (Assran et al. 2022 crop scales on the CLOOME preprocessing);
* CRISPR phenotypic activity: CPJUMP1 (Chandrasekaran et al. 2024) retrieves 48-68 % of
  CRISPR knockouts against negative controls with CellProfiler features (copairs mAP, FDR 0.05);
* hand-crafted vs best CORUM recall: RxRx3-core (Kraus et al. 2025) CellProfiler 0.361 vs
  Phenom-2 0.486 with chance 0.10, i.e. ~0.68 of the best's margin above chance;
* batch effects are visible by eye in RxRx1/RxRx3, so raw control-well features predict the
  batch almost perfectly;
* untrained networks score well above chance on cell benchmarks (RxRx3-core: ViT-ImageNet
  0.342 CORUM recall), but below hand-crafted features.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from cellbench.errors import InputError

CHANCE_RECALL = 0.10  # recall at (0.05, 0.95) of a random map: 10 % of pairs lie in the tails
CORUM_RECALL = ("CORUM", "recall_0.05_0.95")


@dataclass(frozen=True)
class Target:
    key: str
    quantity: str
    quick: str
    full: str
    source: str
    check: Callable[[dict, str], bool | None]


def _ge(key: str, quick: float, full: float | None) -> Callable[[dict, str], bool | None]:
    def check(m: dict, size: str) -> bool | None:
        bound = quick if size != "full" else full
        if bound is None or m.get(key) is None:
            return None
        return bool(m[key] >= bound)

    return check


def _between(key: str, lo: float, hi: float) -> Callable[[dict, str], bool | None]:
    def check(m: dict, size: str) -> bool | None:
        return None if m.get(key) is None else bool(lo <= m[key] <= hi)

    return check


def _latent_ok(m: dict, size: str) -> bool | None:
    a, b = m.get("activity_latent"), m.get("activity_handcrafted")
    return None if a is None or b is None else bool(a >= b)


def _vit_ok(m: dict, size: str) -> bool | None:
    v, h = m.get("vit_corum"), m.get("handcrafted_corum")
    return None if v is None or h is None else bool(v >= 0.15 and v < h)


TARGETS: tuple[Target, ...] = (
    Target(
        "nuclei_per_site_segmented",
        "nuclei per evaluation site (Otsu + connected components on DNA)",
        ">= 60",
        ">= 150",
        "JUMP cpg0016: 1.54e9 cells / 7.68e6 sites, ~130-360 per site",
        _ge("nuclei_per_site_segmented", 60, 150),
    ),
    Target(
        "cells_per_view",
        "cells in one random training view of the quick preset",
        ">= 15",
        "-",
        "MSN's 224 px random view on Bray 520x696 images: ~15-100 cells",
        _ge("cells_per_view", 15, None),
    ),
    Target(
        "activity_handcrafted",
        "CRISPR phenotypic activity, fixed hand-crafted features "
        "(copairs mAP vs EMPTY_control, FDR 0.05)",
        "0.45-0.70",
        "0.45-0.70",
        "CPJUMP1 (Chandrasekaran et al. 2024), CellProfiler, well level: 0.48-0.68",
        _between("activity_handcrafted", 0.45, 0.70),
    ),
    Target(
        "activity_latent",
        "the same with the simulator's true latent",
        ">= hand-crafted",
        ">= hand-crafted",
        "-",
        _latent_ok,
    ),
    Target(
        "handcrafted_over_oracle",
        "hand-crafted CORUM recall above chance / the oracle's",
        "0.4-0.85",
        "0.4-0.85",
        "RxRx3-core: CellProfiler .361 vs Phenom-2 .486, chance .10 -> 0.68",
        _between("handcrafted_over_oracle", 0.4, 0.85),
    ),
    Target(
        "batch_predictability_raw",
        "raw batch predictability from control wells (5-fold CV)",
        ">= 0.9",
        ">= 0.9",
        "batch effects are visible by eye in RxRx1/RxRx3",
        _ge("batch_predictability_raw", 0.9, 0.9),
    ),
    Target(
        "vit_corum",
        "untrained ViT-S/16 CORUM recall",
        ">= 0.15, below hand-crafted",
        ">= 0.15, below hand-crafted",
        "RxRx3-core ViT-ImageNet .342; untrained networks reported near SOTA on cell benchmarks",
        _vit_ok,
    ),
)


# --- fixed features ---------------------------------------------------------------------------
MASK_STATS = ("nuclei", "nucleus_area_mean", "nucleus_area_std", "foreground_fraction")


def segment_nuclei(dna: np.ndarray) -> tuple[np.ndarray, int]:
    """Label nuclei in one DNA image (Otsu threshold, 4-connected components): (labels, count)."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    img = np.asarray(dna, dtype=np.float32)
    if img.max() <= img.min():
        return np.zeros(img.shape, dtype=np.int32), 0
    labels, n = ndimage.label(img > threshold_otsu(img))
    return labels, int(n)


def mask_features(images: np.ndarray, dna_index: int) -> np.ndarray:
    """Per site: nuclei count, mean and std nucleus area, foreground fraction, then per channel
    the mean intensity inside nuclei and in the non-nuclear foreground. (S, 4 + 2 C)."""
    from skimage.filters import threshold_otsu

    s, c = images.shape[:2]
    out = np.zeros((s, len(MASK_STATS) + 2 * c), dtype=np.float64)
    for i in range(s):
        x = images[i].astype(np.float32)
        labels, n = segment_nuclei(x[dna_index])
        nuc = labels > 0
        total = x.sum(0)
        fg = total > threshold_otsu(total) if total.max() > total.min() else np.zeros_like(nuc)
        cyto = fg & ~nuc
        areas = np.bincount(labels.ravel())[1:] if n else np.zeros(1)
        out[i, :4] = (n, areas.mean(), areas.std(), fg.mean())
        for k in range(c):
            out[i, 4 + k] = x[k][nuc].mean() if nuc.any() else 0.0
            out[i, 4 + c + k] = x[k][cyto].mean() if cyto.any() else 0.0
    return out


def handcrafted_features(images: np.ndarray, channels: tuple[str, ...]) -> np.ndarray:
    """Fixed features of each site: the ``pixel-stats`` baseline's per-channel intensity
    quantiles and texture plus :func:`mask_features`."""
    import torch

    from cellbench.encoders.baselines import PixelStatsEncoder

    enc = PixelStatsEncoder(tuple(channels))
    with torch.no_grad():
        pix = enc.embed(enc.preprocess(torch.from_numpy(np.ascontiguousarray(images)))).numpy()
    return np.concatenate([pix.astype(np.float64), mask_features(images, channels.index("DNA"))], 1)


def robust_z(features: np.ndarray, plate: np.ndarray, control: np.ndarray) -> np.ndarray:
    """Per plate: (x - median of the plate's controls) / (1.4826 MAD of its controls), as
    pycytominer's ``normalize(method="mad_robustize")`` against negative controls."""
    out = np.zeros_like(features, dtype=np.float64)
    for p in np.unique(plate):
        rows = plate == p
        ref = features[rows & control]
        if ref.shape[0] == 0:
            ref = features[rows]
        med = np.median(ref, axis=0)
        mad = 1.4826 * np.median(np.abs(ref - med), axis=0)
        out[rows] = (features[rows] - med) / np.where(mad > 1e-9, mad, 1.0)
    keep = np.isfinite(out).all(0) & (out.std(0) > 1e-9)
    return np.clip(out[:, keep], -50, 50)


# --- measurements -------------------------------------------------------------------------------
def _corum(result: dict) -> float:
    source, key = CORUM_RECALL
    return float(result["scores"]["gene_gene"][source][key])


def _crispr_activity(features: np.ndarray, wells: pl.DataFrame, seed: int) -> dict:
    from cellbench.metrics.activity import phenotypic_activity

    crispr = (wells["perturbation_type"] == "CRISPR").to_numpy()
    control = wells["is_control"].to_numpy().astype(bool)
    gene = crispr & ~control & (wells["perturbation"] != "CRISPR_control").to_numpy()
    rows = gene | (crispr & control)
    plate = (wells["batch"] + "/" + wells["plate"]).to_numpy()
    z = robust_z(features, plate, control)
    res = phenotypic_activity(
        z[rows], wells["perturbation"].to_numpy()[rows], control[rows], seed=seed
    )
    return res.summary()


def cells_per_view(images: np.ndarray, dna_index: int, crop: int, n_views: int, seed: int) -> float:
    """Mean number of segmented nuclei whose centroid lies inside a random ``crop`` px view."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    s, _, h, w = images.shape
    crop = min(crop, h, w)
    counts = []
    for i in rng.choice(s, size=min(n_views, s), replace=n_views > s):
        labels, n = segment_nuclei(images[i, dna_index])
        if n == 0:
            counts.append(0)
            continue
        cy, cx = np.array(ndimage.center_of_mass(labels > 0, labels, np.arange(1, n + 1))).T
        y0, x0 = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
        counts.append(int(((cy >= y0) & (cy < y0 + crop) & (cx >= x0) & (cx < x0 + crop)).sum()))
    return float(np.mean(counts))


def measure(
    dataset: Any,
    *,
    size: str,
    seed: int = 0,
    vit: bool = True,
    view_crop: int = 32,
    eval_seeds: int = 20,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Every realism quantity of a synthetic screen (a dataset carrying ``ground_truth``)."""
    from cellbench.evaluate import evaluate_arrays
    from cellbench.metrics.batch import batch_predictability

    say = progress or (lambda _m: None)
    truth = getattr(dataset, "ground_truth", None)
    if truth is None:
        raise InputError(
            "the realism report needs the simulator's ground truth; pass a synthetic "
            "screen (synthetic-rxrx3-core)"
        )
    wells = dataset.wells
    if "CRISPR" not in set(wells["perturbation_type"].to_list()):
        raise InputError(
            "the realism report measures CRISPR phenotypic activity; use "
            "synthetic-rxrx3-core (synthetic-bray has no knockouts)"
        )
    channels = tuple(dataset.channels)
    dna = channels.index("DNA")
    n_sites = len(dataset)
    say(f"fixed features of {n_sites} sites")
    feats, nuclei = [], []
    step = 512
    for start in range(0, n_sites, step):
        imgs = dataset.read_sites(np.arange(start, min(start + step, n_sites)))
        f = handcrafted_features(imgs, channels)
        feats.append(f)
        nuclei.append(f[:, f.shape[1] - len(MASK_STATS) - 2 * len(channels)])  # "nuclei"
    site_feats = np.concatenate(feats)
    nuclei_seg = np.concatenate(nuclei)
    view_imgs = dataset.read_sites(
        np.random.default_rng(seed).choice(n_sites, min(400, n_sites), replace=False)
    )
    well_index = dataset.sites["well_index"].to_numpy()
    n_wells = wells.height
    sums = np.zeros((n_wells, site_feats.shape[1]))
    np.add.at(sums, well_index, site_feats)
    well_feats = sums / np.maximum(np.bincount(well_index, minlength=n_wells), 1)[:, None]

    ctrl_sites = np.flatnonzero(wells["is_control"].to_numpy()[well_index])
    example = dataset.read_sites(ctrl_sites[:1] if ctrl_sites.size else [0])[0]
    m: dict[str, Any] = {
        "_nuclei_per_site": nuclei_seg,
        "_example_site": example,
        "_channels": channels,
        "n_sites": n_sites,
        "n_wells": n_wells,
        "image_size": int(view_imgs.shape[-1]),
    }
    m["nuclei_per_site_segmented"] = float(nuclei_seg.mean())
    m["nuclei_per_site_segmented_p10_p90"] = [
        float(np.percentile(nuclei_seg, 10)),
        float(np.percentile(nuclei_seg, 90)),
    ]
    if "cells_per_site" in truth.columns and truth["cells_per_site"].null_count() == 0:
        m["cells_per_site_truth"] = float(truth["cells_per_site"].mean())
    m["view_crop"] = view_crop
    m["cells_per_view"] = cells_per_view(view_imgs, dna, view_crop, 400, seed)
    if "cells_per_site_truth" in m:
        m["cells_per_view_truth"] = m["cells_per_site_truth"] * (view_crop / m["image_size"]) ** 2

    say(
        f"nuclei per site {m['nuclei_per_site_segmented']:.1f} (truth {m.get('cells_per_site_truth')}), "
        f"cells per view {m['cells_per_view']:.1f}; phenotypic activity (copairs)"
    )
    m["activity_handcrafted"] = _crispr_activity(well_feats, wells, seed)["fraction_retrieved"]
    lat_cols = [c for c in truth.columns if c.startswith("latent_")]
    latent = (
        wells.select("well_id")
        .join(truth.select("well_id", *lat_cols), on="well_id", how="left")
        .select(lat_cols)
        .to_numpy()
        .astype(np.float64)
    )
    m["activity_latent"] = _crispr_activity(latent, wells, seed)["fraction_retrieved"]

    say(
        f"activity {m['activity_handcrafted']:.3f} (latent {m['activity_latent']:.3f}); gene-gene recall"
    )
    meta = _metadata(dataset)
    ids = wells["well_id"].to_list()
    kw: dict[str, Any] = dict(tasks=("gene_gene",), seeds=eval_seeds)
    m["handcrafted_corum"] = _corum(evaluate_arrays(ids, _standardise(well_feats), meta, **kw))
    m["oracle_corum"] = _corum(evaluate_arrays(ids, latent, meta, **kw))
    m["handcrafted_over_oracle"] = (m["handcrafted_corum"] - CHANCE_RECALL) / max(
        m["oracle_corum"] - CHANCE_RECALL, 1e-9
    )

    say("raw batch predictability")
    bp = batch_predictability(
        _standardise(well_feats),
        wells["batch"].to_numpy(),
        wells["is_control"].to_numpy(),
        seed=seed,
    )
    m["batch_predictability_raw"] = bp.get("batch_accuracy")
    m["batch_chance"] = bp.get("batch_chance")
    if vit:
        say("untrained ViT-S/16 embedding")
        m["vit_corum"] = _corum(evaluate_arrays(*_vit_embedding(dataset), meta, **kw))
    return m


def _standardise(x: np.ndarray) -> np.ndarray:
    sd = x.std(0)
    keep = sd > 1e-9
    return (x[:, keep] - x[:, keep].mean(0)) / sd[keep]


def _metadata(dataset: Any) -> pl.DataFrame:
    from cellbench.data.synthetic.writer import RXRX3_METADATA

    return pl.read_csv(Path(dataset.root) / RXRX3_METADATA, infer_schema_length=None)


def _vit_embedding(dataset: Any) -> tuple[list[str], np.ndarray]:
    import tempfile

    from cellbench.embed import create_for_dataset, embed_dataset, read_embeddings

    enc = create_for_dataset("random", dataset)
    with tempfile.TemporaryDirectory(prefix="cellbench-realism-") as tmp:
        path = embed_dataset(enc, dataset, Path(tmp) / "random.parquet", progress=False)
        table = read_embeddings(path)
    cols = [c for c in table.columns if c.startswith("feature_")]
    return table["well_id"].to_list(), table.select(cols).to_numpy()


def verdicts(m: dict, size: str) -> list[dict]:
    """One row per target: quantity, value, target, met (True/False/None = not measured)."""
    rows = []
    for t in TARGETS:
        rows.append(
            {
                "key": t.key,
                "quantity": t.quantity,
                "value": m.get(t.key),
                "target": t.quick if size != "full" else t.full,
                "source": t.source,
                "met": t.check(m, size),
            }
        )
    return rows


def _fmt(v: Any) -> str:
    if v is None:
        return "not measured"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def markdown(report: dict) -> str:
    lines = [
        f"# Realism report: {report['dataset']} ({report['size']}, seed {report['seed']})",
        "",
        f"Simulator {report['simulator_version']}. Fixed features and ground truth only; "
        "no trained model.",
        "",
        "| quantity | measured | target | met | real anchor |",
        "|---|---|---|---|---|",
    ]
    for r in report["targets"]:
        met = {True: "yes", False: "**no**", None: "–"}[r["met"]]
        lines.append(
            f"| {r['quantity']} | {_fmt(r['value'])} | {r['target']} | {met} | {r['source']} |"
        )
    lines += ["", "Other measurements:", ""]
    shown = {r["key"] for r in report["targets"]}
    for k, v in report["measurements"].items():
        if k not in shown:
            lines.append(
                f"- {k}: {_fmt(v) if not isinstance(v, list) else ', '.join(_fmt(x) for x in v)}"
            )
    return "\n".join(lines) + "\n"


def build_report(
    dataset: Any,
    *,
    name: str,
    size: str,
    seed: int = 0,
    vit: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict:
    from cellbench.data.synthetic.config import SIMULATOR_VERSION
    from cellbench.train.presets import get_preset

    crop = int(get_preset("quick").crop_size)
    manifest = getattr(dataset, "manifest", None) or {}
    size = manifest.get("size", size)
    m = measure(dataset, size=size, seed=seed, vit=vit, view_crop=crop, progress=progress)
    arrays = {k: m.pop(k) for k in [k for k in m if k.startswith("_")]}
    rows = verdicts(m, size)
    return {
        "dataset": name,
        "size": size,
        "seed": seed,
        "simulator_version": manifest.get("simulator_version", SIMULATOR_VERSION),
        "measurements": {
            k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in m.items()
        },
        "targets": rows,
        "all_met": all(r["met"] is not False for r in rows),
        "_arrays": arrays,
    }


def figure(report: dict, path: Path) -> Path:
    """A control site with its segmented nuclei outlined, beside the nuclei-per-site histogram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage.segmentation import find_boundaries

    from cellbench.data.montage import composite
    from cellbench.io import atomic_path

    arrays = report["_arrays"]
    img, channels = arrays["_example_site"], arrays["_channels"]
    lo = np.percentile(img, 1, axis=(1, 2)).astype(np.float32)
    hi = np.percentile(img, 99.5, axis=(1, 2)).astype(np.float32)
    rgb = composite(img[None], channels, lo, hi)[0]
    labels, n = segment_nuclei(img[channels.index("DNA")])
    fig, ax = plt.subplots(1, 3, figsize=(10, 3.4), gridspec_kw={"width_ratios": [1, 1, 1.3]})
    ax[0].imshow(rgb, interpolation="nearest")
    ax[0].set_title("a control site (composite)", fontsize=9)
    outlined = rgb.copy()
    outlined[find_boundaries(labels, mode="inner")] = (1.0, 1.0, 0.2)
    ax[1].imshow(outlined, interpolation="nearest")
    ax[1].set_title(f"{n} nuclei segmented (Otsu on DNA)", fontsize=9)
    for a in ax[:2]:
        a.set_xticks([])
        a.set_yticks([])
    target = 150 if report["size"] == "full" else 60
    ax[2].hist(arrays["_nuclei_per_site"], bins=40, color="#4a7ab5")
    ax[2].axvline(target, color="k", ls="--", lw=1)
    ax[2].text(target, ax[2].get_ylim()[1] * 0.95, f" target >= {target}", fontsize=8, va="top")
    ax[2].set_xlabel("nuclei per site (segmented)")
    ax[2].set_ylabel("sites")
    fig.suptitle(
        f"{report['dataset']} {report['size']} ({report['simulator_version']}, synthetic)",
        fontsize=10,
    )
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path


def write_report(report: dict, out: str | Path) -> list[Path]:
    """realism.json, realism.md and realism.png into ``out`` (each written atomically)."""
    from cellbench.io import write_text_atomic

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    public = {k: v for k, v in report.items() if not k.startswith("_")}
    return [
        write_text_atomic(
            out / "realism.json", json.dumps(public, indent=2, sort_keys=True) + "\n"
        ),
        write_text_atomic(out / "realism.md", markdown(report)),
        figure(report, out / "realism.png"),
    ]
