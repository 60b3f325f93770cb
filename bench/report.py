"""`bench report`: the paper's tables and figures from recorded runs, ours beside the published numbers.

For each suite with records it writes `<out>/<suite>/README.md` (Markdown tables and PNG figures, readable on
GitHub), a self-contained `index.html` (figures embedded), and a CSV of every table. Numbers are the mean ±
standard deviation over seeds of one profile; smoke-profile records are rendered too, marked as such (their
numbers come from a few iterations at reduced resolution and say nothing about the paper).
Reads records, prediction PNGs and (for the qualitative figure) the dataset; no model or training code.
"""
from __future__ import annotations

import base64
import csv
import html
import io
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from bench.errors import BenchError
from bench.published import number, read_rows, row_by
from bench.records import latest_profile_rows, profile_sets
from bench.stopping import STILL_IMPROVING, status_words, stop_of

METRICS = ("G", "C", "mIoU", "BF")
TABLE2_COLUMNS = {"building": "Building", "tree": "Tree", "sky": "Sky", "car": "Car", "sign_symbol": "SignSymbol",
                  "road": "Road", "pedestrian": "Pedestrian", "fence": "Fence", "column_pole": "Pole",
                  "side_walk": "Pavement", "bicyclist": "Bicyclist"}
VARIANT_PREFIX = {"median-frequency": "mf", "natural-frequency": "nf"}
NOT_LIKE_FOR_LIKE_T3 = ("not like for like: the paper trained on 3,433 road images (Table 3); "
                        "these runs use CamVid's 367")


def _paper_names() -> dict:
    from bench import architectures
    from bench.crf import POSTPROCESSED
    return {**{n: architectures.model_meta(n)["paper_name"] for n in architectures.list_models()},
            **{n: spec["paper_name"] for n, spec in POSTPROCESSED.items()}}


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


IN_BAND, OUT_OF_BAND = "✓", "✗"


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


def table1(groups, profile) -> Table | None:
    names = _paper_names()
    recs = {k: v for k, v in groups.items() if k[0] == "camvid-decoder-variants"}
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


NOT_RUN = "not run"


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
TABLE4_SUITES = ("sunrgbd-controlled",)
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
    if suite.endswith("-mfb"):
        notes.append("This suite uses median-frequency balancing; Table 3's rows use none: paper numbers shown for "
                     "orientation only.")
    from bench.crf import POSTPROCESSED
    if any(k[1] in POSTPROCESSED for k in recs):
        notes.append("DeepLab-LargeFOV-denseCRF: post-processing runs once, over the weights validation selected; its "
                     "scores are in the last column (the paper computed its CRF row at \"Max iter\" only).")
    return notes


def budget_tables(groups, profile, suite, paper_table: str) -> list[Table]:
    """Table 3 or 4 as the paper splits it by training budget: one table per column, every row of the paper's table
    (ours beside it, or "not run" where no record exists), then rows of ours the paper lacks. The first columns are
    the test scores at the run's test points in order; the last (the paper's "Max iter") the test scores at the
    iteration validation selected, with how each run stopped."""
    names = _paper_names()
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


def table3(groups, profile, suite) -> list[Table]:
    return budget_tables(groups, profile, suite, "table3")


def table4(groups, profile, suite) -> list[Table]:
    return budget_tables(groups, profile, suite, "table4")


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
    names = _paper_names()
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
    names = _paper_names()
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


def _mem_key(settings) -> str:
    return "device_used_MB" if settings["device"].startswith("cuda") else "process_peak_rss_growth_MB"


MIB_PER_MB = 1e6 / 2 ** 20  # profile records hold device memory in MB (10^6 bytes); Table 6 shows MiB


def _measured_mib(mem: dict, key: str):
    """A measured memory figure of a profile row in MiB (None where this device has no such measure)."""
    return mem[key] * MIB_PER_MB if mem.get(key) is not None else None


def caffe_counts(profiles) -> dict:
    """{model: Caffe-style memory count} from the newest profile row of each model that has one, whatever device
    profiled it (a count traced on the meta device, not a measurement: `bench.caffe_memory`)."""
    out = {}
    for rec in sorted(profiles, key=lambda r: str(r.get("finished_at", ""))):
        for m in rec["models"]:
            if m.get("caffe_style_memory"):
                out[m["model"]] = m["caffe_style_memory"]
    return out


