"""The dataset registry and the data root convention."""
from __future__ import annotations

import os
from pathlib import Path

from bench.errors import BenchError

# Where datasets live when neither --data-root nor BENCH_DATA_ROOT says otherwise.
DEFAULT_DATA_ROOT = Path("~/.cache/segnet-bench/datasets").expanduser()

_DATASETS: dict[str, type] = {}


def register_dataset(name: str):
    def wrap(cls):
        if name in _DATASETS:
            raise ValueError(f"dataset {name!r} is registered twice")
        cls.name = name
        _DATASETS[name] = cls
        return cls
    return wrap


def list_datasets() -> list[str]:
    return sorted(_DATASETS)


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """--data-root if given, else $BENCH_DATA_ROOT, else DEFAULT_DATA_ROOT."""
    if data_root:
        return Path(data_root).expanduser()
    env = os.environ.get("BENCH_DATA_ROOT")
    return Path(env).expanduser() if env else DEFAULT_DATA_ROOT


def get_dataset(name: str, data_root: str | os.PathLike | None = None):
    if name not in _DATASETS:
        raise BenchError(f"unknown dataset {name!r}; known datasets: {', '.join(list_datasets())}")
    return _DATASETS[name](resolve_data_root(data_root))


def folder_not_found(what: str, root: Path, data_root: Path, how: str) -> BenchError:
    """The error for a dataset folder missing under the data root; where the data root given is that folder
    itself (``.../CamVid``), it names the parent to give instead."""
    hint = ""
    if Path(data_root).name == Path(root).name:
        hint = (f"; the data root is the folder that holds {Path(root).name}/: did you mean "
                f"--data-root {Path(data_root).parent}?")
    return BenchError(f"{root}: {what} folder not found under the data root {data_root}{hint} ({how})")
