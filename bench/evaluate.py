"""The evaluator: G, C, mIoU and BF of a set of label maps, with the conventions stated in the result.

`score_label_maps(preds, gts)` works on arrays (used by training, a notebook, the benchmark);
`evaluate_predictions(dataset, split, folder)` checks and scores a folder of 8-bit PNG label maps
named like the split's images, so any system's predictions can be scored (`bench eval`).
"""
from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

import numpy as np

from bench.boundary import (CLASS_RULES, DEFAULT_TOLERANCE, MATCHING_RULES, BoundaryScorer, dataset_bf,
                            per_class_bf)
from bench.errors import BenchError
from bench.metrics import ABSENT_CONVENTIONS, confusion_matrix, segmentation_scores

SCHEMA_VERSION = 1


def conventions(absent="zero", matching="one-to-one", class_rule="gt-or-pred", tolerance=DEFAULT_TOLERANCE,
                void_label=11) -> dict:
    """The named conventions behind a set of numbers, recorded with them."""
    return {
        "confusion_matrix": "one matrix accumulated over the whole set; void ground-truth pixels "
        f"(label {void_label}) ignored (compute_test_results.m)",
        "G": "trace / non-void ground-truth pixels (predictions outside the classes count as wrong)",
        "absent": absent,
        "absent_rule": ABSENT_CONVENTIONS[absent],
        "bf_boundary": "BSDS seg2bmap of each class mask; void not masked",
        "bf_matching": matching,
        "bf_matching_rule": MATCHING_RULES[matching],
        "bf_tolerance": f"{tolerance} x image diagonal (inclusive)",
        "bf_class_rule": class_rule,
        "bf_class_rule_text": CLASS_RULES[class_rule],
        "bf_average": "mean F1 over counted classes per image, then mean over every image (computeBFmeasure.m)",
        "units": "percent",
    }


# Work shared with forked worker processes (inherited, not pickled).
_SHARED: dict = {}


def _bf_chunk(bounds):
    lo, hi = bounds
    preds, gts, kwargs = _SHARED["preds"], _SHARED["gts"], _SHARED["kwargs"]
    scorer = BoundaryScorer(**kwargs)
    return [scorer.score(preds[i], gts[i]) for i in range(lo, hi)]


