"""The paper's tables with ours beside them: the `Table` (Markdown and CSV, grouped metric columns, Δ marked
by `bench check`'s band), Table 1, the budget tables (3 and 4, one function), Tables 2 and 5, and the table of any
other suite; every row of the paper's table present, "not run" where no record exists.
"""
from __future__ import annotations

import csv
import html
from pathlib import Path

import numpy as np

from bench.architectures import paper_names
from bench.published import number, read_rows, row_by
from bench.stopping import STILL_IMPROVING, status_words, stop_of

METRICS = ("G", "C", "mIoU", "BF")
TABLE2_COLUMNS = {"building": "Building", "tree": "Tree", "sky": "Sky", "car": "Car", "sign_symbol": "SignSymbol",
                  "road": "Road", "pedestrian": "Pedestrian", "fence": "Fence", "column_pole": "Pole",
                  "side_walk": "Pavement", "bicyclist": "Bicyclist"}


VARIANT_PREFIX = {"median-frequency": "mf", "natural-frequency": "nf"}
NOT_LIKE_FOR_LIKE_T3 = ("not like for like: the paper trained on 3,433 road images (Table 3); "
                        "these runs use CamVid's 367")


NOT_RUN = "not run"
IN_BAND, OUT_OF_BAND = "✓", "✗"


def mean_std(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None, 0
    return float(np.mean(vals)), (float(np.std(vals, ddof=1)) if len(vals) > 1 else None), len(vals)


def fmt(mean, std=None, digits=2):
    if mean is None:
        return "–"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


class Table:
    """A rendered table: a title, a header, rows of cells, notes; also kept long-form for CSV."""

    def __init__(self, key, title, header, notes=()):
        self.key, self.title, self.header, self.rows, self.notes, self.long = key, title, header, [], list(notes), []
        self.row_records: list[list[dict]] = []  # the records behind each row, where rows come from records
        self.ours: dict = {}  # {column index: {row index: our mean}} of the columns whose best value is marked

    def mark_best(self):
        """Bold the best (highest) of our means in each column that has one, where two or more rows compete."""
        for col, by_row in self.ours.items():
            vals = {r: v for r, v in by_row.items() if v is not None}
            if len(vals) < 2:
                continue
            best = max(vals.values())
            for r, v in vals.items():
                if v == best:
                    self.rows[r][col] = f"**{self.rows[r][col]}**"

    def link_records(self, link_of: dict):
        """A last column linking each row's records: their run.json (the resolved config, curves and scores)
        and, where the record has one, its training log."""
        if not self.row_records or len(self.row_records) != len(self.rows):
            return
        self.header = [*self.header, "records"]
        for row, recs in zip(self.rows, self.row_records):
            links = []
            for r in (r for r in recs if id(r) in link_of):
                link = f"[{r['run_id']}]({link_of[id(r)]})"
                if r.get("log"):
                    link += f" ([log]({link_of[id(r)].rsplit('/', 1)[0]}/{r['log']}))"
                links.append(link)
            row.append(", ".join(links) or "–")

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.header) + " |",
                 "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in self.rows]
        lines += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in self.rows)
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (f"<h3>{html.escape(self.title)}</h3><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
                + (f"<ul>{notes}</ul>" if notes else ""))

    def write_csv(self, path: Path):
        fields = ["table", "row", "column", "ours_mean", "ours_std", "n", "paper", "delta", "profile", "like_for_like"]
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            for r in self.long:
                w.writerow({k: r.get(k) for k in fields})


def _cells(t: Table, cells: list, ours_vals, paper, row, column, profile, like=True, tolerance=None):
    """Appends three cells, ours (mean ± std), paper, and delta (marked ✓ inside `bench check`'s tolerance
    band, ✗ outside, where the column has one), to ``cells``; keeps the numbers long-form for the CSV."""
    m, s, n = mean_std(ours_vals)
    delta = (m - paper) if (m is not None and paper is not None) else None
    t.long.append({"table": t.key, "row": row, "column": column, "ours_mean": m, "ours_std": s, "n": n,
                   "paper": paper, "delta": delta, "profile": profile, "like_for_like": like})
    t.ours.setdefault(len(cells), {})[len(t.rows)] = m
    mark = "" if delta is None or tolerance is None else f" {IN_BAND if abs(delta) <= tolerance else OUT_OF_BAND}"
    cells += [fmt(m, s), "–" if paper is None else f"{paper:.2f}", "–" if delta is None else f"{delta:+.2f}{mark}"]


