"""The data of a run, as the authors' Caffe data layer gives it: each split decoded once and held as uint8 tensors
on the training device (`SplitData`, `data_for`), normalised on the device (`Normaliser`), and the training
mini-batches (`TrainBatches`): a fresh shuffle each epoch read in order so every mini-batch is full
(`ShuffledStream`), random left-right flips (`FlipTable`) and rotate-scale (`RotateScale`), each a function of
(seed, iteration) only, so a resumed run sees the same batches.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F

from bench.config import Recipe
from bench.errors import BenchError
from bench.datasets.common import resize_image
from bench.labelmap import resize_label

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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



class TrainBatches:
    """Mini-batch ``it`` of the training split as the recipe augments it: this rank's share (rank::world) of a
    full mini-batch of the shuffled stream, flipped and rotated/scaled where the recipe says so."""

    def __init__(self, train: SplitData, recipe: Recipe, seed: int, void_label: int, device):
        self.train, self.batch_size = train, recipe.batch_size
        self.stream = ShuffledStream(seed, len(train), device)
        self.flips = FlipTable(seed, recipe.batch_size, device) if recipe.hflip else None
        warped = recipe.rotation_degrees or recipe.scale_min != 1 or recipe.scale_max != 1
        self.warp = RotateScale(seed, recipe.batch_size, recipe.rotation_degrees, recipe.scale_min, recipe.scale_max,
                                void_label) if warped else None

    def __call__(self, it: int, rank: int = 0, world: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.stream.batch(it, self.batch_size)[rank::world]  # always a full mini-batch, on the device
        x, y = self.train.images[idx], self.train.labels[idx].long()
        if self.flips is not None:
            flip = self.flips(it)[rank::world]
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            y = torch.where(flip.view(-1, 1, 1), y.flip(-1), y)
        if self.warp is not None:
            x, y = self.warp(it, x, y, rank, world)
        return x, y


def class_weight_labels(recipe: Recipe, train: SplitData):
    """The training labels a class weighting is computed from (median frequency), at each image's own size where
    the dataset's sizes vary; None for a weighting that needs none."""
    if recipe.class_weighting.startswith("median-frequency"):
        return train.originals if train.originals is not None else train.labels.cpu().numpy()
    return None
