"""Plate layouts: which perturbation sits in which well of which plate and batch.

Layouts are randomised per plate (as real screens try to), so a perturbation's replicate
wells land on different plates and positions and plate position is not confounded with
biology (docs/synthetic-screen.md). Controls sit on every plate.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from cellbench.data.synthetic import biology as bio_mod
from cellbench.data.synthetic.config import ScreenConfig, preset_rng
from cellbench.schema import CANONICAL_CONCENTRATIONS, COMPOUND, CONTROL_TREATMENT, CRISPR

ROW_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def address(row: int, col: int) -> str:
    return f"{ROW_LETTERS[row]}{col + 1:02d}"


def _place(
    rng, cfg: ScreenConfig, items: list[dict], controls: list[dict], n_plates: int
) -> list[dict]:
    """Fill ``n_plates`` plates: controls on every plate, ``items`` spread at random."""
    rows, cols = cfg.plate_rows, cfg.plate_cols
    cap = rows * cols - len(controls)
    order = rng.permutation(len(items))
    if len(items) > cap * n_plates:
        raise ValueError("layout does not fit its plates")  # a preset bug, not user input
    out = []
    for p in range(n_plates):
        chunk = [items[i] for i in order[p::n_plates]]  # spread evenly over the plates
        slots = rng.permutation(rows * cols)
        for slot, item in zip(slots, controls + chunk, strict=False):
            r, c = divmod(int(slot), cols)
            edge = r in (0, rows - 1) or c in (0, cols - 1)
            out.append(
                {
                    **item,
                    "plate_index": p,
                    "row": r,
                    "col": c,
                    "address": address(r, c),
                    "is_edge": edge,
                }
            )
    return out


def _rxrx3_items(cfg: ScreenConfig):
    genes = (
        bio_mod.dense_gene_subset(cfg.n_genes) if cfg.n_genes else tuple(bio_mod.rxrx3_core_genes())
    )
    comp = bio_mod.rxrx3_compounds(cfg.seed)
    gset = set(genes)
    all_genes = bio_mod.rxrx3_core_genes()
    if cfg.n_compounds:
        # compounds whose targets are in the gene subset (most targets first), deterministic
        hits = np.zeros(len(comp.names))
        for c, g in zip(comp.target_compound, comp.target_gene, strict=True):
            hits[c] += all_genes[g] in gset
        cidx = sorted(np.argsort(-hits, kind="stable")[: cfg.n_compounds].tolist())
    else:
        cidx = list(range(len(comp.names)))
    gene_items = [
        {"kind": "gene", "gene": g, "treatment": f"{g}_guide_{k + 1}", "guide": k}
        for g in genes
        for k in range(cfg.guides_per_gene)
        for _ in range(cfg.wells_per_guide)
    ]
    comp_items = [
        {"kind": "compound", "compound_index": c, "treatment": comp.names[c], "concentration": conc}
        for c in cidx
        for conc in CANONICAL_CONCENTRATIONS
        for _ in range(cfg.wells_per_compound_dose)
    ]
    return gene_items, comp_items


def make_layout(cfg: ScreenConfig) -> pl.DataFrame:
    """One row per well: batch, plate, address, perturbation and bookkeeping columns."""
    rng = preset_rng(cfg, 404)
    rows: list[dict] = []
    if cfg.kind == "rxrx3":
        gene_items, comp_items = _rxrx3_items(cfg)
        for exp_kind, items, ctrls in (
            (
                "gene",
                gene_items,
                [{"kind": "empty", "treatment": CONTROL_TREATMENT}] * cfg.controls_per_plate
                + [{"kind": "crispr_control", "treatment": "CRISPR_control"}]
                * cfg.crispr_controls_per_plate,
            ),
            (
                "compound",
                comp_items,
                [{"kind": "empty", "treatment": CONTROL_TREATMENT}] * cfg.controls_per_plate,
            ),
        ):
            cap = cfg.plate_rows * cfg.plate_cols - len(ctrls)
            n_plates = max(1, -(-len(items) // cap))
            for w in _place(rng, cfg, items, ctrls, n_plates):
                b, p = divmod(w["plate_index"], cfg.plates_per_batch)
                w["batch"] = f"{exp_kind}-{b + 1:03d}"
                w["plate"] = p + 1
                w["ptype"] = CRISPR if exp_kind == "gene" else COMPOUND
                rows.append(w)
    else:
        n_plates = cfg.n_batches * cfg.plates_per_batch
        comp = bio_mod.bray_compounds(cfg.seed, cfg.n_compounds)
        items = [
            {
                "kind": "compound",
                "compound_index": c,
                "treatment": comp.names[c],
                "concentration": cfg.bray_concentration_um,
            }
            for c in range(len(comp.names))
            for _ in range(cfg.wells_per_compound_dose)
        ]
        cap = cfg.plate_rows * cfg.plate_cols - cfg.controls_per_plate
        if cap * n_plates < len(items):
            raise ValueError("bray preset does not fit its plates")  # a preset bug, not user input
        dmso = [
            {"kind": "dmso", "treatment": "DMSO", "concentration": 0.0}
        ] * cfg.controls_per_plate
        for w in _place(rng, cfg, items, dmso, n_plates):
            b, _ = divmod(w["plate_index"], cfg.plates_per_batch)
            w["batch"] = f"batch-{b + 1:02d}"
            w["plate"] = 24000 + 100 * (cfg.seed % 10) + w["plate_index"] + 1
            w["ptype"] = COMPOUND
            rows.append(w)
    df = pl.DataFrame(rows, infer_schema_length=None)
    for col, dtype in (
        ("gene", pl.Utf8),
        ("guide", pl.Int64),
        ("compound_index", pl.Int64),
        ("concentration", pl.Float64),
    ):
        if col not in df.columns:
            df = df.with_columns(pl.lit(None, dtype=dtype).alias(col))
    if cfg.kind == "rxrx3":
        df = df.with_columns(
            (pl.col("batch") + "_" + pl.col("plate").cast(pl.Utf8) + "_" + pl.col("address")).alias(
                "well_id"
            )
        )
    else:
        df = df.with_columns(
            (pl.col("plate").cast(pl.Utf8) + "-" + pl.col("address")).alias("well_id")
        )
    df = df.sort(["batch", "plate", "row", "col"]).with_row_index("well_index")
    return df
