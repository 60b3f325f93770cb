"""The model registry: `register_model`, `create_model`, `list_models`, `model_meta`, `paper_names`.

One dict from the paper's name (lowercase, words joined by `-`) to a builder, and one catalogue of what each
model is (`models.toml`: the paper's name, its tables, the exact parameter and MAC counts of
`../shared/reference/architectures.md`, its revision, its contract with the runner), as torchvision's `meta`.
The catalogue is read without importing torch: `bench models`, `bench report` and `bench check` need nothing
else; the builders (one file per family) are imported the first time a model is built or its builder is asked.

A model of one's own registers with its meta in the decorator:

    @register_model("my-net", paper_name="MyNet", family="beyond-paper", params=..., macs=...)
    def my_net(num_classes=11, encoder_weights=None): ...
"""
from __future__ import annotations

import fnmatch
import functools
import importlib
import inspect
import tomllib
from pathlib import Path
from typing import Callable

from bench.errors import BenchError

CATALOGUE = Path(__file__).with_name("models.toml")
FAMILIES = ("segnet", "fcn", "deeplab_largefov", "deconvnet", "smp_models")  # the files of our builders
CONTRACT = {"revision": 1, "encoder": None, "loss_on": "logits"}  # what a model declares unless it says otherwise

_MODELS: dict[str, Callable] = {}
_META: dict[str, dict] = {}  # models registered beyond the catalogue, with the meta of their decorator


@functools.lru_cache(maxsize=None)
def _catalogue() -> dict:
    data = tomllib.loads(CATALOGUE.read_text())
    postprocessed = data.pop("postprocessed", {})
    models = {}
    for name, meta in data.items():
        meta = {"name": name, **CONTRACT, **meta, "tables": tuple(meta.get("tables", ()))}
        if "revisions" in meta:
            meta["revisions"] = {int(k): v for k, v in meta["revisions"].items()}
        models[name] = meta
    return {"models": models, "postprocessed": postprocessed}


@functools.lru_cache(maxsize=None)
def _import_builders() -> None:
    for family in FAMILIES:
        importlib.import_module(f"bench.architectures.{family}")


def register_model(name: str, **meta):
    """Registers ``builder(num_classes, encoder_weights, **kwargs)`` under ``name``; its meta is the catalogue's
    entry (`models.toml`), or for a model the catalogue does not hold, the keywords given here (`CONTRACT`'s keys
    at their defaults where not given)."""
    def wrap(builder):
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        if name not in _catalogue()["models"]:
            _META[name] = {"name": name, **CONTRACT, **meta, "tables": tuple(meta.get("tables", ()))}
        elif meta:
            raise ValueError(f"model {name!r}: its meta is in {CATALOGUE.name}, not in the decorator")
        _MODELS[name] = builder
        return builder
    return wrap


def list_models(pattern: str = "*") -> list[str]:
    """Names matching an fnmatch pattern: the catalogue's in its order (the paper's tables'), then any registered
    beyond it. Builds nothing."""
    names = [*_catalogue()["models"], *_META]
    return [n for n in names if fnmatch.fnmatch(n, pattern)]


def model_meta(name: str) -> dict:
    """What a model is (the catalogue's entry or its decorator's meta), and ``options``: the keyword arguments its
    builder takes besides num_classes and encoder_weights (a recipe's ``dropout``)."""
    meta = model_facts(name)
    builder = _builder(name)
    meta["options"] = tuple(p for p in inspect.signature(builder).parameters
                            if p not in ("num_classes", "encoder_weights"))
    return meta


def model_facts(name: str) -> dict:
    """`model_meta` without ``options``: read from the catalogue without importing torch."""
    if name in _catalogue()["models"]:
        return dict(_catalogue()["models"][name])
    if name in _META:
        return dict(_META[name])
    raise BenchError(f"unknown model {name!r}; known models: {', '.join(list_models())}")


def model_revision(name: str) -> int:
    """The current revision of a registered model's definition."""
    return model_facts(name)["revision"]


def postprocessed_members() -> dict:
    """{name: {"of": model, "stage": ..., "paper_name": ...}}: suite members that train nothing but post-process
    the recorded run of another member (`bench.postprocess`)."""
    return {k: dict(v) for k, v in _catalogue()["postprocessed"].items()}


def paper_names() -> dict:
    """{model or post-processed member: its name in the paper}, the one place reports and `bench check` read."""
    return {**{n: model_facts(n)["paper_name"] for n in list_models()},
            **{n: spec["paper_name"] for n, spec in postprocessed_members().items()}}


def _builder(name: str) -> Callable:
    if name not in _MODELS:
        _import_builders()
    if name not in _MODELS:
        model_facts(name)  # an unknown name: one line listing the known ones
        raise BenchError(f"model {name!r} is in {CATALOGUE.name} but no builder registers it")
    return _MODELS[name]


def create_model(name: str, num_classes: int = 11, encoder_weights=None, **kwargs):
    """Builds a registered model.

    encoder_weights: None (He initialisation), "imagenet" (torchvision's VGG16 ImageNet weights, downloaded
    by torchvision's weights API) or a path to a local state dict in torchvision's VGG16 layout.
    """
    builder = _builder(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise BenchError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    model = builder(num_classes=num_classes, encoder_weights=encoder_weights, **kwargs)
    model.registry_name = name
    return model
