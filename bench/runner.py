"""`bench run`: train every member of a suite with its one recipe, evaluate, and record.

Order of a run, as in nanoGPT's train.py: config -> data -> model -> optimizer -> loop -> record.
- Data are decoded once (on all cores) and held as uint8 tensors on the training device; each epoch is a fresh
  shuffle (a generator seeded by the run seed and the epoch) read in order as Caffe's data layer does: every
  mini-batch is full, an epoch's remainder continuing into the next epoch's shuffle.
- Loss: class-weighted cross-entropy ignoring void, summed over the mini-batch's pixels and divided by
  the number of non-void pixels (caffe-segnet SoftmaxWithLoss with normalize: true).
- SGD with momentum (fused on CUDA); conv biases at `bias_lr_mult` times the learning rate without weight decay
  (the prototxts' lr_mult 2 / decay_mult 0); BN scale and shift decayed per `bn_weight_decay`
  (segnet_train.prototxt: the scale only; segnet_basic_train.prototxt: both, Caffe's default).
- DeepLab-LargeFOV: loss on its 45x60 logits against the labels where its upsampling places each cell.
- Before each evaluation, BN population statistics are recomputed over the training set (the authors'
  compute_bn_statistics.py), or the running averages are kept (`bn_statistics = "running"`).
- Validation at the recipe's cadence; selection of the best validation G (or the last point); test scores
  at fixed budgets; test predictions of the selected point saved as 8-bit PNGs beside run.json.
- No host synchronisation per step: the loss of every step is kept on the device and read (and checked
  finite) every `sync_every` steps and at evaluation points.
- Checkpoints outside results/ every `checkpoint_minutes`, on Ctrl-C / SIGTERM and at the deadline; a stop
  request never cuts a step in half, and an interrupted evaluation is redone on resume, so a resumed run ends
  with exactly the record of an uninterrupted one (`bench/safety.py`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from bench import distributed as dist_utils
from bench import stopping
from bench.config import MAX_EVALUATIONS, Recipe, Suite, load_suite, same_recipe
from bench.crf import POSTPROCESSED
from bench.errors import BenchError
from bench.evaluate import score_label_maps
from bench.metrics import confusion_matrix, segmentation_scores
from bench.records import SCHEMA_VERSION, RunFolder, RunRecord, new_run_id, now_iso, outdated_model, provenance
from bench.safety import NoSpace, RunLock, StopRequests, check_writable, save_atomic, write_error, write_text_atomic
from bench.datasets.camvid import resize_image, resize_label

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Dense peak throughput (FLOP/s) for MFU, by GPU name fragment: bf16 tensor cores, fp32 (no TF32).
PEAK_FLOPS = {"H200": {"bf16": 989e12, "fp32": 67e12}, "H100 PCIe": {"bf16": 756e12, "fp32": 51e12},
              "H100": {"bf16": 989e12, "fp32": 67e12}, "A100": {"bf16": 312e12, "fp32": 19.5e12}}
CHECKPOINT_FORMAT = 2
LOSS_CURVE_POINTS = 5000  # run.json keeps at most this many points of the loss curve; loss.npy keeps every step


@dataclass(frozen=True)
class RunOptions:
    """How a run is carried out, not what it computes: none of these changes a number of the record (a run
    recorded at the deadline says so: its stop reason is "deadline", and it never counts as converged)."""
    checkpoint_minutes: float = 10.0  # a checkpoint at least this often (and on signal and at the deadline)
    sync_every: int = 50  # steps between reads of the loss from the device (finite check, progress bar)
    record_at_deadline: bool = False  # at the deadline, also record the run as it stands (stop reason "deadline")
    stop_signals: tuple = ()  # signals besides SIGINT and SIGTERM that stop training with a checkpoint ("SIGUSR2")


def _probe(moment: str, iteration: int) -> None:
    """A named moment of a run (the tests send signals here): step, bn-recompute, validation, test-at-budget,
    commit (of an evaluation's results to the state), final-test, record, recorded."""


# -- data ----------------------------------------------------------------------------------------------------
class SplitData:
    """One split decoded once: uint8 images N x 3 x H x W and labels N x H x W on a device. For a dataset whose
    images vary in size, ``frames`` holds each image's (original H, W, letterboxed h, w) and ``originals`` its
    full-size label map, so predictions are scored and written at each image's own size (`full_size`)."""

    def __init__(self, names, images, labels, frames=None, originals=None):
        self.names, self.images, self.labels = names, images, labels
        self.frames, self.originals = frames, originals

    def __len__(self):
        return len(self.names)

    def subset(self, n: int) -> "SplitData":
        return SplitData(self.names[:n], self.images[:n], self.labels[:n], self.frames and self.frames[:n],
                         self.originals and self.originals[:n])

    def full_size(self, pred: np.ndarray) -> list[np.ndarray]:
        """Predicted maps (N x H x W at the recipe's size) at each image's own size: the letterboxed (or, stretched,
        the whole) region brought back by nearest-neighbour sampling; unchanged for a dataset of one size."""
        if self.frames is None:
            return list(pred)
        return [resize_label(np.ascontiguousarray(p[:h, :w]), (H, W)) for p, (H, W, h, w) in zip(pred, self.frames)]


def letterbox(image: np.ndarray, label: np.ndarray, size, void_label: int):
    """An image and its labels scaled to fit ``size`` (H, W) whole, aspect kept (bilinear / nearest), and padded
    at the bottom and right with black and void; also (original H, W, scaled h, w)."""
    H, W = label.shape
    scale = min(size[0] / H, size[1] / W)
    h, w = max(1, min(size[0], round(H * scale))), max(1, min(size[1], round(W * scale)))
    img = np.zeros((*size, 3), np.uint8)
    lab = np.full(size, void_label, np.uint8)
    img[:h, :w] = resize_image(image, (h, w))
    lab[:h, :w] = resize_label(label, (h, w))
    return img, lab, (H, W, h, w)


def load_split(dataset, split: str, size, subset: int | None, device, progress=None,
               fit: str = "letterbox") -> SplitData:
    """Decodes a split's images on all cores (PIL releases the GIL while decoding) and brings them to ``size``:
    resized for a dataset of one size; for one whose images vary, letterboxed (`letterbox`) or, with ``fit``
    "stretch", resized with the original size kept to bring predictions back."""
    samples = dataset.samples(split)
    if subset:
        samples = samples[:subset]
    varying = dataset.image_size is None

    def decode(s):
        image, label = dataset.read_image(s), dataset.read_label(s)
        if image.shape[:2] != label.shape:
            raise BenchError(f"{s.label}: label map is {label.shape[0]}x{label.shape[1]} but its image {s.image} is "
                             f"{image.shape[0]}x{image.shape[1]}")
        if varying and fit == "stretch":
            img, lab, frame = resize_image(image, size), resize_label(label, size), (*label.shape, *size)
        elif varying:
            img, lab, frame = letterbox(image, label, size, dataset.void_label)
        else:
            img, lab, frame = resize_image(image, size), resize_label(label, size), None
        return (torch.from_numpy(np.array(img, copy=True)).permute(2, 0, 1),
                torch.from_numpy(np.array(lab, copy=True)), frame, label if varying else None)
    with ThreadPoolExecutor(max_workers=min(32, os.cpu_count() or 1)) as pool:
        it = pool.map(decode, samples)
        if progress:
            it = progress(it, total=len(samples), desc=f"load {split}")
        parts = list(it)
    return SplitData([s.name for s in samples], torch.stack([p[0] for p in parts]).to(device),
                     torch.stack([p[1] for p in parts]).to(device), [p[2] for p in parts] if varying else None,
                     [p[3] for p in parts] if varying else None)


def data_for(recipe: Recipe, dataset, device, cache: dict, progress=None) -> dict:
    """The three splits at the recipe's size, decoded once per (dataset, size, subsets, device) and kept in
    ``cache``, so the runs of a suite or a plan share them."""
    key = (dataset.name, str(dataset.root), tuple(recipe.image_size), recipe.fit, recipe.train_subset,
           recipe.val_subset, recipe.test_subset, str(device))
    if key not in cache:
        cache[key] = {split: load_split(dataset, split, tuple(recipe.image_size), getattr(recipe, f"{split}_subset"),
                                        device, progress, recipe.fit) for split in ("train", "val", "test")}
    return cache[key]


class Normaliser:
    """uint8 images to the network's input: ImageNet mean/std (built once, on the device) or raw 0-255."""

    def __init__(self, how: str, device):
        self.how = how
        self.mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1) * 255

    def __call__(self, x_uint8: torch.Tensor) -> torch.Tensor:
        x = x_uint8.float()
        return x if self.how == "raw-0-255" else (x - self.mean) / self.std