def table6(latest: dict, key: str = "table6", counted: dict | None = None) -> Table | None:
    """Table 6 from one group of profile rows (``bench.records.profile_sets``): one device, one precision. Memory
    three ways, in MiB: what PyTorch's allocator needed at its peak, the Caffe-style count (every layer output kept,
    as the paper's Caffe did), and what the device showed (nvidia-smi's reading, CUDA context included; on a CPU
    the growth of the process's resident set) beside the paper's nvidia-smi figure."""
    names = _paper_names()
    members = [n for n in ("segnet", "deeplab-largefov", "fcn-learnt-deconv", "deconvnet") if n in latest]
    if not members:
        return None
    counted = counted or {}
    settings = latest[members[0]][1]
    gpu = settings["device"].startswith("cuda")
    used_key = _mem_key(settings)
    t = Table(key, f"Table 6: compute time and resources ({settings['device_name']}, {settings['dtype']}, "
              f"{'x'.join(map(str, latest[members[0]][2]))}). Cells: ours / paper where the paper has the measure",
              ["network", "forward ms", "backward ms", "train MiB allocator peak", "train MiB Caffe-style",
               "train MiB " + ("device" if gpu else "process RSS"), "inference MiB allocator peak",
               "inference MiB Caffe-style", "inference MiB " + ("device" if gpu else "process RSS"),
               "model size MB", "forward ratio", "inference Caffe-style ratio"],
              notes=["Paper: Table 6 (S1): Caffe on an NVIDIA Titan, times over 10 iterations at batch 1, memory from "
                     "nvidia-smi (training batch 4, inference batch 1), size of the caffemodel. Ratios are to SegNet "
                     "(ours / paper).",
                     "Memory in MiB (2^20 bytes, nvidia-smi's unit). Allocator peak: what PyTorch needed "
                     "(max_memory_allocated); device: total - free as nvidia-smi shows it, CUDA context included; "
                     "Caffe-style: every layer output kept in fp32 as Caffe holds it, plus the weights "
                     "(bench/caffe_memory.py; counted, so the same on any device), the measure comparable with the "
                     "paper's column and the one `bench check` judges the inference-memory claim on.",
                     *(["fp32 as PyTorch runs it: convolutions in TF32 (cudnn.allow_tf32, the default)."]
                       if gpu and settings.get("dtype") == "fp32" and settings.get("tf32_cudnn") else []),
                     "Absolute numbers depend on the hardware; the ratios between models are what compares."]
              + ([] if gpu else ["CPU profile: times and process memory of this CPU, not comparable with the paper's "
                                 "GPU."]))
    p_ref = row_by("table6", "network", "SegNet")
    ours_of = {}
    for m in members:
        r = latest[m][0]
        caffe = r.get("caffe_style_memory") or counted.get(m) or {}
        ours_of[m] = {"fwd": r["forward"]["median_ms"], "bwd": r["backward"]["median_ms"],
                      "train_alloc": _measured_mib(r["train_memory"], "allocator_peak_MB"),
                      "train_caffe": caffe.get("train_MiB"), "train": _measured_mib(r["train_memory"], used_key),
                      "infer_alloc": _measured_mib(r["inference_memory"], "allocator_peak_MB"),
                      "infer_caffe": caffe.get("inference_MiB"),
                      "infer": _measured_mib(r["inference_memory"], used_key),
                      "size": r["model_size_MB"]}
    ref = ours_of.get("segnet")
    for m in members:
        p = row_by("table6", "network", names[m]) or {}
        ours = ours_of[m]
        paper = {"fwd": number(p.get("forward_ms")), "bwd": number(p.get("backward_ms")),
                 "train": number(p.get("gpu_train_mem_MB")), "infer": number(p.get("gpu_infer_mem_MB")),
                 "size": number(p.get("model_size_MB"))}
        cells = [names[m] + _older_revision_mark(latest[m][0], m, t.notes)]
        for k in ("fwd", "bwd", "train_alloc", "train_caffe", "train", "infer_alloc", "infer_caffe", "infer", "size"):
            with_paper = k in paper
            cells.append(f"{fmt(ours[k], digits=1)}" + (f" / {fmt(paper[k], digits=1)}" if with_paper else ""))
            t.long.append({"table": key, "row": names[m], "column": k, "ours_mean": ours[k], "n": 1,
                           "paper": paper.get(k), "profile": settings["device"], "like_for_like": gpu})
        for k, pk in (("fwd", "forward_ms"), ("infer_caffe", "gpu_infer_mem_MB")):
            ours_ratio = ours[k] / ref[k] if ref and ref.get(k) and ours[k] is not None else None
            paper_ratio = (number(p.get(pk)) / number(p_ref[pk])) if p.get(pk) and p_ref else None
            cells.append(f"{fmt(ours_ratio)} / {fmt(paper_ratio)}")
        t.rows.append(cells)
    return t


def table6_tables(profiles) -> list[Table]:
    """Table 6 once per GPU precision measured (fp32, the paper's, first), else once from the newest CPU rows."""
    sets = profile_sets(profiles)
    gpu = [rows for (dev, _), rows in sets if dev == "cuda"] or [rows for _, rows in sets[:1]]
    counted = caffe_counts(profiles)
    tables = [table6(rows, "table6" if i == 0 else f"table6_{next(iter(rows.values()))[1].get('dtype')}", counted)
              for i, rows in enumerate(gpu)]
    return [t for t in tables if t]


OLDER_REVISION = "‡"


def _older_revision_mark(row: dict, model: str, notes: list) -> str:
    """" ‡" where a profile row was measured on an older revision of its model than the registry's (the note added
    once): its costs are shown, marked, until the model is profiled again."""
    from bench import architectures
    if row.get("revision", 1) >= architectures.model_revision(model):
        return ""
    note = (f"{OLDER_REVISION} profiled at an older revision of the model (the layers or initialisation changed "
            "since: `bench.architectures.model_meta(name)['revisions']`); run `bench profile` again for its current costs.")
    if note not in notes:
        notes.append(note)
    return f" {OLDER_REVISION}"


