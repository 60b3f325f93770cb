"""The harness's C code (`bench/_native/*.c`), compiled on first use with the system C compiler into the cache
folder (`bench.cache`) and loaded with ctypes.

- `matching.c`: the BF count of one image and the exact maximum matching (`bench.matching`), and the joint
  histogram behind the confusion matrix (`bench.metrics`);
- `png.c`: PNG row unfiltering for 8-bit label maps (`bench.png`).

Every caller has a pure Python/numpy (or SciPy, or Pillow) path that gives the same results where the
library cannot be built (no compiler, a read-only cache) or `BENCH_NO_NATIVE` is set; `load()` then returns
None and `unavailable_reason()` says why.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCES = tuple(Path(__file__).with_name("_native") / name for name in ("matching.c", "png.c"))

_lib = None
_error: str | None = None


def _declare(lib) -> None:
    """The C signatures (ctypes would otherwise pass every argument as an int)."""
    ptr, ptr_ll, vp = ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_longlong), ctypes.c_void_p
    i, long = ctypes.c_int, ctypes.c_long
    lib.max_matching.argtypes = [i, i, i, ptr, ptr, ptr]
    lib.max_matching.restype = i
    lib.bf_counts.argtypes = [i, i, vp, vp, i, i, ptr, ptr, i, i, vp, vp, vp, long, vp, ptr_ll, vp]
    lib.bf_counts.restype = i
    lib.pair_counts_u8.argtypes = [long, vp, vp, i, i, vp]
    lib.pair_counts_u8.restype = i
    lib.png_unfilter_1bpp.argtypes = [i, i, ctypes.c_char_p, vp]
    lib.png_unfilter_1bpp.restype = i


def _build(target: Path) -> None:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise RuntimeError("no C compiler found")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", tmp, *map(str, SOURCES)], check=True,
                       capture_output=True, timeout=120)
        os.replace(tmp, target)  # atomic: concurrent processes never load a half-written file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load():
    """The compiled library, built on first use (then reused from the cache while the sources are
    unchanged); None where that is impossible, with the reason kept for `unavailable_reason()`."""
    global _lib, _error
    if _lib is not None or _error is not None:
        return _lib
    if os.environ.get("BENCH_NO_NATIVE"):
        _error = "disabled by BENCH_NO_NATIVE"
        return None
    try:
        from bench.cache import cache_dir
        digest = hashlib.sha256()
        for src in SOURCES:
            digest.update(src.name.encode() + b"\0" + src.read_bytes())
        target = cache_dir("native") / f"bench-native-{digest.hexdigest()[:16]}.so"
        if not target.exists():
            _build(target)
        lib = ctypes.CDLL(str(target))
        _declare(lib)
        _lib = lib
    except Exception as exc:  # no compiler, read-only cache, ...: the callers fall back
        _error = f"{type(exc).__name__}: {exc}"
    return _lib


def unavailable_reason() -> str | None:
    """Why `load()` gave None (None while it has not been called or succeeded)."""
    return _error
