"""`bench check`: the regression gate. Recorded results against the published numbers, under rules kept as data
(`bench/published/check_rules.json`), and every record's committed test predictions re-scored.

Outcomes: "pass", "fail", "differs" (a failed band or claim acknowledged in the rules file, with what was
examined: the paper's finding does not hold here and the report says so), or "not run" (with the reason) for a
rule that has no records to judge; a rule that did not run is never reported as passed. The gate fails when any
outcome is "fail": a re-scored prediction that changed, an unusable record, a band or claim newly out of line.
Needs no model or training code: it reads records, prediction PNGs and the dataset's labels.
"""
from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from bench.errors import BenchError
from bench.published import FOLDER, number, row_by
from bench.records import latest_per_seed, latest_profile_rows, load_profiles, load_records

RULES = FOLDER / "check_rules.json"
RESCORE_TOLERANCE = 1e-6  # percent points; re-scoring is exact


def load_rules(path: Path = RULES) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BenchError(f"{path}: cannot read the check rules ({exc})") from None


def _paper_names() -> dict:
    import architectures  # names only; models are not built
    from bench.crf import POSTPROCESSED
    return {**{n: architectures.model_meta(n)["paper_name"] for n in architectures.list_models()},
            **{n: spec["paper_name"] for n, spec in POSTPROCESSED.items()}}


def group_training(records: list[tuple[Path, dict]], profile: str = "full") -> dict:
    """{(suite, member, variant): [test scores of each seed]} for records of one profile; of several records of
    one seed only the latest (never pooled)."""
    out = defaultdict(list)
    for _, rec in latest_per_seed(records)[0]:
        if rec.get("kind") == "training-run" and rec.get("profile") == profile:
            out[(rec["suite"], rec["member"], rec.get("variant"))].append(rec)
    return out


def _mean(recs, metric, split="test"):
    vals = [r[split][metric] for r in recs if r.get(split) and r[split].get(metric) is not None]
    return float(np.mean(vals)) if vals else None


def check_bands(rules, full) -> list[dict]:
    names = _paper_names()
    out = []
    for band in rules.get("bands", []):
        keys = [k for k in full if k[0] == band["suite"] and k[2] == band.get("variant")]
        if not keys:
            out.append({"rule": band["id"], "status": "not run",
                        "detail": f"no full-profile records of {band['suite']}" +
                                  (f" / {band['variant']}" if band.get("variant") else "")})
            continue
        for key in sorted(keys):
            row = row_by(band["table"], band["key"], names.get(key[1], ""))
            if row is None:
                out.append({"rule": f"{band['id']}:{key[1]}", "status": "not run",
                            "detail": f"{key[1]} has no row in {band['table']}"})
                continue
            for metric, column in band["columns"].items():
                paper = number(row[column])
                ours = _mean(full[key], metric, band.get("split", "test"))
                tol = band["tolerance"][metric]
                if paper is None or ours is None:
                    status, detail = "not run", "no published or recorded value"
                else:
                    status = "pass" if abs(ours - paper) <= tol else "fail"
                    detail = f"ours {ours:.2f} (n={len(full[key])}) vs paper {paper:.2f}, |delta| {abs(ours - paper):.2f} <= {tol}"
                out.append({"rule": f"{band['id']}:{key[1]}:{metric}", "status": status, "detail": detail})
    return out


def _get(d, dotted):
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def check_claims(rules, full, profiles) -> list[dict]:
    out = []
    for c in rules.get("claims", []):
        rid = c["id"]
        if c["kind"] in ("within", "greater"):
            a, b = full.get((c["suite"], c["a"], c.get("variant"))), full.get((c["suite"], c["b"], c.get("variant")))
            if not a or not b:
                out.append({"rule": rid, "status": "not run", "detail": f"needs full-profile records of {c['a']} and {c['b']} "
                                                                        f"in {c['suite']}"})
                continue
            va, vb = _mean(a, c["metric"]), _mean(b, c["metric"])
            ok = abs(va - vb) <= c["tolerance"] if c["kind"] == "within" else va > vb
            out.append({"rule": rid, "status": "pass" if ok else "fail",
                        "detail": f"{c['text']}: {c['a']} {va:.2f}, {c['b']} {vb:.2f}"})
        elif c["kind"] == "profile-min":
            # the newest GPU row of each model in the rule's precision (the paper's Table 6: Caffe, fp32)
            latest = latest_profile_rows(profiles, device="cuda", dtype=c.get("dtype", "fp32"))
            if not all(m in latest for m in c["models"]):
                out.append({"rule": rid, "status": "not run", "detail": f"needs a GPU {c.get('dtype', 'fp32')} "
                                                                         "profile of " + ", ".join(c["models"])})
                continue
            values = {m: _get(latest[m][0], c["metric"]) for m in c["models"]}
            best = min(values, key=lambda m: values[m])
            out.append({"rule": rid, "status": "pass" if best == c["expect"] else "fail",
                        "detail": f"{c['text']} ({c.get('dtype', 'fp32')}): "
                                  + ", ".join(f"{m} {v:.1f}" for m, v in values.items())})
        else:
            raise BenchError(f"{RULES}: unknown claim kind {c['kind']!r} in {rid}")
    return out


