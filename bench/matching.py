"""Exact maximum bipartite matching of boundary pixels, for the BF score.

Two exact implementations of the same thing:
- `augmenting_path_matching`: a small C augmenting-path matcher (Kuhn's, with a lookahead, and failed
  searches retired for good: `bench/_native/matching.c`), compiled on first use (`bench.native`);
- `flow_matching`: SciPy's unit-capacity max-flow (Dinic), used where no C compiler is available,
  and as the oracle the tests compare the C code against.

Both take ``hits``, an (n_pred, n_offsets) int32 table whose row i lists the ground-truth nodes within
the tolerance of predicted node i (nearest first, -1 for none), and return boolean masks of the
predicted and ground-truth nodes that a maximum matching covers.

`native_bf_counts` is the fast path `bench.boundary` takes where the C code is available: from two
label maps straight to the per-class boundary and matched pixel counts, in C, with no dense table.
"""
from __future__ import annotations

import ctypes

import numpy as np

from bench import native


def backend() -> str:
    """Which implementation `max_matching` uses here."""
    return "augmenting paths (C)" if native.load() is not None else f"scipy max-flow ({native.unavailable_reason()})"


def native_pair_counts(first: np.ndarray, second: np.ndarray) -> np.ndarray | None:
    """The joint histogram of two uint8 arrays of one shape: counts[a, b] = pixels with first == a and
    second == b, for a and b up to the largest value of each (int64); None where the C code is unavailable."""
    lib = native.load()
    if lib is None:
        return None
    first = np.ascontiguousarray(first, dtype=np.uint8)
    second = np.ascontiguousarray(second, dtype=np.uint8)
    rows, cols = int(first.max(initial=0)) + 1, int(second.max(initial=0)) + 1
    counts = np.zeros((rows, cols), dtype=np.int64)
    if lib.pair_counts_u8(first.size, first.ctypes.data, second.ctypes.data, rows, cols, counts.ctypes.data):
        raise MemoryError("the C histogram could not allocate its work arrays")
    return counts


def augmenting_path_matching(hits: np.ndarray, n_g: int):
    lib = native.load()
    if lib is None:
        raise RuntimeError(f"the C matcher is unavailable: {native.unavailable_reason()}")
    hits = np.ascontiguousarray(hits, dtype=np.int32)
    n_p, n_off = hits.shape
    ml = np.empty(n_p, dtype=np.int32)
    mr = np.empty(n_g, dtype=np.int32)
    ptr = ctypes.POINTER(ctypes.c_int)
    size = lib.max_matching(n_p, n_g, n_off, hits.ctypes.data_as(ptr), ml.ctypes.data_as(ptr), mr.ctypes.data_as(ptr))
    if size < 0:
        raise MemoryError("the C matcher could not allocate its work arrays")
    return ml >= 0, mr >= 0


