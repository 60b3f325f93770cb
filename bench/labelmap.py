"""Label maps: 8-bit single-channel PNGs of class indices (ground truth and predictions alike).

`read_label_png` decodes one and checks it (shape, values); an 8-bit greyscale PNG, the usual label map, is
decoded by `imagecodecs` (libpng), about twice as fast as Pillow with the same array; everything else (palette
indices, other bit depths, damaged files) goes through Pillow, which also gives the error message.
`write_label_map` writes one, `resize_label` brings one to a size by nearest-neighbour sampling, and
`ground_truth_at` gives a split's ground truth at the size predictions were recorded at.
"""
from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from bench.errors import BenchError

try:  # the fast decoder; Pillow below decodes the same maps where it is absent (a lent GPU machine's image)
    import imagecodecs as _imagecodecs
except ImportError:
    _imagecodecs = None
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GREY = 0  # IHDR colour type of a one-sample greyscale image


def _is_8bit_grey_png(data: bytes) -> bool:
    """An 8-bit, non-interlaced greyscale PNG by its header (what imagecodecs decodes as Pillow does)."""
    if len(data) < 33 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return False
    depth, colour, _, _, interlace = struct.unpack_from(">BBBBB", data, 24)
    return depth == 8 and colour == GREY and interlace == 0


def decode_label_png(data: bytes, path: Path, what: str = "label map") -> np.ndarray:
    """The class indices of a label PNG's bytes; BenchError naming ``path`` when they are not a label map."""
    if _is_8bit_grey_png(data) and _imagecodecs is not None:
        try:
            arr = _imagecodecs.png_decode(data)
            if arr.dtype == np.uint8 and arr.ndim == 2:
                return arr
        except Exception:  # damaged: Pillow says how
            pass
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format != "PNG":
                raise BenchError(f"{path}: {what} is not a PNG file (found {im.format})")
            if im.mode not in ("L", "P"):
                raise BenchError(f"{path}: {what} must be an 8-bit single-channel PNG, found mode {im.mode}")
            return np.array(im)
    except BenchError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BenchError(f"{path}: {what} cannot be decoded ({exc.__class__.__name__}: {exc}); "
                         "not a PNG or truncated") from None


def read_label_png(path: Path, expected_shape: tuple[int, int] | None = None, max_label: int = 11,
                   what: str = "label map") -> np.ndarray:
    """An 8-bit single-channel label PNG as a uint8 array, checked (its shape where given, every value at most
    ``max_label``, the void label); BenchError naming the file otherwise."""
    return label_map_from_bytes(read_label_bytes(path, what), path, expected_shape, max_label, what)


def read_label_bytes(path: Path, what: str = "label map") -> bytes:
    """A label file's bytes; BenchError naming the file where it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"{path}: {what} file is missing")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BenchError(f"{path}: {what} cannot be read ({exc.strerror})") from None


def label_map_from_bytes(data: bytes, path: Path, expected_shape: tuple[int, int] | None = None, max_label: int = 11,
                         what: str = "label map") -> np.ndarray:
    """`read_label_png` of bytes already read from ``path``."""
    arr = decode_label_png(data, path, what)
    if expected_shape is not None and arr.shape != tuple(expected_shape):
        raise BenchError(f"{path}: {what} is {arr.shape[0]}x{arr.shape[1]}, expected "
                         f"{expected_shape[0]}x{expected_shape[1]}")
    if arr.size and int(arr.max()) > max_label:
        raise BenchError(f"{path}: {what} has label value {int(arr.max())}, above {max_label} "
                         f"(classes 0..{max_label - 1}, {max_label} = void)")
    return arr


def write_label_map(path: Path, label_map: np.ndarray) -> None:
    """A label map (H x W uint8) as an 8-bit greyscale PNG."""
    if label_map.dtype != np.uint8 or label_map.ndim != 2:
        raise ValueError(f"a label map is H x W uint8, got {label_map.dtype} {label_map.shape}")
    Image.fromarray(label_map).save(path, format="PNG")


def resize_label(label: np.ndarray, size) -> np.ndarray:
    """A label map brought to ``size`` (H, W) by nearest-neighbour sampling (PIL), as training and re-scoring do."""
    h, w = size
    if label.shape == (h, w):
        return label
    return np.array(Image.fromarray(label).resize((w, h), Image.NEAREST))


def ground_truth_at(labels: list[np.ndarray], resolution, at_original_size: bool) -> list[np.ndarray]:
    """The ground truth a record's predictions are scored against: each map as it is where the predictions were
    written at each image's own size, else brought to the recorded ``resolution`` (H, W)."""
    if at_original_size:
        return list(labels)
    return [resize_label(g, tuple(resolution)) for g in labels]