def normalise(x_uint8: torch.Tensor, how: str) -> torch.Tensor:
    return Normaliser(how, x_uint8.device)(x_uint8)


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The shuffle of one epoch: a function of (seed, epoch) only, so a resumed run sees the same order."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


class ShuffledStream:
    """The training images as Caffe's data layer feeds them: each epoch a fresh shuffle, read in order, and a
    mini-batch that reaches the end of an epoch continues into the next epoch's shuffle, so every mini-batch is
    full (367 images at batch 5 would otherwise end each epoch with a batch of 2 at full step weight).

    Mini-batch ``it`` holds stream positions it*B ... it*B + B - 1; position p is image
    ``epoch_order(seed, p // n)[p % n]``: a function of (seed, it) only, so a resumed run sees the same batches.
    Each epoch's order is moved to ``device`` once, so taking a batch copies nothing from the host.
    """

    def __init__(self, seed: int, n: int, device="cpu"):
        self.seed, self.n, self.device, self._orders = seed, n, device, {}

    def _order(self, epoch: int) -> torch.Tensor:
        if epoch not in self._orders:
            if len(self._orders) > 2:
                self._orders.pop(min(self._orders))
            self._orders[epoch] = epoch_order(self.seed, epoch, self.n).to(self.device)
        return self._orders[epoch]

    def batch(self, it: int, batch_size: int) -> torch.Tensor:
        start = it * batch_size
        parts, p = [], start
        while p < start + batch_size:
            epoch, pos = divmod(p, self.n)
            take = min(self.n - pos, start + batch_size - p)
            parts.append(self._order(epoch)[pos:pos + take])
            p += take
        return parts[0] if len(parts) == 1 else torch.cat(parts)


class FlipTable:
    """Random left-right flips of mini-batch ``it`` (a function of (seed, it)), drawn for a block of iterations
    at a time and moved to the device once per block."""

    def __init__(self, seed: int, batch_size: int, device, block: int = 256):
        self.seed, self.batch_size, self.device, self.block = seed, batch_size, device, block
        self._start, self._table = None, None

    def __call__(self, it: int) -> torch.Tensor:
        start = it - it % self.block
        if start != self._start:
            rows = [torch.rand(self.batch_size, generator=torch.Generator().manual_seed(self.seed * 7919 + i)) < 0.5
                    for i in range(start, start + self.block)]
            self._start, self._table = start, torch.stack(rows).to(self.device)
        return self._table[it - start]


class RotateScale:
    """Random rotation and zoom of mini-batch ``it``'s images (a function of (seed, it, position in the
    mini-batch)): angles uniform in +-``degrees``, zooms uniform in [``scale_min``, ``scale_max``], about the
    image centre. Images are resampled bilinearly, labels at the nearest pixel; what comes from outside the image
    is black and void."""

    def __init__(self, seed: int, batch_size: int, degrees: float, scale_min: float, scale_max: float,
                 void_label: int):
        self.seed, self.batch_size, self.degrees = seed, batch_size, degrees
        self.scale_min, self.scale_max, self.void = scale_min, scale_max, void_label

    def params(self, it: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Angles (degrees) and zooms of the images of mini-batch ``it``."""
        g = torch.Generator().manual_seed(self.seed * 104729 + it)
        angle = (torch.rand(self.batch_size, generator=g, dtype=torch.float64) * 2 - 1) * self.degrees
        scale = self.scale_min + torch.rand(self.batch_size, generator=g, dtype=torch.float64) * (
            self.scale_max - self.scale_min)
        return angle, scale

    def __call__(self, it: int, x_uint8: torch.Tensor, y: torch.Tensor, rank: int = 0, world: int = 1):
        """This rank's share (rank::world) of mini-batch ``it``, transformed."""
        angle, scale = (v[rank::world] for v in self.params(it))
        n, _, h, w = x_uint8.shape
        rad = torch.deg2rad(angle)
        cos, sin = torch.cos(rad) / scale, torch.sin(rad) / scale
        theta = torch.zeros(n, 2, 3, dtype=torch.float64)  # output pixel -> where it is read, normalised coords
        theta[:, 0, 0], theta[:, 0, 1] = cos, -sin * h / w
        theta[:, 1, 0], theta[:, 1, 1] = sin * w / h, cos
        grid = F.affine_grid(theta.float().to(x_uint8.device), [n, 1, h, w], align_corners=False)
        image = F.grid_sample(x_uint8.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        label = F.grid_sample((y + 1).float().unsqueeze(1), grid, mode="nearest", padding_mode="zeros",
                              align_corners=False).squeeze(1).round().long()
        label = torch.where(label == 0, torch.full_like(label, self.void), label - 1)  # 0: from outside
        return image.round().clamp(0, 255).to(torch.uint8), label.to(y.dtype)


# -- pieces of the loop ----------------------------------------------------------------------------------------
def labels_for_logits(model, labels, logits):
    """The labels the loss compares with ``logits``: the labels themselves, or for a model trained on coarse
    logits (DeepLab-LargeFOV, loss at stride 8) the labels at the pixels where the model's own upsampling places
    each coarse cell (`model.coarse_labels`), so it learns each label where it later draws it."""
    if logits.shape[-2:] == labels.shape[-2:]:
        return labels
    if not hasattr(model, "coarse_labels"):
        raise BenchError(f"{type(model).__name__}: logits of size {tuple(logits.shape[-2:])} for labels of size "
                         f"{tuple(labels.shape[-2:])}, and the model defines no coarse_labels rule")
    return model.coarse_labels(labels, logits.shape[-2:])


def seg_loss_sum(logits, labels, class_weights, void_label: int):
    """Weighted cross-entropy summed over the non-void pixels, and the number of those pixels."""
    if logits.shape[-2:] != labels.shape[-2:]:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} differ in size; "
                         "take the labels through labels_for_logits first")
    valid = (labels != void_label).sum()
    loss = F.cross_entropy(logits.float(), labels, weight=class_weights, ignore_index=void_label, reduction="sum")
    return loss, valid


def seg_loss(logits, labels, class_weights, void_label: int):
    """Weighted cross-entropy over non-void pixels, summed, divided by the number of non-void pixels."""
    loss, valid = seg_loss_sum(logits, labels, class_weights, void_label)
    return loss / valid.clamp(min=1)


