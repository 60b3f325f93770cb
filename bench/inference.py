"""Inference and scoring of a split: BN population statistics recomputed over the training set before an
evaluation (the authors' compute_bn_statistics.py), predictions one mini-batch at a time in evaluation mode, and
their scores: G, C, mIoU for validation curves (`quick_scores`), Table 1's train columns (`train_split_scores`)
and the test scores with BF at each image's own size (`full_scores`).
"""
from __future__ import annotations

import numpy as np
import torch

from bench import safety
from bench.build import frozen_statistics
from bench.config import Recipe
from bench.data import Normaliser, SplitData
from bench.evaluate import score_label_maps
from bench.metrics import confusion_matrix, segmentation_scores
from bench.step import autocast, to_layout

@torch.no_grad()
def recompute_bn_statistics(model, data: SplitData, recipe: Recipe, device):
    """Population BN statistics over the training set (compute_bn_statistics.py): cumulative averages of the
    batch statistics, dropout off; a frozen encoder's batch norms kept as they are where the recipe says so."""
    kept = {id(m) for m in frozen_statistics(model, recipe)}
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and id(m) not in kept]
    saved = [m.momentum for m in bns]
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    autocast_ctx, _ = autocast(device, recipe)
    norm = Normaliser(recipe.input_normalisation, device)
    try:
        for i in range(0, len(data), recipe.batch_size):
            with autocast_ctx:
                model(to_layout(norm(data.images[i:i + recipe.batch_size]), recipe, device))
            safety.interruption_point("bn-recompute", i)
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom
        model.eval()


@torch.no_grad()
def split_logits(model, data: SplitData, recipe: Recipe, device):
    """The model's logits of a split, one mini-batch at a time, in evaluation mode."""
    model.eval()
    autocast_ctx, _ = autocast(device, recipe)
    norm = Normaliser(recipe.input_normalisation, device)
    for i in range(0, len(data), recipe.batch_size):
        with autocast_ctx:
            yield model(to_layout(norm(data.images[i:i + recipe.batch_size]), recipe, device))


def predict(model, data: SplitData, recipe: Recipe, device) -> np.ndarray:
    return torch.cat([lg.argmax(1).to(torch.uint8).cpu() for lg in split_logits(model, data, recipe, device)]).numpy()


def predict_probs(model, data: SplitData, recipe: Recipe, device) -> np.ndarray:
    """The softmax N x K x H x W (float16, on the host) of a split, as `predict` sees it."""
    return torch.cat([lg.float().softmax(1).to(torch.float16).cpu()
                      for lg in split_logits(model, data, recipe, device)]).numpy()


def quick_scores(pred: np.ndarray, data: SplitData, num_classes: int, void: int) -> dict:
    """G, C, mIoU in percent (no BF): for validation curves and train scores."""
    cm = confusion_matrix(torch.from_numpy(pred).to(data.labels.device), data.labels, num_classes, void)
    s = segmentation_scores(cm)
    return {k: 100 * s[k] for k in ("G", "C", "mIoU")}


def train_split_scores(pred: np.ndarray, data: SplitData, dataset) -> dict:
    """Table 1's train columns: G, C and mIoU in percent with the per-class accuracy and IoU and the confusion
    matrix, and the mIoU in the convention the paper's train column appears to use (`metrics.
    miou_false_positives_equal_false_negatives`: each class's IoU with false positives as many as its false
    negatives, acc / (2 - acc)), named as such beside the dataset-level mIoU."""
    from bench.metrics import miou_false_positives_equal_false_negatives
    cm = confusion_matrix(torch.from_numpy(pred).to(data.labels.device), data.labels, dataset.num_classes,
                          dataset.void_label).cpu().numpy()
    s = segmentation_scores(cm)
    acc = s["per_class_accuracy"]
    return {"G": 100 * s["G"], "C": 100 * s["C"], "mIoU": 100 * s["mIoU"],
            "mIoU_fp_equal_fn": 100 * miou_false_positives_equal_false_negatives(acc),
            "per_class": {name: {"accuracy": _percent(a), "iou": _percent(i)}
                          for name, a, i in zip(dataset.class_names, acc, s["per_class_iou"])},
            "confusion_matrix": cm.tolist(),
            "conventions": {"mIoU": "dataset-level confusion matrix, as compute_test_results.m",
                            "mIoU_fp_equal_fn": "mean over classes of acc / (2 - acc): each class's IoU were its false "
                                                "positives as many as its false negatives (the paper's train column "
                                                "matches this, issue 34); an absent class counts 0"}}


def _percent(v) -> float | None:
    return None if v is None or not np.isfinite(v) else 100 * float(v)


def full_scores(pred: np.ndarray, data: SplitData, dataset) -> dict:
    """G, C, mIoU and BF of a split's predictions, at each image's own size where the dataset's sizes vary."""
    labels = data.originals if data.frames is not None else list(data.labels.cpu().numpy())
    return score_label_maps(data.full_size(pred), labels, class_names=dataset.class_names,
                            void_label=dataset.void_label)


def host_images(split: SplitData, n: int) -> np.ndarray:
    """The first ``n`` images of a split as N x H x W x 3 uint8 on the host (what the CRF compares colours of)."""
    return np.ascontiguousarray(split.images[:n].permute(0, 2, 3, 1).cpu().numpy())

