"""The paper's published numbers, read from `bench/published/*.csv` (copied from paper-tables.md with sources)."""
from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

FOLDER = Path(__file__).with_name("published")


@lru_cache(maxsize=None)
def read_rows(name: str) -> tuple[dict, ...]:
    """Rows of `published/<name>.csv` as dicts of strings (empty cells are "")."""
    path = FOLDER / f"{name}.csv"
    with open(path, newline="") as f:
        return tuple(csv.DictReader(f))


def number(cell: str):
    """A published cell as a float; None for an empty or "n/a" cell."""
    try:
        return float(cell)
    except (TypeError, ValueError):
        return None


def row_by(name: str, key: str, value: str) -> dict | None:
    for row in read_rows(name):
        if row.get(key) == value:
            return row
    return None


def table1_row(paper_name: str) -> dict | None:
    return row_by("table1", "variant", paper_name)


def authors_class_weights() -> tuple[float, ...]:
    """The prototxt `class_weighting` of CamVid classes 0..10 (SegNet-Tutorial Models/*_train.prototxt)."""
    rows = [r for r in read_rows("camvid_class_weights") if r["prototxt_weight"] != "ignore"]
    return tuple(float(r["prototxt_weight"]) for r in sorted(rows, key=lambda r: int(r["idx"])))
