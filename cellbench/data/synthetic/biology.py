"""The planted biology: latent traits, gene programs from the real relationship graph,
compound effects from real target potencies.

Gene knockout effects live in a space of K interpretable morphological traits (docs/synthetic-screen.md).
Programs come from the real CORUM and HuMAP graphs (the efaar_benchmarking annotation files):
a random subset of the known edges is planted, some edges that no database holds are added,
and each gene's effect direction is a graph-smoothed random vector (a graph embedding) plus
gene-specific noise. Effect sizes are heavy-tailed and many genes have no visible phenotype,
so even the true latent cannot recall every known relationship (recall ceiling well below 1).

Everything here depends only on the seed, never on the screen size, so ``tiny``, ``quick``
and ``full`` and both presets share one biology and training on synthetic-bray transfers.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import numpy as np
import polars as pl

from cellbench.paths import compound_gene_truth_path, rxrx3_core_genes

TRAITS: tuple[str, ...] = (
    "nuclear_size",
    "dna_intensity",
    "chromatin_texture",
    "cell_area",
    "elongation",
    "er_intensity",
    "er_texture_scale",
    "nucleoli_count",
    "rna_intensity",
    "actin_fibres",
    "membrane_intensity",
    "mito_density",
    "mito_intensity",
    "golgi_compactness",
    "golgi_intensity",
    "cell_density",
)
K = len(TRAITS)
T = {name: i for i, name in enumerate(TRAITS)}

PLANT_FRACTION = 0.7  # share of known CORUM/HuMAP edges planted
NOVEL_FRACTION = 0.15  # extra planted edges (relative to planted) in no database
ACTIVE_COMPLEX = 0.8  # probability that a connected module has a visible phenotype
ACTIVE_IN_COMPLEX = 0.85
ACTIVE_SINGLETON = 0.55
AMP_MEDIAN, AMP_SIGMA = 5.0, 0.7  # log-normal effect norm (trait units) of active genes
WELL_SD = 0.25  # per-well random effect on every trait
ANNOTATION_SOURCES = ("CORUM", "HuMAP", "Reactome", "SIGNOR", "StringDB")


def _vector(**kw: float) -> np.ndarray:
    v = np.zeros(K)
    for k, val in kw.items():
        v[T[k]] = val
    return v


# Shared responses (not gene-specific): CRISPR cutting / DNA-damage response of every guide,
# and cytotoxicity of compounds at high concentration (rounded, condensed, fewer cells).
CUT_RESPONSE = _vector(nuclear_size=0.25, dna_intensity=0.15, cell_density=-0.3)
TOX_RESPONSE = _vector(
    cell_density=-2.5,
    nuclear_size=-1.0,
    dna_intensity=1.2,
    chromatin_texture=1.0,
    cell_area=-1.0,
    mito_intensity=-0.8,
    elongation=-0.4,
    actin_fibres=-0.5,
)


def annotation_dir():
    return resources.files("efaar_benchmarking") / "benchmark_annotations"


@functools.lru_cache(maxsize=8)
def known_pairs(source: str, genes: tuple[str, ...]) -> frozenset[tuple[str, str]]:
    """Sorted, de-duplicated pairs of ``source`` with both ends in ``genes``."""
    path = annotation_dir() / f"{source}.txt"
    df = pl.read_csv(str(path), columns=["entity1", "entity2"])
    gs = set(genes)
    out = set()
    for a, b in zip(df["entity1"].to_list(), df["entity2"].to_list(), strict=True):
        if a != b and a in gs and b in gs:
            out.add((a, b) if a < b else (b, a))
    return frozenset(out)


@dataclass(frozen=True)
class Biology:
    genes: tuple[str, ...]
    effects: np.ndarray  # (n_genes, K) knockout effect, trait units
    planted: frozenset[tuple[str, str]]  # edges planted in the programs
    active: np.ndarray  # (n_genes,) bool: visible phenotype

    def gene_index(self) -> dict[str, int]:
        return {g: i for i, g in enumerate(self.genes)}


def _components(n: int, edges: np.ndarray) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    a = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    return connected_components(a, directed=False)[1]


@functools.lru_cache(maxsize=4)
def make_biology(seed: int) -> Biology:
    """Gene knockout effects planted from the real CORUM + HuMAP graph of the 735 genes."""
    rng = np.random.default_rng([int(seed), 101])
    genes = tuple(rxrx3_core_genes())
    n = len(genes)
    idx = {g: i for i, g in enumerate(genes)}
    known = sorted(known_pairs("CORUM", genes) | known_pairs("HuMAP", genes))
    keep = rng.random(len(known)) < PLANT_FRACTION
    planted = [known[i] for i in np.flatnonzero(keep)]
    # planted structure that no database knows (the screen sees biology beyond annotations)
    any_db = set().union(*(known_pairs(s, genes) for s in ANNOTATION_SOURCES))
    n_novel = int(round(NOVEL_FRACTION * len(planted)))
    novel: list[tuple[str, str]] = []
    while len(novel) < n_novel:
        a, b = rng.choice(n, size=2, replace=False)
        pair = tuple(sorted((genes[a], genes[b])))
        if pair not in any_db and pair not in novel:
            novel.append(pair)
    edges = np.array([(idx[a], idx[b]) for a, b in planted + novel], dtype=np.int64).reshape(-1, 2)

    # graph embedding: random vectors smoothed over the planted graph (two diffusion steps)
    adj = np.zeros((n, n))
    adj[edges[:, 0], edges[:, 1]] = 1.0
    adj[edges[:, 1], edges[:, 0]] = 1.0
    deg = adj.sum(1)
    walk = (adj + np.eye(n)) / (deg + 1.0)[:, None]
    base = rng.standard_normal((n, K))
    base = np.sign(base) * np.abs(base) ** 1.5  # programs emphasise a few traits
    smooth = walk @ (walk @ base)
    smooth /= np.linalg.norm(smooth, axis=1, keepdims=True) + 1e-12
    own = base / (np.linalg.norm(base, axis=1, keepdims=True) + 1e-12)
    mix = np.where(deg > 0, 0.8, 0.0)[:, None]  # connected genes follow their module
    direction = mix * smooth + (1 - mix) * own + 0.25 * rng.standard_normal((n, K)) / np.sqrt(K)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)

    comp = _components(n, edges)
    comp_active = rng.random(comp.max() + 1) < ACTIVE_COMPLEX
    solo = deg == 0
    p = np.where(solo, ACTIVE_SINGLETON, np.where(comp_active[comp], ACTIVE_IN_COMPLEX, 0.1))
    active = rng.random(n) < p
    amp = AMP_MEDIAN * np.exp(AMP_SIGMA * rng.standard_normal(n))
    effects = direction * (amp * active)[:, None]
    return Biology(genes=genes, effects=effects, planted=frozenset(planted + novel), active=active)


@functools.lru_cache(maxsize=2)
def dense_gene_subset(n: int) -> tuple[str, ...]:
    """``n`` genes chosen so that CORUM relationships among them are dense (for ``tiny``)."""
    genes = tuple(rxrx3_core_genes())
    pairs = sorted(known_pairs("CORUM", genes))
    nbrs: dict[str, set[str]] = {}
    for a, b in pairs:
        nbrs.setdefault(a, set()).add(b)
        nbrs.setdefault(b, set()).add(a)
    chosen: list[str] = []
    for g in sorted(nbrs, key=lambda g: (-len(nbrs[g]), g)):
        for h in [g, *sorted(nbrs[g])]:
            if h not in chosen and len(chosen) < n:
                chosen.append(h)
        if len(chosen) >= n:
            break
    return tuple(sorted(chosen))


# --- compounds ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Compounds:
    names: tuple[str, ...]
    target_gene: np.ndarray  # (n_links,) gene index
    target_compound: np.ndarray  # (n_links,) compound index
    target_nm: np.ndarray  # (n_links,) potency, nM
    efficacy: np.ndarray  # (n_links,)
    hill: np.ndarray  # (n_compounds,)
    offtarget: np.ndarray  # (n_compounds, K)
    offtarget_ec50_um: np.ndarray
    tox_ec50_um: np.ndarray


def _compound_parts(rng, names, links, n_genes) -> Compounds:
    nc = len(names)
    cidx = np.array([c for c, _, _ in links], dtype=np.int64)
    gidx = np.array([g for _, g, _ in links], dtype=np.int64)
    nm = np.array([v for _, _, v in links], dtype=np.float64)
    off_dir = rng.standard_normal((nc, K))
    off_dir /= np.linalg.norm(off_dir, axis=1, keepdims=True)
    off_amp = 0.8 * np.exp(0.5 * rng.standard_normal(nc))
    return Compounds(
        names=tuple(names),
        target_gene=gidx,
        target_compound=cidx,
        target_nm=nm,
        efficacy=rng.uniform(0.6, 1.2, len(links)),
        hill=rng.uniform(0.8, 1.5, nc),
        offtarget=off_dir * off_amp[:, None],
        offtarget_ec50_um=np.exp(rng.uniform(np.log(1.0), np.log(100.0), nc)),
        tox_ec50_um=np.exp(rng.uniform(np.log(3.0), np.log(300.0), nc)),
    )


@functools.lru_cache(maxsize=4)
def rxrx3_compounds(seed: int) -> Compounds:
    """The real RxRx3-core compounds, targets and potencies (nM_value) of the truth table."""
    rng = np.random.default_rng([int(seed), 202])
    genes = rxrx3_core_genes()
    gi = {g: i for i, g in enumerate(genes)}
    truth = pl.read_csv(compound_gene_truth_path()).filter(pl.col("gene_symbol").is_in(genes))
    truth = truth.group_by(["treatment", "gene_symbol"]).agg(pl.col("nM_value").min())
    truth = truth.sort(["treatment", "gene_symbol"])
    names = sorted(truth["treatment"].unique().to_list())
    ci = {c: i for i, c in enumerate(names)}
    links = [(ci[c], gi[g], float(v)) for c, g, v in truth.iter_rows()]
    return _compound_parts(rng, names, links, len(genes))


@functools.lru_cache(maxsize=4)
def bray_compounds(seed: int, n: int) -> Compounds:
    """Made-up training compounds hitting 1-3 of the same gene programs (so learning transfers)."""
    rng = np.random.default_rng([int(seed), 303, n])
    n_genes = len(rxrx3_core_genes())
    names = [f"SYN-{i:05d}" for i in range(n)]
    links = []
    for c in range(n):
        k = int(rng.integers(1, 4))
        for g in rng.choice(n_genes, size=k, replace=False):
            links.append((c, int(g), float(np.exp(rng.uniform(np.log(1.0), np.log(1e4))))))
    return _compound_parts(rng, names, links, n_genes)


def hill(conc_um: np.ndarray, ec50_um: np.ndarray, h) -> np.ndarray:
    r = np.power(np.maximum(conc_um, 0.0) / ec50_um, h)
    return r / (1.0 + r)


def compound_effect(
    bio: Biology, comp: Compounds, cidx: np.ndarray, conc_um: np.ndarray
) -> np.ndarray:
    """(n_wells, K) effect of compound ``cidx`` at ``conc_um``: on-target Hill curves times
    the target's knockout program + off-target + cytotoxicity."""
    cidx = np.asarray(cidx, dtype=np.int64)
    conc = np.asarray(conc_um, dtype=np.float64)
    out = np.zeros((len(cidx), K))
    # on-target: loop over links vectorised through a (wells x links) mask only for this compound set
    order = np.argsort(comp.target_compound, kind="stable")
    tc = comp.target_compound[order]
    starts = np.searchsorted(tc, np.arange(len(comp.names)))
    ends = np.searchsorted(tc, np.arange(len(comp.names)), side="right")
    counts = ends[cidx] - starts[cidx]
    rows = np.repeat(np.arange(len(cidx)), counts)
    link = order[
        np.concatenate([np.arange(s, e) for s, e in zip(starts[cidx], ends[cidx], strict=True)])
        if len(cidx)
        else np.zeros(0, dtype=np.int64)
    ].astype(np.int64)
    occ = hill(conc[rows], comp.target_nm[link] / 1000.0, comp.hill[comp.target_compound[link]])
    np.add.at(out, rows, (occ * comp.efficacy[link])[:, None] * bio.effects[comp.target_gene[link]])
    h = comp.hill[cidx]
    out += hill(conc, comp.offtarget_ec50_um[cidx], h)[:, None] * comp.offtarget[cidx]
    out += hill(conc, comp.tox_ec50_um[cidx], 2.0)[:, None] * TOX_RESPONSE[None, :]
    return out
