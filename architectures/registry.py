"""The model registry: `register_model`, `create_model`, `list_models`, `model_meta`, `paper_names`.

One dict from the paper's name (lowercase, words joined by `-`) to a builder, and one catalogue of what each
model is (`models.toml`: the paper's name, its tables, the exact parameter and MAC counts of
`../shared/reference/architectures.md`, its revision, its contract with the runner), as torchvision's `meta`.
The catalogue is read without importing torch: `bench models`, `bench report` and `bench check` need nothing
else; the builders (one file per family) are imported the first time a model is built or its builder is asked.

A model of one's own registers with its meta in the decorator (every key optional; docs/models.md has the
contract):

    @register_model("my-net", paper_name="MyNet")
    def my_net(num_classes=11, encoder_weights=None): ...

and is found by every command in one of three ways (`load_plugins`): a package that declares an entry point in the
group `segnet_bench.models`, a file or module named by `--plugin` on any command or in $BENCH_PLUGINS
(os.pathsep-separated), or `bench.register_model` called in a notebook. A name that is one of the harness's own is
refused.
"""
from __future__ import annotations

import fnmatch
import functools
import importlib
import importlib.util
import inspect
import os
import sys
import tomllib
from pathlib import Path
from typing import Callable

from bench.errors import BenchError, did_you_mean

CATALOGUE = Path(__file__).with_name("models.toml")
FAMILIES = ("segnet", "fcn", "deeplab_largefov", "deconvnet", "smp_models")  # the files of our builders
CONTRACT = {"revision": 1, "encoder": None, "loss_on": "logits"}  # what a model declares unless it says otherwise

PLUGIN_GROUP = "segnet_bench.models"  # the entry-point group of installed packages that register models
PLUGINS_ENV = "BENCH_PLUGINS"  # files or modules that register models, os.pathsep-separated (set by --plugin too)

_MODELS: dict[str, Callable] = {}
_META: dict[str, dict] = {}  # models registered beyond the catalogue, with the meta of their decorator
_PLUGINS: dict[str, str] = {}  # each plugin loaded: what named it -> the module it became


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
def _import_ours() -> None:
    for family in FAMILIES:
        importlib.import_module(f"bench.architectures.{family}")


def _import_builders() -> None:
    _import_ours()
    load_plugins()


def _ours(builder) -> bool:
    return getattr(builder, "__module__", "").startswith("bench.architectures.")


def register_model(name: str, **meta):
    """Registers ``builder(num_classes, encoder_weights, **kwargs)`` under ``name``; its meta is the catalogue's
    entry (`models.toml`), or for a model the catalogue does not hold, the keywords given here (`CONTRACT`'s keys
    at their defaults where not given). A name of the harness's own models is refused (BenchError), as is one
    registered twice by different builders."""
    def wrap(builder):
        if not _ours(builder) and (name in _catalogue()["models"] or name in postprocessed_members()):
            raise BenchError(f"model {name!r} ({_where(builder)}) has the name of one of the harness's own models; "
                             "register it under another name")
        if name in _MODELS:
            if _same_builder(_MODELS[name], builder):  # the same definition again (a notebook cell run twice)
                _MODELS[name] = builder
                _META.get(name, {}).update(meta)
                return builder
            raise BenchError(f"model {name!r} is registered twice: by {_where(_MODELS[name])} and by "
                             f"{_where(builder)}")
        if name not in _catalogue()["models"]:
            _META[name] = {"name": name, **CONTRACT, **meta, "tables": tuple(meta.get("tables", ()))}
        elif meta:
            raise ValueError(f"model {name!r}: its meta is in {CATALOGUE.name}, not in the decorator")
        _MODELS[name] = builder
        return builder
    return wrap


def _same_builder(a, b) -> bool:
    return (getattr(a, "__module__", None), getattr(a, "__qualname__", None)) == (
        getattr(b, "__module__", None), getattr(b, "__qualname__", None))


def _where(builder) -> str:
    code = getattr(builder, "__code__", None)
    return f"{getattr(builder, '__module__', '?')}.{getattr(builder, '__qualname__', builder)}" + (
        f" in {code.co_filename}" if code is not None else "")


