"""A report table: a title, a header whose metric columns are grouped (ours | paper | Δ under one metric), rows of
cells, and notes that the page prints once; rendered as Markdown (GitHub), as HTML (grouped header, Δ coloured by
`bench check`'s band) and long-form as CSV.
"""
from __future__ import annotations

import csv
import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.check import signed

NOT_RUN = "not run"
IN_BAND, OUT_OF_BAND, ACKNOWLEDGED = "✓", "✗", "≈"
SUB_COLUMNS = ("ours", "paper", "Δ")


@dataclass
class Cell:
    """One table cell: its text, how it is shown (``kind``: "best", "not-run", "in-band", "out-of-band",
    "acknowledged", "no-band" or ""), a tooltip, and links [(text, href)] shown instead of the text."""
    text: str
    kind: str = ""
    title: str = ""
    links: list = field(default_factory=list)

    def markdown(self) -> str:
        if self.links:
            return " ".join(f"[{t}]({h})" for t, h in self.links)
        return f"**{self.text}**" if self.kind == "best" else self.text

    def html(self) -> str:
        if self.links:
            inner = " ".join(f'<a href="{html.escape(h)}">{html.escape(t)}</a>' for t, h in self.links)
        else:
            inner = html.escape(self.text)
        if self.kind == "best":
            inner = f"<strong>{inner}</strong>"
        attrs = (f' class="{self.kind}"' if self.kind else "") + (f' title="{html.escape(self.title)}"'
                                                                    if self.title else "")
        return f"<td{attrs}>{inner}</td>"

    def __str__(self) -> str:
        return self.markdown()

    def __eq__(self, other) -> bool:  # a cell compares with the text it shows in Markdown
        if isinstance(other, str):
            return self.markdown() == other
        return isinstance(other, Cell) and (self.text, self.kind, self.links) == (other.text, other.kind, other.links)


def as_cell(c) -> Cell:
    return c if isinstance(c, Cell) else Cell(str(c), NOT_RUN.replace(" ", "-") if c == NOT_RUN else "")


def delta_cell(delta: float | None, tolerance: float | None = None, acknowledged: str = "") -> Cell:
    """Δ = ours − paper, signed with a real minus, marked by `bench check`'s band: ✓ inside, ✗ outside, ≈ a
    difference acknowledged in the rules (``acknowledged``: why, shown as the tooltip); plain where no band applies."""
    if delta is None:
        return Cell("–")
    if tolerance is None:
        return Cell(signed(delta), "no-band", "no tolerance band for this column")
    inside = abs(delta) <= tolerance
    if not inside and acknowledged:
        return Cell(f"{signed(delta)} {ACKNOWLEDGED}", "acknowledged", f"outside ±{tolerance:g}, acknowledged: "
                    + acknowledged)
    return Cell(f"{signed(delta)} {IN_BAND if inside else OUT_OF_BAND}", "in-band" if inside else "out-of-band",
                f"{'inside' if inside else 'outside'} bench check's band ±{tolerance:g}")


