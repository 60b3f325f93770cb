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
import textwrap
from collections import defaultdict
from pathlib import Path

import numpy as np

from bench.errors import BenchError
from bench.published import FOLDER, number, row_by
from bench.records import (current_recipe, find_records, folders_without_record, latest_per_seed, latest_profile_rows,
                           load_profiles, load_records, made_from_uncommitted_code, outdated_model, outdated_revisions,
                           recipe_fingerprint, standing)
from bench.seal import verify_seals
from bench.stopping import stop_of, status_words

RULES = FOLDER / "check_rules.json"
RESCORE_TOLERANCE = 1e-6  # percent points; re-scoring is exact


def load_rules(path: Path = RULES) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BenchError(f"{path}: cannot read the check rules ({exc})") from None


def _paper_names() -> dict:
    from bench.architectures import paper_names
    return paper_names()


def group_training(records: list[tuple[Path, dict]], profile: str = "full") -> dict:
    """{(suite, member, variant): [records, one per seed]} of one profile: of several records of one seed only the
    latest, never a record of an outdated model revision, and records of one recipe only (never pooled): the
    suite's current recipe where such records exist, else the newest earlier one (`bench.records.standing`)."""
    by_key = defaultdict(lambda: defaultdict(list))
    for _, rec in latest_per_seed(records)[0]:
        if rec.get("kind") != "training-run" or rec.get("profile") != profile:
            continue
        state = standing(rec)
        if state != "outdated-model":
            by_key[(rec["suite"], rec["member"], rec.get("variant"))][(state == "current", recipe_fingerprint(rec))] \
                .append(rec)
    return {key: groups[max(groups, key=lambda g: (g[0], max(str(r.get("finished_at")) for r in groups[g])))]
            for key, groups in by_key.items()}


def _recipe_note(recs) -> str:
    """", earlier recipe" where the records ran a recipe their suite has since changed, and how the runs that their
    stopping rule did not stop ended (e.g. "stopped at the cap, still improving at the last evaluation")."""
    note = "" if all(current_recipe(r) for r in recs) else ", earlier recipe"
    ends = dict.fromkeys(status_words(r) for r in recs if not stop_of(r)["converged"])
    return note + "".join(f", {e}" for e in ends)


def outdated_runs(records, profile: str = "full") -> dict:
    """{(suite, member, variant): a record} of each run whose only records of ``profile`` were made with an
    outdated model revision (`group_training` leaves them out)."""
    ours = [((r["suite"], r["member"], r.get("variant")), r, standing(r) == "outdated-model") for _, r in records
            if r.get("profile") == profile]
    kept = {key for key, _, old in ours if not old}
    return {key: r for key, r, old in ours if old and key not in kept}


def _outdated_lines(outdated: dict) -> list[dict]:
    """A "not run" outcome for each run of `outdated_runs`."""
    return [{"rule": f"superseded:{suite}:{member}" + (f":{variant}" if variant else ""), "status": "not run",
             "detail": f"{r['run_id']} was made with an outdated model ({outdated_model(r)}); record it again"}
            for (suite, member, variant), r in outdated.items()]


def _replaced_lines(records, results: Path) -> list[dict]:
    """A "replaced" outcome (never judged) for each record that a later record of the same run replaces: a run
    recorded at a lease's deadline, then resumed and recorded again (`bench.records.latest_per_seed`)."""
    return [{"rule": f"replaced:{p.parent.relative_to(results)}", "status": "replaced",
             "detail": f"replaced by the later record {Path(new).parent.name} of the same run"
                       + (f" (this one stopped at the deadline at {r['stop']['iteration']:,})"
                          if (r.get("stop") or {}).get("reason") == "deadline" else "")}
            for p, r, new in latest_per_seed(records)[1]]


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
                rule = f"{band['id']}:{key[1]}:{metric}"
                if paper is None or ours is None:
                    out.append({"rule": rule, "status": "not run", "detail": "no published or recorded value"})
                    continue
                status = "pass" if abs(ours - paper) <= tol else "fail"
                short = (f"ours {ours:.2f} vs paper {paper:.2f}: Δ {signed(ours - paper)} "
                         f"{'within' if status == 'pass' else 'outside'} ±{tol}")
                earlier = "" if all(current_recipe(r) for r in full[key]) else ", earlier recipe"
                unstopped = [status_words(r) for r in full[key] if not stop_of(r)["converged"]
                             and stop_of(r)["reason"] == "deadline"]  # not yet stopped by the paper's rule
                earlier += f", {unstopped[0]}" if unstopped else ""
                out.append({"rule": rule, "status": status, "short": short + earlier,
                            "detail": f"{short} (n={len(full[key])}{_recipe_note(full[key])})"})
    return out


