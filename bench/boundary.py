"""BF, the boundary F1 score, exactly as the SegNet authors' `computeBFmeasure.m` computes it.

Source: `alexgkendall/SegNet-Tutorial` @ bb68b64e, `Scripts/computeBFmeasure.m`, which calls the
Berkeley BSDS500 benchmark's `seg2bdry`/`seg2bmap` and `correspondPixels`. The conventions are spelt
out in `../shared/reference/metrics.md`; in short, for every image and class n in 0..K-1:

1. the boundary of the binary masks ``gt == n`` and ``pred == n`` is BSDS `seg2bmap`: a pixel is on
   the boundary when its label differs from its east, south or south-east neighbour (where that
   neighbour exists); void is *not* masked, it is simply "not class n";
2. predicted and ground-truth boundary pixels are matched **one to one** (BSDS `correspondPixels`
   semantics), a pair being allowed when its Euclidean distance is <= 0.75 % of the image diagonal;
   the size of a maximum matching is computed exactly (see `bench.matching`), all
   classes of an image in one matching problem;
3. precision = matched / predicted boundary pixels, recall = matched / ground-truth boundary pixels
   (0 when empty), F1 = 2PR / (P + R) (0 when P + R = 0);
4. a class counts in an image when it has a boundary in the ground truth OR in the prediction
   (the script's rule, ``class_rule="gt-or-pred"``); image BF = mean F1 over counted classes (0 when
   none counts); dataset BF = mean of the image BFs over every image.

Named alternatives: ``matching="distance"`` counts a boundary pixel as matched when any boundary
pixel of the other map lies within the radius (MATLAB `bfscore`'s distance-transform rule, not
one-to-one, scores higher); ``class_rule="gt"`` counts only classes with a ground-truth boundary
(the paper text's "each class present in the ground truth").
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.matching import bf_workspace, max_matching, native_bf_counts

MATCHING_RULES = {
    "one-to-one": "maximum one-to-one matching of boundary pixels within the radius (BSDS correspondPixels, "
    "as computeBFmeasure.m)",
    "distance": "a boundary pixel is matched when any boundary pixel of the other map lies within the radius "
    "(MATLAB bfscore's distance-transform rule)",
}
CLASS_RULES = {
    "gt-or-pred": "a class counts in an image when it has a boundary in the ground truth or in the prediction "
    "(computeBFmeasure.m)",
    "gt": "a class counts in an image when it has a boundary in the ground truth (the paper's text)",
}
DEFAULT_TOLERANCE = 0.0075  # fraction of the image diagonal (paper Sec. 3.2; computeBFmeasure.m maxDist)


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """BSDS `seg2bmap` for a same-size output: True where a pixel differs from its E, S or SE neighbour."""
    seg = np.asarray(seg)
    b = np.zeros(seg.shape, dtype=bool)
    b[:, :-1] |= seg[:, :-1] != seg[:, 1:]
    b[:-1, :] |= seg[:-1, :] != seg[1:, :]
    b[:-1, :-1] |= seg[:-1, :-1] != seg[1:, 1:]
    return b


def class_boundary_bits(labels: np.ndarray) -> np.ndarray:
    """For every pixel, a bit set (uint64) of the classes n for which it lies on the seg2bmap boundary of
    ``labels == n``.

    The mask ``labels == n`` differs between a pixel p and its neighbour q exactly when the labels of p
    and q differ and one of them is n, so p carries bit n for each of its label and its differing
    neighbours' labels. Labels must be in 0..63.
    """
    lab = np.asarray(labels)
    if lab.size and (lab.min() < 0 or lab.max() > 63):
        raise ValueError(f"class bit sets hold labels 0..63, found {lab.min()}..{lab.max()}")
    lab = lab.astype(np.uint64, copy=False)
    one = np.uint64(1)
    bits = np.zeros(lab.shape, dtype=np.uint64)
    for sl_p, sl_q in (
        ((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
        ((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
        ((slice(None, -1), slice(None, -1)), (slice(1, None), slice(1, None))),
    ):
        p, q = lab[sl_p], lab[sl_q]
        bits[sl_p] |= np.where(p != q, (one << p) | (one << q), np.uint64(0))
    return bits


def class_boundary_pixels(labels: np.ndarray, num_classes: int):
    """Flat indices of the seg2bmap boundary pixels of each class 0..K-1 (one pass for labels up to 63)."""
    lab = np.asarray(labels)
    if lab.size and lab.min() >= 0 and lab.max() <= 63:
        bits = class_boundary_bits(lab)
        flat = np.flatnonzero(bits)
        vals = bits.reshape(-1)[flat]
        return [flat[((vals >> np.uint64(n)) & np.uint64(1)).astype(bool)] for n in range(num_classes)]
    return [np.flatnonzero(seg2bmap(lab == n)) for n in range(num_classes)]


def disk_offsets(radius: float) -> np.ndarray:
    """Integer (dy, dx) offsets with dy^2 + dx^2 <= radius^2, nearest first."""
    r = int(np.floor(radius))
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    keep = dy**2 + dx**2 <= radius**2 + 1e-9
    off = np.stack([dy[keep], dx[keep]], axis=1)
    return off[np.argsort((off**2).sum(axis=1), kind="stable")]


@dataclass
class ImageBoundaryScore:
    """Per-class boundary counts of one image and the BF they give."""

    pred_pixels: np.ndarray  # (K,) predicted boundary pixels of each class
    gt_pixels: np.ndarray  # (K,) ground-truth boundary pixels of each class
    matched_pred: np.ndarray  # (K,) predicted boundary pixels matched
    matched_gt: np.ndarray  # (K,) ground-truth boundary pixels matched
    class_rule: str = "gt-or-pred"

    @property
    def precision(self) -> np.ndarray:
        return np.divide(self.matched_pred, self.pred_pixels, out=np.zeros(len(self.pred_pixels)), where=self.pred_pixels > 0)

    @property
    def recall(self) -> np.ndarray:
        return np.divide(self.matched_gt, self.gt_pixels, out=np.zeros(len(self.gt_pixels)), where=self.gt_pixels > 0)

    @property
    def f1(self) -> np.ndarray:
        p, r = self.precision, self.recall
        return np.divide(2 * p * r, p + r, out=np.zeros(len(p)), where=(p + r) > 0)

    @property
    def counted(self) -> np.ndarray:
        if self.class_rule == "gt-or-pred":
            return (self.gt_pixels > 0) | (self.pred_pixels > 0)
        if self.class_rule == "gt":
            return self.gt_pixels > 0
        raise ValueError(f"unknown class rule {self.class_rule!r}; choose one of {sorted(CLASS_RULES)}")

    @property
    def bf(self) -> float:
        counted = self.counted
        return float(self.f1[counted].mean()) if counted.any() else 0.0


ENGINES = {
    "auto": "the C counter (bench/_native/matching.c) where it builds, else numpy",
    "native": "the C counter: boundaries, candidate pairs and matching in one pass per image",
    "numpy": "numpy boundaries and candidate table, then bench.matching.max_matching (the reference path)",
}


class BoundaryScorer:
    """Scores images one at a time; keeps a lookup buffer per image size so repeated calls stay fast.

    ``engine`` picks how the counts are computed (`ENGINES`); every engine gives the same counts.
    """

    def __init__(self, num_classes: int = 11, tolerance: float = DEFAULT_TOLERANCE,
                 matching: str = "one-to-one", class_rule: str = "gt-or-pred", engine: str = "auto"):
        if matching not in MATCHING_RULES:
            raise ValueError(f"unknown matching rule {matching!r}; choose one of {sorted(MATCHING_RULES)}")
        if class_rule not in CLASS_RULES:
            raise ValueError(f"unknown class rule {class_rule!r}; choose one of {sorted(CLASS_RULES)}")
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; choose one of {sorted(ENGINES)}")
        self.num_classes = num_classes
        self.engine = engine
        self.seconds = None  # a float64 array of 3 to collect the C counter's phase times into (benchmark)
        self.tolerance = tolerance
        self.matching = matching
        self.class_rule = class_rule
        self._shape = None

    def _prepare(self, shape):
        if self._shape == shape:
            return
        h, w = shape
        self.radius = self.tolerance * float(np.hypot(h, w))
        self.offsets = disk_offsets(self.radius)
        self.pad = int(np.floor(self.radius))
        wp = w + 2 * self.pad
        self._wp = wp
        self._lookup = None  # lookup[class, y + pad, x + pad] = ground-truth node id, or -1 (numpy engine)
        self._work = None  # the C counter's work planes
        self._shape = shape

    def _nodes(self, labels: np.ndarray):
        """Boundary nodes of classes 0..K-1 as flat indices into the padded lookup, grouped by class."""
        plane = self._lookup.shape[1] * self._wp
        nodes, classes = [], []
        counts = np.zeros(self.num_classes, dtype=np.int64)
        for n, flat in enumerate(class_boundary_pixels(labels, self.num_classes)):
            counts[n] = len(flat)
            if counts[n]:
                ys, xs = np.divmod(flat, labels.shape[1])
                nodes.append((ys + self.pad) * self._wp + (xs + self.pad) + n * plane)
                classes.append(np.full(counts[n], n, dtype=np.int64))
        if not nodes:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), counts
        return np.concatenate(nodes), np.concatenate(classes), counts

    def score(self, pred: np.ndarray, gt: np.ndarray) -> ImageBoundaryScore:
        """Boundary counts of one predicted label map against its ground truth (same H x W)."""
        pred = np.asarray(pred)
        gt = np.asarray(gt)
        if pred.shape != gt.shape or pred.ndim != 2:
            raise ValueError(f"prediction shape {pred.shape} and ground-truth shape {gt.shape} must be equal H x W")
        self._prepare(gt.shape)
        if self.engine != "numpy":
            if self._work is None:
                self._work = bf_workspace(gt.shape, self.pad, self.num_classes)
            counts = native_bf_counts(pred, gt, self.num_classes, self.offsets, self.pad, self.matching, self._work,
                                      self.seconds)
            if counts is not None:
                return ImageBoundaryScore(*counts, class_rule=self.class_rule)
            if self.engine == "native":
                raise RuntimeError("the C boundary counter is unavailable here (no C compiler, or labels >= 64)")
        k = self.num_classes
        if self._lookup is None:
            self._lookup = np.full((k, *(n + 2 * self.pad for n in gt.shape)), -1, dtype=np.int32)
        p_nodes, p_cls, p_counts = self._nodes(pred)
        g_nodes, g_cls, g_counts = self._nodes(gt)
        matched_pred = np.zeros(k, dtype=np.int64)
        matched_gt = np.zeros(k, dtype=np.int64)
        if len(p_nodes) and len(g_nodes):
            hits = self._neighbours(p_nodes, g_nodes)
            if self.matching == "distance":
                p_ok, g_ok = self._any_within(hits, len(g_nodes))
            else:
                p_ok, g_ok = max_matching(hits, len(g_nodes))
            matched_pred = np.bincount(p_cls[p_ok], minlength=k)
            matched_gt = np.bincount(g_cls[g_ok], minlength=k)
        return ImageBoundaryScore(p_counts, g_counts, matched_pred, matched_gt, self.class_rule)

    def _neighbours(self, p_nodes, g_nodes):
        """hits[i, j] = the ground-truth node at offset j from predicted node i (same class), or -1."""
        lookup = self._lookup.reshape(-1)
        lookup[g_nodes] = np.arange(len(g_nodes), dtype=np.int32)
        try:
            steps = self.offsets[:, 0] * self._wp + self.offsets[:, 1]
            return lookup[p_nodes[:, None] + steps[None, :]]
        finally:
            lookup[g_nodes] = -1

    @staticmethod
    def _any_within(hits, n_g):
        p_ok = (hits >= 0).any(axis=1)
        g_ok = np.zeros(n_g, dtype=bool)
        g_ok[hits[hits >= 0]] = True
        return p_ok, g_ok


def boundary_f1(pred, gt, num_classes: int = 11, tolerance: float = DEFAULT_TOLERANCE,
                matching: str = "one-to-one", class_rule: str = "gt-or-pred") -> ImageBoundaryScore:
    """Boundary counts and BF of one image (see the module docstring for the conventions)."""
    return BoundaryScorer(num_classes, tolerance, matching, class_rule).score(pred, gt)


def dataset_bf(image_scores) -> float:
    """Dataset BF: the mean of the image BFs over every image (an image where no class counted gives 0)."""
    scores = list(image_scores)
    return float(np.mean([s.bf for s in scores])) if scores else 0.0


def per_class_bf(image_scores, num_classes: int = 11) -> np.ndarray:
    """Mean F1 of each class over the images where it counted (NaN where it never counted); a diagnostic."""
    total = np.zeros(num_classes)
    n = np.zeros(num_classes)
    for s in image_scores:
        c = s.counted
        total[c] += s.f1[c]
        n[c] += 1
    return np.divide(total, n, out=np.full(num_classes, np.nan), where=n > 0)