def _ours_cell(t: Table, cells: list, ours_vals, row, column, profile, like=True):
    """Appends our mean ± std alone (no published value for this cell)."""
    m, s, n = mean_std(ours_vals)
    t.long.append({"table": t.key, "row": row, "column": column, "ours_mean": m, "ours_std": s, "n": n,
                   "paper": None, "delta": None, "profile": profile, "like_for_like": like})
    t.ours.setdefault(len(cells), {})[len(t.rows)] = m
    cells.append(fmt(m, s))


def _band_tolerances(suite: str, variant: str | None) -> dict:
    """{metric: tolerance} of `bench check`'s band for these records ({} where none applies)."""
    from bench.check import load_rules
    for band in load_rules().get("bands", []):
        if band["suite"] == suite and band.get("variant") == variant:
            return band["tolerance"]
    return {}


TRAIN_MIOU_CONVENTION = "train mIoU acc/(2−acc)"  # bench.metrics.miou_false_positives_equal_false_negatives


def table1(groups, profile, suite) -> Table | None:
    names = paper_names()
    recs = {k: v for k, v in groups.items() if k[0] == suite}
    if not recs:
        return None
    header = ["variant", "balancing", "n"] + [h for m in METRICS for h in (f"test {m}", "paper", "Δ")]
    header += [h for m in ("G", "C") for h in (f"train {m}", "paper", "Δ")]
    header += ["train mIoU", TRAIN_MIOU_CONVENTION, "paper", "Δ", "stopped"]
    t = Table("table1", f"Table 1: decoder variants on CamVid ({profile} profile). Ours: mean ± std over the n "
              "seeds; Δ = ours − paper", header,
              notes=["Paper: Table 1 (S1, arXiv 1511.00561v3), median-frequency (authors' prototxt weights) and "
                     "natural-frequency halves.", "Train scores are G, C, mIoU on the training set at the selected "
                     "iteration (the paper reports no train BF).",
                     "Train mIoU two ways: \"train mIoU\" from the dataset-level confusion matrix (as the test "
                     f"mIoU, compute_test_results.m); \"{TRAIN_MIOU_CONVENTION}\" the mean over classes of each "
                     "class's accuracy / (2 − accuracy), its IoU were its false positives as many as its false "
                     "negatives. The paper's train mIoU is compared with the latter: every one of its 16 values lies "
                     "0 to 1.04 points above C/(2−C) of its own train C, this mean's lower bound (issue 34). Records "
                     "made before the train confusion matrix was kept show \"–\" there.",
                     f"Δ {IN_BAND}: inside `bench check`'s tolerance band for the test metrics; {OUT_OF_BAND}: "
                     "outside. Bold: the best of ours in the column. \"Stopped\": how each run ended "
                     f"(the suite's rule: the training loss converged; \"{STILL_IMPROVING}\" where the selected "
                     "iteration was the last evaluated)."])
    order = [r["variant"] for r in read_rows("table1")]
    keys = sorted(recs, key=lambda k: (order.index(names[k[1]]) if names[k[1]] in order else 99, k[2] or ""))
    for key in keys:
        _, member, variant = key
        pre = VARIANT_PREFIX.get(variant or "", "")
        row = row_by("table1", "variant", names[member]) or {}
        band = _band_tolerances(key[0], variant) if profile == "full" else {}
        label = f"{names[member]} [{variant}]"
        cells = [names[member], variant or "-", len(recs[key])]

        def paper(column):
            return number(row.get(f"{pre}_{column}", "")) if pre else None
        for m in METRICS:
            _cells(t, cells, [r["test"][m] for r in recs[key]], paper(f"test_{m}"), label, f"test_{m}", profile,
                   tolerance=band.get(m))
        train = [r.get("train") or {} for r in recs[key]]
        for m in ("G", "C"):
            _cells(t, cells, [tr.get(m) for tr in train], paper(f"train_{m}"), label, f"train_{m}", profile)
        _ours_cell(t, cells, [tr.get("mIoU") for tr in train], label, "train_mIoU", profile)
        _cells(t, cells, [tr.get("mIoU_fp_equal_fn") for tr in train], paper("train_mIoU"), label,
               "train_mIoU_fp_equal_fn", profile)
        t.rows.append(cells + [stop_cell(recs[key])])
        t.row_records.append(recs[key])
    t.mark_best()
    return t


