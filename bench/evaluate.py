"""The evaluator: G, C, mIoU and BF of a set of label maps, with the conventions stated in the result.

`score_label_maps(preds, gts)` works on arrays (used by training, a notebook, the benchmark);
`evaluate_predictions(dataset, split, folder)` checks and scores a folder of 8-bit PNG label maps
named like the split's images, so any system's predictions can be scored (`bench eval`).
"""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
from pathlib import Path

import numpy as np

from bench.boundary import (CLASS_RULES, DEFAULT_TOLERANCE, MATCHING_RULES, BoundaryScorer, dataset_bf,
                            per_class_bf)
from bench.errors import BenchError
from bench.metrics import ABSENT_CONVENTIONS, confusion_matrix, segmentation_scores
from bench.safety import forked_pool

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


def _score_chunk(bounds):
    """Confusion matrix and boundary scores of images lo..hi-1 (`_SHARED` says how to load them)."""
    lo, hi = bounds
    load, k, void_label, bf = _SHARED["load"], _SHARED["num_classes"], _SHARED["void_label"], _SHARED["bf"]
    scorer = BoundaryScorer(**bf) if bf is not None else None
    cm = np.zeros((k, k + 1), dtype=np.int64)
    scores = []
    for i in range(lo, hi):
        pred, gt = load(i)
        cm += confusion_matrix(pred, gt, k, void_label)
        if scorer is not None:
            scores.append(scorer.score(pred, gt))
    return cm, scores


def _score_images(n: int, load, num_classes: int, void_label: int, bf: dict | None, workers: int | None,
                  progress=None):
    """Loads and scores images 0..n-1 (``load(i)`` gives the prediction and ground truth of image i) in
    ``workers`` forked processes (default: all cores, at most 16): decoding, confusion matrix and BF all
    run in the workers, so the whole evaluation spreads over the cores. Returns the summed confusion
    matrix and the per-image boundary scores, in image order."""
    if workers is None:
        workers = min(os.cpu_count() or 1, 16)
    workers = max(1, min(workers, n // 8))
    chunk = max(1, -(-n // (workers * 16)))  # small chunks: the workers finish together
    bounds = [(i, min(n, i + chunk)) for i in range(0, n, chunk)]
    parallel = workers > 1 and "fork" in mp.get_all_start_methods()
    _SHARED.update(load=load, num_classes=num_classes, void_label=void_label, bf=bf)
    try:
        with forked_pool(workers) if parallel else contextlib.nullcontext() as pool:
            parts = pool.map(_score_chunk, bounds) if parallel else map(_score_chunk, bounds)
            if progress:
                parts = progress(parts, total=len(bounds), desc="scoring")
            parts = list(parts)
    finally:
        _SHARED.clear()
    cm = np.zeros((num_classes, num_classes + 1), dtype=np.int64)
    images = []
    for part_cm, part_scores in parts:
        cm += part_cm
        images += part_scores
    return cm, images


def score_label_maps(preds, gts, class_names=None, void_label: int = 11, absent: str = "zero",
                     matching: str = "one-to-one", class_rule: str = "gt-or-pred",
                     tolerance: float = DEFAULT_TOLERANCE, with_bf: bool = True, workers: int | None = None,
                     progress=None) -> dict:
    """Scores predicted label maps against ground truth (sequences of H x W integer arrays; each prediction the
    size of its ground truth, the images' sizes free to differ).

    Returns G, C, mIoU and BF in percent, per-class accuracy, IoU and BF by class name, the confusion
    matrix (rows: ground truth 0..K-1; columns: prediction 0..K-1, then "outside") and the conventions.
    """
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predictions for {len(gts)} ground-truth maps")
    return _score(len(gts), lambda i: (preds[i], gts[i]), class_names, void_label, absent, matching, class_rule,
                  tolerance, with_bf, workers, progress)


def _score(n, load, class_names, void_label, absent, matching, class_rule, tolerance, with_bf, workers,
           progress, empty_error=None) -> dict:
    num_classes = void_label if class_names is None else len(class_names)
    class_names = list(class_names or [str(i) for i in range(num_classes)])
    bf = dict(num_classes=num_classes, tolerance=tolerance, matching=matching, class_rule=class_rule) if with_bf else None
    cm, images = _score_images(n, load, num_classes, void_label, bf, workers, progress)
    if empty_error and cm.sum() == 0:
        raise BenchError(empty_error)
    s = segmentation_scores(cm, absent)
    result = {
        "schema_version": SCHEMA_VERSION,
        "num_images": n,
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


def check_prediction_folder(dataset, split: str, folder) -> list:
    """The split's samples, once the folder holds exactly one file per image (named like the images).

    A missing folder, or missing, extra or misnamed files, raise BenchError naming the folder and a file.
    """
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
    return samples


def read_prediction(dataset, path, shape=None) -> np.ndarray:
    """One predicted label map: an 8-bit PNG of the dataset's size (or ``shape``, its ground truth's, for a
    dataset whose images vary in size) with labels up to void; BenchError naming the file otherwise (not a
    PNG, truncated, wrong size, a label above void)."""
    from bench.labelmap import read_label_png  # the PNG checks are shared with the ground truth
    return read_label_png(path, shape or dataset.image_size, dataset.void_label, what="prediction")


def _prediction_and_ground_truth(dataset, folder: Path, sample):
    gt = dataset.read_label(sample)
    return read_prediction(dataset, folder / sample.name, None if dataset.image_size else gt.shape), gt


def evaluate_predictions(dataset, split: str, folder, progress=None, absent: str = "zero",
                         matching: str = "one-to-one", class_rule: str = "gt-or-pred",
                         tolerance: float = DEFAULT_TOLERANCE, with_bf: bool = True, workers: int | None = None) -> dict:
    """Scores a folder of 8-bit PNG label maps named like `split`'s images (see `score_label_maps`).

    The files are decoded and checked in the scoring workers; a bad file raises BenchError naming it. The
    ground truth of a dataset of one image size comes as one stack (`read_label_stack`), else each map is
    read in the workers beside its prediction."""
    folder = Path(folder)
    samples = check_prediction_folder(dataset, split, folder)
    if getattr(dataset, "image_size", None) and hasattr(dataset, "read_label_stack"):
        gts = dataset.read_label_stack(samples)  # mapped from the cache: the workers read no label file
        load = lambda i: (read_prediction(dataset, folder / samples[i].name), gts[i])  # noqa: E731
    else:
        load = lambda i: _prediction_and_ground_truth(dataset, folder, samples[i])  # noqa: E731
    empty = (f"{dataset.root}: every ground-truth pixel of split {split!r} is void; G, C, mIoU and BF "
             "are undefined (no pixel to score), so none is reported")
    result = _score(len(samples), load, dataset.class_names, dataset.void_label, absent, matching, class_rule,
                    tolerance, with_bf, workers, progress, empty_error=empty)
    result.update(dataset=dataset.name, split=split, predictions=str(folder))
    result["per_image_BF"] = dict(zip([s.name for s in samples], result.get("per_image_BF", [])))
    return result
