"""The paper's tables with ours beside them: the `Table` (Markdown and CSV, grouped metric columns, Δ marked
by `bench check`'s band), Table 1, the budget tables (3 and 4, one function), Tables 2 and 5, and the table of any
other suite; every row of the paper's table present, "not run" where no record exists.
"""
from __future__ import annotations

import numpy as np

from bench.architectures import paper_names
from bench.published import number, read_rows, row_by
from bench.report.table import (ACKNOWLEDGED, IN_BAND, NOT_RUN, OUT_OF_BAND, Cell, Table, delta_cell, fmt, mean_std,
                                metric_groups)
from bench.stopping import STILL_IMPROVING, status_words, stop_of

METRICS = ("G", "C", "mIoU", "BF")
TABLE2_COLUMNS = {"building": "Building", "tree": "Tree", "sky": "Sky", "car": "Car", "sign_symbol": "SignSymbol",
                  "road": "Road", "pedestrian": "Pedestrian", "fence": "Fence", "column_pole": "Pole",
                  "side_walk": "Pavement", "bicyclist": "Bicyclist"}


VARIANT_PREFIX = {"median-frequency": "mf", "natural-frequency": "nf"}
NOT_LIKE_FOR_LIKE_T3 = ("not like for like: the paper trained on 3,433 road images (Table 3); "
                        "these runs use CamVid's 367")
DELTA_NOTE = (f"Δ = ours − paper. {IN_BAND}: inside `bench check`'s tolerance band for the column; {OUT_OF_BAND}: "
              f"outside; {ACKNOWLEDGED}: outside, a difference acknowledged in the rules (its reason in the cell's "
              "tooltip and in `bench/published/check_rules.json`); unmarked: no band for the column. Bold: the best "
              "of ours in the column. \"records\": each seed's run.json (s0, s1, …) and training log.")
__all__ = ["ACKNOWLEDGED", "IN_BAND", "NOT_RUN", "OUT_OF_BAND", "Table", "fmt", "mean_std"]


def _cells(t: Table, cells: list, ours_vals, paper, row, column, profile, like=True, tolerance=None,
           acknowledged: str = ""):
    """Appends three cells, ours (mean ± std), paper, and Δ (`delta_cell`: marked by `bench check`'s band where
    the column has one), to ``cells``; keeps the numbers long-form for the CSV."""
    m, s, n = mean_std(ours_vals)
    delta = (m - paper) if (m is not None and paper is not None) else None
    t.long.append({"table": t.key, "row": row, "column": column, "ours_mean": m, "ours_std": s, "n": n,
                   "paper": paper, "delta": delta, "profile": profile, "like_for_like": like})
    t.ours.setdefault(len(cells), {})[len(t.rows)] = m
    cells += [fmt(m, s), "–" if paper is None else f"{paper:.2f}", delta_cell(delta, tolerance, acknowledged)]


def _not_run_cells(cells: list, papers) -> list:
    """Ours "not run" beside each paper value (None: the paper has none)."""
    for paper in papers:
        cells += [NOT_RUN, "–" if paper is None else f"{paper:.2f}", "–"]
    return cells


def _ours_cell(t: Table, cells: list, ours_vals, row, column, profile, like=True):
    """Appends our mean ± std alone (no published value for this cell)."""
    m, s, n = mean_std(ours_vals)
    t.long.append({"table": t.key, "row": row, "column": column, "ours_mean": m, "ours_std": s, "n": n,
                   "paper": None, "delta": None, "profile": profile, "like_for_like": like})
    t.ours.setdefault(len(cells), {})[len(t.rows)] = m
    cells.append(fmt(m, s))


def check_band(suite: str, variant: str | None) -> dict | None:
    """`bench check`'s band for a suite's records of ``variant`` (None where none applies), with
    ``acknowledged``: {rule id: why} of the band's differences acknowledged in the rules."""
    from bench.check import load_rules
    rules = load_rules()
    for band in rules.get("bands", []):
        if band["suite"] == suite and band.get("variant") == variant:
            acks = {a["rule"]: a.get("why", "") for a in rules.get("acknowledged", [])
                    if a["rule"].startswith(band["id"] + ":")}
            return {**band, "acknowledged": acks}
    return None


def band_marks(suite: str, variant: str | None, member: str, profile: str) -> tuple[dict, dict]:
    """({metric: tolerance}, {metric: why acknowledged}) of the band judging a member's full-profile records."""
    band = check_band(suite, variant) if profile == "full" else None
    if band is None:
        return {}, {}
    acks = {m: band["acknowledged"].get(f"{band['id']}:{member}:{m}", "") for m in band["tolerance"]}
    return band["tolerance"], acks


