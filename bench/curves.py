"""Live curves of a training run, as PyTorch's own convention has them: TensorBoard event files (only
tensorboard's writer is used, through `torch.utils.tensorboard`), under `runs/tensorboard/<suite>/<member>/<run>`
where `bench run` puts them (`--tensorboard DIR`, `--no-tensorboard`). `tensorboard --logdir runs/tensorboard`
shows, per run:

- `train/loss` (the mean of the steps' losses since the last read: every `sync_every` steps and at evaluations),
  `train/lr`, `train/images_per_second` and `train/mfu` (where the device's peak is known);
- `val/G`, `val/C`, `val/mIoU`, `val/BF` and `val_iou/<class>` at each evaluation. Where the recipe does not
  score BF on validation (no suite does: its cost would hold the GPU up), the curves' BF of the whole validation
  split is computed in a background thread while training goes on (the BF matcher's C code releases the GIL), and
  written at its evaluation's step when done; the record's validation curve is as the recipe says;
- `val_images/<name>`: three validation images, their ground truth and the prediction, at each evaluation.

A run keeps its folder across resumes (the checkpoint names it); the resumed writer purges what the interrupted
process wrote after the checkpoint (TensorBoard's ``purge_step``), so no step appears twice.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

VAL_IMAGES = 3
_ANNOUNCED: set = set()  # the folders whose `tensorboard --logdir` line this process has printed


def announce(root, log) -> None:
    """The `tensorboard --logdir` line of ``root``, once per process (a plan trains many runs; a dispatch's jobs
    write there too), after the runs' inputs were checked; relative to the working folder where under it."""
    import os
    if not root or str(root) in _ANNOUNCED:
        return
    _ANNOUNCED.add(str(root))
    shown = os.path.relpath(root) if Path(root).resolve().is_relative_to(Path.cwd()) else str(root)
    log(f"live curves: tensorboard --logdir {shown}")


def run_folder(root, suite: str, member: str, tag: str) -> Path:
    """A new run's folder under ``root``: its tag (profile, variant, seed) and the time it started."""
    return Path(root) / suite / member / f"{tag}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"


class LiveCurves:
    """The TensorBoard writer of one run (a no-op where ``folder`` is None). ``resumed_at``: the last iteration the
    resumed run's checkpoint knows was written (events an earlier process wrote past it are purged)."""

    def __init__(self, folder: Path | None, resumed_at: int = 0):
        self.folder, self.writer, self.background = folder, None, None
        self.last = None  # (iteration, train seconds, images) at the last loss read
        if folder is not None:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(folder), purge_step=resumed_at + 1 if resumed_at else None)

    def training(self, done: int, losses, lr: float, train_seconds: float, images: int, flops_per_image: float,
                 peak_flops: float | None) -> None:
        """The losses read at iteration ``done`` (those since the last read), the learning rate and the speed
        since the last read."""
        if self.writer is None or len(losses) == 0:
            return
        w = self.writer
        w.add_scalar("train/loss", float(np.mean(losses)), done)
        w.add_scalar("train/lr", lr, done)
        if self.last is not None and train_seconds > self.last[1]:
            ips = (images - self.last[2]) / (train_seconds - self.last[1])
            w.add_scalar("train/images_per_second", ips, done)
            if peak_flops:
                w.add_scalar("train/mfu", flops_per_image * ips / peak_flops, done)
        self.last = (done, train_seconds, images)

    def validation(self, it: int, point: dict, pred: np.ndarray, val, dataset) -> None:
        """An evaluation's scores, per-class IoU and the first validation images beside their prediction."""
        if self.writer is None:
            return
        import torch
        from bench.metrics import confusion_matrix, segmentation_scores
        w = self.writer
        for k in ("G", "C", "mIoU", "BF"):
            if point.get(k) is not None:
                w.add_scalar(f"val/{k}", point[k], it)
        if point.get("BF") is None:
            self.boundary_score_later(it, pred, val, dataset)
        cm = confusion_matrix(torch.from_numpy(pred).to(val.labels.device), val.labels, dataset.num_classes,
                              dataset.void_label).cpu().numpy()
        for name, iou in zip(dataset.class_names, segmentation_scores(cm)["per_class_iou"]):
            if iou is not None and np.isfinite(iou):
                w.add_scalar(f"val_iou/{name}", 100 * float(iou), it)
        palette = np.zeros((256, 3), np.uint8)
        palette[:len(dataset.palette)] = np.asarray(dataset.palette, np.uint8)
        for i in range(min(VAL_IMAGES, len(val))):
            image = val.images[i].permute(1, 2, 0).cpu().numpy()
            label = val.labels[i].cpu().numpy()
            panel = np.concatenate([image, palette[label], palette[pred[i]]], axis=1)
            w.add_image(f"val_images/{Path(val.names[i]).stem}", panel, it, dataformats="HWC")
        w.flush()

    def boundary_score_later(self, it: int, pred: np.ndarray, val, dataset) -> None:
        """val/BF at step ``it``, computed in a background thread (one at a time) from the host copies of the
        predictions and labels (at each image's own size where sizes vary)."""
        from concurrent.futures import ThreadPoolExecutor
        from bench.evaluate import score_label_maps
        maps = val.full_size(pred)
        labels = val.originals if val.frames is not None else list(val.labels.cpu().numpy())
        if self.background is None:
            self.background = ThreadPoolExecutor(1, thread_name_prefix="val-bf")

        def score():
            bf = score_label_maps(maps, labels, class_names=dataset.class_names, void_label=dataset.void_label,
                                  workers=1)["BF"]
            if bf is not None:
                self.writer.add_scalar("val/BF", bf, it)
        self.background.submit(score)

    def close(self) -> None:
        if self.background is not None:
            self.background.shutdown(wait=True, cancel_futures=True)
        if self.writer is not None:
            self.writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
