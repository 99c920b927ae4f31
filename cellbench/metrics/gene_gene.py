"""Gene-gene relationship recall (docs/metrics.md, "Gene–gene recall"), exact and fast.

The reference (``efaar_benchmarking.benchmarking.known_relationship_benchmark`` +
``compute_recall``) builds the full cosine matrix as a pandas frame, copies its upper triangle
(the null, ``M = N(N-1)/2`` values), sorts it and ranks every known pair against it:

* a pair is in the low tail when ``searchsorted(null, q, "right") / M <= low``;
* in the high tail when ``searchsorted(null, q, "left") / M >= high``;
* recall = fraction of known pairs in either tail.

Both tests reduce to comparisons with one order statistic each. With ``k_low`` the largest
integer ``c`` such that ``c / M <= low`` (float64 division, as the reference computes it) and
``k_high`` the smallest ``c`` with ``c / M >= high``:

* low  <=> ``#(null <= q) <= k_low``  <=> ``q < s[k_low]`` (0-based sorted null; always true
  when ``k_low == M``);
* high <=> ``#(null < q) >= k_high`` <=> ``s[k_high - 1] < q`` (always true when ``k_high == 0``).

So only those order statistics are needed, never the sorted null. Small maps (``N <= full_max``)
compute the cosine matrix exactly as the reference does (``sklearn`` ``cosine_similarity``) and
``np.partition`` its upper triangle. Large maps never materialise the null: the order statistics
are bracketed from a random sample of pairs, then one blockwise pass over the upper triangle
(GEMM of a block of rows against the rows after it) counts the values below each bracket and
keeps only the few inside it; a bracket the sample missed is widened and the pass repeated.
The known pairs' similarities are read from the same blocks, so each is compared with the null
it belongs to bit for bit.

A known pair tied with an order statistic (identical rows, collapsed embeddings) is decided by
the last bit of two similarities, and that bit depends on how the product is computed: the
memory layout of the rows, the BLAS routine, and where a row falls in the BLAS micro-tile. Both
engines therefore reproduce the reference's arithmetic: rows column-major (the layout of the
pandas frame the reference passes), a ``gemm`` against a separate normalised copy (what sklearn
makes of a frame passed twice), and blocks aligned on the tile grid. In float64 every value
equals the reference's bit for bit (tested). In float32 the reference reads each known pair at
(entity1, entity2) in name order from a ``gemm`` result that is not exactly symmetric, so a
pair whose lower-triangle value differs from its upper-triangle null value by 1 ulp and sits
at an order statistic can still count differently; this needs ties at the threshold, i.e.
duplicate rows in the map.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics.pairwise import cosine_similarity
from sklearn.preprocessing import normalize

from cellbench.errors import InputError
from cellbench.metrics.annotations import SOURCES, check_sources, pairs_within

THRESHOLD_PAIRS: tuple[tuple[float, float], ...] = ((0.05, 0.95), (0.1, 0.9))
MIN_ENTITIES = 20  # efaar_benchmarking.constants.MIN_REQ_ENT_CNT


def recall_key(low: float, high: float) -> str:
    """Column name of a threshold pair, as the reference names it (``recall_0.05_0.95``)."""
    return f"recall_{min(low, high)}_{max(low, high)}"


def tail_ranks(m: int, low: float, high: float) -> tuple[int, int]:
    """``(k_low, k_high)`` of the module docstring for a null of ``m`` values."""
    low, high = float(min(low, high)), float(max(low, high))
    k_low = min(int(np.floor(low * m)) + 2, m)
    while k_low > 0 and not (np.float64(k_low) / np.float64(m) <= low):
        k_low -= 1
    k_high = max(int(np.ceil(high * m)) - 2, 0)
    while k_high < m and not (np.float64(k_high) / np.float64(m) >= high):
        k_high += 1
    return k_low, k_high


# ---------------------------------------------------------------------------------------------
# order statistics of the upper-triangle null
# ---------------------------------------------------------------------------------------------


def _reference_layout(X: np.ndarray) -> np.ndarray:
    """``X`` in the memory layout the reference's ``cosine_similarity`` receives: it passes a
    single-dtype pandas frame, which hands over its block as a column-major array. The layout
    decides the order of the floating-point sums (row norms, BLAS kernels), hence the last bit
    of each similarity, and a known pair tied with an order statistic is decided by that bit."""
    return np.asfortranarray(X)


def _full_null(X: np.ndarray, ranks: np.ndarray, qi: np.ndarray, qj: np.ndarray):
    X = _reference_layout(X)
    # two array objects, as sklearn makes of the reference's frame passed twice: each side is
    # normalised on its own and the product is a ``gemm``, not the ``syrk`` of ``X @ X.T``
    C = cosine_similarity(X, X.copy(order="F"))
    null = C[np.triu_indices(len(C), k=1)]
    stats = np.partition(null, ranks)[ranks] if len(ranks) else np.empty(0, C.dtype)
    return stats, C[qi, qj]


TILE = 8  # block boundaries on multiples of this keep each row's place in the BLAS micro-tile


def _blocks(Xn: np.ndarray, block_rows: int):
    """Yield ``(a, b, B)`` with ``B = Xn[a:b] @ Xn[a:].T`` for consecutive row blocks.

    Each value is computed as the reference's full product computes it: ``Xn`` is column-major
    and ``B`` is a ``gemm`` of it against a separate copy (sklearn's two normalised arrays), and
    blocks start on multiples of ``TILE`` rows. A ``gemm`` value depends on where its row and
    column fall in the BLAS micro-tile; a block starting off the tile grid moves rows to other
    places, and two identical rows then get cosines 1 ulp apart, which breaks the tie the
    reference keeps and moves a known pair that sits at an order statistic across it.
    """
    n = len(Xn)
    block_rows = -(-max(block_rows, 1) // TILE) * TILE
    Yn = Xn.copy(order="F")
    for a in range(0, n - 1, block_rows):
        b = min(a + block_rows, n)
        yield a, b, Xn[a:b] @ Yn[a:].T


def _block_null(
    X: np.ndarray,
    ranks: np.ndarray,
    qi: np.ndarray,
    qj: np.ndarray,
    *,
    block_rows: int,
    sample_size: int,
    margin_sd: float,
    seed: int,
    progress=None,
):
    n = len(X)
    m = n * (n - 1) // 2
    Xn = normalize(_reference_layout(X), copy=True)
    # 1. bracket each order statistic from a uniform sample of pairs
    rng = np.random.default_rng(seed)
    s = min(sample_size, m)
    si = rng.integers(0, n, size=s)
    sj = (si + rng.integers(1, n, size=s)) % n  # uniform over j != i
    sample = np.empty(s, dtype=Xn.dtype)
    for c in range(0, s, 8192):  # in chunks: never two (s x D) gathers at once
        sample[c : c + 8192] = np.einsum("ij,ij->i", Xn[si[c : c + 8192]], Xn[sj[c : c + 8192]])
    sample.sort()
    lo = np.full(len(ranks), -np.inf)
    hi = np.full(len(ranks), np.inf)
    for j, r in enumerate(ranks):
        p = (r + 0.5) / m
        centre = p * s
        margin = margin_sd * np.sqrt(s * p * (1 - p)) + 2
        i_lo, i_hi = int(np.floor(centre - margin)), int(np.ceil(centre + margin))
        if i_lo >= 0:
            lo[j] = sample[i_lo]
        if i_hi < s:
            hi[j] = sample[i_hi]
    # queries sorted by their first row, to pick them out block by block
    order = np.argsort(qi, kind="stable")
    qi_s, qj_s = qi[order], qj[order]
    qvals = np.empty(len(qi), dtype=Xn.dtype)
    stats = np.full(len(ranks), np.nan, dtype=Xn.dtype)
    pending = np.arange(len(ranks))
    first = True
    while len(pending) or first:
        below, inside = _count_pass(
            Xn,
            lo[pending],
            hi[pending],
            ranks[pending] < m / 2,
            qi_s,
            qj_s,
            qvals if first else None,
            block_rows,
            progress,
        )
        still = []
        for k, t in enumerate(pending):
            r = ranks[t]
            if below[k] <= r < below[k] + len(inside[k]):
                stats[t] = np.partition(inside[k], r - below[k])[r - below[k]]
            elif r < below[k]:  # the statistic lies below the bracket: widen downwards
                lo[t], hi[t] = -np.inf, lo[t]
                still.append(t)
            else:  # above it: widen upwards
                lo[t], hi[t] = hi[t], np.inf
                still.append(t)
        pending = np.asarray(still, dtype=np.int64)
        first = False
    out = np.empty_like(qvals)
    out[order] = qvals
    return stats, out


def _count_pass(Xn, lo, hi, low_side, qi_s, qj_s, qvals, block_rows, progress=None):
    """One pass over the upper triangle: per bracket, #values < lo and the values in [lo, hi].

    Fills ``qvals`` (query similarities, in ``qi_s`` order) when it is given.
    """
    k = len(lo)
    below = np.zeros(k, dtype=np.int64)
    inside: list[list[np.ndarray]] = [[] for _ in range(k)]
    # two cheap pre-filters: values <= low_cut hold every bracket of a statistic in the low half,
    # values >= high_cut every other one, so the per-bracket work runs on the tails only
    n = len(Xn)
    low_cut = hi[low_side].max() if low_side.any() else None
    high_side = ~low_side
    high_cut = lo[high_side].min() if high_side.any() else None
    total = 0
    for a, b, B in _blocks(Xn, block_rows):
        if progress is not None:  # share of the upper triangle done so far
            progress(1.0 - ((n - a) / n) ** 2, 1.0)
        w = b - a
        if qvals is not None:
            q0, q1 = np.searchsorted(qi_s, [a, b])
            if q1 > q0:
                qvals[q0:q1] = B[qi_s[q0:q1] - a, qj_s[q0:q1] - a]
        square = B[:, :w][np.triu_indices(w, k=1)]
        rect = B[:, w:]
        total += square.size + rect.size
        parts = (square, rect)
        if low_cut is not None:
            tail = np.concatenate([p[p <= low_cut] for p in parts])
            for t in np.flatnonzero(low_side):
                below[t] += np.count_nonzero(tail < lo[t])
                inside[t].append(tail[(tail >= lo[t]) & (tail <= hi[t])])
        if high_cut is not None:
            tail = np.concatenate([p[p >= high_cut] for p in parts])
            for t in np.flatnonzero(high_side):
                # count the values above the bracket; turned into "below" after the pass
                below[t] += np.count_nonzero(tail > hi[t])
                inside[t].append(tail[(tail >= lo[t]) & (tail <= hi[t])])
    inside_arr = [np.concatenate(v) if v else np.empty(0, Xn.dtype) for v in inside]
    for t in np.flatnonzero(high_side):
        below[t] = total - below[t] - len(inside_arr[t])
    return below, inside_arr


def null_statistics(
    X: np.ndarray,
    ranks: Sequence[int] | np.ndarray,
    qi: np.ndarray,
    qj: np.ndarray,
    *,
    full_max: int = 2048,
    block_rows: int = 256,
    sample_size: int = 50_000,
    margin_sd: float = 6.0,
    seed: int = 0,
    progress=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Order statistics ``ranks`` (0-based) of the cosine null of ``X``'s rows and the cosines
    of the pairs ``(qi, qj)`` (``qi < qj``). The sample seed only affects speed, never values."""
    ranks = np.asarray(ranks, dtype=np.int64)
    qi = np.asarray(qi, dtype=np.int64)
    qj = np.asarray(qj, dtype=np.int64)
    if len(X) <= full_max:
        return _full_null(X, ranks, qi, qj)
    return _block_null(
        X,
        ranks,
        qi,
        qj,
        block_rows=block_rows,
        sample_size=sample_size,
        margin_sd=margin_sd,
        seed=seed,
        progress=progress,
    )


# ---------------------------------------------------------------------------------------------
# the benchmark
# ---------------------------------------------------------------------------------------------


def gene_gene_recall(
    features: np.ndarray,
    entities: Sequence[str | None],
    *,
    sources: Sequence[str] = SOURCES,
    thresholds: Sequence[tuple[float, float]] = THRESHOLD_PAIRS,
    min_entities: int = MIN_ENTITIES,
    **engine,
) -> dict[str, dict]:
    """Recall of known relationships per source.

    ``features``: the map rows that form the null (the whole map, or only its genes);
    ``entities``: one label per row, matched against the annotations (``None`` for rows that
    are in the null but never a query, e.g. compounds). Returns
    ``{source: {"n_relationships": int, "recall_<low>_<high>": float, ...}}``; a source with no
    relationship in the map gets NaN recalls.
    """
    sources = check_sources(sources)
    features = np.asarray(features)
    entities = list(entities)
    if len(entities) != len(features):
        raise ValueError("features and entities must have the same length")
    if len(features) < max(min_entities, 2):
        raise InputError(
            f"the map has {len(features)} rows; gene-gene recall needs at least {min_entities}. "
            "Fix: score a map with more perturbations."
        )
    named = [e for e in entities if e is not None]
    if len(named) != len(set(named)):
        dup = sorted({e for e in named if named.count(e) > 1})[:3] if len(named) < 50_000 else []
        raise InputError(
            f"duplicate perturbation labels in the map {dup}. Fix: aggregate wells to one row "
            "per perturbation before scoring."
        )
    if not np.isfinite(features).all():
        raise InputError("the map features contain NaN or inf. Fix: check the embeddings.")
    n = len(features)
    m = n * (n - 1) // 2
    tails = [tail_ranks(m, lo, hi) for lo, hi in thresholds]
    ranks = sorted({r for k_low, k_high in tails for r in (k_low, k_high - 1) if 0 <= r < m})
    pairs = {s: pairs_within(s, entities) for s in sources}
    qi = np.concatenate([p[0] for p in pairs.values()]) if pairs else np.empty(0, np.int64)
    qj = np.concatenate([p[1] for p in pairs.values()]) if pairs else np.empty(0, np.int64)
    stats, qvals = null_statistics(features, ranks, qi, qj, **engine)
    stat = dict(zip(ranks, stats, strict=True))
    out: dict[str, dict] = {}
    offset = 0
    for s in sources:
        nq = len(pairs[s][0])
        q = qvals[offset : offset + nq]
        offset += nq
        row: dict = {"n_relationships": int(nq)}
        for (lo, hi), (k_low, k_high) in zip(thresholds, tails, strict=True):
            is_low = q < stat[k_low] if k_low < m else np.ones(nq, bool)
            is_high = stat[k_high - 1] < q if k_high > 0 else np.ones(nq, bool)
            row[recall_key(lo, hi)] = np.sum(is_low | is_high) / nq if nq else float("nan")
        out[s] = {k: (float(v) if k != "n_relationships" else v) for k, v in row.items()}
    return out


NULL_SCOPES: tuple[str, ...] = ("all", "genes")


def map_recall(
    table,
    features: np.ndarray,
    *,
    null: str = "all",
    sources: Sequence[str] = SOURCES,
    **kwargs,
) -> dict[str, dict]:
    """Gene-gene recall of a perturbation map (``cellbench.maps`` table + features).

    ``null="all"``: the null is every pair of map rows (genes and compound-concentrations, the
    RxRx3-core notebook's whole-map null); ``null="genes"``: only pairs of CRISPR rows (every
    row of a CRISPR plate, controls included). Queries are always gene rows, matched by their
    perturbation label.
    """
    if null not in NULL_SCOPES:
        raise InputError(f"unknown null scope '{null}'. Fix: use 'all' (whole map) or 'genes'.")
    is_gene = (table["perturbation_type"] == "CRISPR").to_numpy()
    rows = np.ones(len(is_gene), bool) if null == "all" else is_gene
    labels = [
        p if g else None
        for p, g, keep in zip(table["perturbation"].to_list(), is_gene, rows, strict=True)
        if keep
    ]
    return gene_gene_recall(np.asarray(features)[rows], labels, sources=sources, **kwargs)