def load_plugin(spec: str) -> str:
    """Imports a plugin once: a Python file (``path/to/my_net.py``) or an importable module (``my_package.models``),
    whose import registers its models. Returns the module's name; BenchError in one line where it cannot be
    imported (the file or module named, the error's first line)."""
    spec = str(spec).strip()
    if spec in _PLUGINS:
        return _PLUGINS[spec]
    path = os.path.abspath(os.path.expanduser(spec))
    looks_like_file = spec.endswith(".py") or os.sep in spec or os.path.exists(path)
    try:
        if looks_like_file:
            if not os.path.isfile(path):
                raise BenchError(f"plugin {spec}: no such file")
            name = "bench_plugin_" + "".join(c if c.isalnum() else "_" for c in os.path.splitext(path)[0])[-80:]
            module_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            try:
                module_spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(name, None)
                raise
        else:
            name = importlib.import_module(spec).__name__
    except BenchError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise BenchError(f"plugin {spec}: cannot be imported ({exc.__class__.__name__}: {first})") from None
    _PLUGINS[spec] = name
    return name


def load_plugins(specs=()) -> list[str]:
    """Every plugin: the entry points of PLUGIN_GROUP (installed packages), the files or modules of $BENCH_PLUGINS,
    then ``specs``; each imported once. Returns the modules loaded."""
    loaded = []
    for ep in _entry_points():
        if f"entry point {ep.name}" not in _PLUGINS:
            try:
                ep.load()
            except BenchError:
                raise
            except Exception as exc:
                first = (str(exc).strip().splitlines() or [""])[0]
                raise BenchError(f"plugin {ep.value} (entry point {ep.name!r} of {PLUGIN_GROUP}): cannot be loaded "
                                 f"({exc.__class__.__name__}: {first})") from None
            _PLUGINS[f"entry point {ep.name}"] = ep.value
        loaded.append(_PLUGINS[f"entry point {ep.name}"])
    env = [s for s in os.environ.get(PLUGINS_ENV, "").split(os.pathsep) if s.strip()]
    return loaded + [load_plugin(s) for s in [*env, *specs]]


@functools.lru_cache(maxsize=None)
def _entry_points() -> tuple:
    """The installed packages' entry points of PLUGIN_GROUP (looked up once per process)."""
    from importlib.metadata import entry_points
    return tuple(entry_points(group=PLUGIN_GROUP))


def add_plugin(spec: str) -> str:
    """Loads a plugin named on the command line and adds it to $BENCH_PLUGINS, so the processes this one starts
    (data-parallel ranks, dispatched jobs) load it too."""
    name = load_plugin(spec)
    present = [s for s in os.environ.get(PLUGINS_ENV, "").split(os.pathsep) if s.strip()]
    absolute = os.path.abspath(spec) if os.path.exists(spec) else spec
    if absolute not in present:
        os.environ[PLUGINS_ENV] = os.pathsep.join([*present, absolute])
    return name


def list_models(pattern: str = "*") -> list[str]:
    """Names matching an fnmatch pattern: the catalogue's in its order (the paper's tables'), then any registered
    beyond it (plugins loaded first). Builds nothing of ours."""
    load_plugins()
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
    load_plugins()
    if name in _META:
        return dict(_META[name])
    raise BenchError(f"unknown model {name!r}{did_you_mean(name, list_models())}; known models: "
                     f"{', '.join(list_models())}")


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
    if not hasattr(model, "forward") or not callable(model):
        raise BenchError(f"model {name!r}: its builder returned {type(model).__name__}, not a torch.nn.Module")
    if not hasattr(model, "initialisation"):  # the contract's default: nothing declared (docs/models.md)
        from bench.architectures.common import set_initialisation
        set_initialisation(model, source="the module's own initialisation", from_weights=[],
                           initialised={"all layers": "the module's own initialisation (PyTorch's defaults unless "
                                                      "its code says otherwise)"})
    model.registry_name = name
    return model