def param_groups(model, recipe: Recipe) -> list[dict]:
    """SGD parameter groups as the authors' prototxts: conv/deconv weights at lr with weight decay; their biases
    at `bias_lr_mult` x lr without decay (lr_mult 2, decay_mult 0); batch-norm scale and shift at lr, decayed as
    `recipe.bn_weight_decay` says ("scale": segnet_train.prototxt's decay_mult 1 / 0; "scale-and-shift": Caffe's
    default, segnet_basic_train.prototxt; "none"). Frozen parameters are left out; empty groups too."""
    decayed_bn = {"scale": ("weight",), "scale-and-shift": ("weight", "bias"), "none": ()}[recipe.bn_weight_decay]
    groups = {"weights": [], "biases": [], "bn-decayed": [], "bn-not-decayed": []}
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                groups["bn-decayed" if name in decayed_bn else "bn-not-decayed"].append(p)
            elif name == "bias":
                groups["biases"].append(p)
            else:
                groups["weights"].append(p)
    settings = {"weights": (recipe.lr, recipe.weight_decay), "biases": (recipe.lr * recipe.bias_lr_mult, 0.0),
                "bn-decayed": (recipe.lr, recipe.weight_decay), "bn-not-decayed": (recipe.lr, 0.0)}
    return [{"name": k, "params": v, "lr": settings[k][0], "weight_decay": settings[k][1]}
            for k, v in groups.items() if v]


def make_optimizer(model, recipe: Recipe, device) -> torch.optim.SGD:
    """SGD with momentum over `param_groups`; fused into one kernel where the device supports it (CUDA)."""
    fused = device.type == "cuda"
    return torch.optim.SGD(param_groups(model, recipe), lr=recipe.lr, momentum=recipe.momentum,
                           **({"fused": True} if fused else {}))


def _autocast(device, recipe: Recipe):
    use_bf16 = recipe.precision == "bf16" or (recipe.precision == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16), ("bf16" if use_bf16 else "fp32")


def _channels_last(recipe: Recipe, device) -> bool:
    return recipe.channels_last == "on" or (recipe.channels_last == "auto" and device.type == "cuda")


def _layout(x, recipe, device):
    return x.contiguous(memory_format=torch.channels_last) if _channels_last(recipe, device) else x


def make_train_step(model, train_model, optimizer, class_weights, recipe: Recipe, device, void_label: int,
                    world: int = 1):
    """The step `bench run` takes (and `bench.benchmarks.train_speed` times): uint8 batch in, the global
    mini-batch loss out as a device tensor (not read: no host synchronisation)."""
    norm = Normaliser(recipe.input_normalisation, device)
    autocast, _ = _autocast(device, recipe)

    def step(x_uint8, y, it: int = -1):
        x = _layout(norm(x_uint8), recipe, device)
        with autocast:
            logits = train_model(x)
        loss_sum, valid = seg_loss_sum(logits, labels_for_logits(model, y, logits), class_weights, void_label)
        share = loss_sum / dist_utils.all_reduce_sum(valid).clamp(min=1)  # this rank's share of the global loss
        optimizer.zero_grad(set_to_none=True)
        (share * world).backward()  # DDP averages gradients over ranks
        _probe("step", it)
        optimizer.step()
        return dist_utils.all_reduce_sum(share.detach())
    return step


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
    autocast, _ = _autocast(device, recipe)
    norm = Normaliser(recipe.input_normalisation, device)
    try:
        for i in range(0, len(data), recipe.batch_size):
            with autocast:
                model(_layout(norm(data.images[i:i + recipe.batch_size]), recipe, device))
            _probe("bn-recompute", i)
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom
        model.eval()


@torch.no_grad()
def _logits(model, data: SplitData, recipe: Recipe, device):
    """The model's logits of a split, one mini-batch at a time, in evaluation mode."""
    model.eval()
    autocast, _ = _autocast(device, recipe)
    norm = Normaliser(recipe.input_normalisation, device)
    for i in range(0, len(data), recipe.batch_size):
        with autocast:
            yield model(_layout(norm(data.images[i:i + recipe.batch_size]), recipe, device))


def predict(model, data: SplitData, recipe: Recipe, device) -> np.ndarray:
    return torch.cat([lg.argmax(1).to(torch.uint8).cpu() for lg in _logits(model, data, recipe, device)]).numpy()


def predict_probs(model, data: SplitData, recipe: Recipe, device) -> np.ndarray:
    """The softmax N x K x H x W (float16, on the host) of a split, as `predict` sees it."""
    return torch.cat([lg.float().softmax(1).to(torch.float16).cpu()
                      for lg in _logits(model, data, recipe, device)]).numpy()


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


# -- one run ---------------------------------------------------------------------------------------------------
def run_tag(profile: str, variant: str | None, seed: int) -> str:
    return "-".join([profile] + ([variant] if variant else []) + [f"seed{seed}"])


def checkpoint_path(checkpoints: Path, suite: str, member: str, profile: str, variant: str | None, seed: int) -> Path:
    return Path(checkpoints) / suite / member / f"{run_tag(profile, variant, seed)}.pt"


def selected_weights_path(checkpoints: Path, suite: str, member: str, run_id: str) -> Path:
    """Where the selected weights of a recorded run are kept for a post-processed member (bench.crf)."""
    return Path(checkpoints) / suite / member / "selected" / f"{run_id}.pt"


def resolve_encoder_weights(recipe: Recipe, override: str | None):
    """"none" -> None; "imagenet" -> a local file where given (--encoder-weights or BENCH_WEIGHTS), else the download."""
    if recipe.encoder_weights == "none":
        return None, "he-init"
    path = override or (os.environ.get("BENCH_WEIGHTS") if recipe.encoder_weights == "imagenet" else None)
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise BenchError(f"{p}: encoder weights file not found")
        return str(p), hashlib.sha256(p.read_bytes()).hexdigest()
    return recipe.encoder_weights, None


class TrainingDiverged(BenchError):
    """A run whose training loss became non-finite: nothing recorded (a plan goes on to its next run)."""


class TimeBudgetReached(BenchError):
    """Training stopped at the wall-clock budget (--max-minutes) after writing a checkpoint."""


class RunInterrupted(BenchError):
    """Training stopped by a signal (Ctrl-C, SIGTERM: a scheduler pre-empting or requeueing the job), with a
    checkpoint where one could be written; --resume continues it. ``signal``: the signal's name."""

    def __init__(self, message: str, signal: str | None = None):
        super().__init__(message)
        self.signal = signal


@dataclass
class Schedule:
    """When a run steps, evaluates and scores at its budgets, in iterations."""
    total: int
    iterations_per_epoch: int
    eval_points: list
    budgets: list

    @classmethod
    def of(cls, recipe: Recipe, n_train: int, where: str) -> "Schedule":
        total = recipe.total_iterations(n_train)
        every = recipe.eval_every(n_train)
        if total // every > MAX_EVALUATIONS:
            raise BenchError(f"{where}: {total:,} iterations with an evaluation every {every:,} make "
                             f"{total // every:,} evaluations (at most {MAX_EVALUATIONS:,}); "
                             "raise eval_every_iters or eval_every_epochs")
        return cls(total, recipe.iterations_per_epoch(n_train),
                   sorted(set(range(every, total + 1, every)) | {total}), recipe.budget_iterations(n_train))

    def evaluates_at(self, it: int) -> bool:
        return it in self._points

    def __post_init__(self):
        self._points = set(self.eval_points) | set(self.budgets)