def signed(delta: float) -> str:
    """A difference with its sign, a real minus: +0.43, −0.92."""
    return f"{'−' if delta < 0 else '+'}{abs(delta):.2f}"


def _get(d, dotted):
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def _members(spec) -> list[str]:
    return list(spec) if isinstance(spec, list) else [spec]


def _not_converged(recs_of: dict) -> list[str]:
    """One phrase per member none of whose records stopped by the paper's rule (`bench.stopping`)."""
    return [f"{m}: {status_words(recs[0])}" for m, recs in recs_of.items()
            if not any(stop_of(r)["converged"] for r in recs)]


def check_comparison(c: dict, full: dict, outdated: dict | None = None) -> dict:
    """A claim that compares members of a suite: "within" (a and b within a tolerance) or "greater" (every member
    of ``a`` above every member of ``b`` in each metric; ``a`` and ``b`` a name or a list). With
    ``"converged_only": true`` only records stopped by the paper's rule are judged (others: not run). ``outdated``
    (`outdated_runs`): a member recorded only with an outdated model revision is named as such."""
    rid, a, b = c["id"], _members(c["a"]), _members(c["b"])
    recs_of = {m: full.get((c["suite"], m, c.get("variant"))) for m in a + b}
    missing = [m for m, recs in recs_of.items() if not recs]
    if missing:
        old = [m for m in missing if (c["suite"], m, c.get("variant")) in (outdated or {})]
        never = [m for m in missing if m not in old]
        return {"rule": rid, "status": "not run", "detail": "; ".join(
            ([f"needs full-profile records of {', '.join(never)} in {c['suite']}"] if never else [])
            + [f"{m} recorded only with an outdated model "
               f"({outdated_revisions(outdated[(c['suite'], m, c.get('variant'))])})" for m in old])}
    earlier = [m for m, recs in recs_of.items() if not any(current_recipe(r) for r in recs)]
    if earlier and len(earlier) < len(recs_of):  # like with like: never one recipe's run against another's
        return {"rule": rid, "status": "not run",
                "detail": "; ".join(f"{m} only under an earlier recipe" for m in earlier)}
    if c.get("converged_only"):
        recs_of = {m: [r for r in recs if stop_of(r)["converged"]] or recs for m, recs in recs_of.items()}
        unconverged = _not_converged(recs_of)
        if unconverged:
            return {"rule": rid, "status": "not run", "detail": "not converged: " + "; ".join(unconverged)}
    metrics = c.get("metrics") or [c["metric"]]
    values = {metric: {m: _mean(recs_of[m], metric) for m in a + b} for metric in metrics}
    if c["kind"] == "within":
        ok = all(abs(v[a[0]] - v[b[0]]) <= c["tolerance"] for v in values.values())
    else:
        ok = all(min(v[m] for m in a) > max(v[m] for m in b) for v in values.values())
    shown = "; ".join(f"{metric} " + ", ".join(f"{m} {v[m]:.2f}" for m in a + b) for metric, v in values.items())
    note = " (earlier recipe)" if not all(current_recipe(r) for recs in recs_of.values() for r in recs) else ""
    return {"rule": rid, "status": "pass" if ok else "fail", "detail": f"{c['text']}: {shown}{note}",
            "short": f"{shown}{note}"}


def _profile_values(c: dict, profiles) -> tuple[dict | None, str]:
    """{model: value of the claim's metric} from the newest GPU rows of the claim's precision (the paper's Table 6:
    Caffe, fp32), or for ``"device": "any"`` (a count, not a measurement) the newest row of each model that has it."""
    if c.get("device") == "any":
        values = {}
        for rec in sorted(profiles, key=lambda r: str(r.get("finished_at", ""))):
            for row in rec["models"]:
                if row["model"] in c["models"] and _get(row, c["metric"]) is not None:
                    values[row["model"]] = _get(row, c["metric"])
        return (values if set(values) == set(c["models"]) else None), "counted"
    latest = latest_profile_rows(profiles, device="cuda", dtype=c.get("dtype", "fp32"))
    if not all(m in latest for m in c["models"]):
        return None, f"GPU {c.get('dtype', 'fp32')}"
    return {m: _get(latest[m][0], c["metric"]) for m in c["models"]}, c.get("dtype", "fp32")


