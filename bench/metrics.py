"""G, C and mIoU exactly as the SegNet authors' `compute_test_results.m` computes them.

Source: `alexgkendall/SegNet-Tutorial` @ bb68b64e, `Scripts/compute_test_results.m`; the conventions
are spelt out in `../shared/reference/metrics.md`.

Everything is a small pure function over one dataset-level confusion matrix:

    cm = confusion_matrix(pred, target)          # one image, or a whole batch, NumPy or torch
    cm_total = cm_a + cm_b + ...                 # accumulate over the test set
    scores = segmentation_scores(cm_total)       # {"G", "C", "mIoU", "per_class_accuracy", ...}

The matrix has ``num_classes`` rows (ground truth) and ``num_classes + 1`` columns (prediction): the
last column counts non-void ground-truth pixels whose prediction lies outside ``0..num_classes-1``
(for example a prediction of "void"). The authors' script has no column for those pixels, but
counts them in the denominator of G, which this extra column reproduces exactly.
"""
from __future__ import annotations

import numpy as np

# How C and mIoU treat a class that never occurs in the ground truth of the evaluated set.
ABSENT_CONVENTIONS = {
    "zero": "class absent from the ground truth scores 0 and still counts in the mean over all classes "
    "(compute_test_results.m)",
    "skip": "class absent from the ground truth is left out of the mean (NaN-skipping mean)",
}


def confusion_matrix(pred, target, num_classes: int = 11, ignore_index: int | None = 11):
    """Confusion matrix ``cm[j, k]``: pixels with ground truth ``j`` and prediction ``k``.

    ``pred`` and ``target`` are integer arrays of the same shape (NumPy arrays or torch tensors on
    any device; a torch input gives a torch int64 result on the same device). Pixels whose target
    equals ``ignore_index`` (void) are not counted. Column ``num_classes`` counts pixels whose
    prediction is outside ``0..num_classes-1``. Target values outside ``0..num_classes-1`` other than
    ``ignore_index`` are an error.
    """
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(f"prediction shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}")
    k = num_classes
    if type(target).__module__.split(".")[0] == "torch":  # no torch import for NumPy input
        import torch
        target = target.reshape(-1).long()
        pred = torch.as_tensor(pred, device=target.device).reshape(-1).long()
        if ignore_index is not None:
            keep = target != ignore_index
            target, pred = target[keep], pred[keep]
        if target.numel() and (int(target.min()) < 0 or int(target.max()) >= k):
            raise ValueError(f"target values must be in 0..{k - 1} or {ignore_index} (void)")
        pred = torch.where((pred >= 0) & (pred < k), pred, torch.full_like(pred, k))
        counts = torch.bincount(target * (k + 1) + pred, minlength=k * (k + 1))
        return counts.reshape(k, k + 1)
    target = np.asarray(target).reshape(-1)
    pred = np.asarray(pred).reshape(-1)
    if target.size == 0:
        return np.zeros((k, k + 1), dtype=np.int64)
    if target.dtype == np.uint8 and pred.dtype == np.uint8 and k < 256 and (ignore_index is None or ignore_index >= k):
        # 8-bit label maps (every PNG): one joint histogram (in C where it is built), then fold it
        from bench.matching import native_pair_counts
        joint = native_pair_counts(target, pred)  # up to the largest target and prediction values
        if joint is None:
            joint = np.bincount((target.astype(np.uint16) << 8) | pred, minlength=1 << 16).reshape(256, 256)
        joint = np.pad(joint, ((0, max(0, k + 1 - joint.shape[0])), (0, max(0, k + 1 - joint.shape[1]))))
        beyond = joint[k:].sum(axis=1)  # pixels per target value from k on
        if ignore_index is not None and ignore_index - k < len(beyond):
            beyond[ignore_index - k] = 0
        if beyond.any():
            raise ValueError(f"target values must be in 0..{k - 1} or {ignore_index} (void)")
        cm = np.empty((k, k + 1), dtype=np.int64)
        cm[:, :k] = joint[:k, :k]
        cm[:, k] = joint[:k, k:].sum(axis=1)
        return cm
    t_min, t_max = int(target.min()), int(target.max())
    if t_min < 0 or (t_max >= k and not (t_max == ignore_index == k)):
        if ((target < 0) | ((target >= k) & (target != ignore_index))).any():
            raise ValueError(f"target values must be in 0..{k - 1} or {ignore_index} (void)")
    # one pass: rows 0..k-1 are classes, any other target row (void) is dropped afterwards;
    # predictions outside 0..k-1 land in column k
    rows = np.where((target >= 0) & (target < k), target, k).astype(np.int32)
    if pred.dtype == np.uint8 and k < 255:
        cols = np.minimum(pred, k).astype(np.int32)
    else:
        cols = np.where((pred >= 0) & (pred < k), pred, k).astype(np.int32)
    counts = np.bincount(rows * (k + 1) + cols, minlength=(k + 1) * (k + 1))
    return counts.reshape(k + 1, k + 1)[:k].astype(np.int64)


