"""The model registry: `register_model`, `create_model`, `list_models`, `model_meta`.

One dict from the paper's name (lowercase, words joined by `-`) to a builder. Each entry carries the
numbers a build is checked against (torchvision's `meta`): the paper's name, the exact parameter and
MAC counts of `../shared/reference/architectures.md`, the paper table it appears in, and the choices
taken where the paper is ambiguous.
"""
from __future__ import annotations

import fnmatch
from typing import Callable

from bench.errors import BenchError

_MODELS: dict[str, Callable] = {}
_META: dict[str, dict] = {}


def register_model(name: str, revision: int = 1, **meta):
    """Registers ``builder(num_classes, encoder_weights, **kwargs)`` under ``name`` with its meta.

    revision: the version of the model's definition (layers or initialisation), raised whenever a change would
    make a new run differ from an old one; every run record names it, and reports and `bench check` never use a
    record of an older revision for a current row. ``revisions`` ({revision: what it changed}) says why.
    """
    def wrap(builder):
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = builder
        _META[name] = {"name": name, "revision": revision, **meta}
        return builder
    return wrap


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching an fnmatch pattern, in registration order (the paper's tables' order)."""
    return [n for n in _MODELS if fnmatch.fnmatch(n, pattern)]


def model_meta(name: str) -> dict:
    _check_name(name)
    return dict(_META[name])


def model_revision(name: str) -> int:
    """The current revision of a registered model's definition (`register_model`)."""
    return model_meta(name)["revision"]


def _check_name(name: str) -> None:
    if name not in _MODELS:
        raise BenchError(f"unknown model {name!r}; known models: {', '.join(list_models())}")


def create_model(name: str, num_classes: int = 11, encoder_weights=None, **kwargs):
    """Builds a registered model.

    encoder_weights: None (He initialisation), "imagenet" (torchvision's VGG16 ImageNet weights, downloaded
    by torchvision's weights API) or a path to a local state dict in torchvision's VGG16 layout.
    """
    _check_name(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise BenchError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    model = _MODELS[name](num_classes=num_classes, encoder_weights=encoder_weights, **kwargs)
    model.registry_name = name
    return model