FC_NOT_PRETRAINED = "†"


def fc_not_pretrained(recs) -> list[str]:
    """Layers that records took from complete VGG16 weights in the online recipe but initialised instead."""
    out = []
    for r in recs:
        for layer in ((r.get("model") or {}).get("initialisation") or {}).get("missing_from_weights", []):
            if layer not in out:
                out.append(layer)
    return out


def row_name(names, member, recs, notes) -> str:
    """The paper's name of a member, marked where its fc layers were not pretrained (and the note added once)."""
    missing = fc_not_pretrained(recs)
    if not missing:
        return names[member]
    note = (f"{FC_NOT_PRETRAINED} {', '.join(missing)} not pretrained: the weights file held VGG16's conv layers "
            "only, so these layers were He-initialised; torchvision's download would have given them ImageNet "
            "weights (run.json: model.initialisation).")
    if note not in notes:
        notes.append(note)
    return f"{names[member]} {FC_NOT_PRETRAINED}"


def stop_cell(recs) -> str:
    """How a row's runs ended (`bench.stopping.status_words`), each different way once."""
    return "; ".join(dict.fromkeys(status_words(r) for r in recs)) or "–"


# The budget tables: (paper table, its column prefixes and labels, mini-batch and training images of the paper).
BUDGET_TABLES = {
    "table3": {"title": "Table 3", "columns": (("it40k", "40K"), ("it80k", "80K"), ("itmax", ">80K")),
               "paper_training": "mini-batch 5 on 3,433 images"},
    "table4": {"title": "Table 4", "columns": (("it80k", "80K"), ("it140k", "140K"), ("itmax", ">140K")),
               "paper_training": "mini-batch 4 on 5,285 images"},
}


MEDIAN_FREQUENCY_LINE = " (median-frequency balancing)"  # Table 4's caption line, a row of table4.csv


def _budget_row_name(member: str, variant: str | None, names: dict) -> str:
    """The paper's row of a run: its network, and Table 4's caption line for SegNet's median-frequency variant."""
    return names.get(member, member) + (MEDIAN_FREQUENCY_LINE if variant == "median-frequency" else "")


def _budget_notes(paper_table: str, recs: dict, profile: str, suite: str) -> list[str]:
    spec = BUDGET_TABLES[paper_table]
    notes = []
    if paper_table == "table3":
        notes.append(NOT_LIKE_FOR_LIKE_T3 + ".")
    if recs:
        first = next(iter(recs.values()))[0]
        cfg = first.get("config", {})
        notes.append(f"Profile {profile}: mini-batch {cfg.get('batch_size', '?')} on {first.get('train_images', '?')} "
                     f"training images; stopping: {stop_of(first)['rule_text']}. The first columns are the test "
                     "scores at the run's test points (column \"updates (ours)\"); the last is the iteration the "
                     "validation selected. The paper's columns are its test points and \"Max iter\", "
                     f"{spec['paper_training']}.")
    else:
        notes.append(f"No {profile}-profile record of this suite yet: every row is \"{NOT_RUN}\".")
    notes.append(f"Paper: {spec['title']} (S1). Δ = ours − paper; bold: the best of ours in the column. "
                 "\"Stopped\": "
                 f"how each run ended; \"{STILL_IMPROVING}\" where the selected iteration was the last evaluated "
                 "(the run had not stopped improving).")
    if recs and paper_table == "table3" and first.get("config", {}).get("class_weighting", "natural") != "natural":
        notes.append("This suite uses median-frequency balancing; Table 3's rows use none: paper numbers shown for "
                     "orientation only.")
    from bench.architectures import postprocessed_members
    if any(k[1] in postprocessed_members() for k in recs):
        notes.append("DeepLab-LargeFOV-denseCRF: post-processing runs once, over the weights validation selected; its "
                     "scores are in the last column (the paper computed its CRF row at \"Max iter\" only).")
    return notes