def check_claims(rules, full, profiles, outdated: dict | None = None) -> list[dict]:
    out = []
    for c in rules.get("claims", []):
        rid = c["id"]
        if c["kind"] in ("within", "greater"):
            out.append(check_comparison(c, full, outdated))
        elif c["kind"] == "profile-min":
            values, measured = _profile_values(c, profiles)
            if values is None:
                out.append({"rule": rid, "status": "not run", "detail": f"needs a profile ({measured}) of "
                                                                         + ", ".join(c["models"])
                                                                         + f" with {c['metric']}"})
                continue
            best = min(values, key=lambda m: values[m])
            shown = f"({measured}) " + ", ".join(f"{m} {v:.1f}" for m, v in values.items())
            out.append({"rule": rid, "status": "pass" if best == c["expect"] else "fail",
                        "detail": f"{c['text']} {shown}", "short": shown})
        else:
            raise BenchError(f"{RULES}: unknown claim kind {c['kind']!r} in {rid}")
    return out


class CannotRescore(BenchError):
    """Records whose predictions cannot be re-scored here (their dataset is not under the data root)."""


def datasets_for_rescoring(training: list[tuple[Path, dict]], data_root) -> dict:
    """{dataset name: the dataset} of every record; CannotRescore, one line saying how to get what is missing,
    where any is not under the data root: a record the gate cannot re-score is unverified, never passed."""
    from bench import datasets
    found, missing = {}, {}
    for _, rec in training:
        name = rec["dataset"]
        if name in found or name in missing:
            continue
        try:
            ds = datasets.get_dataset(name, data_root)
            ds.samples("test")
            found[name] = ds
        except BenchError as exc:
            missing[name] = str(exc)
    if missing:
        n = sum(rec["dataset"] in missing for _, rec in training)
        raise CannotRescore(f"{n} record(s) cannot be re-scored: " + "; ".join(missing.values()) + " (get it with "
                            + " and ".join(f"`bench data download {d}`" for d in missing) + ", or give --data-root; "
                            "or pass --no-rescore to judge the records as recorded)")
    return found


def rescore(path: Path, rec: dict, ds, results_root: Path) -> dict:
    """Re-scores a record's committed test predictions against ``ds``; pass when they give the recorded metrics."""
    from bench.evaluate import score_label_maps
    from bench.labelmap import ground_truth_at, read_label_png
    rid = f"rescore:{path.parent.relative_to(results_root)}"
    samples = {s.name: s for s in ds.samples("test")}
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
        gts = ground_truth_at([ds.read_label(samples[n]) for n in names], size,
                              rec["predictions"].get("at_original_size"))
        preds = [read_label_png(folder / n, g.shape, ds.void_label, what="prediction") for n, g in zip(names, gts)]
    except BenchError as exc:
        return {"rule": rid, "status": "fail", "detail": str(exc)}
    conv = rec["test"]["conventions"]
    res = score_label_maps(preds, gts, class_names=ds.class_names, void_label=ds.void_label, absent=conv["absent"],
                           matching=conv["bf_matching"], class_rule=conv["bf_class_rule"])
    diffs = {k: abs(res[k] - rec["test"][k]) for k in ("G", "C", "mIoU", "BF")}
    cm_equal = res["confusion_matrix"] == rec["test"]["confusion_matrix"]
    # the per-class and per-image scores are re-derived from the predictions too
    others = ["per_class"] if not _close(res["per_class"], rec["test"]["per_class"]) else []
    if isinstance(rec["test"].get("per_image_BF"), list):  # recorded in the split's order, re-scored in the folder's
        split_order = [n for n in samples if n in set(names)]
        if not _close(dict(zip(names, res["per_image_BF"])), dict(zip(split_order, rec["test"]["per_image_BF"]))):
            others.append("per_image_BF")
    ok = cm_equal and all(d <= RESCORE_TOLERANCE for d in diffs.values()) and not others
    detail = ", ".join(f"{k} {rec['test'][k]:.2f}->{res[k]:.2f}" for k in diffs)
    return {"rule": rid, "status": "pass" if ok else "fail",
            "detail": f"{len(names)} predictions re-scored: {detail}" + ("" if cm_equal else "; confusion matrix differs")
            + "".join(f"; {k} differs" for k in others)}


