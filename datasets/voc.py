"""Pascal VOC 2012 segmentation as torchvision's `VOCSegmentation` lays it out: `<data root>/VOCdevkit/VOC2012`
with `JPEGImages/<id>.jpg`, `SegmentationClass/<id>.png` (palette PNGs: indices 0..20, 255 on object borders
and difficult regions) and the split lists `ImageSets/Segmentation/{train,val}.txt` (1,464 / 1,449 images).

Images vary in size (at most 500 x 500). Labels are read as indices, 255 mapped to void = 21 (just after the
classes, as CamVid's 11), so every map stays within the C boundary counter's 64 labels.

Our splits (the official test set has no public labels): `test` is the official val list (what the
encoder-freezing study reports), `train` the official train list but every 10th image, which forms `val`
(147 images, for model selection, so no test image selects anything). `bench data download voc2012` runs
torchvision's download (its URL and MD5 check of the 2 GB archive).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from bench.errors import BenchError
from bench.datasets.registry import folder_not_found, register_dataset

CLASS_NAMES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
VOID_IN_FILES = 255
VOID_LABEL = len(CLASS_NAMES)
VAL_EVERY = 10  # every 10th image of the official train list is our val


def voc_palette(n: int = 256) -> list[tuple[int, int, int]]:
    """The devkit's colour map (VOCcode/VOClabelcolormap.m): the bits of the index spread over R, G, B."""
    out = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out.append((r, g, b))
    return out


def carve_val(rows: list, split: str, every: int) -> list:
    """A split's rows of an official train list whose every ``every``-th row is our val: the others for
    "train", those for "val", all of them for any other split."""
    if split == "train":
        return [r for i, r in enumerate(rows) if i % every != every - 1]
    if split == "val":
        return [r for i, r in enumerate(rows) if i % every == every - 1]
    return rows


@dataclass(frozen=True)
class Sample:
    name: str  # the label's file name, e.g. "2007_000033.png"; predictions use the same name
    image: Path
    label: Path


@register_dataset("voc2012")
class VOC2012:
    folder = "VOCdevkit/VOC2012"
    splits = ("train", "val", "test")
    num_classes = len(CLASS_NAMES)
    void_label = VOID_LABEL
    class_names = CLASS_NAMES
    palette = tuple(voc_palette(len(CLASS_NAMES)))
    image_size = None  # images vary in size
    class_weightings = ("natural",)
    split_rule = (f"test: the official val list; val: every {VAL_EVERY}th image of the official train list; "
                  "train: the rest of it")

    def __init__(self, data_root: Path):
        self.data_root = Path(data_root)
        self.root = self.data_root / self.folder

    def list_file(self, split: str) -> Path:
        if split not in self.splits:
            raise BenchError(f"unknown split {split!r} of voc2012; known splits: {', '.join(self.splits)}")
        if not self.root.is_dir():
            raise folder_not_found("VOC 2012", self.root, self.data_root,
                                   "set --data-root or BENCH_DATA_ROOT, or run `bench data download voc2012`")
        path = self.root / "ImageSets" / "Segmentation" / ("val.txt" if split == "test" else "train.txt")
        if not path.is_file():
            raise BenchError(f"{path}: list file of split {split!r} is missing")
        return path

    def samples(self, split: str, check_files: bool = True) -> list[Sample]:
        """The split's (image, label) pairs in list order (see the module docstring for our three splits)."""
        path = self.list_file(split)
        rows = [(n, line.strip()) for n, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]
        rows = carve_val(rows, split, VAL_EVERY)
        samples = []
        for n, name in rows:
            if "/" in name or " " in name:
                raise BenchError(f"{path}:{n}: expected an image id, found {name[:80]!r}")
            s = Sample(f"{name}.png", self.root / "JPEGImages" / f"{name}.jpg",
                       self.root / "SegmentationClass" / f"{name}.png")
            if check_files:
                for p, what in ((s.image, "image"), (s.label, "label")):
                    if not p.is_file():
                        raise BenchError(f"{path}:{n}: names {name} but its {what} {p} is missing")
            samples.append(s)
        if not samples:
            raise BenchError(f"{path}: split {split!r} is empty")
        return samples

    def read_image(self, sample: Sample) -> np.ndarray:
        try:
            with Image.open(sample.image) as im:
                return np.array(im.convert("RGB"))
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise BenchError(f"{sample.image}: image cannot be decoded ({exc.__class__.__name__}: {exc})") from None

    def read_label(self, sample: Sample) -> np.ndarray:
        """The label map as class indices (uint8), void (255 in the file) as 21."""
        path = Path(sample.label)
        if not path.is_file():
            raise BenchError(f"{path}: ground-truth label map file is missing")
        try:
            with Image.open(path) as im:
                if im.mode not in ("P", "L"):
                    raise BenchError(f"{path}: label map must be a palette (or 8-bit) PNG of class indices, found "
                                     f"mode {im.mode}")
                arr = np.array(im)
        except BenchError:
            raise
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise BenchError(f"{path}: label map cannot be decoded ({exc.__class__.__name__}: {exc})") from None
        bad = (arr >= self.num_classes) & (arr != VOID_IN_FILES)
        if bad.any():
            raise BenchError(f"{path}: label map has index {int(arr[bad][0])} (classes 0..{self.num_classes - 1}, "
                             f"{VOID_IN_FILES} = void)")
        arr[arr == VOID_IN_FILES] = self.void_label
        return arr

    def class_weights(self, weighting: str, labels=None) -> np.ndarray:
        if weighting != "natural":
            raise BenchError(f"unknown class weighting {weighting!r} for voc2012; known: natural")
        return np.ones(self.num_classes)

    def verify(self, checksums: bool = True, progress=None) -> dict:
        """Every split's files present and decoding with valid labels; the archive's MD5 is checked by
        torchvision when it downloads (there is no per-file list to check here)."""
        counts, everything = {}, []
        for split in self.splits:
            s = self.samples(split)
            counts[split] = len(s)
            everything += s
        for s in (progress(everything, desc="decoding") if progress else everything):
            image, label = self.read_image(s), self.read_label(s)
            if image.shape[:2] != label.shape:
                raise BenchError(f"{s.label}: label map is {label.shape[0]}x{label.shape[1]} but its image "
                                 f"{s.image} is {image.shape[0]}x{image.shape[1]}")
        return {"root": str(self.root), "images": counts,
                "sha256": "not checked (torchvision checks the archive's MD5 when it downloads)"}

    def download(self, progress: bool = True) -> dict:
        """torchvision's VOCSegmentation download into the data root, then `verify`."""
        if not self.root.is_dir():
            from torchvision.datasets import VOCSegmentation
            self.data_root.mkdir(parents=True, exist_ok=True)
            try:
                VOCSegmentation(str(self.data_root), year="2012", image_set="trainval", download=True)
            except Exception as exc:  # network, disk, a bad archive: torchvision raises many kinds
                raise BenchError(f"voc2012: download failed ({exc.__class__.__name__}: {exc}); offline, point "
                                 "--data-root or BENCH_DATA_ROOT at a folder that already holds VOCdevkit/VOC2012") \
                    from None
            already = False
        else:
            already = True
        summary = self.verify()
        return {"root": str(self.root), "files_verified": 2 * sum(summary["images"].values()), "url": None,
                "already_present": already}