def budget_tables(groups, profile, suite, paper_table: str) -> list[Table]:
    """Table 3 or 4 as the paper splits it by training budget: one table per column, every row of the paper's table
    (ours beside it, or "not run" where no record exists), then rows of ours the paper lacks. The first columns are
    the test scores at the run's test points in order; the last (the paper's "Max iter") the test scores at the
    iteration validation selected, with how each run stopped."""
    names = paper_names()
    spec = BUDGET_TABLES[paper_table]
    recs = {k: v for k, v in groups.items() if k[0] == suite}
    by_row = {_budget_row_name(k[1], k[2], names): k for k in recs}
    paper_rows = {row["network"]: row for row in read_rows(paper_table)}
    order = list(paper_rows) + sorted(set(by_row) - set(paper_rows))
    notes = _budget_notes(paper_table, recs, profile, suite)
    base = suite.replace("-", "_")
    tables = []
    for i, (col, lab) in enumerate(spec["columns"]):
        last = i == len(spec["columns"]) - 1
        t = Table(f"{base}_{col}", f"{spec['title']}, {lab} iterations column ({suite}, {profile} profile): ours "
                  + ("at the iteration validation selected" if last else f"at test point {i + 1}"),
                  ["network", "n", "updates (ours)", "paper iterations"]
                  + [h for m in METRICS for h in (m, "paper", "Δ")] + (["stopped"] if last else []), notes=list(notes))
        for name in order:
            row, key = paper_rows.get(name, {}), by_row.get(name)
            paper_its = (row.get("max_iter") or "–") if last else lab
            if key is None:
                cells = [name, 0, NOT_RUN, paper_its]
                for m in METRICS:
                    paper = number(row.get(f"{col}_{m}", ""))
                    cells += [NOT_RUN, "–" if paper is None else f"{paper:.2f}", "–"]
                t.rows.append(cells + ([NOT_RUN] if last else []))
                t.row_records.append([])
                continue
            if last:
                points = [{**r["test"], "iteration": r["selected"]["iteration"]} for r in recs[key]]
            else:
                points = [r["budgets"][i] if len(r.get("budgets", [])) > i else None for r in recs[key]]
            its = sorted({p["iteration"] for p in points if p and "iteration" in p})
            shown = row_name(names, key[1], recs[key], t.notes) + (MEDIAN_FREQUENCY_LINE if key[2] == "median-frequency"
                                                                     else "")
            cells = [shown, len(recs[key]), ", ".join(f"{n:,}" for n in its) or "–", paper_its]
            for m in METRICS:
                _cells(t, cells, [p[m] if p else None for p in points], number(row.get(f"{col}_{m}", "")), name,
                       f"{lab}_{m}", profile, like=False)
            t.rows.append(cells + ([stop_cell(recs[key])] if last else []))
            t.row_records.append(recs[key])
        t.mark_best()
        tables.append(t)
    return tables


def table5(groups, profile, suite) -> Table:
    """Table 5: SegNet's per-class test accuracy on SUN RGB-D (no class balancing) beside the paper's, "not run"
    until a record exists."""
    key = (suite, "segnet", "natural-frequency")
    recs = groups.get(key, [])
    t = Table(f"table5_{suite.replace('-', '_')}", f"Table 5: SegNet's per-class accuracy on SUN RGB-D test ({suite}, "
              f"{profile} profile)", ["class", "n", "ours", "paper", "Δ"],
              notes=["Ours: at the iteration validation selected (the records keep per-class scores there only); "
                     "the paper's is its Table 4 SegNet at 240K iterations (the mean of its 37 values, 44.75, is that "
                     "row's C).", "Paper: Table 5 (S1)."])
    def key_of(name):
        return name.lower().replace("_", "").replace(" ", "")
    ours_names = {key_of(n): n for n in (recs[0]["test"]["per_class"] if recs else {})}
    for row in read_rows("table5"):
        paper = number(row["accuracy"])
        name = ours_names.get(key_of(row["class"]))
        if name is None:
            t.rows.append([row["class"], 0, NOT_RUN, f"{paper:.2f}", "–"])
            continue
        cells = [row["class"], len(recs)]
        _cells(t, cells, [r["test"]["per_class"][name]["accuracy"] for r in recs], paper, row["class"], "accuracy",
               profile, like=False)
        t.rows.append(cells)
    paper_c = float(np.mean([number(r["accuracy"]) for r in read_rows("table5")]))
    cells = ["mean over the 37 classes (C)", len(recs)]
    if recs:
        _cells(t, cells, [r["test"]["C"] for r in recs], paper_c, "C", "accuracy", profile, like=False)
    else:
        cells += [NOT_RUN, f"{paper_c:.2f}", "–"]
    t.rows.append(cells)
    return t