def table1_costs(profiles) -> Table | None:
    """Table 1's cost columns: parameters, storage multiplier and inference time, ours beside the paper's."""
    from bench import architectures  # the registry's meta only; no model is built
    latest = latest_profile_rows(profiles)
    names = _paper_names()
    order = [r["variant"] for r in read_rows("table1")]
    members = sorted((n for n in latest if names.get(n) in order), key=lambda n: order.index(names[n]))
    if not members:
        return None
    settings = latest[members[0]][1]
    t = Table("table1_costs", f"Table 1 cost columns ({settings['device_name']}, {settings['dtype']}, "
              f"{'x'.join(map(str, latest[members[0]][2]))}). Cells: ours / paper",
              ["variant", "trainable params (M)", "storage multiplier", "decoder keeps (first encoder)", "inference ms"],
              notes=["Paper: Table 1 (S1); inference time on an NVIDIA Titan (cuDNN v3), 360x480.",
                     "Storage multiplier: the paper's convention (pooling indices count as one map, feature maps as "
                     "their channel count), computed from the tensors the decoder actually keeps; the bytes are as "
                     "this implementation stores them (PyTorch keeps pool indices as int64)."]
              + ([] if settings["device"].startswith("cuda") else
                 ["CPU profile: times of this CPU, not comparable with the paper's GPU."]))
    for m in members:
        r = latest[m][0]
        p = row_by("table1", "variant", names[m]) or {}
        kept = r.get("decoder_storage") or {}
        trainable_m = (r.get("trainable_params") or architectures.model_meta(m).get("trainable_params")
                       or r["params"]) / 1e6
        t.rows.append([names[m] + _older_revision_mark(r, m, t.notes),
                       f"{trainable_m:.3f} / {p.get('params_M', '–')}",
                       f"{kept.get('multiplier_paper_convention', '–')} / {p.get('storage_mult', '–')}",
                       f"{kept.get('bytes', 0) / 1e6:.2f} MB: " + ("; ".join(kept.get("what", [])) or "nothing"),
                       f"{r['forward']['median_ms']:.1f} / {p.get('infer_ms', '–')}"])
        t.long.append({"table": "table1_costs", "row": names[m], "column": "inference_ms",
                       "ours_mean": r["forward"]["median_ms"], "n": 1, "paper": number(p.get("infer_ms")),
                       "profile": settings["device"], "like_for_like": settings["device"].startswith("cuda")})
    return t


# -- figures ---------------------------------------------------------------------------------------------------
def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return buf.getvalue()


MARKERS = "osD^vP*Xhp<>"
VARIANT_LINES = {None: "-", "median-frequency": "-", "natural-frequency": "--"}


def model_style(member: str) -> dict:
    """One colour and marker per registered model, the same in every figure of every report."""
    from bench import architectures
    import matplotlib
    names = architectures.list_models()
    i = names.index(member) if member in names else len(names) + sum(map(ord, member)) % 7
    return {"color": matplotlib.colormaps["tab20"](i % 20), "marker": MARKERS[i % len(MARKERS)]}


def _label(key) -> str:
    return key[1] + (f" [{key[2]}]" if key[2] else "")


def _panels(n: int, width: float = 3.4, height: float = 2.6, ncols: int = 4):
    """Small multiples: n panels in rows of ``ncols``; the unused ones hidden."""
    import matplotlib.pyplot as plt
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _by_member(recs_by_key) -> dict:
    out = defaultdict(list)
    for key in sorted(recs_by_key, key=lambda k: (k[1], k[2] or "")):
        out[key[1]].append(key)
    return out