def mean_std(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None, 0
    return float(np.mean(vals)), (float(np.std(vals, ddof=1)) if len(vals) > 1 else None), len(vals)


def fmt(mean, std=None, digits=2):
    if mean is None:
        return "–"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def metric_groups(metrics, prefix: str = "") -> list:
    """Header entries for metric columns grouped as ours | paper | Δ."""
    return [(f"{prefix}{m}", list(SUB_COLUMNS)) for m in metrics]


class Table:
    """A rendered table. ``header``: column names, or (group, [sub-column names]) for a grouped set; rows hold
    strings or `Cell`s; ``notes`` are printed once per page under the tables; ``long`` keeps the numbers for CSV."""

    def __init__(self, key, title, header, notes=()):
        self.key, self.title, self.rows, self.notes, self.long = key, title, [], list(notes), []
        self.header_groups = list(header)
        self.row_records: list[list[dict]] = []  # the records behind each row, where rows come from records
        self.ours: dict = {}  # {column index: {row index: our mean}} of the columns whose best value is marked
        self.anchor = key

    @property
    def header(self) -> list[str]:
        """The flat column names (a grouped column: "G ours", "G paper", "G Δ")."""
        return [h if isinstance(h, str) else f"{h[0]} {s}" for h in self.header_groups
                for s in ([None] if isinstance(h, str) else h[1])]

    def mark_best(self):
        """Bold the best (highest) of our means in each column that has one, where two or more rows compete."""
        for col, by_row in self.ours.items():
            vals = {r: v for r, v in by_row.items() if v is not None}
            if len(vals) < 2:
                continue
            best = max(vals.values())
            for r, v in vals.items():
                if v == best:
                    self.rows[r][col] = Cell(str(self.rows[r][col]), "best")

    def link_records(self, link_of: dict):
        """A last column linking each row's records by seed (s0, s1, …) to their run.json (the resolved config,
        curves and scores) and, where the record has one, its training log."""
        if not self.row_records or len(self.row_records) != len(self.rows):
            return
        self.header_groups.append("records")
        for row, recs in zip(self.rows, self.row_records):
            row.append(records_cell(recs, link_of))

    def markdown(self) -> str:
        header = self.header
        lines = [f"### {self.title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(str(as_cell(c)) for c in row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        grouped = any(not isinstance(h, str) for h in self.header_groups)
        top, sub = [], []
        for h in self.header_groups:
            if isinstance(h, str):
                span = ' rowspan="2"' if grouped else ""
                top.append(f"<th{span}>{html.escape(h)}</th>")
            else:
                top.append(f'<th colspan="{len(h[1])}" class="group">{html.escape(h[0])}</th>')
                sub += [f"<th>{html.escape(s)}</th>" for s in h[1]]
        head = "<tr>" + "".join(top) + "</tr>" + ("<tr>" + "".join(sub) + "</tr>" if sub else "")
        body = "".join("<tr>" + "".join(as_cell(c).html() for c in r) + "</tr>" for r in self.rows)
        return (f'<h3 id="{html.escape(self.anchor)}">{html.escape(self.title)}</h3>\n'
                f'<table class="results"><thead>{head}</thead><tbody>{body}</tbody></table>\n')

    def write_csv(self, path: Path, others=()):
        """The table long-form (one row per number), with the rows of ``others`` (tables sharing its key)."""
        fields = ["table", "row", "column", "ours_mean", "ours_std", "n", "paper", "delta", "profile", "like_for_like"]
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            for t in (self, *others):
                for r in t.long:
                    w.writerow({k: r.get(k) for k in fields})


def records_cell(recs, link_of: dict) -> Cell:
    """Links to each record by seed (s0, s1, …: its run.json) and to its training log where it has one; ``link_of``:
    {id(record): the run.json's path relative to the page}."""
    links = []
    for r in (r for r in recs if id(r) in link_of):
        links.append((f"s{r.get('seed', '?')}", link_of[id(r)]))
        if r.get("log"):
            links.append(("log", f"{link_of[id(r)].rsplit('/', 1)[0]}/{r['log']}"))
    return Cell("–", links=links) if links else Cell("–")


def page_notes(tables) -> list[str]:
    """The notes of a page's tables, each once, in the order they first appear."""
    return list(dict.fromkeys(n for t in tables for n in t.notes))


def write_csvs(tables, out_dir: Path) -> list[str]:
    """One CSV per table key (tables sharing a key, such as Table 1's halves, in one file); the file names."""
    by_key: dict = {}
    for t in tables:
        by_key.setdefault(t.key, []).append(t)
    for key, ts in by_key.items():
        ts[0].write_csv(out_dir / f"{key}.csv", ts[1:])
    return [f"{k}.csv" for k in by_key]


def unique_anchors(tables):
    """Distinct HTML anchors for tables that share a key."""
    seen: dict = {}
    for t in tables:
        n = seen.get(t.key, 0)
        t.anchor = t.key if n == 0 else f"{t.key}-{n + 1}"
        seen[t.key] = n + 1
