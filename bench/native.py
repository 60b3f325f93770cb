"""The harness's C code (`bench/_native/matching.c`: the BF count of one image and the exact maximum matching of
`bench.matching`, and the joint histogram behind the confusion matrix of `bench.metrics`), compiled when the package
is installed (pyproject.toml's ext-modules) and loaded with ctypes.

Every caller has a pure NumPy (or SciPy) path that gives the same results where the library was not built (no C
compiler at install time) or `BENCH_NO_NATIVE` is set; `load()` then returns None and `unavailable_reason()` says
why (`bench eval` says so once).
"""
from __future__ import annotations

import ctypes
import importlib.util
import os

MODULE = "bench._native.matching"

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


def load():
    """The compiled library, where the install built it; None otherwise, with the reason kept for
    `unavailable_reason()`."""
    global _lib, _error
    if _lib is not None or _error is not None:
        return _lib
    if os.environ.get("BENCH_NO_NATIVE"):
        _error = "disabled by BENCH_NO_NATIVE"
        return None
    try:
        spec = importlib.util.find_spec(MODULE)
        if spec is None or not spec.origin:
            raise FileNotFoundError(f"{MODULE} was not built when the package was installed (no C compiler then?); "
                                    "reinstall with a C compiler present")
        lib = ctypes.CDLL(spec.origin)
        _declare(lib)
        _lib = lib
    except Exception as exc:  # not built, or not loadable here: the callers fall back
        _error = f"{type(exc).__name__}: {exc}"
    return _lib


def unavailable_reason() -> str | None:
    """Why `load()` gave None (None while it has not been called or succeeded)."""
    return _error