def bf_workspace(shape, pad: int, num_classes: int = 64):
    """The C counter's work planes for images of ``shape``, all zero (the C code leaves the first two all zero
    after every image: reuse them for every image). The third is flat and large enough for the one-to-one
    rule's bit planes of ``num_classes`` classes too."""
    h, w = shape
    plane = (h + 2 * pad, w + 2 * pad)
    bit_planes = 3 * num_classes * plane[0] * -(-plane[1] // 64)
    return (np.zeros(plane, np.uint64), np.zeros(plane, np.uint64), np.zeros(max(plane[0] * plane[1], bit_planes), np.uint64),
            np.zeros(plane, np.int32))


def native_bf_counts(pred: np.ndarray, gt: np.ndarray, num_classes: int, offsets: np.ndarray, pad: int,
                     rule: str = "one-to-one", workspace=None, seconds: np.ndarray | None = None) -> np.ndarray | None:
    """(4, K) counts for one image: predicted and ground-truth boundary pixels, matched predicted and matched
    ground-truth pixels of each class; None where the C code is unavailable or a label is outside 0..63.

    ``offsets`` must form a disk (one run of dx per row) within ``pad``, as `bench.boundary.disk_offsets`
    gives; ``workspace`` is `bf_workspace(gt.shape, pad, num_classes)`. Where ``seconds`` (float64, 3) is given, the time
    spent on boundaries, candidate pixels and matching is added to it (for the speed benchmark).
    """
    lib = native.load()
    if lib is None or num_classes > 64:
        return None
    if pred.dtype != np.uint8 or gt.dtype != np.uint8:
        if min(pred.min(initial=0), gt.min(initial=0)) < 0 or max(pred.max(initial=0), gt.max(initial=0)) >= 64:
            return None
    elif max(pred.max(initial=0), gt.max(initial=0)) >= 64:
        return None
    pred = np.ascontiguousarray(pred, dtype=np.uint8)
    gt = np.ascontiguousarray(gt, dtype=np.uint8)
    h, w = gt.shape
    pb, gb, box, gbase = workspace if workspace is not None else bf_workspace((h, w), pad, num_classes)
    if pb.shape != (h + 2 * pad, w + 2 * pad):
        raise ValueError(f"workspace of {pb.shape} for an image of {(h, w)} with border {pad}")
    off_dy = np.ascontiguousarray(offsets[:, 0], dtype=np.int32)
    off_dx = np.ascontiguousarray(offsets[:, 1], dtype=np.int32)
    out = np.zeros(4 * num_classes, dtype=np.int64)
    ptr = ctypes.POINTER(ctypes.c_int)
    status = lib.bf_counts(h, w, pred.ctypes.data, gt.ctypes.data, num_classes, len(offsets), off_dy.ctypes.data_as(ptr),
                           off_dx.ctypes.data_as(ptr), pad, {"one-to-one": 0, "distance": 1}[rule],
                           pb.ctypes.data, gb.ctypes.data, box.ctypes.data, box.size, gbase.ctypes.data,
                           out.ctypes.data_as(ctypes.POINTER(ctypes.c_longlong)),
                           None if seconds is None else seconds.ctypes.data)
    if status == -2:
        raise ValueError(f"the offsets are not a disk within the work planes' border of {pad} pixels")
    if status < 0:
        raise MemoryError("the C boundary counter could not allocate its work arrays")
    return out.reshape(4, num_classes)


def flow_matching(hits: np.ndarray, n_g: int):
    """Maximum matching as a unit-capacity max-flow: source -> predicted -> ground truth -> sink."""
    from scipy.sparse import csr_matrix  # imported here: SciPy's start-up is paid only where it is used
    from scipy.sparse.csgraph import maximum_flow

    hits = np.asarray(hits)
    p_ok = np.zeros(len(hits), dtype=bool)
    g_ok = np.zeros(n_g, dtype=bool)
    mask = hits >= 0
    deg = mask.sum(axis=1)
    rows = np.flatnonzero(deg)
    if rows.size == 0:
        return p_ok, g_ok
    g_has = np.zeros(n_g, dtype=bool)
    g_has[hits[mask]] = True
    g_idx = np.flatnonzero(g_has)
    g_new = np.cumsum(g_has) - 1
    n_p, n_gk = len(rows), len(g_idx)
    sink = n_p + n_gk + 1
    sub = hits[rows]
    edge_dst = n_p + 1 + g_new[sub[sub >= 0]]  # row-major, so grouped by predicted node
    n_e = len(edge_dst)
    indptr = np.concatenate([[0, n_p], n_p + np.cumsum(deg[rows]), n_p + n_e + np.arange(1, n_gk + 1), [n_p + n_e + n_gk]])
    indices = np.concatenate([np.arange(1, n_p + 1), edge_dst, np.full(n_gk, sink)]).astype(np.int32)
    cap = csr_matrix((np.ones(len(indices), np.int32), indices, indptr.astype(np.int32)), shape=(sink + 1, sink + 1))
    cap.sort_indices()
    flow = maximum_flow(cap, 0, sink, method="dinic").flow
    p_ok[rows] = flow.getrow(0).toarray().ravel()[1 : n_p + 1] > 0
    g_ok[g_idx] = flow[n_p + 1 : sink].tocsc()[:, sink].toarray().ravel() > 0
    return p_ok, g_ok


def max_matching(hits: np.ndarray, n_g: int):
    """Masks of the predicted and ground-truth nodes covered by a maximum one-to-one matching."""
    if native.load() is not None:
        return augmenting_path_matching(hits, n_g)
    return flow_matching(hits, n_g)