def _close(a, b) -> bool:
    """Scores equal to RESCORE_TOLERANCE, nested as run.json holds them (dicts, lists, numbers, None)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= RESCORE_TOLERANCE
    return a == b


def rederive(path: Path, rec: dict, results_root: Path) -> dict:
    """What a record says that follows from the rest of it: the selected iteration from its validation curve under
    its selection rule, and its test points from its recipe's budgets."""
    from bench.config import Recipe, plain_recipe
    rid = f"derive:{path.parent.relative_to(results_root)}"
    if "postprocess" in rec:  # its curve and selection are those of the run it post-processed
        return {"rule": rid, "status": "pass", "detail": "post-processed: selection of the run it post-processes"}
    problems = []
    val = rec["curves"]["val"]
    if val:
        if rec["selected"].get("rule", "best-val-G") == "last":
            chosen = val[-1]["iteration"]
        else:  # the first point of the highest validation G (a later tie does not replace it)
            chosen = max(enumerate(val), key=lambda iv: (iv[1]["G"], -iv[0]))[1]["iteration"]
        if chosen != rec["selected"]["iteration"]:
            problems.append(f"selected iteration {rec['selected']['iteration']}, but its curve selects {chosen}")
    try:
        recipe = Recipe(**plain_recipe(rec["config"]))
        due = [b for b in recipe.budget_iterations(rec["train_images"]) if b <= rec["iterations"]]
    except (TypeError, KeyError, ValueError):
        due = None  # a recipe of keys this version does not know: nothing to derive
    if due is not None and [b.get("iteration") for b in rec["budgets"]] != due:
        problems.append(f"test points at {[b.get('iteration') for b in rec['budgets']]}, but its recipe's are {due}")
    return {"rule": rid, "status": "fail" if problems else "pass",
            "detail": f"{path}: " + "; ".join(problems) if problems else "selection and test points as derived"}


def run_check(results="results", data_root=None, rules_path: Path = RULES, rescore_predictions: bool = True,
              reinfer: dict | None = None) -> dict:
    """Every rule judged on the records under ``results``. A missing results folder is an error (a gate that
    finds nothing because of a typo must not pass); an unusable record or profile is a failed outcome; records
    whose dataset is not under ``data_root`` are an error (CannotRescore) unless ``rescore_predictions`` is off,
    and then the report says how many were judged as recorded. ``reinfer`` ({"images": N or None, "checkpoints":
    folder}): every record whose weights are present is also re-tested from them (`bench.reinfer`)."""
    if not Path(results).is_dir():
        raise BenchError(f"{results}: results folder not found")
    rules = load_rules(rules_path)
    training, problems = load_records(Path(results))
    found = datasets_for_rescoring(training, data_root) if rescore_predictions else {}
    profiles, profile_problems = load_profiles(Path(results))
    full = group_training(training, "full")
    outcomes = [{"rule": "record", "status": "fail", "detail": line} for line in problems + profile_problems]
    outdated = outdated_runs(training)
    outcomes += check_bands(rules, full) + check_claims(rules, full, profiles, outdated) + _outdated_lines(outdated)
    outcomes += _replaced_lines(training, Path(results))
    outcomes = acknowledge(rules, outcomes)
    outcomes += [{"rule": f"provenance:{p.parent.relative_to(results)}", "status": "warning",
                  "detail": f"made from uncommitted code (provenance.git.dirty): commit "
                            f"{str(r['provenance']['git'].get('commit'))[:10]} alone does not reproduce it"}
                 for p, r in training if made_from_uncommitted_code(r)]
    outcomes += verify_seals(Path(results), sorted({p.parent for p in find_records(Path(results))}
                                                   | set(folders_without_record(Path(results)))))
    outcomes += [rederive(p, r, Path(results)) for p, r in training]
    if rescore_predictions:
        outcomes += [rescore(p, r, found[r["dataset"]], Path(results)) for p, r in training]
    if reinfer is not None:
        from bench.reinfer import reinfer_outcomes
        outcomes += reinfer_outcomes(Path(results), data_root=data_root, **reinfer)
    n_fail = sum(o["status"] == "fail" for o in outcomes)
    return {"records": len(training), "unusable": len(problems), "profiles": len(profiles),
            "judged_as_recorded": 0 if rescore_predictions else len(training), "outcomes": outcomes, "failed": n_fail,
            "passed": sum(o["status"] == "pass" for o in outcomes),
            "differs": sum(o["status"] == "differs" for o in outcomes),
            "not_run": sum(o["status"] == "not run" for o in outcomes),
            "warnings": sum(o["status"] == "warning" for o in outcomes)}


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
            o = {**o, "status": "differs", "detail": f"{o['detail']} [acknowledged: {a['why']}]",
                 "short": f"{o.get('short', o['detail'])} [acknowledged in the rules]"}
        elif a:
            o = {**o, "detail": f"{o['detail']} [acknowledged as differing, now {o['status']}: remove the "
                                "acknowledgement from the rules]"}
        out.append(o)
    out += [{"rule": rid, "status": "not run", "detail": "acknowledged in the rules as differing; no outcome of this "
                                                          "rule in these records"} for rid in known]
    return out