TRAIN_MIOU_CONVENTION = "acc/(2−acc)"  # bench.metrics.miou_false_positives_equal_false_negatives
TABLE1_NOTES = [
    "Paper: Table 1 (S1, arXiv 1511.00561v3), median-frequency (authors' prototxt weights) and natural-frequency "
    "halves; every variant of the paper is a row, \"not run\" where we have no record.",
    "Train scores are G, C, mIoU on the training set at the selected iteration (the paper reports no train BF). Train "
    "mIoU two ways: \"ours\" from the dataset-level confusion matrix (as the test mIoU, compute_test_results.m); "
    f"\"{TRAIN_MIOU_CONVENTION}\" the mean over classes of each class's accuracy / (2 − accuracy), its IoU were its "
    "false positives as many as its false negatives. The paper's train mIoU is compared with the latter: every one of "
    "its 16 values lies 0 to 1.04 points above C/(2−C) of its own train C, this mean's lower bound (issue 34). "
    "Records made before the train confusion matrix was kept show \"–\" there.",
    f"\"Stopped\": how each run ended (the suite's rule: the training loss converged; \"improving\" where the "
    "selected iteration was the last evaluated; the full words in the cell's tooltip).",
]


def _table1_rows(recs: dict) -> list[tuple[str, str]]:
    """(paper name, member) of every Table 1 variant in the paper's order, then members the paper lacks."""
    names = paper_names()
    member_of = {v: k for k, v in names.items()}
    rows = [(r["variant"], member_of.get(r["variant"], r["variant"])) for r in read_rows("table1")]
    extra = sorted({k[1] for k in recs} - {m for _, m in rows})
    return rows + [(names.get(m, m), m) for m in extra]


def table1(groups, profile, suite) -> list[Table]:
    """Table 1: one table of test scores per balancing, every variant of the paper a row (\"not run\" where no
    record exists), Δ marked by `bench check`'s band; then the train scores of the runs recorded."""
    recs = {k: v for k, v in groups.items() if k[0] == suite}
    balancings = list(VARIANT_PREFIX) + sorted({k[2] or "" for k in recs} - set(VARIANT_PREFIX))
    tables = []
    for variant in balancings:
        pre = VARIANT_PREFIX.get(variant, "")
        if not pre and not any((k[2] or "") == variant for k in recs):
            continue
        t = Table("table1", f"Table 1, {variant or 'no'} balancing: test scores on CamVid ({profile} profile), ours "
                  "(mean ± std over seeds) beside the paper's", ["variant", *metric_groups(METRICS), "stopped"],
                  notes=TABLE1_NOTES)
        for name, member in _table1_rows(recs):
            key = (suite, member, variant or None)
            row = row_by("table1", "variant", name) or {}
            papers = [number(row.get(f"{pre}_test_{m}", "")) if pre else None for m in METRICS]
            if key not in recs:
                if row:
                    t.rows.append(_not_run_cells([name], papers) + [NOT_RUN])
                    t.row_records.append([])
                continue
            tolerance, acks = band_marks(suite, variant or None, member, profile)
            cells = [name]
            for m, paper in zip(METRICS, papers):
                _cells(t, cells, [r["test"][m] for r in recs[key]], paper, f"{name} [{variant}]", f"test_{m}",
                       profile, tolerance=tolerance.get(m), acknowledged=acks.get(m, ""))
            t.rows.append(cells + [stop_cell(recs[key])])
            t.row_records.append(recs[key])
        t.mark_best()
        tables.append(t)
    train = table1_train(recs, profile)
    return tables + ([train] if train.rows else [])


def table1_train(recs: dict, profile: str) -> Table:
    """Table 1's train columns (G, C, mIoU at the selected iteration) of the runs recorded."""
    t = Table("table1_train", f"Table 1: train scores at the selected iteration ({profile} profile)",
              ["variant", "balancing", *metric_groups(("G", "C"), "train "),
               ("train mIoU", ["ours", TRAIN_MIOU_CONVENTION, "paper", "Δ"])], notes=TABLE1_NOTES)
    for name, member in _table1_rows(recs):
        for variant in sorted({k[2] for k in recs if k[1] == member}, key=lambda v: v or ""):
            key = next(k for k in recs if k[1] == member and k[2] == variant)
            pre = VARIANT_PREFIX.get(variant or "", "")
            row = row_by("table1", "variant", name) or {}
            label = f"{name} [{variant}]"

            def paper(column):
                return number(row.get(f"{pre}_{column}", "")) if pre else None
            train = [r.get("train") or {} for r in recs[key]]
            cells = [name, variant or "-"]
            for m in ("G", "C"):
                _cells(t, cells, [tr.get(m) for tr in train], paper(f"train_{m}"), label, f"train_{m}", profile)
            _ours_cell(t, cells, [tr.get("mIoU") for tr in train], label, "train_mIoU", profile)
            _cells(t, cells, [tr.get("mIoU_fp_equal_fn") for tr in train], paper("train_mIoU"), label,
                   "train_mIoU_fp_equal_fn", profile)
            t.rows.append(cells)
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


def short_status(record: dict) -> str:
    """How a run ended in a table cell's few words: "converged at 12,000", "cap at 14,000 (improving)"."""
    stop = stop_of(record)
    words = {"plateau": "converged", "loss-converged": "converged", "cap": "cap", "schedule": "fixed schedule",
             "deadline": "deadline"}
    text = words.get(stop["reason"], stop["reason"])
    if stop.get("iteration") and stop["reason"] != "schedule":
        text += f" at {stop['iteration']:,}"
    if stop.get("selected_at_last_evaluation") and not stop["converged"]:
        text += " (improving)"
    return text