def rescore(path: Path, rec: dict, data_root, results_root: Path) -> dict:
    """Re-scores a record's committed test predictions; pass when they give the recorded metrics."""
    import datasets
    from bench.evaluate import score_label_maps
    from datasets.camvid import read_label_png, resize_label
    rid = f"rescore:{path.parent.relative_to(results_root)}"
    try:
        ds = datasets.get_dataset(rec["dataset"], data_root)
        samples = {s.name: s for s in ds.samples("test")}
    except BenchError as exc:
        if os.environ.get("CI"):
            return {"rule": rid, "status": "fail", "detail": f"dataset unavailable under CI: {exc}"}
        return {"rule": rid, "status": "not run", "detail": f"dataset unavailable: {exc}"}
    folder = path.parent / rec["predictions"]["folder"]
    size = tuple(rec["predictions"]["resolution"])
    names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    if len(names) != rec["predictions"]["count"]:
        return {"rule": rid, "status": "fail",
                "detail": f"{folder}: {len(names)} prediction files, the record says {rec['predictions']['count']}"}
    unknown = [n for n in names if n not in samples]
    if unknown:
        return {"rule": rid, "status": "fail", "detail": f"{folder / unknown[0]}: not an image of the test split"}
    try:
        if rec["predictions"].get("at_original_size"):  # a dataset whose images vary in size: each at its own
            gts = [ds.read_label(samples[n]) for n in names]
            preds = [read_label_png(folder / n, g.shape, ds.void_label, what="prediction") for n, g in zip(names, gts)]
        else:
            preds = [read_label_png(folder / n, size, ds.void_label, what="prediction") for n in names]
            gts = [resize_label(ds.read_label(samples[n]), size) for n in names]
    except BenchError as exc:
        return {"rule": rid, "status": "fail", "detail": str(exc)}
    conv = rec["test"]["conventions"]
    res = score_label_maps(preds, gts, class_names=ds.class_names, void_label=ds.void_label, absent=conv["absent"],
                           matching=conv["bf_matching"], class_rule=conv["bf_class_rule"])
    diffs = {k: abs(res[k] - rec["test"][k]) for k in ("G", "C", "mIoU", "BF")}
    cm_equal = res["confusion_matrix"] == rec["test"]["confusion_matrix"]
    ok = cm_equal and all(d <= RESCORE_TOLERANCE for d in diffs.values())
    detail = ", ".join(f"{k} {rec['test'][k]:.2f}->{res[k]:.2f}" for k in diffs)
    return {"rule": rid, "status": "pass" if ok else "fail",
            "detail": f"{len(names)} predictions re-scored: {detail}" + ("" if cm_equal else "; confusion matrix differs")}


def run_check(results="results", data_root=None, rules_path: Path = RULES) -> dict:
    """Every rule judged on the records under ``results``. A missing results folder is an error (a gate that
    finds nothing because of a typo must not pass); an unusable record or profile is a failed outcome."""
    if not Path(results).is_dir():
        raise BenchError(f"{results}: results folder not found")
    rules = load_rules(rules_path)
    training, problems = load_records(Path(results))
    profiles, profile_problems = load_profiles(Path(results))
    full = group_training(training, "full")
    outcomes = [{"rule": "record", "status": "fail", "detail": line} for line in problems + profile_problems]
    outcomes += check_bands(rules, full) + check_claims(rules, full, profiles)
    outcomes = acknowledge(rules, outcomes)
    outcomes += [rescore(p, r, data_root, Path(results)) for p, r in training]
    n_fail = sum(o["status"] == "fail" for o in outcomes)
    return {"records": len(training), "profiles": len(profiles), "outcomes": outcomes, "failed": n_fail,
            "passed": sum(o["status"] == "pass" for o in outcomes),
            "differs": sum(o["status"] == "differs" for o in outcomes),
            "not_run": sum(o["status"] == "not run" for o in outcomes)}


def acknowledge(rules, outcomes) -> list[dict]:
    """A failed band or claim listed under "acknowledged" in the rules (the rule id, what was examined, and the
    measurement it was examined on) becomes "differs": the paper's finding does not hold here, someone has looked
    and said so in the rules file. It no longer fails the gate; any other failure still does, and an
    acknowledgement whose rule now passes or no longer exists is reported so that it can be removed."""
    known = {a["rule"]: a for a in rules.get("acknowledged", [])}
    out = []
    for o in outcomes:
        a = known.pop(o["rule"], None)
        if a and o["status"] == "fail":
            o = {**o, "status": "differs", "detail": f"{o['detail']} [acknowledged: {a['why']}]"}
        elif a:
            o = {**o, "detail": f"{o['detail']} [acknowledged as differing, now {o['status']}: remove the "
                                "acknowledgement from the rules]"}
        out.append(o)
    out += [{"rule": rid, "status": "not run", "detail": f"acknowledged in the rules as differing; no outcome of this "
                                                          "rule in these records"} for rid in known]
    return out