def _fit(head: str, detail: str, width: int, max_lines: int = 2) -> list[str]:
    """``head`` then ``detail`` wrapped to ``width``, continuation lines under the detail; cut after ``max_lines``."""
    parts = textwrap.wrap(detail, max(width - len(head), 30), break_long_words=False, break_on_hyphens=False) or [""]
    if len(parts) > max_lines:
        parts = parts[:max_lines]
        parts[-1] = parts[-1][:max(width - len(head) - 1, 29)] + "…"
    return [head + parts[0]] + [" " * len(head) + p for p in parts[1:]]


def format_check(report: dict, verbose: bool = False, width: int = 120) -> list[str]:
    """`bench check`'s lines: the verdict counts, then one line per rule judged against the paper (cut at
    ``width``), the re-scored predictions and superseded records folded into a count each; a failure of any kind
    is always shown whole. ``verbose`` shows every outcome whole."""
    rules, folded = [], {"rescore": [], "superseded": [], "replaced": [], "seal": [], "derive": [], "reinfer": []}
    for o in report["outcomes"]:
        prefix = o["rule"].split(":", 1)[0]
        (folded[prefix] if prefix in folded else rules).append(o)
    rescored, superseded = folded["rescore"], folded["superseded"]
    checked = folded["seal"] + folded["derive"]
    shown = rules + ([o for o in rescored + superseded + folded["replaced"] + checked + folded["reinfer"]
                      if verbose or o["status"] == "fail"])
    col = min(max([len(o["rule"]) for o in shown] + [4]), 48)
    unusable = f" (and {report['unusable']} unusable)" if report.get("unusable") else ""
    lines = [f"bench check: {report['passed']} passed, {report['failed']} failed, {report['differs']} differ from "
             f"the paper (acknowledged), {report['not_run']} not run; {report['records']} training records{unusable}, "
             f"{report['profiles']} profiles"]
    if report.get("warnings"):
        lines[0] += f"; {report['warnings']} warning(s)"
    if report.get("judged_as_recorded"):
        lines.append(f"not verified: {report['judged_as_recorded']} record(s) judged as recorded, their predictions "
                     "not re-scored (--no-rescore)")
    if report["records"] == 0 and report["profiles"] == 0:
        lines.append("no records: nothing to compare yet; every rule is not run")
    for o in shown:
        head = f"{o['status']:<8} {o['rule']:<{col}} "
        if verbose or o["status"] == "fail":
            lines.append(head + o["detail"])
        else:
            lines += _fit(head, o.get("short", o["detail"]), width)
    if rescored and not verbose:
        counts = ", ".join(f"{sum(o['status'] == s for o in rescored)} {s}" for s in ("pass", "fail", "not run")
                           if any(o["status"] == s for o in rescored))
        lines.append(f"re-scored predictions of {len(rescored)} records: {counts} (--verbose lists them)")
    if folded["reinfer"] and not verbose:
        retested = folded["reinfer"]
        agree = [o["detail"].split(" of pixels agree")[0].rsplit(" ", 1)[-1] for o in retested
                 if "of pixels agree" in o["detail"]]
        lines.append(f"re-tested from their weights (--reinfer): {len(retested)} record(s), "
                     f"{sum(o['status'] == 'pass' for o in retested)} within tolerance"
                     + (f" (pixels agreeing: {', '.join(agree)})" if agree else "") + " (--verbose lists them)")
    if checked and not verbose:
        failed = sum(o["status"] == "fail" for o in checked)
        lines.append(f"sealed and re-derived fields of {len(folded['seal'])} records: "
                     + (f"{failed} failed" if failed else "all as recorded") + " (--verbose lists them)")
    if folded["replaced"] and not verbose:
        lines.append(f"replaced: {len(folded['replaced'])} record(s) by a later one of their run, e.g. at a deadline "
                     "and resumed (--verbose lists them)")
    if superseded and not verbose:
        lines.append(f"superseded: {len(superseded)} run(s) recorded only with an outdated model revision "
                     "(not run; --verbose lists them)")
    return lines