def _as_numpy(cm) -> np.ndarray:
    if hasattr(cm, "detach"):
        cm = cm.detach().cpu().numpy()
    cm = np.asarray(cm, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[1] not in (cm.shape[0], cm.shape[0] + 1):
        raise ValueError(f"confusion matrix must be K x K or K x (K+1), got shape {cm.shape}")
    return cm


def global_accuracy(cm) -> float:
    """G: correctly labelled pixels / non-void ground-truth pixels (a fraction in [0, 1])."""
    cm = _as_numpy(cm)
    total = cm.sum()
    k = cm.shape[0]
    return float(np.trace(cm[:, :k]) / total) if total > 0 else 0.0


def per_class_accuracy(cm) -> np.ndarray:
    """acc[i] = cm[i, i] / sum_k cm[i, k] over the K class columns; NaN where the class is absent."""
    cm = _as_numpy(cm)
    k = cm.shape[0]
    rows = cm[:, :k].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(rows > 0, np.diag(cm[:, :k]) / np.where(rows > 0, rows, 1), np.nan)


def per_class_iou(cm) -> np.ndarray:
    """IoU[i] = cm[i, i] / (row_i + col_i - cm[i, i]); NaN where the class is absent from the ground truth."""
    cm = _as_numpy(cm)
    k = cm.shape[0]
    sq = cm[:, :k]
    rows, cols, diag = sq.sum(axis=1), sq.sum(axis=0), np.diag(sq)
    union = rows + cols - diag
    return np.where(rows > 0, diag / np.where(union > 0, union, 1), np.nan)


def _class_mean(values: np.ndarray, absent: str) -> float:
    if absent == "zero":
        return float(np.nan_to_num(values, nan=0.0).sum() / len(values))
    if absent == "skip":
        present = values[~np.isnan(values)]
        return float(present.mean()) if present.size else 0.0
    raise ValueError(f"unknown absent-class convention {absent!r}; choose one of {sorted(ABSENT_CONVENTIONS)}")


def class_average_accuracy(cm, absent: str = "zero") -> float:
    """C: the mean of per-class accuracies (over all K classes by default, as the script does)."""
    return _class_mean(per_class_accuracy(cm), absent)


def mean_iou(cm, absent: str = "zero") -> float:
    """mIoU: the mean of per-class IoU (over all K classes by default, as the script does)."""
    return _class_mean(per_class_iou(cm), absent)


def miou_false_positives_equal_false_negatives(class_accuracy, absent: str = "zero") -> float:
    """The mean over classes of acc / (2 - acc): each class's IoU were its false positives as many as its false
    negatives (TP / (TP + 2 FN) with TP / (TP + FN) = acc). The SegNet paper's Table 1 train mIoU values all lie
    0 to 1.04 points above C / (2 - C) of its own train C, the lower bound of this mean, never below (issue 34);
    its test mIoU follows `compute_test_results.m` (`mean_iou`). A fraction; an absent class (NaN) as ``absent``."""
    acc = np.asarray(class_accuracy, dtype=np.float64)
    return _class_mean(acc / (2 - acc), absent)


def segmentation_scores(cm, absent: str = "zero") -> dict:
    """G, C, mIoU (fractions) and the per-class numbers behind them, with the convention used."""
    acc = per_class_accuracy(cm)
    iou = per_class_iou(cm)
    return {
        "G": global_accuracy(cm),
        "C": _class_mean(acc, absent),
        "mIoU": _class_mean(iou, absent),
        "per_class_accuracy": acc,
        "per_class_iou": iou,
        "absent": absent,
    }