def table_selected(groups, profile, suite) -> Table | None:
    """For a suite without a paper table (voc2012-transfer): G, C, mIoU and BF at the iteration validation
    selected, one row per member and variant, with what the source study states beside it where it does."""
    names = paper_names()
    recs = {k: v for k, v in groups.items() if k[0] == suite}
    if not recs:
        return None
    stated = [r for r in read_rows("voc2012_study") if r["study"] == suite] if suite == "voc2012-transfer" else []
    notes = ["Test scores at the iteration of the best validation G (mean ± std over seeds)."]
    notes += [f"The study states for {r['network']} {r['variant']} on {r['split']}: {r['metric']} {r['relation']} "
              f"{r['value']} ({r['source']})." for r in stated]
    t = Table(f"{suite.replace('-', '_')}_selected", f"Ours at the iteration validation selected ({suite}, {profile} "
              "profile)", ["network", "variant", "n", "updates (ours)", "trained parameters", *METRICS], notes=notes)
    for key in sorted(recs, key=lambda k: (k[1], k[2] or "")):
        rs = recs[key]
        selected = sorted({r["selected"]["iteration"] for r in rs if r.get("selected")})
        trained = sorted({r["model"].get("trained_parameters") for r in rs} - {None})
        cells = [names.get(key[1], key[1]), key[2] or "–", len(rs), ", ".join(f"{n:,}" for n in selected),
                 ", ".join(f"{n / 1e6:.1f}M" for n in trained) or "–"]
        for m in METRICS:
            _ours_cell(t, cells, [r["test"][m] for r in rs], f"{names.get(key[1], key[1])} [{key[2]}]",
                       f"selected_{m}", profile, like=True)
        t.rows.append(cells)
        t.row_records.append(rs)
    t.mark_best()
    return t


def table2(groups, profile, suite) -> Table | None:
    names = paper_names()
    recs = {k: v for k, v in groups.items() if k[0] == suite}
    if not recs:
        return None
    paper = row_by("table2", "method", "SegNet (3.5K dataset training - 140K)")
    t = Table(f"table2_{suite.replace('-', '_')}", f"Table 2: per-class accuracy on CamVid test ({suite}, {profile} "
              "profile); last row: the paper's SegNet (3.5K training images)",
              ["model", "n"] + list(TABLE2_COLUMNS.values()) + ["C", "G", "mIoU", "BF"],
              notes=[NOT_LIKE_FOR_LIKE_T3 + "."])
    for key in sorted(recs):
        cells = [row_name(names, key[1], recs[key], t.notes) + (f" [{key[2]}]" if key[2] else ""), len(recs[key])]
        for col, cls in TABLE2_COLUMNS.items():
            vals = [r["test"]["per_class"][cls]["accuracy"] for r in recs[key]]
            _ours_cell(t, cells, vals, names[key[1]], cls, profile, like=False)
        for m in ("C", "G", "mIoU", "BF"):
            _ours_cell(t, cells, [r["test"][m] for r in recs[key]], names[key[1]], m, profile, like=False)
        t.rows.append(cells)
    t.mark_best()
    if paper:
        t.rows.append(["paper: SegNet (3.5K, 140K iterations)", "-"] + [paper[c] for c in TABLE2_COLUMNS] +
                      [paper["class_avg"], paper["global_avg"], paper["mIoU"], paper["BF"]])
    return t
