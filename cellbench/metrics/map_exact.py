"""copairs' average precision, mAP and permutation p-values, computed block-wise without pairs.

copairs (Kalinin et al. 2025; the JUMP recipe of Chandrasekaran et al. 2024) lists every
(query, positive) and (query, negative) pair, so its memory grows with their product: an
RxRx3-core-sized release with tens of thousands of control wells needs hundreds of GB. This
module gives the same numbers from blocks of query rows x all candidate rows:

* **similarity**: copairs stores ``pairwise_cosine`` of the float64 profiles rounded to float32.
  A float32 matrix product screens the candidates; its error is bounded by ``(d + 4) * 2**-24``
  for unit vectors (the usual dot-product bound, any summation order), so only the candidates
  whose screened similarity lies within that bound (plus the float32 rounding of ``1 - sim``)
  of a positive's are recomputed with ``copairs.compute.pairwise_cosine`` itself.
* **ranking**: copairs sorts each query's list by ``1 - sim`` in float32 with a stable sort in
  which all positives precede all negatives, so a negative tied with a positive ranks after it.
  A positive's rank is therefore its place among the positives plus the number of negatives
  whose float32 ``1 - sim`` is strictly smaller; AP = mean over positives of ``j / rank_j``.
  With few positives per query each positive's count is a pass over the block (one pass per
  positive slot); with many (a perturbation with 100 replicates has 99 per well, so 99 passes)
  each row of the block is sorted once instead and every positive's count and band are found
  by binary search in its row: the same counts, in ``O(log k)`` per positive instead of ``O(k)``.
* **null and p-values**: copairs' ``get_null_dists`` (one ``numpy`` generator per distinct
  ``(n_pos, n_total)`` configuration, seeded from ``default_rng(seed).integers(8096)`` in the
  sorted order of the configurations, its results cached under ``~/.copairs``) is reproduced
  draw for draw but generated in row chunks (``Generator.permuted`` shuffles row after row, so
  chunking draws the same numbers), and the same cache is read and written. A group's null is
  the float32 mean of its members' nulls, its p-value ``(#null > mAP + 1) / (null_size + 1)``,
  corrected by Benjamini-Hochberg with copairs' own ``apply_fdr_correction``.

AP equals copairs' up to the order of a float64 sum (copairs adds the zeros of the negatives in
numpy's pairwise order); mAP is pandas' group mean as in copairs; p-values are equal.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from copairs.compute import average_precision as _null_ap
from copairs.compute import pairwise_cosine
from copairs.map.hierarchical_fdr import apply_fdr_correction

_U32 = 2.0**-24
_BLOCK_BYTES = 256 * 2**20  # float32 similarity block held at once
_NULL_CHUNK_BYTES = 64 * 2**20  # shuffled index rows held at once by the null generator
#: float64 values per gathered chunk of rows (x 8 bytes, ~5 such arrays live in pairwise_cosine)
_PAIR_CHUNK = 2**20
#: sort each block's rows once (instead of one pass per positive) when a query has more
#: positives than this. Measured (2,900 queries x 22,000 controls, d 384, busy 2-core box):
#: 3 positives 4.3 s per pass vs 5.8 s sorted, 5: 6.7 vs 5.0, 7: 7.6 vs 6.4, 11: 13.7 vs 7.3
SORT_ABOVE = 4


def copairs_cosine(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of rows ``a[k]`` and ``b[k]`` of ``x`` exactly as copairs stores it:
    ``copairs.compute.pairwise_cosine`` on the float64 profiles, rounded to float32."""
    out = np.empty(len(a), dtype=np.float32)
    step = max(1, _PAIR_CHUNK // max(x.shape[1], 1))
    for s in range(0, len(a), step):
        xa = np.asarray(x[a[s : s + step]], dtype=np.float64)
        xb = np.asarray(x[b[s : s + step]], dtype=np.float64)
        out[s : s + step] = pairwise_cosine(xa, xb)
    return out


def _pair_cosine(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """:func:`copairs_cosine` of rows ``a[k]``, ``b[k]``, each unordered pair computed once: a
    replicate pair is listed from both of its wells (with 100 replicates, 9,900 per
    perturbation), and copairs' cosine is symmetric bit for bit (an elementwise product, then
    the same row sum)."""
    n = max(int(x.shape[0]), 1)
    key = np.minimum(a, b) * n + np.maximum(a, b)
    uniq, inverse = np.unique(key, return_inverse=True)
    if len(uniq) == len(key):
        return copairs_cosine(x, a, b)
    return copairs_cosine(x, uniq // n, uniq % n)[inverse.ravel()]


def _unit_float32(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """L2-normalised float32 copies of ``x[rows]`` (normalised in float64, chunk by chunk)."""
    out = np.empty((len(rows), x.shape[1]), dtype=np.float32)
    step = max(1, _PAIR_CHUNK // max(x.shape[1], 1))
    for s in range(0, len(rows), step):
        v = np.asarray(x[rows[s : s + step]], dtype=np.float64)
        out[s : s + step] = v / np.linalg.norm(v, axis=1)[:, None]
    return out


def exact_average_precision(
    x: np.ndarray,
    queries: np.ndarray,
    candidates: np.ndarray,
    pos_query: np.ndarray,
    pos_row: np.ndarray,
    negatives: Callable[[np.ndarray], np.ndarray] | None = None,
    *,
    block_bytes: int | None = None,
    sort_above: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """copairs' AP of every query row, from blocks of queries x candidates.

    ``x`` (n, d) profiles (any float dtype; copairs' similarity is taken on their float64
    values); ``queries`` (m,) and ``candidates`` (k,) row indices; ``pos_query`` (positions into
    ``queries``) and ``pos_row`` (row indices) list each query's positives, one entry per
    (query, positive); ``negatives(q)`` gives the (len(q), k) mask of the candidates that are
    negatives of queries ``q`` (positions), ``None`` meaning all of them; ``block_bytes`` bounds
    the float32 similarity block (default 256 MB; the sorted path keeps its int64 keys within
    it too); ``sort_above``: rank by sorting the block's rows when some query has more positives
    than this (default :data:`SORT_ABOVE`; both paths give the same numbers). Returns
    ``(ap, n_pos, n_neg)`` per query; a query without positives or negatives has AP NaN.
    """
    m, k = len(queries), len(candidates)
    d = x.shape[1]
    pos_query = np.asarray(pos_query, dtype=np.int64)
    pos_row = np.asarray(pos_row, dtype=np.int64)
    order = np.argsort(pos_query, kind="stable")
    pos_query, pos_row = pos_query[order], pos_row[order]
    pos_sim = _pair_cosine(x, queries[pos_query], pos_row)
    pos_key = np.float32(1) - pos_sim
    n_pos = np.bincount(pos_query, minlength=m)
    n_neg = np.zeros(m, dtype=np.int64)
    ahead = np.zeros(len(pos_query), dtype=np.int64)
    # |screened - copairs float32| <= eps; a margin of 2**-22 keeps float32 1 - sim ordered
    delta = np.float32((d + 4) * _U32 * 1.01 + 2.0**-22)
    cand32 = _unit_float32(x, candidates)
    starts = np.searchsorted(pos_query, np.arange(m + 1))
    sort = int(n_pos.max(initial=0)) > (SORT_ABOVE if sort_above is None else sort_above)
    # the sorted path holds the float32 block and its int64 keys (12 bytes per similarity)
    per_row = (12 if sort else 4) * max(k, 1)
    block = max(1, int((block_bytes or _BLOCK_BYTES) // per_row))
    for b0 in range(0, m, block):
        b1 = min(m, b0 + block)
        q = np.arange(b0, b1)
        sims = _unit_float32(x, queries[q]) @ cand32.T
        if negatives is None:
            n_neg[b0:b1] = k
        else:
            neg = negatives(q)
            n_neg[b0:b1] = neg.sum(axis=1)
            sims[~neg] = -np.inf
        p0, p1 = starts[b0], starts[b1]
        if sort:
            _ahead_sorted(
                x, queries, candidates, sims, b0, pos_query, pos_sim, pos_key, delta, p0, p1, ahead
            )
            continue
        slot = np.arange(p0, p1) - starts[pos_query[p0:p1]]
        for t in range(int(slot.max(initial=-1)) + 1):
            sel = np.nonzero(slot == t)[0] + p0
            hi = np.full(b1 - b0, np.inf, dtype=np.float32)
            lo = np.full(b1 - b0, np.inf, dtype=np.float32)
            hi[pos_query[sel] - b0] = pos_sim[sel] + delta
            lo[pos_query[sel] - b0] = pos_sim[sel] - delta
            which = np.full(b1 - b0, -1, dtype=np.int64)
            which[pos_query[sel] - b0] = sel
            ahead[sel] = np.count_nonzero(sims > hi[:, None], axis=1)[pos_query[sel] - b0]
            band = sims >= lo[:, None]
            band &= sims <= hi[:, None]
            rr, cc = np.nonzero(band)
            if rr.size:
                p = which[rr]
                exact = np.float32(1) - copairs_cosine(x, queries[rr + b0], candidates[cc])
                np.add.at(ahead, p, exact < pos_key[p])
    # rank of the j-th positive (ordered by negatives ahead) = j + negatives ahead of it
    ordered = np.lexsort([ahead, pos_query])
    pq, na = pos_query[ordered], ahead[ordered]
    j = np.arange(len(pq)) - starts[pq] + 1
    ap = np.bincount(pq, j / (j + na), minlength=m)
    with np.errstate(divide="ignore", invalid="ignore"):
        ap = np.where((n_pos > 0) & (n_neg > 0), ap / n_pos, np.nan)
    return ap, n_pos, n_neg


def _order_keys(v: np.ndarray) -> np.ndarray:
    """int32 keys of float32 values (in place for an array) ordered as the floats are: a
    negative float's magnitude bits are flipped, and ``-0.0`` is made ``+0.0`` first."""
    v += np.float32(0)  # -0.0 + 0.0 = +0.0: the two zeros compare equal as floats
    key = v.view(np.int32)
    flip = key >> 31
    flip &= np.int32(0x7FFFFFFF)
    key ^= flip
    return key


def _count_le(flat: np.ndarray, k: int, rows: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per entry, how many of the ``k`` sorted keys of row ``rows[i]`` of ``flat`` are
    ``<= targets[i]``: a binary search for all entries at once (the count grows by halving
    steps while the key just below it is still ``<= target``)."""
    base = rows.astype(np.int64) * k - 1
    count = np.zeros(len(rows), dtype=np.int64)
    step = 1 << max(int(k).bit_length() - 1, 0)
    while step:
        grown = count + step
        ok = flat[base + np.minimum(grown, k)] <= targets
        ok &= grown <= k
        count = np.where(ok, grown, count)
        step >>= 1
    return count


def _ahead_sorted(
    x, queries, candidates, sims, b0, pos_query, pos_sim, pos_key, delta, p0, p1, ahead
):
    """The negatives ahead of positives ``p0:p1`` (queries of the block starting at ``b0``),
    from each block row sorted once: key = (float order of the screened similarity, column).
    Counts as the per-slot passes do: screened above ``sim + delta`` is ahead, within
    ``[sim - delta, sim + delta]`` is recomputed exactly, below is behind."""
    if p1 <= p0:
        return
    bq, k = sims.shape
    # row chunks of ~4 M similarities keep the temporaries (and any sort buffer) small: the
    # block's own budget is the float32 similarities + these int64 keys (12 bytes each)
    keys = np.empty((bq, k), dtype=np.int64)
    cols = np.arange(k, dtype=np.int64)
    step = max(1, 2**22 // max(k, 1))
    for r in range(0, bq, step):
        chunk = keys[r : r + step]
        chunk[...] = _order_keys(sims[r : r + step])  # sims is not needed after this
        chunk <<= 32
        chunk |= cols
        chunk.sort(axis=1)
    flat = keys.ravel()
    rows = pos_query[p0:p1] - b0
    sim = pos_sim[p0:p1]
    hi = _order_keys((sim + delta).astype(np.float32)).astype(np.int64)
    lo = _order_keys((sim - delta).astype(np.float32)).astype(np.int64)
    # <= (hi, any column) and < (lo, column 0) = <= (lo - 1, last column)
    i_hi = _count_le(flat, k, rows, (hi << 32) | np.int64(0xFFFFFFFF))
    i_lo = _count_le(flat, k, rows, ((lo - 1) << 32) | np.int64(0xFFFFFFFF))
    ahead[p0:p1] = k - i_hi
    width = i_hi - i_lo
    total = int(width.sum())
    if total == 0:
        return
    owner = np.repeat(np.arange(p0, p1), width)
    start = np.repeat(rows.astype(np.int64) * k + i_lo - (np.cumsum(width) - width), width)
    cols = flat[start + np.arange(total)] & np.int64(0xFFFFFFFF)
    exact = np.float32(1) - copairs_cosine(x, queries[pos_query[owner]], candidates[cols])
    hit = np.bincount(owner - p0, exact < pos_key[owner], minlength=p1 - p0)
    ahead[p0:p1] += hit.astype(np.int64)


def _cache_dir(seed: int, null_size: int) -> Path:
    """copairs' null cache folder (``get_null_dists``' default)."""
    return Path.home() / ".copairs" / f"seed{seed}" / f"ns{null_size}"


def _cache_read(path: Path) -> np.ndarray | None:
    try:
        return np.load(path)
    except (FileNotFoundError, ValueError, EOFError, OSError):
        return None


def _cache_write(path: Path, arr: np.ndarray) -> None:
    """Atomic write, as copairs does, so a concurrent reader sees a whole file or none."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npy")
        with os.fdopen(fd, "wb") as f:
            np.save(f, arr)
        os.replace(tmp, path)
    except OSError:
        pass


def random_ap_chunked(null_size: int, num_pos: int, total: int, seed) -> np.ndarray:
    """``copairs.compute.random_ap`` draw for draw, holding only a chunk of shuffled rows."""
    rng = np.random.default_rng(seed)
    dtype = np.uint16 if total < 2**16 else np.uint32
    rows = max(1, _NULL_CHUNK_BYTES // (total * np.dtype(dtype).itemsize))
    out = np.empty(null_size, dtype=np.float32)
    base = np.arange(total, dtype=dtype)
    for s in range(0, null_size, rows):
        idx = np.tile(base, (min(rows, null_size - s), 1))
        rng.permuted(idx, axis=1, out=idx)
        out[s : s + len(idx)] = _null_ap(np.sort(idx[:, :num_pos], axis=1))
    return out


def null_distributions(confs: np.ndarray, null_size: int, seed: int) -> np.ndarray:
    """copairs' ``get_null_dists`` for sorted unique ``(n_pos, n_total)`` rows, same cache."""
    folder = _cache_dir(seed, null_size)
    seeds = np.random.default_rng(seed).integers(8096, size=len(confs))
    out = np.empty((len(confs), null_size), dtype=np.float32)
    for i, (num_pos, total) in enumerate(confs):
        path = folder / f"n{total}_k{num_pos}.npy"
        dist = _cache_read(path)
        if dist is None:
            dist = random_ap_chunked(null_size, int(num_pos), int(total), seeds[i])
            _cache_write(path, dist)
        out[i] = dist
    return out


def map_pvalues(
    groups: np.ndarray,
    ap: np.ndarray,
    n_pos: np.ndarray,
    n_total: np.ndarray,
    *,
    null_size: int,
    seed: int,
    threshold: float,
) -> pd.DataFrame:
    """copairs' ``mean_average_precision`` on per-row AP: one row per group (sorted) with
    ``group, mean_average_precision, p_value, corrected_p_value, below_corrected_p``."""
    ok = ~np.isnan(ap) & (n_pos > 0)
    groups, ap = np.asarray(groups)[ok], ap[ok]
    confs, rev = np.unique(
        np.stack([n_pos[ok], n_total[ok]], axis=1).astype(np.int64), axis=0, return_inverse=True
    )
    rev = rev.ravel()
    nulls = null_distributions(confs, null_size, seed)
    frame = pd.DataFrame({"group": groups, "average_precision": ap})
    grouped = frame.groupby("group", observed=True, sort=True)
    maps = grouped["average_precision"].mean()
    members = grouped.indices
    memo: dict[tuple, np.ndarray] = {}
    pvals = np.empty(len(maps))
    for g, (name, score) in enumerate(maps.items()):
        key = tuple(rev[members[name]].tolist())
        if key not in memo:
            memo[key] = nulls[list(key)].mean(axis=0)
        pvals[g] = ((memo[key] > score).sum() + 1) / (null_size + 1)
    out = pd.DataFrame(
        {
            "group": maps.index.to_numpy(),
            "mean_average_precision": maps.to_numpy(),
            "p_value": pvals,
        }
    )
    out = apply_fdr_correction(out)
    out["below_corrected_p"] = out["corrected_p_value"] < threshold
    return out
