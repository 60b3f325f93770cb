"""What the datasets share: reading and resizing RGB images, checksum lists (`sha256sum` format) and their
verification, and median-frequency class balancing."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from bench.errors import BenchError


def read_image_png(path: Path, expected_shape: tuple[int, int] | None = None) -> np.ndarray:
    """An RGB image as a uint8 H x W x 3 array; BenchError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"{path}: image file is missing")
    try:
        with Image.open(path) as im:
            arr = np.array(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BenchError(f"{path}: image cannot be decoded ({exc.__class__.__name__}: {exc})") from None
    if expected_shape is not None and arr.shape[:2] != tuple(expected_shape):
        raise BenchError(f"{path}: image is {arr.shape[0]}x{arr.shape[1]}, expected "
                         f"{expected_shape[0]}x{expected_shape[1]}")
    return arr


def resize_image(image: np.ndarray, size) -> np.ndarray:
    """An RGB image brought to ``size`` (H, W) bilinearly (PIL)."""
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    return np.array(Image.fromarray(image).resize((w, h), Image.BILINEAR))


def read_manifest(path: Path) -> dict[str, str]:
    """`sha256sum` output (`<hex>  ./rel/path`) as {relative path: hex digest}."""
    out = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(None, 1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise BenchError(f"{path}:{n}: not a sha256sum line: {line[:80]!r}")
        out[parts[1].strip().lstrip("*").removeprefix("./")] = parts[0].lower()
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_manifest(root: Path, manifest_path: Path, manifest: dict[str, str], needed: set, progress=None) -> str:
    """Every file of ``manifest`` ({path relative to root: SHA-256}) present under ``root`` and matching, and every
    ``needed`` file covered; a one-line summary, or BenchError naming the first file that fails."""
    uncovered = sorted(needed - set(manifest))
    if uncovered:
        raise BenchError(f"{manifest_path}: the checksum list does not cover {len(uncovered)} of the dataset's "
                         f"{len(needed)} files (e.g. {uncovered[0]}); a shortened list cannot verify them")
    items = list(manifest.items())
    for rel, digest in (progress(items, desc="sha256") if progress else items):
        p = Path(root) / rel
        if not p.is_file():
            raise BenchError(f"{p}: listed in {manifest_path} but missing")
        if sha256_file(p) != digest:
            raise BenchError(f"{p}: SHA-256 differs from {manifest_path} (corrupt or modified file)")
    return f"{len(items)} files match {manifest_path}"


def median_frequency_weights(labels: np.ndarray, num_classes: int = 11, include_void: bool = False,
                             void_label: int = 11) -> np.ndarray:
    """Median-frequency balancing (Eigen & Fergus; SegNet paper Sec. 3): alpha_c = median_freq / freq(c).

    freq(c) = pixels of class c / total pixels of the images in which c is present. The median is over
    the 11 classes, or over 12 labels including void (``include_void``: the caffe-segnet#37 numbers).
    ``labels`` is an N x H x W array of label maps, or a list of maps of different sizes. Returns the weights
    of classes 0..num_classes-1.
    """
    n_labels = num_classes + 1 if include_void else num_classes
    bins = max(n_labels, void_label + 1)
    per_image = np.stack([np.bincount(np.asarray(l).reshape(-1), minlength=bins)[: void_label + 1] for l in labels])
    pixels = per_image.sum(axis=0).astype(np.float64)
    present = per_image > 0
    image_pixels = np.array([np.asarray(l).size for l in labels], np.float64)  # images may differ in size
    denominator = (present * image_pixels[:, None]).sum(axis=0)
    freq = np.divide(pixels, denominator, out=np.zeros_like(pixels), where=denominator > 0)
    considered = freq[:n_labels] if include_void else freq[:num_classes]
    median = np.median(considered)
    return np.divide(median, freq[:num_classes], out=np.zeros(num_classes), where=freq[:num_classes] > 0)
