"""SUN RGB-D (Song, Lichtenberg and Xiao, CVPR 2015) for the paper's indoor benchmark (Tables 4 and 5), RGB only.

The official release is two archives from https://rgbd.cs.princeton.edu/data/:
- `SUNRGBD.zip`: 10,335 RGB-D frames, each in its own folder (`SUNRGBD/kv1/NYUdata/NYU0001/image/NYU0001.jpg`,
  depth, intrinsics, annotations);
- `SUNRGBDtoolbox.zip`: `Metadata/SUNRGBDMeta.mat` (one struct per frame; `rgbpath`, `rgbname`),
  `Metadata/SUNRGBD2Dseg.mat` (MATLAB v7.3, HDF5: `SUNRGBD2Dseg.seglabel`, the 37-class label map of each frame
  in SUNRGBDMeta's order, 0 = void, stored transposed as MATLAB does), `Metadata/seg37list.mat` (the 37 class
  names) and `traintestSUNRGBD/allsplit.mat` (`alltrain` 5,285 and `alltest` 5,050 frame folders: the paper's
  split; Table 4's caption says 5,250 training images, a typo for the text's 5,285).

`bench data download sunrgbd` fetches both archives into `<data root>/SUNRGBD-archives/` (the toolbox checked
against its published MD5; the image archive has no published checksum, so its SHA-256 is printed and recorded
by `prepare`, and every member read is checked against the zip's own CRC-32). `bench data prepare sunrgbd`
converts them once, without unpacking the image archive, into a layout like CamVid's under
`<data root>/SUNRGBD/`:
- `images/NNNNN.jpg`: the frame's RGB image, its bytes copied unchanged (NNNNN = its 1-based position in
  SUNRGBDMeta, which is also its index in SUNRGBD2Dseg);
- `labels/NNNNN.png`: 8-bit label PNG at the image's own size holding **class indices 0..36** (official label
  k = 1..37 is written k - 1) and **37 = void** (official 0), the harness's convention (void just after the
  classes, as CamVid's 11), so the loader and evaluator need nothing special;
- `train.txt`, `test.txt`: `images/NNNNN.jpg labels/NNNNN.png` lines of the official split, in allsplit's order;
- `sources.tsv`: each name's split and official frame folder; `prepared.json`: the archives (size, SHA-256),
  the counts and the conventions; `prepared.sha256`: every prepared file, checked by `bench data verify`.

Our splits: `test` is the official test list; the paper's text gives no validation set, so ours is carved from
the official train list: every 20th frame is `val` (264 frames), the other 5,021 are `train` (a choice, stated
in the suite's TOML and recorded with every run).

The class names are the toolbox's `seg37list`. We found no class colours in the toolbox: ours are the Pascal VOC
devkit's colour map of indices 1..37 (void black).

BF on this dataset: the authors' `computeBFmeasure.m` was written for SUN RGB-D's labels 1..37 with 0 void; it
loops over the 37 classes and never over void. Our indices are those labels minus one with void moved to 37, so
the evaluator's classes 0..36 are the script's 1..37 and its void is the script's 0 (tests/test_sunrgbd.py holds
the two conventions to the same scores).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from bench.errors import BenchError
from bench.datasets.common import check_manifest, median_frequency_weights, read_manifest
from bench.labelmap import read_label_png
from bench.datasets.registry import folder_not_found, register_dataset
from bench.datasets.sunrgbd_prepare import ARCHIVES, CLASS_NAMES, OFFICIAL_VOID, VAL_EVERY, VOID_LABEL, prepare_sunrgbd
from bench.datasets.voc import carve_val, voc_palette


DATA_URL = "https://rgbd.cs.princeton.edu/data/"
ARCHIVES_FOLDER = "SUNRGBD-archives"
# The toolbox's MD5 as published with mmdetection3d's SUN RGB-D instructions (data/sunrgbd/README.md); no
# checksum of SUNRGBD.zip is published.
PUBLISHED_MD5 = {"SUNRGBDtoolbox.zip": "18d22e1761d36352f37232cba102f91f"}
CLASS_WEIGHTINGS = {
    "natural": "no class balancing: every class weight 1 (Table 4's rows)",
    "authors-prototxt": "the class_weighting of the authors' SUN RGB-D train prototxt (SegNet-Tutorial "
    "Example_Models/train_segnet_sun.prototxt, as published; bench/published/sunrgbd_class_weights.csv)",
    "median-frequency": "median-frequency balancing alpha_c = median(freq) / freq(c), freq(c) = pixels of c / "
    "pixels of the training images containing c, median over the 37 classes (computed from the labels)",
}


@dataclass(frozen=True)
class Sample:
    name: str  # the label's file name, e.g. "00001.png"; predictions use the same name
    image: Path
    label: Path


def authors_class_weights() -> tuple[float, ...]:
    """The prototxt `class_weighting` of official labels 1..37 (our classes 0..36); label 0 is ignored there."""
    from bench.published import read_rows
    rows = sorted(read_rows("sunrgbd_class_weights"), key=lambda r: int(r["official_label"]))
    return tuple(float(r["prototxt_weight"]) for r in rows if int(r["official_label"]) != OFFICIAL_VOID)


@register_dataset("sunrgbd")
class SUNRGBD:
    folder = "SUNRGBD"
    splits = ("train", "val", "test")
    num_classes = len(CLASS_NAMES)
    void_label = VOID_LABEL
    class_names = CLASS_NAMES
    palette = tuple(voc_palette(len(CLASS_NAMES) + 1)[1:])
    image_size = None  # images vary in size (sensors differ)
    class_weightings = CLASS_WEIGHTINGS
    split_rule = (f"test: allsplit.mat alltest; val: every {VAL_EVERY}th frame of alltrain (in its order); train: the "
                  "rest of alltrain")

    def __init__(self, data_root: Path):
        self.data_root = Path(data_root)
        self.root = self.data_root / self.folder
        self.archives = self.data_root / ARCHIVES_FOLDER

    # -- files ------------------------------------------------------------------------------------------------
    def list_file(self, split: str) -> Path:
        if split not in self.splits:
            raise BenchError(f"unknown split {split!r} of sunrgbd; known splits: {', '.join(self.splits)}")
        if not self.root.is_dir():
            raise folder_not_found("SUN RGB-D", self.root, self.data_root,
                                   "set --data-root or BENCH_DATA_ROOT, or run `bench data download sunrgbd` then "
                                   "`bench data prepare sunrgbd`")
        path = self.root / ("test.txt" if split == "test" else "train.txt")
        if not path.is_file():
            raise BenchError(f"{path}: list file of split {split!r} is missing")
        return path

    def samples(self, split: str, check_files: bool = True) -> list[Sample]:
        """The split's (image, label) pairs in list order (see the module docstring for our three splits)."""
        path = self.list_file(split)
        rows = [(n, line.split()) for n, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]
        rows = carve_val(rows, split, VAL_EVERY)
        samples = []
        for n, fields in rows:
            if len(fields) != 2 or any(".." in PurePosixPath(f).parts or f.startswith("/") for f in fields):
                raise BenchError(f"{path}:{n}: expected 'images/NNNNN.jpg labels/NNNNN.png', found "
                                 f"{' '.join(fields)[:80]!r}")
            s = Sample(PurePosixPath(fields[1]).name, self.root / fields[0], self.root / fields[1])
            if check_files:
                for p, what in ((s.image, "image"), (s.label, "label")):
                    if not p.is_file():
                        raise BenchError(f"{path}:{n}: names {what} {fields[0 if what == 'image' else 1]} but "
                                         f"{p} is missing")
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
        """The label map as class indices 0..36, void 37 (uint8), at the image's own size."""
        return read_label_png(sample.label, None, self.void_label, what="ground-truth label map")

    def class_weights(self, weighting: str, labels=None) -> np.ndarray:
        if weighting not in self.class_weightings:
            raise BenchError(f"unknown class weighting {weighting!r} for sunrgbd; known: "
                             f"{', '.join(self.class_weightings)}")
        if weighting == "natural":
            return np.ones(self.num_classes)
        if weighting == "authors-prototxt":
            return np.array(authors_class_weights())
        if labels is None:
            labels = [self.read_label(s) for s in self.samples("train")]
        return median_frequency_weights(labels, self.num_classes, void_label=self.void_label)

    # -- verification -----------------------------------------------------------------------------------------
    def verify(self, checksums: bool = True, progress=None) -> dict:
        """Every split's files present and decoding, each label map the size of its image with indices 0..37,
        and (``checksums``) every prepared file matching `prepared.sha256`."""
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
        summary = {"root": str(self.root), "images": counts, "sha256": "not checked"}
        if checksums:
            manifest_path = self.root / "prepared.sha256"
            if not manifest_path.is_file():
                raise BenchError(f"{manifest_path}: checksum list is missing (written by `bench data prepare "
                                 "sunrgbd`; pass --no-checksums to skip the comparison)")
            needed = {p.relative_to(self.root).as_posix() for s in everything for p in (s.image, s.label)}
            summary["sha256"] = check_manifest(self.root, manifest_path, read_manifest(manifest_path), needed,
                                               progress)
        return summary

    # -- download and prepare ---------------------------------------------------------------------------------
    def download(self, progress: bool = True) -> dict:
        """The two official archives into `<data root>/SUNRGBD-archives/` (each fetched to a temporary name and
        moved into place whole; the toolbox checked against its published MD5)."""
        from bench.datasets.download import _fetch
        self.archives.mkdir(parents=True, exist_ok=True)
        fetched = []
        for name in ARCHIVES:
            dest = self.archives / name
            if not dest.is_file():
                tmp = dest.with_name(f".{name}.part-{os.getpid()}")
                try:
                    _fetch(DATA_URL + name, tmp, progress)
                    _check_published_md5(tmp, name)
                    os.replace(tmp, dest)
                finally:
                    tmp.unlink(missing_ok=True)
                fetched.append(name)
            else:
                _check_published_md5(dest, name)
        return {"root": str(self.archives), "files_verified": len(ARCHIVES), "url": DATA_URL if fetched else None,
                "already_present": not fetched, "next": "bench data prepare sunrgbd"}

    def prepare(self, archives: Path | None = None, progress=None, log=print) -> dict:
        """Converts the official archives into `<data root>/SUNRGBD/` (module docstring); built in a hidden
        folder beside it and moved into place only when complete."""
        return prepare_sunrgbd(Path(archives) if archives else self.archives, self.data_root, progress, log,
                               dataset_folder=self.folder)


def _check_published_md5(path: Path, name: str) -> None:
    want = PUBLISHED_MD5.get(name)
    if want is None:
        return
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != want:
        raise BenchError(f"{path}: MD5 {h.hexdigest()} differs from the published {want} (corrupt or truncated "
                         "download; remove it and download again)")