def figure_curves(recs_by_key) -> bytes:
    """Validation G and mIoU against iterations: one panel per model, its variants as line styles."""
    from matplotlib.ticker import MaxNLocator
    members = _by_member(recs_by_key)
    fig, axes = _panels(len(members))
    for ax, (member, keys) in zip(axes, members.items()):
        style = model_style(member)
        for key in keys:
            val = recs_by_key[key][0]["curves"]["val"]
            its = [p["iteration"] for p in val]
            ls = VARIANT_LINES.get(key[2], ":")
            ax.plot(its, [p["mIoU"] for p in val], ls=ls, marker=style["marker"], ms=3, color=style["color"],
                    label=f"mIoU {key[2] or ''}".strip())
            ax.plot(its, [p["G"] for p in val], ls=ls, color=style["color"], alpha=0.45, label=f"G {key[2] or ''}".strip())
        ax.set_title(member, fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
        ax.set_xlabel("iteration", fontsize=8)
        ax.set_ylabel("validation (%)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="lower right")
    fig.suptitle("Validation G (light) and mIoU against iterations (first seed of each run)")
    fig.tight_layout()
    return _png(fig)


def figure_losses(recs_by_key, paths_by_key) -> bytes | None:
    """Training loss against iterations (each run's loss.npy, a running mean over 1 % of the run)."""
    from matplotlib.ticker import MaxNLocator
    curves = {}
    for key in recs_by_key:
        f = paths_by_key[key][0].parent / "loss.npy"
        try:
            loss = np.load(f)
        except (OSError, ValueError):
            continue
        if loss.ndim == 1 and loss.size:
            w = max(1, loss.size // 100)
            curves[key] = np.convolve(loss, np.ones(w) / w, mode="valid")
    if not curves:
        return None
    members = _by_member(curves)  # only runs whose loss could be read
    fig, axes = _panels(len(members))
    for ax, (member, keys) in zip(axes, members.items()):
        style = model_style(member)
        for key in keys:
            y = curves[key]
            ax.plot(np.arange(1, y.size + 1), y, ls=VARIANT_LINES.get(key[2], ":"), color=style["color"],
                    label=key[2] or member)
        ax.set_title(member, fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
        ax.set_xlabel("iteration", fontsize=8)
        ax.set_ylabel("training loss", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.suptitle("Training loss (running mean; first seed of each run)")
    fig.tight_layout()
    return _png(fig)


def figure_confusion(recs_by_key, class_names) -> bytes:
    """Test confusion matrices, rows normalised to the ground truth (recall per class), one panel per run."""
    keys = sorted(recs_by_key, key=lambda k: (k[1], k[2] or ""))
    fig, axes = _panels(len(keys), width=3.6, height=3.5)
    k = len(class_names)
    for ax, key in zip(axes, keys):
        cm = np.sum([np.asarray(r["test"]["confusion_matrix"], float)[:, :k] for r in recs_by_key[key]], axis=0)
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(100 * norm, vmin=0, vmax=100, cmap="viridis")
        ax.set_title(_label(key), fontsize=8)
        ax.set_xticks(range(k))
        ax.set_yticks(range(k))
        ax.set_xticklabels(class_names, rotation=90, fontsize=5)
        ax.set_yticklabels(class_names, fontsize=5)
        ax.set_xlabel("prediction", fontsize=7)
        ax.set_ylabel("ground truth", fontsize=7)
    fig.suptitle("Test confusion matrices, % of each ground-truth class (void ignored)")
    fig.tight_layout()
    return _png(fig)


def figure_per_class(recs_by_key, class_names) -> bytes:
    import matplotlib.pyplot as plt
    keys = sorted(recs_by_key, key=lambda k: (k[1], k[2] or ""))
    fig, ax = plt.subplots(figsize=(12, 4))
    width = 0.8 / max(1, len(keys))
    x = np.arange(len(class_names))
    for i, key in enumerate(keys):
        vals = [np.mean([r["test"]["per_class"][c]["accuracy"] or 0 for r in recs_by_key[key]]) for c in class_names]
        style = model_style(key[1])
        ax.bar(x + i * width, vals, width, label=_label(key), color=style["color"],
               hatch="//" if key[2] == "natural-frequency" else None, edgecolor="white", linewidth=0.3)
    ax.set_xticks(x + 0.4 - width / 2)
    ax.set_xticklabels(class_names, rotation=30)
    ax.set_ylabel("test class accuracy (%)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def paper_tradeoff_points() -> dict:
    """{paper network name: (GPU inference memory in MB from Table 6, mIoU at the most iterations from Table 3)}
    for the networks both tables report."""
    miou = {r["network"]: number(r["itmax_mIoU"]) for r in read_rows("table3")}
    return {r["network"]: (number(r["gpu_infer_mem_MB"]), miou[r["network"]]) for r in read_rows("table6")
            if miou.get(r["network"]) is not None and number(r["gpu_infer_mem_MB"]) is not None}


def figure_tradeoff(recs_by_key, profiles, with_paper: bool = False) -> tuple[bytes | None, list[str]]:
    """Test mIoU against inference memory: ours (one point per model and variant, from the latest profile
    records of one device) and, with ``with_paper``, the paper's (Table 3 mIoU against Table 6 memory) in a
    panel beside it, in the same colour and marker per model. Returns the PNG (None when there is nothing to
    draw) and notes naming the models left out for want of a profile record."""
    latest = latest_profile_rows(profiles)
    gpu = any(s["device"].startswith("cuda") for _, s, _ in latest.values())
    mem = {m: row["inference_memory"].get(_mem_key(st)) for m, (row, st, _) in latest.items()}
    pts = [(k, np.mean([r["test"]["mIoU"] for r in v]), mem.get(k[1])) for k, v in sorted(recs_by_key.items(),
           key=lambda kv: (kv[0][1], kv[0][2] or "")) if mem.get(k[1]) is not None]
    no_profile = sorted({k[1] for k in recs_by_key if mem.get(k[1]) is None})
    notes = [f"Not in the trade-off figure (no profile record; run `bench profile --model NAME`): "
             f"{', '.join(no_profile)}."] if no_profile else []
    paper_names = _paper_names()
    paper = {}
    if with_paper:
        members = {paper_name: member for member, paper_name in paper_names.items()}
        paper = {name: (m, miou, members.get(name)) for name, (m, miou) in paper_tradeoff_points().items()}
    if not pts and not paper:
        return None, notes
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2 if paper else 1, figsize=(11 if paper else 6, 4), squeeze=False, sharey=False)
    ax = axes[0][0]
    for k, miou, m in pts:
        style = model_style(k[1])
        ax.scatter(m, miou, color=style["color"], marker=style["marker"], s=45, label=_label(k))
    if pts:
        ax.legend(fontsize=7, loc="best")
    else:
        ax.text(0.5, 0.5, "no profile record of these models:\nrun `bench profile`", ha="center", va="center",
                transform=ax.transAxes, fontsize=9)
    ax.set_xlabel(f"inference memory, MB ({'GPU' if gpu else 'CPU process RSS growth'}, ours)")
    ax.set_ylabel("test mIoU (%)")
    ax.set_title("Ours", fontsize=10)
    ax.grid(alpha=0.3)
    if paper:
        ax = axes[0][1]
        for name, (m, miou, member) in sorted(paper.items()):
            style = model_style(member) if member else {"color": "grey", "marker": "o"}
            ax.scatter(m, miou, facecolors="none", edgecolors=[style["color"]], marker=style["marker"], s=55,
                       linewidths=1.5, label=name)
        ax.legend(fontsize=7, loc="best")
        ax.set_xlabel("GPU inference memory, MB (Table 6)")
        ax.set_ylabel("test mIoU (%), Table 3 (3,433 training images)")
        ax.set_title("Paper", fontsize=10)
        ax.grid(alpha=0.3)
    fig.suptitle("Accuracy against inference memory", fontsize=11)
    return _png(fig), notes


def spread_over_sequences(names, n: int) -> list[str]:
    """``n`` image names from as many sequences as possible (a name's part before its last "_", as in CamVid's
    0001TP_008550.png), evenly spaced within each sequence, the sequences taken in turn."""
    seqs = defaultdict(list)
    for name in sorted(names):
        seqs[name.rsplit("_", 1)[0]].append(name)
    quota = dict.fromkeys(seqs, 0)
    while sum(quota.values()) < min(n, len(names)):
        for seq in seqs:
            if quota[seq] < len(seqs[seq]) and sum(quota.values()) < n:
                quota[seq] += 1
    picks = {seq: [seqs[seq][(2 * j + 1) * len(seqs[seq]) // (2 * q)] for j in range(q)] for seq, q in quota.items()}
    return [picks[seq][j] for j in range(max(quota.values(), default=0)) for seq in seqs if j < quota[seq]]


def figure_qualitative(recs_by_key, records_paths, dataset, n_images=4, problems: list | None = None,
                       ncols: int = 6) -> bytes | None:
    """Test images, ground truth and each member's prediction in the dataset's colours (like the paper's
    Fig. 4): images from different sequences, each image's panels wrapped in rows of ``ncols``, and a legend
    of the class colours. An unreadable prediction PNG is drawn blank and named in ``problems``."""
    from matplotlib.patches import Patch

    from bench.datasets.camvid import read_label_png, resize_image, resize_label
    import matplotlib.pyplot as plt
    keys = sorted(recs_by_key, key=lambda k: (k[1], k[2] or ""))
    first = records_paths[keys[0]][0]
    folder = first.parent / "predictions"
    names = spread_over_sequences([p.name for p in folder.iterdir()], n_images) if folder.is_dir() else []
    if not names:
        return None
    size = tuple(recs_by_key[keys[0]][0]["predictions"]["resolution"])

    at_original = recs_by_key[keys[0]][0]["predictions"].get("at_original_size")

    def read_pred(path):
        try:
            if at_original:  # each at its image's own size: brought to the figure's
                return resize_label(read_label_png(path, None, dataset.void_label, what="prediction"), size)
            return read_label_png(path, size, dataset.void_label, what="prediction")
        except BenchError as exc:
            if problems is not None:
                problems.append(f"{exc} (drawn blank in the qualitative figure)")
            return np.zeros(size, np.uint8)
    try:
        samples = {s.name: s for s in dataset.samples("test")}
    except Exception:
        return None
    palette = np.array(list(dataset.palette) + [(0, 0, 0)] * (256 - len(dataset.palette)), dtype=np.uint8)
    n_panels = 2 + len(keys)
    ncols = min(ncols, n_panels)
    rows_per_image = -(-n_panels // ncols)
    nrows = rows_per_image * len(names)
    aspect = size[0] / size[1]
    handles = [Patch(facecolor=palette[c] / 255, edgecolor="grey", label=name)
               for c, name in enumerate(dataset.class_names)]
    handles.append(Patch(facecolor=palette[dataset.void_label] / 255, edgecolor="grey", label="void (not scored)"))
    legend_cols = min(len(handles), 2 * ncols)
    legend_h = 0.25 * -(-len(handles) // legend_cols) + 0.1
    fig_h = (2.3 * aspect + 0.45) * nrows + legend_h
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.3 * ncols, fig_h), squeeze=False)
    for i, name in enumerate(names):
        s = samples.get(name)
        img = resize_image(dataset.read_image(s), size) if s else np.zeros((*size, 3), np.uint8)
        gt = resize_label(dataset.read_label(s), size) if s else np.zeros(size, np.uint8)
        panels = [(name, img), ("ground truth", palette[gt])]
        for k in keys:
            p = records_paths[k][0].parent / "predictions" / name
            pred = read_pred(p) if p.is_file() else np.zeros(size, np.uint8)
            panels.append((k[1] + (f"\n[{k[2]}]" if k[2] else ""), palette[pred]))
        for j in range(rows_per_image * ncols):
            ax = axes[i * rows_per_image + j // ncols][j % ncols]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(panels):
                ax.set_visible(False)
                continue
            title, im = panels[j]
            ax.imshow(im)
            ax.set_title(title, fontsize=7)
    fig.legend(handles=handles, loc="lower center", ncol=legend_cols, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, legend_h / fig_h, 1, 1), h_pad=0.4, w_pad=0.3)
    return _png(fig)


# -- assembly --------------------------------------------------------------------------------------------------
def markdown_to_html(md: str, images: dict | None = None) -> str:
    """A report's Markdown as HTML (CommonMark with tables, by markdown-it-py; raw HTML in the Markdown is
    escaped). ``images``: {file name: PNG bytes} embedded as data URIs, so the page stands alone."""
    from markdown_it import MarkdownIt
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(md)
    for name, png in (images or {}).items():
        body = body.replace(f'src="{name}"', f'src="data:image/png;base64,{base64.b64encode(png).decode()}"')
    return body


def _html_page(title: str, md: str, images: dict | None = None) -> str:
    return HTML_TEMPLATE.format(title=html.escape(title), body=markdown_to_html(md, images))


HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}}table{{border-collapse:collapse;
font-size:12px;margin-bottom:1em}}td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}th{{background:#eee}}
img{{max-width:100%}}td:first-child,th:first-child{{text-align:left}}
blockquote{{margin:1em 0;padding:.6em 1em;background:#fff3cd;border:2px solid #d39e00;font-size:1.1em}}</style></head>
<body data-ok="0">
{body}
<script>
window.addEventListener("error", function () {{ document.body.dataset.error = "1"; }});
window.addEventListener("load", function () {{
  var imgs = Array.prototype.slice.call(document.images);
  document.body.dataset.images = imgs.length;
  document.body.dataset.ok = imgs.every(function (i) {{ return i.complete && i.naturalWidth > 0; }}) ? "1" : "0";
}});
</script></body></html>
"""


def _suite_file(suite: str) -> Path | None:
    from bench.config import load_suite
    try:
        return Path(load_suite(suite).path).resolve()
    except Exception:  # a suite of records whose TOML is not in this checkout
        return None


def _runs_without_records(suite: str, groups: dict) -> list[str]:
    """The suite's (member, variant) runs with no record among ``groups``; [] where the suite file is unknown."""
    from bench.config import load_suite
    try:
        spec = load_suite(suite)
    except BenchError:
        return []
    return [m + (f" [{v}]" if v else "") for m in spec.members for v in (spec.variants or (None,))
            if spec.applies(m, v) and (suite, m, v) not in groups]


def render_suite(suite, recs, paths, profiles, out_dir: Path, data_root=None, skipped: list | None = None,
                 superseded: list | None = None, selection: str = "", link_base: Path | None = None) -> Path:
    """One suite's report into ``out_dir``; table rows link their records relative to ``link_base`` (where the
    report will finally live; default ``out_dir``)."""
    from bench import datasets
    from bench.records import outdated_model, standing
    out_dir.mkdir(parents=True, exist_ok=True)
    outdated = [(p, r) for p, r in zip(paths, recs) if standing(r) == "outdated-model"]
    usable = [(p, r) for p, r in zip(paths, recs) if standing(r) != "outdated-model"]
    if not usable:
        return _render_without_records(suite, out_dir, link_base, outdated)
    by_profile = defaultdict(list)
    for p, r in usable:
        by_profile[r["profile"]].append((p, r))
    profile = "full" if "full" in by_profile else sorted(by_profile)[0]
    sets = recipe_sets(by_profile[profile])
    groups, gpaths = figure_groups(sets)
    dataset_name = next(iter(groups.values()))[0]["dataset"]
    try:
        ds = datasets.get_dataset(dataset_name, data_root)
    except Exception:
        ds = None
    tables = []
    for i, (heading, set_groups, _) in enumerate(sets):
        set_tables = [t for t in paper_tables(suite, set_groups, profile) if t]
        if heading:  # records of an earlier recipe: their own tables, never pooled with current ones
            for t in set_tables:
                t.key, t.title = f"{t.key}_earlier{i}", f"{t.title}. {heading}"
        tables += set_tables
        if i == 0:
            tables += [t for t in (*(table6_tables(profiles) if suite.startswith("camvid-controlled") else []),
                                   table1_costs(profiles) if suite == "camvid-decoder-variants" else None) if t]
    link_of = {id(r): Path(os.path.relpath(Path(p).resolve(), Path(link_base or out_dir).resolve())).as_posix()
               for p, r in zip(paths, recs)}
    for t in tables:
        t.link_records(link_of)
    figures = [("curves.png", "Validation G and mIoU against iterations", figure_curves(groups))]
    losses = figure_losses(groups, gpaths)
    if losses:
        figures.append(("loss.png", "Training loss", losses))
    class_names = list(next(iter(groups.values()))[0]["test"]["per_class"])
    figures.append(("per_class.png", "Per-class test accuracy", figure_per_class(groups, class_names)))
    figures.append(("confusion.png", "Test confusion matrices", figure_confusion(groups, class_names)))
    trade, missing = figure_tradeoff(groups, profiles, with_paper=suite.startswith("camvid-controlled"))
    if trade:
        figures.append(("tradeoff.png", "Accuracy against inference memory (ours; the paper's beside)"
                        if suite.startswith("camvid-controlled") else "Accuracy against inference memory", trade))
    else:
        missing.append("Accuracy against inference memory: no profile record (run `bench profile`).")
    bad_predictions: list = []
    qual = figure_qualitative(groups, gpaths, ds, problems=bad_predictions) if ds else None
    skipped = skipped if skipped is not None else []
    skipped.extend(bad_predictions)
    if qual:
        figures.append(("qualitative.png", f"Test images, ground truth and predictions ({dataset_name} colours)", qual))
    else:
        missing.append("Qualitative grid: the dataset was not found under the data root.")
    for name, _, png in figures:
        (out_dir / name).write_bytes(png)
    for t in tables:
        t.write_csv(out_dir / f"{t.key}.csv")
    seeds = sorted({r["seed"] for rs in groups.values() for r in rs})
    commits = sorted({(r["provenance"]["git"]["commit"] or "unknown")[:10] for rs in groups.values() for r in rs})
    header = [f"# {suite}: ours beside the paper", "",
              f"Profile **{profile}**, seeds {', '.join(map(str, seeds))}, {sum(len(v) for v in groups.values())} "
              f"records, commits {', '.join(commits)}. Rendered by `bench report` from `results/{suite}/`.", ""]
    suite_file = _suite_file(suite)
    if suite_file is not None:
        rel = Path(os.path.relpath(suite_file, Path(link_base or out_dir).resolve())).as_posix()
        header += [f"Recipe: [{suite_file.name}]({rel}) (the suite's TOML, sources in its comments); each record's "
                   "run.json holds the config it ran with, and its log (where linked) the lines the run printed.", ""]
    if profile == "smoke":
        header += ["> **Smoke records**: a few iterations at reduced resolution on a CPU. They show that the harness "
                   "runs end to end; their numbers say nothing about the paper.", ""]
    else:
        absent = _runs_without_records(suite, groups)
        if absent:
            header += [f"> **Partial**: no {profile}-profile record yet of {', '.join(absent)}: the tables below "
                       "show only the runs recorded so far.", ""]
    other = [p for p in by_profile if p != profile]
    if other:
        header += [f"Records of other profiles not shown: {', '.join(other)}.", ""]
    if selection:
        header += [f"Records selected by {selection}.", ""]
    if sets[0][0]:
        header += [f"> **No {profile}-profile record under the suite's current recipe yet**: the tables below show "
                   "records made under earlier recipes, each set under its own recipe.", ""]
    if outdated:
        header += [f"{len(outdated)} record(s) made with an older revision of their model are superseded and not "
                   "shown: " + "; ".join(f"{r['member']} {r['run_id']} ({outdated_model(r)})" for _, r in outdated)
                   + ".", ""]
    older = [(r, new) for _, r, new in superseded or [] if r["profile"] == profile]
    if older:
        header += [f"{len(older)} older record(s) of the same seed and recipe are not pooled (the latest wins): "
                   + "; ".join(f"{r['member']} {r['run_id']} (replaced by {new.parent.name})" for r, new in older)
                   + ".", ""]
    md = "\n".join(header) + "\n## Tables\n\n" + "\n".join(t.markdown() for t in tables)
    md += "\n## Figures\n\n" + "\n".join(f"### {title}\n\n![{title}]({name})\n" for name, title, _ in figures)
    suite_skipped = [line for line in skipped if f"/{suite}/" in line or "/profile/" in line]
    if suite_skipped:
        missing += [f"Skipped: {line}" for line in suite_skipped]
    if missing:
        md += "\n" + "\n".join(f"- {m}" for m in missing) + "\n"
    md += "\nCSV: " + ", ".join(f"[{t.key}.csv]({t.key}.csv)" for t in tables) + "\n"
    (out_dir / "README.md").write_text(md)
    (out_dir / "index.html").write_text(_html_page(suite, md, {name: png for name, _, png in figures}))
    return out_dir


def paper_tables(suite: str, groups: dict, profile: str) -> list:
    """The paper's tables a suite reproduces, from one set of records ({(suite, member, variant): [records]})."""
    if suite == "camvid-decoder-variants":
        return [table1(groups, profile)]
    if suite.startswith("camvid-controlled"):
        return [*table3(groups, profile, suite), table2(groups, profile, suite)]
    if suite in TABLE4_SUITES:
        return [*table4(groups, profile, suite), table5(groups, profile, suite)]
    return [table_selected(groups, profile, suite)]


def recipe_sets(items) -> list[tuple[str, dict, dict]]:
    """Records of one profile as sets never pooled with each other: first those of the suite's current recipe (per
    run, the newest recipe where several were run), then one set per earlier recipe, each with a heading naming
    the recipe values it was recorded with. Each set: (heading, {key: [records]}, {key: [paths]})."""
    from bench.records import current_recipe, recipe_changes, recipe_fingerprint
    by_set = defaultdict(lambda: defaultdict(list))
    for p, r in items:
        key = (r["suite"], r["member"], r.get("variant"))
        if current_recipe(r):
            label = ""
        else:
            recorded = r.get("config") or {}
            then = [c.split(" -> ")[0] for c in recipe_changes(r)]
            then = [c for c in then if c.split(" ")[0] in recorded and not c.endswith((" None", " []", " ()"))]
            label = (f"Earlier recipe: recorded with {', '.join(then)}, stopping by {stop_of(r)['rule_text']} "
                     "(today's recipe differs)")
        by_set[label][key].append((recipe_fingerprint(r), str(r.get("finished_at")), p, r))
    out = []
    for label in sorted(by_set):  # "" (current) first
        groups, gpaths = {}, {}
        for key, entries in by_set[label].items():
            newest = max(entries, key=lambda e: e[1])[0]  # one recipe per run in a set: the newest
            kept = [(p, r) for fp, _, p, r in entries if fp == newest]
            groups[key], gpaths[key] = [r for _, r in kept], [p for p, _ in kept]
        out.append((label, groups, gpaths))
    return out


def figure_groups(sets) -> tuple[dict, dict]:
    """The records the figures draw: the current recipe's, and for runs it lacks the first earlier set's."""
    groups, gpaths = {}, {}
    for _, set_groups, set_paths in sets:
        for key in set_groups:
            if key not in groups:
                groups[key], gpaths[key] = set_groups[key], set_paths[key]
    return groups, gpaths


def _render_without_records(suite: str, out_dir: Path, link_base: Path | None, outdated=()) -> Path:
    """The page of a suite with no usable record yet: its paper tables, ours "not run"."""
    tables = [t for t in paper_tables(suite, {}, "full") if t]
    for t in tables:
        t.write_csv(out_dir / f"{t.key}.csv")
    from bench.records import outdated_model
    header = [f"# {suite}: ours beside the paper", "", f"No record of this suite yet: the tables show the paper's "
              f"numbers with \"{NOT_RUN}\" for ours. Run `bench run --suite {suite}` and render again.", ""]
    if outdated:
        header += [f"{len(outdated)} record(s) made with an older revision of their model are superseded and not "
                   "shown: " + "; ".join(f"{r['member']} {r['run_id']} ({outdated_model(r)})" for _, r in outdated)
                   + ".", ""]
    suite_file = _suite_file(suite)
    if suite_file is not None:
        rel = Path(os.path.relpath(suite_file, Path(link_base or out_dir).resolve())).as_posix()
        header += [f"Recipe: [{suite_file.name}]({rel}) (the suite's TOML, sources in its comments).", ""]
    md = "\n".join(header) + "\n## Tables\n\n" + "\n".join(t.markdown() for t in tables)
    md += "\nCSV: " + ", ".join(f"[{t.key}.csv]({t.key}.csv)" for t in tables) + "\n"
    (out_dir / "README.md").write_text(md)
    (out_dir / "index.html").write_text(_html_page(suite, md, {}))
    return out_dir


def render_reports(results="results", out="reports", data_root=None, problems: list | None = None,
                   profile: str | None = None, commit: str | None = None, since: str | None = None,
                   runs: str | None = None) -> list[Path]:
    """Renders every suite's report into a temporary folder beside ``out`` and swaps it in at the end, so a
    failure never leaves an output that mixes old and new. Unusable records or profiles are skipped, each with
    one line naming the file, appended to ``problems`` and listed in the report.

    Only the records matching ``profile``, ``commit``, ``since`` and ``runs`` are shown (see
    `bench.records.select_records`); of several records of the same seed and recipe the latest is shown and
    the report names the others."""
    import shutil
    from bench.records import latest_per_seed, load_profiles, load_records, select_records
    from bench.safety import write_error
    results, out = Path(results), Path(out)
    if not results.is_dir():
        raise BenchError(f"{results}: results folder not found")
    training, skipped = load_records(results)
    selected = select_records(training, profile, commit, since, runs)
    selection = ", ".join(f"--{k} {v}" for k, v in (("profile", profile), ("commit", commit), ("since", since),
                                                     ("runs", runs)) if v)
    if selection and training and not selected:  # a typo in a filter must not render an empty report silently
        raise BenchError(f"{results}: none of its {len(training)} training records match {selection}; nothing "
                         f"rendered, {out} left as it was (`bench runs` lists the records)")
    training, superseded = latest_per_seed(selected)
    profiles, bad_profiles = load_profiles(results)
    skipped += bad_profiles
    profiles.sort(key=lambda r: (r["settings"]["device"].startswith("cuda"), r.get("finished_at", "")))
    suites = defaultdict(list, {s: [] for s in TABLE4_SUITES})  # rendered before their first record too
    for p, r in training:
        suites[r["suite"]].append((p, r))
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        written = []
        for suite, items in sorted(suites.items()):
            render_suite(suite, [r for _, r in items], [p for p, _ in items], profiles, tmp / suite, data_root,
                         skipped=skipped, superseded=[o for o in superseded if o[1]["suite"] == suite],
                         selection=selection, link_base=out / suite)
            written.append(out / suite)
        index = ["# Reports", "", "Rendered by `bench report` from the records under `results/`"
                 + (f", selected by {selection}" if selection else "") + ".", ""]
        index += [f"- [{p.name}]({p.name}/README.md)" for p in written] or ["No training records yet."]
        if skipped:
            index += ["", "Skipped (unusable files):", ""] + [f"- {line}" for line in skipped]
        (tmp / "README.md").write_text("\n".join(index) + "\n")
        page = "\n".join(index).replace("/README.md)", "/index.html)") + "\n"
        (tmp / "index.html").write_text(_html_page("Reports", page))
        if out.exists():
            os.rename(out, old)
        os.rename(tmp, out)
    except BaseException as exc:  # put the previous report back whole
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out.exists():
            os.rename(old, out)
        if isinstance(exc, OSError):
            raise write_error(out / "README.md", exc, "the report") from None
        raise
    shutil.rmtree(old, ignore_errors=True)
    if problems is not None:
        problems.extend(skipped)
    return written