def boundary_scores(preds, gts, num_classes=11, tolerance=DEFAULT_TOLERANCE, matching="one-to-one",
                    class_rule="gt-or-pred", workers: int | None = None, progress=None):
    """Per-image boundary scores, spread over ``workers`` processes (default: all cores) where forking works."""
    n = len(gts)
    kwargs = dict(num_classes=num_classes, tolerance=tolerance, matching=matching, class_rule=class_rule)
    if workers is None:
        workers = min(os.cpu_count() or 1, 16)
    workers = max(1, min(workers, n // 8))
    if workers > 1 and "fork" in mp.get_all_start_methods():
        _SHARED.update(preds=preds, gts=gts, kwargs=kwargs)
        try:
            chunk = max(1, -(-n // (workers * 4)))
            bounds = [(i, min(n, i + chunk)) for i in range(0, n, chunk)]
            with mp.get_context("fork").Pool(workers) as pool:
                parts = pool.imap(_bf_chunk, bounds)
                if progress:
                    parts = progress(parts, total=len(bounds), desc="BF")
                return [s for part in parts for s in part]
        finally:
            _SHARED.clear()
    scorer = BoundaryScorer(**kwargs)
    it = range(n)
    if progress:
        it = progress(it, desc="BF")
    return [scorer.score(preds[i], gts[i]) for i in it]


def score_label_maps(preds, gts, class_names=None, void_label: int = 11, absent: str = "zero",
                     matching: str = "one-to-one", class_rule: str = "gt-or-pred",
                     tolerance: float = DEFAULT_TOLERANCE, with_bf: bool = True, workers: int | None = None,
                     progress=None) -> dict:
    """Scores predicted label maps against ground truth (sequences of equal-size H x W integer arrays).

    Returns G, C, mIoU and BF in percent, per-class accuracy, IoU and BF by class name, the confusion
    matrix (rows: ground truth 0..K-1; columns: prediction 0..K-1, then "outside") and the conventions.
    """
    num_classes = void_label if class_names is None else len(class_names)
    class_names = list(class_names or [str(i) for i in range(num_classes)])
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predictions for {len(gts)} ground-truth maps")
    cm = np.zeros((num_classes, num_classes + 1), dtype=np.int64)
    for i in range(0, len(gts), 64):  # stacked in chunks: one bincount per chunk
        cm += confusion_matrix(np.stack(preds[i:i + 64]), np.stack(gts[i:i + 64]), num_classes, void_label)
    s = segmentation_scores(cm, absent)
    result = {
        "schema_version": SCHEMA_VERSION,
        "num_images": len(gts),
        "G": 100 * s["G"],
        "C": 100 * s["C"],
        "mIoU": 100 * s["mIoU"],
        "BF": None,
        "per_class": {},
        "confusion_matrix": cm.tolist(),
        "confusion_matrix_axes": {"rows": "ground truth: " + ", ".join(class_names),
                                  "columns": "prediction: " + ", ".join(class_names) + ", outside the classes"},
        "conventions": conventions(absent, matching, class_rule, tolerance, void_label),
    }
    bf_class = np.full(num_classes, np.nan)
    if with_bf:
        images = boundary_scores(preds, gts, num_classes, tolerance, matching, class_rule, workers, progress)
        result["BF"] = 100 * dataset_bf(images)
        bf_class = per_class_bf(images, num_classes)
        result["per_image_BF"] = [100 * im.bf for im in images]
    else:
        result["conventions"]["BF"] = "not computed"
    for i, name in enumerate(class_names):
        result["per_class"][name] = {
            "accuracy": _pct(s["per_class_accuracy"][i]),
            "iou": _pct(s["per_class_iou"][i]),
            "bf": _pct(bf_class[i]),
            "pixels": int(cm[i].sum()),
        }
    return result


def _pct(x) -> float | None:
    return None if x is None or np.isnan(x) else float(100 * x)


def read_prediction_folder(dataset, split: str, folder) -> tuple[list, list[np.ndarray]]:
    """Checks a folder of predictions against the split; returns the samples and the label maps.

    Every problem (folder missing, a missing, extra or misnamed file, a non-PNG or truncated file, a wrong
    size, a label above the void label) raises BenchError naming the file.
    """
    from datasets.camvid import read_label_png  # the PNG checks are shared with the ground truth

    folder = Path(folder)
    samples = dataset.samples(split)
    if not folder.is_dir():
        raise BenchError(f"{folder}: predictions folder not found")
    expected = {s.name for s in samples}
    present = {p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")}
    missing = sorted(expected - present)
    extra = sorted(present - expected)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {folder / missing[0]})")
        if extra:
            parts.append(f"{len(extra)} unexpected (e.g. {folder / extra[0]})")
        raise BenchError(f"{folder}: predictions do not match the {len(samples)} images of split {split!r}: "
                         + "; ".join(parts) + ". Files must be named like the split's images.")
    preds = [read_label_png(folder / s.name, dataset.image_size, dataset.void_label, what="prediction")
             for s in samples]
    return samples, preds


def evaluate_predictions(dataset, split: str, folder, progress=None, **options) -> dict:
    """Scores a folder of 8-bit PNG label maps named like `split`'s images (see `score_label_maps`)."""
    samples, preds = read_prediction_folder(dataset, split, folder)
    gts = [dataset.read_label(s) for s in samples]
    if all((g == dataset.void_label).all() for g in gts):
        raise BenchError(f"{dataset.root}: every ground-truth pixel of split {split!r} is void; G, C, mIoU and BF "
                         "are undefined (no pixel to score), so none is reported")
    result = score_label_maps(preds, gts, class_names=dataset.class_names, void_label=dataset.void_label,
                              progress=progress, **options)
    result.update(dataset=dataset.name, split=split, predictions=str(folder))
    result["per_image_BF"] = dict(zip([s.name for s in samples], result.get("per_image_BF", [])))
    return result