def stop_cell(recs) -> Cell:
    """How a row's runs ended, each different way once; the full words (`bench.stopping.status_words`) as tooltip."""
    return Cell("; ".join(dict.fromkeys(short_status(r) for r in recs)) or "–",
                title="; ".join(dict.fromkeys(status_words(r) for r in recs)))


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
                     f"training images; stopping: {stop_of(first)['rule_text']}. The first tables are the test "
                     "scores at the run's test points (column \"updates\"); the last, at the iteration the "
                     "validation selected. The paper's are its test points and \"Max iter\", "
                     f"{spec['paper_training']}.")
    notes.append(f"Paper: {spec['title']} (S1); every network of the paper is a row, \"{NOT_RUN}\" where we have no "
                 f"record. \"Stopped\": how each run ended; \"improving\" where the selected iteration was the last "
                 f"evaluated ({STILL_IMPROVING}; the full words in the cell's tooltip).")
    if recs and paper_table == "table3" and first.get("config", {}).get("class_weighting", "natural") != "natural":
        notes.append("This suite uses median-frequency balancing; Table 3's rows use none: paper numbers shown for "
                     "orientation only.")
    from bench.architectures import postprocessed_members
    if any(k[1] in postprocessed_members() for k in recs):
        notes.append("DeepLab-LargeFOV-denseCRF: post-processing runs once, over the weights validation selected; its "
                     "scores are in the last table (the paper computed its CRF row at \"Max iter\" only).")
    return notes


def budget_tables(groups, profile, suite, paper_table: str) -> list[Table]:
    """Table 3 or 4 as the paper splits it by training budget: one table per column, every row of the paper's table
    (ours beside it, or "not run" where no record exists), then rows of ours the paper lacks. The first tables are
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
        title = (f"{spec['title']}, {lab} iterations column ({suite}, {profile} profile): ours "
                 + ("at the iteration validation selected" if last else f"at test point {i + 1} (the paper's {lab})"))
        header = ["network", ("iterations", ["ours", "paper"]) if last else "updates", *metric_groups(METRICS)]
        t = Table(f"{base}_{col}", title, header + (["stopped"] if last else []), notes=notes)
        for name in order:
            row, key = paper_rows.get(name, {}), by_row.get(name)
            papers = [number(row.get(f"{col}_{m}", "")) for m in METRICS]
            its = [NOT_RUN] + ([row.get("max_iter") or "–"] if last else [])
            if key is None:
                t.rows.append(_not_run_cells([name, *its], papers) + ([NOT_RUN] if last else []))
                t.row_records.append([])
                continue
            if last:
                points = [{**r["test"], "iteration": r["selected"]["iteration"]} for r in recs[key]]
            else:
                points = [r["budgets"][i] if len(r.get("budgets", [])) > i else None for r in recs[key]]
            its[0] = ", ".join(f"{n:,}" for n in sorted({p["iteration"] for p in points if p and "iteration" in p}))
            shown = row_name(names, key[1], recs[key], t.notes) + (MEDIAN_FREQUENCY_LINE if key[2] == "median-frequency"
                                                                     else "")
            cells = [shown, *[c or "–" for c in its]]
            for m, paper in zip(METRICS, papers):
                _cells(t, cells, [p[m] if p else None for p in points], paper, name, f"{lab}_{m}", profile, like=False)
            t.rows.append(cells + ([stop_cell(recs[key])] if last else []))
            t.row_records.append(recs[key])
        t.mark_best()
        tables.append(t)
    return tables


def class_key(name: str) -> str:
    """A class name as the paper's tables and our datasets both spell it: "Night_stand", "night stand" -> "nightstand"."""
    return name.lower().replace("_", "").replace(" ", "")


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
    ours_names = {class_key(n): n for n in (recs[0]["test"]["per_class"] if recs else {})}
    for row in read_rows("table5"):
        paper = number(row["accuracy"])
        name = ours_names.get(class_key(row["class"]))
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


def study_statements(suite: str) -> list[tuple[str, str]]:
    """(what the source study states, its source) for a suite that reproduces a study without a paper table
    (voc2012-transfer: bench/published/voc2012_study.csv), e.g. "The study states for SegNet fine-tuned on val:
    G above 79"; [] for other suites."""
    rows = [r for r in read_rows("voc2012_study") if r["study"] == suite] if suite == "voc2012-transfer" else []
    return [(f"The study states for {r['network']} {r['variant']} on {r['split']}: {r['metric']} {r['relation']} "
             f"{r['value']}", r["source"]) for r in rows]


def table_selected(groups, profile, suite) -> Table | None:
    """For a suite without a paper table (voc2012-transfer): G, C, mIoU and BF at the iteration validation
    selected, one row per member and variant, with what the source study states beside it where it does."""
    names = paper_names()
    recs = {k: v for k, v in groups.items() if k[0] == suite}
    if not recs:
        return None
    notes = ["Test scores at the iteration of the best validation G (mean ± std over seeds)."]
    notes += [f"{line} ({source})." for line, source in study_statements(suite)]
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