def encoder_modules(model) -> tuple[list, list]:
    """The VGG16 encoder's 13 convs and the batch norms in their units; BenchError for a model without one."""
    if not hasattr(model, "encoder_convs"):
        raise BenchError(f"freeze_encoder: {type(model).__name__} has no VGG16 encoder of 13 convs to freeze")
    convs, _ = model.encoder_convs()
    ids = {id(c) for c in convs}
    bns = [x for m in model.modules() if isinstance(m, torch.nn.Sequential) and len(m) and id(m[0]) in ids
           for x in m if isinstance(x, torch.nn.modules.batchnorm._BatchNorm)]
    return convs, bns


def freeze_encoder_(model, recipe: Recipe) -> dict:
    """Freezes the encoder where the recipe asks (no gradient; `param_groups` leaves the parameters out, so no
    weight decay either); returns what the run record says about it."""
    if recipe.freeze_encoder:
        convs, bns = encoder_modules(model)
        for module in (*convs, *bns):
            for p in module.parameters():
                p.requires_grad_(False)
    _, names = model.encoder_convs() if recipe.freeze_encoder else ([], [])
    return {"frozen_encoder": list(names), "frozen_encoder_bn": recipe.frozen_encoder_bn if recipe.freeze_encoder
            else None, "trained_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "frozen_parameters": sum(p.numel() for p in model.parameters() if not p.requires_grad)}


def frozen_statistics(model, recipe: Recipe) -> list:
    """The batch norms whose statistics stay as they are (a frozen encoder's, with frozen_encoder_bn "frozen")."""
    if recipe.freeze_encoder and recipe.frozen_encoder_bn == "frozen":
        return encoder_modules(model)[1]
    return []


def train_mode(model, recipe: Recipe):
    """model.train(), except the batch norms whose statistics stay frozen."""
    model.train()
    for bn in frozen_statistics(model, recipe):
        bn.eval()


def build_model(member: str, recipe: Recipe, dataset, device, encoder_weights_override, log):
    """The registered model with the recipe's initialisation, on the device; warns where its fc layers were
    initialised although the online recipe would take them from ImageNet."""
    from bench import architectures
    weights, weights_sha = resolve_encoder_weights(recipe, encoder_weights_override)
    model_kwargs = {"dropout": recipe.dropout} if "dropout" in _builder_args(member) else {}
    model = architectures.create_model(member, num_classes=dataset.num_classes, encoder_weights=weights, **model_kwargs)
    missing = model.initialisation["missing_from_weights"]
    if missing:
        log(f"warning: {member}: {', '.join(missing)} not in {model.weights_source} (VGG16 conv layers only): "
            f"initialised instead ({model.initialisation['initialised'][missing[0]]}); torchvision's download "
            "would give them ImageNet weights, so this run differs from the online recipe (recorded in run.json)")
    model.to(device)
    if _channels_last(recipe, device):
        model = model.to(memory_format=torch.channels_last)
    return model, weights_sha


def _new_state(total: int, device) -> dict:
    return {"iteration": 0, "evaluated": 0, "val": [], "budgets": [], "best": None, "train_seconds": 0.0,
            "images_trained": 0, "losses": torch.full((total,), float("nan"), device=device), "log": []}


def load_checkpoint(ckpt: Path, recipe: Recipe, model, optimizer, device, total: int) -> dict:
    """The state of an interrupted run, its model and optimizer restored; one line for any unusable file."""
    try:
        saved = torch.load(ckpt, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise BenchError(f"{ckpt}: checkpoint cannot be read ({exc.__class__.__name__}; truncated or not a "
                         "checkpoint); delete it to start the run again") from None
    if not isinstance(saved, dict) or saved.get("format") != CHECKPOINT_FORMAT or "state" not in saved:
        raise BenchError(f"{ckpt}: not a checkpoint of this version of the harness; delete it to start again")
    if not same_recipe(saved["recipe"], recipe):
        raise BenchError(f"{ckpt}: checkpoint was made with a different recipe; delete it to start again")
    try:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise BenchError(f"{ckpt}: checkpoint does not fit this model ({str(exc).splitlines()[0]}); "
                         "delete it to start again") from None
    torch.set_rng_state(saved["rng_cpu"])
    if device.type == "cuda" and saved.get("rng_cuda") is not None:
        torch.cuda.set_rng_state(saved["rng_cuda"])
    state = saved["state"]
    losses = torch.full((total,), float("nan"), device=device)
    losses[:len(state["losses"])] = state["losses"].to(device)
    state["losses"] = losses
    if state["best"] is not None:
        state["best"]["model"] = {k: v.to(device) for k, v in state["best"]["model"].items()}
    return state


def train_member(suite: Suite, member: str, recipe: Recipe, **kwargs) -> Path | None:
    """Trains one member for one seed (see `_train_member`); the process-wide deterministic-algorithms setting
    the recipe asks for is put back as it was afterwards, so it never leaks into what the process does next."""
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    try:
        return _train_member(suite, member, recipe, **kwargs)
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def _train_member(suite: Suite, member: str, recipe: Recipe, *, profile: str, seed: int, variant: str | None,
                 dataset, data_cache: dict, results: Path, checkpoints: Path, resume: bool, device,
                 encoder_weights_override: str | None = None, log=print, progress=None, stop_after: int | None = None,
                 deadline: float | None = None, options: RunOptions = RunOptions(),
                 overrides: dict | None = None) -> Path | None:
    """Trains one member for one seed; returns the published record folder (None on ranks other than 0).
    ``overrides``: the command line's recipe values (--set), recorded beside the resolved recipe."""
    from bench.models import model_macs

    started = time.time()
    run_log, outer_log = [], log

    def log(message):  # every line about this run also goes into its record's log.txt
        run_log.append(f"{now_iso()} {message}")
        outer_log(message)

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if recipe.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = not recipe.deterministic
    size = tuple(recipe.image_size)
    n_train = len(dataset.samples("train")[:recipe.train_subset or None])
    sched = Schedule.of(recipe, n_train, f"{suite.path}, {member}")  # absurd schedules refused before allocating

    # data
    data = data_for(recipe, dataset, device, data_cache, progress)
    train, val, test = data["train"], data["val"], data["test"]
    # model
    model, weights_sha = build_model(member, recipe, dataset, device, encoder_weights_override, log)
    frozen = freeze_encoder_(model, recipe)  # before DDP and the optimizer see the parameters
    macs_per_image = model_macs(member, size, dataset.num_classes)
    rank, world = (dist_utils.world()[0], dist_utils.world()[1]) if dist_utils.active() else (0, 1)
    train_model = dist_utils.CoarseLogits(model) if hasattr(model, "coarse_logits") else model
    if world > 1:
        dist_utils.convert_sync_batch_norm(model)
        train_model = torch.nn.parallel.DistributedDataParallel(
            train_model, device_ids=[device.index] if device.type == "cuda" else None)
    if recipe.compile:
        train_model = torch.compile(train_model)
    # optimizer and loss
    optimizer = make_optimizer(model, recipe, device)
    class_weights = torch.tensor(dataset.class_weights(recipe.class_weighting, _train_labels(dataset, recipe, train)),
                                 dtype=torch.float32, device=device)
    step = make_train_step(model, train_model, optimizer, class_weights, recipe, device, dataset.void_label, world)
    _, precision = _autocast(device, recipe)

    ckpt = checkpoint_path(checkpoints, suite.name, member, profile, variant, seed)
    state = _new_state(sched.total, device)
    if ckpt.exists():
        if not resume:
            raise BenchError(f"{ckpt}: a checkpoint of this run exists; pass --resume to continue it "
                             "(or delete the file to start again)")
        state = load_checkpoint(ckpt, recipe, model, optimizer, device, sched.total)
        run_log[:0] = state.get("log", [])  # the lines before the interruption first
        log(f"  resumed {member} from iteration {state['iteration']} ({ckpt})")
    state["log"] = run_log

    def save_checkpoint():
        if rank != 0:
            return
        losses = state["losses"][:state["iteration"]]
        _stop_if_diverged(losses, 0, ckpt, member)  # losses a deadline or signal came before reading: never saved
        saved = {**state, "losses": losses.cpu()}
        save_atomic({"format": CHECKPOINT_FORMAT, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "state": saved, "recipe": asdict(recipe), "rng_cpu": torch.get_rng_state(),
                     "rng_cuda": torch.cuda.get_rng_state() if device.type == "cuda" else None}, ckpt)
        # a small note beside it, so a plan can tell how far the run got without loading the checkpoint
        write_text_atomic(ckpt.with_suffix(".json"), json.dumps({"iteration": state["iteration"],
                                                                 "total": sched.total}), "the checkpoint note")

    stop = StopRequests(options.stop_signals)

    def evaluate_point(it):
        """Every evaluation due at iteration ``it``, committed to the state only when all of it is done, so an
        interrupted evaluation leaves the state as before it and is redone on resume."""
        if rank != 0:  # rank 0 evaluates; the others meet it again in the next step's gradient all-reduce
            return
        if recipe.bn_statistics == "recompute":
            with dist_utils.local_batch_norm():
                recompute_bn_statistics(model, train, recipe, device)
        epoch = it / sched.iterations_per_epoch
        line, point, budget = f"  {member} it {it} ep {epoch:.1f}", None, None
        if it in sched.eval_points:
            pred = predict(model, val, recipe, device)
            _probe("validation", it)
            scores = quick_scores(pred, val, dataset.num_classes, dataset.void_label)
            if recipe.bf_on_val:
                scores["BF"] = full_scores(pred, val, dataset)["BF"]
            point = {"iteration": it, "epoch": epoch, **scores}
            line += " | val " + " ".join(f"{k} {v:.2f}" for k, v in scores.items())
        if it in sched.budgets:
            pred = predict(model, test, recipe, device)
            _probe("test-at-budget", it)
            res = full_scores(pred, test, dataset)
            budget = {"iteration": it, "epoch": epoch, **{k: res[k] for k in ("G", "C", "mIoU", "BF")}}
            line += f" | test@budget G {res['G']:.2f} mIoU {res['mIoU']:.2f} BF {res['BF']:.2f}"
        best = None
        if point is not None and (state["best"] is None or recipe.selection == "last"
                                  or point["G"] > state["best"]["G"]):
            best = {"iteration": it, "epoch": epoch, "G": point["G"],
                    "model": {k: v.detach().clone() for k, v in model.state_dict().items()}}
        with stop.deferred():  # the commit is never cut in half by a signal
            if point is not None:
                state["val"].append(point)
                _probe("commit", it)
            if best is not None:
                state["best"] = best
            if budget is not None:
                state["budgets"].append(budget)
            state["evaluated"] = it
        log(line)
        train_mode(model, recipe)

    stream = ShuffledStream(seed, len(train), device)
    flips = FlipTable(seed, recipe.batch_size, device) if recipe.hflip else None
    warp = RotateScale(seed, recipe.batch_size, recipe.rotation_degrees, recipe.scale_min, recipe.scale_max,
                       dataset.void_label) if recipe.rotation_degrees or recipe.scale_min != 1 or recipe.scale_max != 1 \
        else None
    bar = progress(total=sched.total, initial=state["iteration"], desc=member) if progress else None
    lock = RunLock(Path(results) / suite.name / member, run_tag(profile, variant, seed)) if rank == 0 \
        else contextlib.nullcontext()  # rank 0 records: it holds the run's lock
    with lock, stop:
        try:
            if sched.evaluates_at(state["iteration"]) and state["evaluated"] < state["iteration"]:
                evaluate_point(state["iteration"])  # interrupted last time: redone before training on
            train_mode(model, recipe)
            last_sync = state["iteration"]
            t_segment = time.perf_counter()
            last_checkpoint = time.time()
            while (reason := due_stop(recipe, sched, state, rank, device)) is None:
                it = state["iteration"]
                with stop.step():  # a stop request waits for the step to complete
                    batch_idx = stream.batch(it, recipe.batch_size)  # always a full mini-batch, on the device
                    idx = batch_idx[rank::world]  # this rank's share of the global mini-batch
                    x, y = train.images[idx], train.labels[idx].long()
                    if flips is not None:
                        flip = flips(it)[rank::world]
                        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
                        y = torch.where(flip.view(-1, 1, 1), y.flip(-1), y)
                    if warp is not None:
                        x, y = warp(it, x, y, rank, world)
                    state["losses"][it] = step(x, y, it)
                    state["images_trained"] += recipe.batch_size
                    state["iteration"] = it + 1
                    if stop_after is not None and it + 1 >= stop_after and it + 1 < sched.total:
                        stop.request("stop_after")  # the tests' interruption
                done = state["iteration"]
                evaluating = sched.evaluates_at(done)
                if evaluating or done - last_sync >= options.sync_every or done == sched.total:
                    # read the losses since the last read: the one host synchronisation of these steps
                    seg = state["losses"][last_sync:done]
                    _stop_if_diverged(seg, last_sync, ckpt, member)
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    state["train_seconds"] += time.perf_counter() - t_segment
                    if bar:
                        bar.update(done - last_sync)
                        bar.set_postfix(loss=f"{float(seg[-1]):.3f}", ep=done // sched.iterations_per_epoch)
                    last_sync = done
                    if evaluating:
                        evaluate_point(done)
                    if time.time() - last_checkpoint >= 60 * options.checkpoint_minutes and done < sched.total:
                        save_checkpoint()
                        last_checkpoint = time.time()
                    t_segment = time.perf_counter()
                if deadline is not None and time.time() > deadline and done < sched.total:
                    state["train_seconds"] += time.perf_counter() - t_segment
                    t_segment = time.perf_counter()
                    save_checkpoint()
                    if options.record_at_deadline and state["best"] is not None:
                        log(f"  {member}: deadline at iteration {done}; recording the run as it stands (stop reason "
                            f"\"deadline\"; checkpoint kept in {ckpt})")
                        reason = "deadline"
                        break
                    raise TimeBudgetReached(f"time budget reached at iteration {done} of {sched.total} of {member}; "
                                            f"checkpoint saved to {ckpt}; run the same command (with --resume for "
                                            "a suite) to continue")
            if reason != "deadline":
                log(f"  {member}: stopped at iteration {state['iteration']:,}: {reason} "
                    f"({stopping.describe_rule(recipe, sched.total)})")
            if rank != 0:
                dist_utils.barrier()
                return None
            out = _select_score_and_record(suite, member, recipe, profile=profile, seed=seed, variant=variant,
                                           dataset=dataset, data=data, model=model, optimizer=optimizer, state=state,
                                           sched=sched, results=results, class_weights=class_weights,
                                           weights_sha=weights_sha, macs_per_image=macs_per_image,
                                           precision=precision, device=device, world=world, started=started,
                                           frozen=frozen, reason=reason, overrides=overrides)
            _probe("recorded", state["iteration"])
            if any(POSTPROCESSED[m]["of"] == member for m in suite.members if m in POSTPROCESSED):
                # a post-processed member of this suite starts from these weights (bench.crf)
                save_atomic({k: v.cpu() for k, v in state["best"]["model"].items()},
                            selected_weights_path(checkpoints, suite.name, member, out.name))
            if reason != "deadline":  # a run recorded at the deadline keeps its checkpoint: --resume continues it
                remove_checkpoint(ckpt)
        except KeyboardInterrupt:
            if stop.abandoned:
                raise RunInterrupted(f"stopped at once by a second signal during a step of {member}; no checkpoint "
                                     f"was written for this moment (the last one, if any, is {ckpt}; --resume "
                                     "continues from it)", stop.requested) from None
            save_checkpoint()
            raise RunInterrupted(f"interrupted at iteration {state['iteration']} of {member}; checkpoint saved to "
                                 f"{ckpt}; run the same command with --resume to continue", stop.requested) from None
        except NoSpace as exc:
            if exc.what == "the checkpoint":
                raise
            try:  # the record could not be written: keep the training
                save_checkpoint()
            except BenchError as again:
                raise BenchError(f"{exc}; nothing was recorded, and the checkpoint could not be written either "
                                 f"({again})") from None
            raise BenchError(f"{exc}; nothing was recorded; the training is kept in {ckpt} (free some space and "
                             "run the same command with --resume)") from None
        finally:
            if bar:
                bar.close()
    dist_utils.barrier()
    return out


def due_stop(recipe: Recipe, sched: Schedule, state: dict, rank: int, device) -> str | None:
    """Why the run stops now, or None: its length reached (the cap), or its stopping rule met at an evaluation
    point once that evaluation is committed (rank 0 decides; `bench.stopping`). A function of the state only, so
    a run resumed after the evaluation stops where the uninterrupted one did."""
    it = state["iteration"]
    if it >= sched.total:
        return stopping.end_reason(recipe)
    if recipe.stopping == "schedule" or it not in sched.eval_points:  # the same on every rank
        return None
    reason = None
    if rank == 0 and state["evaluated"] >= it:  # the loop evaluates an evaluation point before it asks
        reason = stopping.stop_reason(recipe, state["val"], state["losses"][:it].cpu().numpy(), it)
    code = dist_utils.from_rank0(stopping.REASONS.index(reason) if reason else -1, device)
    return stopping.REASONS[code] if code >= 0 else None


def _stop_if_diverged(losses: torch.Tensor, first_iteration: int, ckpt: Path, member: str) -> None:
    """Raises TrainingDiverged (via _diverged) at the first non-finite loss of ``losses``, which start at
    ``first_iteration`` (0-based); one host read."""
    bad = (~torch.isfinite(losses)).nonzero()
    if len(bad):
        i = int(bad[0])
        _diverged(ckpt, member, first_iteration + i + 1, float(losses[i]))


def _diverged(ckpt: Path, member: str, iteration: int, value: float):
    """A non-finite loss: the run is not recorded, and its checkpoint is moved aside so the next run starts
    afresh instead of resuming into the same divergence (said in the message)."""
    msg = f"{member}: training loss became {value} at iteration {iteration}; not recorded"
    if ckpt.exists():
        aside = ckpt.with_name(f"{ckpt.stem}.diverged-it{iteration}.pt")
        os.replace(ckpt, aside)
        remove_checkpoint(ckpt)
        msg += f"; its checkpoint was moved to {aside} so the next run starts afresh"
    raise TrainingDiverged(msg)


def remove_checkpoint(ckpt: Path) -> None:
    """A run's checkpoint and its note, where they exist."""
    for p in (ckpt, ckpt.with_suffix(".json")):
        if p.exists():
            p.unlink()


def _select_score_and_record(suite, member, recipe, *, profile, seed, variant, dataset, data, model, optimizer,
                             state, sched, results, class_weights, weights_sha, macs_per_image, precision, device,
                             world, started, frozen: dict | None = None, reason: str = "schedule",
                             overrides: dict | None = None) -> Path:
    """The selected point's test predictions and scores, written as one record folder (renamed into place)."""
    from bench import architectures
    train, test = data["train"], data["test"]
    best = state["best"]
    model.load_state_dict(best["model"])
    test_pred = predict(model, test, recipe, device)
    _probe("final-test", state["iteration"])
    test_scores = full_scores(test_pred, test, dataset)
    train_scores = train_split_scores(predict(model, train, recipe, device), train, dataset) \
        if recipe.evaluate_train else None
    losses = state["losses"][:state["iteration"]].cpu().numpy().astype(np.float32)
    run_id = new_run_id(profile, seed, variant)
    folder = RunFolder(Path(results) / suite.name / member, run_id)
    try:
        for name, p in zip(test.names, test.full_size(test_pred)):
            Image.fromarray(p).save(folder.predictions / name)
        np.save(folder.tmp / "loss.npy", losses)
        (folder.tmp / "log.txt").write_text("".join(line + "\n" for line in state["log"]))
        _probe("record", state["iteration"])
        tps = state["images_trained"] / state["train_seconds"] if state["train_seconds"] else None
        peak = _peak_flops(device, precision)
        window = max(1, math.ceil(len(losses) / LOSS_CURVE_POINTS))
        record = {
            "schema_version": SCHEMA_VERSION,
            "kind": "training-run",
            "suite": suite.name, "member": member, "variant": variant, "run_id": run_id, "profile": profile,
            "seed": seed, "dataset": dataset.name, "splits": getattr(dataset, "split_rule", None),
            "suite_file": suite.path, "config": asdict(recipe), "overrides": dict(overrides or {}),
            "model": {"name": member, "revision": architectures.model_revision(member),
                      "params": sum(p.numel() for p in model.parameters()),
                      "gmacs_per_image": macs_per_image / 1e9, "pretrained_layers": model.pretrained_layers,
                      "weights_source": model.weights_source, "weights_sha256": weights_sha,
                      "initialisation": model.initialisation, "class_weights": class_weights.tolist(),
                      **(frozen or {})},
            "optimiser": {"type": "SGD", "momentum": recipe.momentum,
                          "fused": bool(optimizer.defaults.get("fused")),
                          "param_groups": [{"name": g["name"], "lr": g["lr"], "weight_decay": g["weight_decay"],
                                            "tensors": len(g["params"]),
                                            "parameters": sum(p.numel() for p in g["params"])}
                                           for g in optimizer.param_groups]},
            "provenance": provenance(),
            "device": str(device), "precision": precision, "world_size": world,
            "iterations": state["iteration"], "iterations_per_epoch": sched.iterations_per_epoch,
            "train_images": len(train),
            "curves": {"loss": [[min(i + window, len(losses)), float(losses[i:i + window].mean())]
                                for i in range(0, len(losses), window)],
                       "loss_window": window, "loss_per_step": "loss.npy", "val": state["val"]},
            "selected": {"iteration": best["iteration"], "epoch": best["epoch"], "rule": recipe.selection},
            "stop": stopping.stop_record(recipe, reason, state["iteration"], sched.total, state["val"],
                                         best["iteration"]),
            "budgets": state["budgets"],
            "test": test_scores,
            "train": train_scores,
            "predictions": {"folder": "predictions", "split": "test", "count": len(test.names),
                            "resolution": list(recipe.image_size), "at_original_size": test.frames is not None},
            "log": "log.txt",
            "timing": {"wall_seconds": time.time() - started, "train_seconds": state["train_seconds"],
                       "images_trained": state["images_trained"],
                       "train_images_per_second": tps,
                       "model_flops_per_train_image": 6 * macs_per_image,
                       "mfu": (6 * macs_per_image * tps / peak) if (tps and peak) else None,
                       "peak_flops": peak},
            "finished_at": now_iso(),
        }
        return folder.publish(record)
    except OSError as exc:
        folder.discard()
        raise write_error(folder.tmp, exc, f"the record of {member}") from None
    except BaseException:
        folder.discard()
        raise


def _recorded(results: Path, suite: str, member: str, profile: str, seed: int, variant, recipe: Recipe):
    """The latest finished record folder of this exact run (same profile, seed, variant and recipe), if any."""
    folder = results / suite / member
    if not folder.is_dir():
        return None
    for run in sorted(folder.iterdir(), reverse=True):  # run ids end in their time: the latest first
        path = run / "run.json"
        if run.name.startswith(".tmp-") or not path.is_file():
            continue
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if (rec.get("profile"), rec.get("seed"), rec.get("variant")) == (profile, seed, variant) and \
                same_recipe(rec.get("config"), recipe) and stopping.stop_of(rec)["reason"] != "deadline" \
                and outdated_model(rec) is None:
            return run  # a run recorded at a deadline is not finished: --resume continues it
    return None


def _train_labels(dataset, recipe, train: SplitData):
    if recipe.class_weighting.startswith("median-frequency"):  # at each image's own size where sizes vary
        return train.originals if train.originals is not None else train.labels.cpu().numpy()
    return None


def _builder_args(member: str):
    import inspect
    import bench.architectures.registry as reg
    return inspect.signature(reg._MODELS[member]).parameters


def _peak_flops(device, precision):
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for frag, peaks in PEAK_FLOPS.items():
        if frag in name:
            return peaks[precision]
    return None


def resolve_device(device: str | None) -> torch.device:
    """--device as a torch device; one line for an unknown or absent one."""
    try:
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except (RuntimeError, TypeError):
        raise BenchError(f"--device {device!r}: not a device (use cpu, cuda or cuda:N)") from None
    if dev.type not in ("cpu", "cuda"):
        raise BenchError(f"--device {device!r}: only cpu and cuda are supported")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BenchError(f"--device {device!r}: CUDA is not available on this machine")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise BenchError(f"--device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev


def postprocess_member(suite: Suite, member: str, recipe: Recipe, base_recipe: Recipe, *, profile: str, seed: int,
                       variant: str | None, dataset, data_cache: dict, results: Path, checkpoints: Path, device,
                       log=print, progress=None, overrides: dict | None = None) -> Path:
    """A member that post-processes the recorded run of another (bench.crf.POSTPROCESSED): the dense CRF over
    the selected weights' softmax, its parameters chosen on validation images; written as a normal record."""
    from bench import crf
    started = time.time()
    run_log = []

    def note(message):
        run_log.append(f"{now_iso()} {message}")
        log(message)
    base = POSTPROCESSED[member]["of"]
    base_folder, base_record, model = _selected_model_of(suite, member, base, base_recipe, profile=profile,
                                                         seed=seed, variant=variant, dataset=dataset,
                                                         results=results, checkpoints=checkpoints, device=device)
    data = data_for(base_recipe, dataset, device, data_cache, progress)
    val, test = data["val"], data["test"]
    # the CRF's parameters, chosen on the first validation images
    n_val = min(len(val), crf.VAL_IMAGES)
    note(f"  {member}: dense CRF over {base_folder.name}; grid of {len(crf.grid())} settings on {n_val} val images")
    val_probs = predict_probs(model, val.subset(n_val), base_recipe, device)

    def val_miou(maps, labels):
        cm = confusion_matrix(maps, labels, dataset.num_classes, dataset.void_label)
        return 100 * segmentation_scores(cm)["mIoU"]
    best, table = crf.choose_params(_host_images(val, n_val), val_probs, val.labels[:n_val].cpu().numpy(), val_miou)
    note(f"  {member}: chosen {asdict(best)} (val mIoU {max(t['score'] for t in table):.2f})")
    # the test predictions
    test_probs = predict_probs(model, test, base_recipe, device)
    workers = os.cpu_count() or 1
    t0 = time.perf_counter()
    test_pred = crf.crf_label_maps(_host_images(test, len(test)), test_probs, best, workers)
    crf_seconds = time.perf_counter() - t0
    test_scores = full_scores(test_pred, test, dataset)
    note(f"  {member} test G {test_scores['G']:.2f} mIoU {test_scores['mIoU']:.2f} BF {test_scores['BF']:.2f}")
    postprocess = {"stage": POSTPROCESSED[member]["stage"], "of": base, "record": base_record["run_id"],
                   "record_commit": base_record["provenance"]["git"]["commit"], "params": asdict(best),
                   "grid": table, "chosen_by": f"mIoU of the first {n_val} val images",
                   "core_seconds_per_test_image": crf_seconds / max(1, len(test)) * workers, "workers": workers,
                   "implementation": "pydensecrf2 (Krähenbühl and Koltun's C++ code)"}
    return _record_postprocessed(suite, member, recipe, base_recipe, base_record, postprocess, profile=profile,
                                 seed=seed, variant=variant, dataset=dataset, test=test, test_pred=test_pred,
                                 test_scores=test_scores, results=results, device=device, run_log=run_log,
                                 timing={"wall_seconds": time.time() - started, "crf_test_seconds": crf_seconds},
                                 overrides=overrides)


def _selected_model_of(suite: Suite, member: str, base: str, base_recipe: Recipe, *, profile, seed, variant,
                       dataset, results, checkpoints, device):
    """The latest record of ``base`` for this profile, seed and variant, and its model with the selected weights
    kept for post-processing; one line naming the `bench run` to do first where either is missing."""
    from bench import architectures
    tag = f"profile {profile}, seed {seed}" + (f", variant {variant}" if variant else "")
    command = (f"bench run --suite {suite.name} --members {base} --profile {profile} --seeds {seed}"
               + (f" --variants {variant}" if variant else ""))
    base_folder = _recorded(results, suite.name, base, profile, seed, variant, base_recipe)
    if base_folder is None:
        raise BenchError(f"{member}: no recorded {base} run ({tag}) under {results / suite.name / base}; run "
                         f"`{command}` first")
    weights = selected_weights_path(checkpoints, suite.name, base, base_folder.name)
    if not weights.is_file():
        raise BenchError(f"{weights}: the selected weights of {base_folder} were not kept (recorded elsewhere or "
                         f"before they were); record {base} again: `{command}` (without --resume)")
    kwargs = {"dropout": base_recipe.dropout} if "dropout" in _builder_args(base) else {}
    model = architectures.create_model(base, num_classes=dataset.num_classes, encoder_weights=None, **kwargs)
    try:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except Exception as exc:
        raise BenchError(f"{weights}: not the selected weights of {base} ({exc.__class__.__name__}); delete it and "
                         f"record {base} again") from None
    return base_folder, json.loads((base_folder / "run.json").read_text()), model.to(device)


def _host_images(split: SplitData, n: int) -> np.ndarray:
    """The first ``n`` images of a split as N x H x W x 3 uint8 on the host (what the CRF compares colours of)."""
    return np.ascontiguousarray(split.images[:n].permute(0, 2, 3, 1).cpu().numpy())


def _record_postprocessed(suite, member, recipe, base_recipe, base_record, postprocess, *, profile, seed, variant,
                          dataset, test, test_pred, test_scores, results, device, run_log, timing,
                          overrides=None) -> Path:
    """A post-processed member's record folder, as a training run's (predictions, log.txt, run.json), the
    post-processing described under "postprocess" and the rest taken from the run it post-processed."""
    run_id = new_run_id(profile, seed, variant)
    folder = RunFolder(results / suite.name / member, run_id)
    try:
        for name, p in zip(test.names, test.full_size(test_pred)):
            Image.fromarray(p).save(folder.predictions / name)
        (folder.tmp / "log.txt").write_text("".join(line + "\n" for line in run_log))
        record = {
            "schema_version": SCHEMA_VERSION, "kind": "training-run",
            "suite": suite.name, "member": member, "variant": variant, "run_id": run_id, "profile": profile,
            "seed": seed, "dataset": dataset.name, "splits": getattr(dataset, "split_rule", None),
            "suite_file": suite.path, "config": asdict(recipe), "overrides": dict(overrides or {}),
            "model": base_record["model"],
            "postprocess": postprocess, "provenance": provenance(),
            "device": str(device), "precision": base_record.get("precision"), "world_size": 1,
            "iterations": base_record["iterations"], "iterations_per_epoch": base_record["iterations_per_epoch"],
            "train_images": base_record["train_images"],
            "curves": {"loss": [], "val": []},
            "selected": base_record["selected"], "stop": stopping.stop_of(base_record),  # how the base run ended
            "budgets": [],
            "test": test_scores, "train": None,
            "predictions": {"folder": "predictions", "split": "test", "count": len(test.names),
                            "resolution": list(base_recipe.image_size), "at_original_size": test.frames is not None},
            "log": "log.txt",
            "timing": timing,
            "finished_at": now_iso(),
        }
        return folder.publish(record)
    except OSError as exc:
        folder.discard()
        raise write_error(folder.tmp, exc, f"the record of {member}") from None
    except BaseException:
        folder.discard()
        raise


def run_suite(suite_name: str, **kw) -> list[RunRecord]:
    """Trains every (member, variant, seed) of a suite and returns their records (``record.folder`` is where
    each lies, beside its predictions). The keywords are `train_suite`'s; the log and progress default to
    lines that keep a live bar intact and a bar that works on a terminal, in a notebook and in a batch log."""
    from bench.progress import log_line, progress_bar
    kw.setdefault("log", log_line)
    kw.setdefault("progress", progress_bar)
    return [RunRecord.load(folder) for folder in train_suite(suite_name, **kw)]


def train_suite(suite_name: str, *, profile: str | None = None, seeds=(0,), members=None, variants=None,
                data_root=None, results="results", checkpoints="checkpoints", resume=False, encoder_weights=None,
                overrides: dict | None = None, device: str | None = None, log=print, progress=None,
                stop_after: int | None = None, max_minutes: float | None = None, deadline: float | None = None,
                options: RunOptions = RunOptions(), data_cache: dict | None = None) -> list[Path]:
    """Trains every (member, variant, seed) of a suite; returns the record folders. Everything is checked first.

    max_minutes (or an absolute ``deadline``, time.time() seconds): stop after this much wall-clock time,
    writing a checkpoint (TimeBudgetReached); with resume=True the same call continues, and members already
    recorded are skipped.
    """
    from bench import datasets
    if max_minutes is not None and not (math.isfinite(max_minutes) and max_minutes > 0):
        raise BenchError(f"--max-minutes {max_minutes}: must be a positive number")
    if max_minutes:
        deadline = time.time() + 60 * max_minutes
    suite = load_suite(suite_name)
    dev = resolve_device(device)
    rank, world = dist_utils.init(dev.type)
    if world > 1 and dev.type == "cuda":
        dev = torch.device("cuda", dist_utils.world()[2])
        torch.cuda.set_device(dev)
    if rank != 0:
        log, progress = (lambda m: None), None
    if profile is None:
        profile = "full" if dev.type == "cuda" else "smoke"
        log(f"profile: {profile} (CUDA {'present' if dev.type == 'cuda' else 'absent'}; pass --profile to choose)")
    members = list(members or suite.members)
    for m in members:
        if m not in suite.members:
            raise BenchError(f"unknown member {m!r} of suite {suite.name}; its members: {', '.join(suite.members)}")
    variants = list(variants or suite.variants or [None])
    for v in variants:
        if v is not None and v not in suite.variants:
            raise BenchError(f"unknown variant {v!r} of suite {suite.name}; its variants: {', '.join(suite.variants)}")
    recipes = {(v, m): suite.resolve(profile, v, overrides, member=m) for v, m in suite.runs(members, variants)}
    if not recipes:
        raise BenchError(f"no run of suite {suite.name} matches: variant(s) {', '.join(map(str, variants))} are for "
                         + "; ".join(f"{v}: {', '.join(suite.variant_members[v])}" for v in variants
                                     if v in suite.variant_members))
    dataset = datasets.get_dataset(suite.dataset, data_root)
    for split in ("train", "val", "test"):
        dataset.samples(split)  # a data root without the dataset fails here, before any training
    for v, r in recipes.items():
        if r.encoder_weights not in ("imagenet", "none") and not Path(r.encoder_weights).is_file():
            raise BenchError(f"{r.encoder_weights}: encoder weights file not found")
        if r.class_weighting not in dataset.class_weightings:
            raise BenchError(f"{suite.path}: unknown class_weighting {r.class_weighting!r}; "
                             f"known: {', '.join(dataset.class_weightings)}")
    if encoder_weights is not None and not Path(encoder_weights).expanduser().is_file():
        raise BenchError(f"{encoder_weights}: encoder weights file not found")
    if rank == 0:  # unwritable output folders are found now, not after hours of training
        check_writable(Path(results), "results")
        check_writable(Path(checkpoints), "checkpoints")
    out = []
    cache: dict = {} if data_cache is None else data_cache
    for seed in seeds:
        for v, m in recipes:
            done = _recorded(Path(results), suite.name, m, profile, seed, v, recipes[v, m])
            if resume and done is not None:
                log(f"{suite.name} / {m}{' / ' + v if v else ''} / seed {seed}: already recorded in {done}; skipped")
                # a checkpoint left by an interruption after the record was written
                remove_checkpoint(checkpoint_path(Path(checkpoints), suite.name, m, profile, v, seed))
                out.append(done)
                continue
            log(f"{suite.name} / {m}{' / ' + v if v else ''} / seed {seed} / {profile}")
            if m in POSTPROCESSED:
                folder = postprocess_member(suite, m, recipes[v, m], suite.resolve(
                    profile, v, overrides, member=POSTPROCESSED[m]["of"]), profile=profile, seed=seed, variant=v,
                    dataset=dataset, data_cache=cache, results=Path(results), checkpoints=Path(checkpoints),
                    device=dev, log=log, progress=progress, overrides=overrides) if rank == 0 else None
                if folder is not None:
                    out.append(folder)
                    log(f"  recorded {folder}")
                continue
            folder = train_member(suite, m, recipes[v, m], profile=profile, seed=seed, variant=v, dataset=dataset,
                                  data_cache=cache, results=Path(results), checkpoints=Path(checkpoints),
                                  resume=resume, device=dev, encoder_weights_override=encoder_weights, log=log,
                                  progress=progress, stop_after=stop_after, deadline=deadline, options=options,
                                  overrides=overrides)
            if folder is not None:  # rank 0 writes the records
                out.append(folder)
                log(f"  recorded {folder}")
    return out
