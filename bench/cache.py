"""Where the harness keeps what it can rebuild: the compiled C code (`native/`) and decoded ground-truth
label maps (`labels/`: one file per map, and one per split's stack of maps). `$BENCH_CACHE_DIR`, else
`~/.cache/segnet-bench`; anything in it may be deleted at any time. Writes are atomic (a reader never sees
half a file) and a cache that cannot be written (read-only home, full disk) only costs speed.
`BENCH_NO_LABEL_CACHE=1` turns the label cache off.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np


def cache_dir(*parts: str) -> Path:
    base = os.environ.get("BENCH_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "segnet-bench")
    return Path(base, *parts)


def _label_file(key) -> Path:
    return cache_dir("labels") / (hashlib.sha256(repr(key).encode()).hexdigest()[:32] + ".npy")


def load_label_map(key, shape, max_label: int, mmap: bool = False) -> np.ndarray | None:
    """The label map (or stack of maps) cached under ``key`` (which must change whenever a source file does: the
    datasets key by the files' content), or None when there is none or it is unreadable, of another shape, or
    out of range (``shape`` None: any shape, for a dataset whose images vary in size). ``mmap``:
    mapped read-only rather than read (a stack shared with forked workers)."""
    if os.environ.get("BENCH_NO_LABEL_CACHE"):
        return None
    try:
        arr = np.load(_label_file(key), allow_pickle=False, mmap_mode="r" if mmap else None)
    except (OSError, ValueError, EOFError):
        return None
    wrong_shape = shape is not None and arr.shape != tuple(shape)
    if arr.dtype != np.uint8 or wrong_shape or (arr.size and int(arr.max()) > max_label):
        return None
    return arr


def save_label_map(key, arr: np.ndarray) -> None:
    """Caches a checked label map under ``key``; silently does nothing where the cache cannot be written."""
    if os.environ.get("BENCH_NO_LABEL_CACHE"):
        return
    path = _label_file(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".npy", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, np.ascontiguousarray(arr, dtype=np.uint8), allow_pickle=False)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:
        pass
