"""`bench report` and `bench check` on records made in the test (tiny runs on the synthetic CamVid, in tmp)."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from bench.check import check_bands, check_claims, format_check, load_rules, run_check
from bench.cli import main
from bench.runner import train_suite
from bench.seal import seal_records

TINY = {"image_size": [64, 96], "max_iters": 2, "batch_size": 2, "eval_every_iters": 1}


@pytest.fixture(scope="module")
def made_records(tmp_path_factory):
    """Synthetic records: tiny real runs of two suites on the synthetic CamVid (never written to results/)."""
    from tests.conftest import make_fake_camvid
    base = tmp_path_factory.mktemp("rc")
    root = make_fake_camvid(base / "data")
    results = base / "results"
    quiet = dict(data_root=root, results=results, checkpoints=base / "ckpt", log=lambda m: None)
    train_suite("camvid-decoder-variants", profile="smoke", members=["segnet-basic", "fcn-basic"],
              overrides=dict(TINY), **quiet)
    train_suite("camvid-controlled", profile="smoke", members=["segnet", "deeplab-largefov", "deeplab-largefov-densecrf"],
              overrides=dict(TINY, budgets_iters=[1, 2], encoder_weights="none"), **quiet)
    return root, results


def test_report_renders_every_table_and_figure(made_records, tmp_path):
    root, results = made_records
    out = tmp_path / "reports"
    r = CliRunner().invoke(main, ["report", "--results", str(results), "--out", str(out), "--data-root", str(root)])
    assert r.exit_code == 0, r.output
    t1 = (out / "camvid-decoder-variants" / "README.md").read_text()
    assert "Table 1" in t1 and "SegNet-Basic" in t1 and "FCN-Basic" in t1 and "Smoke records" in t1
    for name in ("curves.png", "loss.png", "confusion.png", "per_class.png", "qualitative.png", "index.html",
                 "table1.csv"):
        assert (out / "camvid-decoder-variants" / name).stat().st_size > 0, name
    t3 = (out / "camvid-controlled" / "README.md").read_text()
    assert "Table 3" in t3 and "Table 2" in t3 and "not like for like" in t3
    assert "| DeepLab-LargeFOV-denseCRF" in t3  # the post-processed member's row beside the paper's
    # no profile record in these results: the paper's trade-off points are drawn, ours are named as missing
    assert (out / "camvid-controlled" / "tradeoff.png").stat().st_size > 0
    assert "Not in the trade-off figure (no profile record" in t3 and "deeplab-largefov, deeplab-largefov-densecrf, segnet." in t3
    rows = (out / "camvid-decoder-variants" / "table1.csv").read_text().splitlines()
    assert rows[0].startswith("table,row,column,ours_mean") and len(rows) > 2
    # published numbers sit beside ours: SegNet-Basic's median-frequency test G from Table 1
    assert any("SegNet-Basic [median-frequency]" in line and ",test_G," in line and ",82.7," in line for line in rows)
    assert (out / "README.md").is_file()


def _chromium():
    for c in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(c)
        if path:
            return path
    return None


def _browser_dom(browser, page: Path, profile_dir: Path, width: int = 1400) -> str:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile_dir}", f"--window-size={width},1000", "--virtual-time-budget=3000",
           "--dump-dom", page.as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout


def _paper_rows(suite: str) -> list[str]:
    """The row names of every paper table a suite reproduces (what its page must show, run or not)."""
    from bench.config import load_suite
    from bench.published import read_rows
    names = []
    for table in load_suite(suite).tables:
        if table in ("table1", "table3", "table4"):
            names += [r["variant" if table == "table1" else "network"] for r in read_rows(table)]
        elif table == "table5":
            names += [r["class"] for r in read_rows("table5")]
    return names


def test_html_opens_in_headless_browser_without_errors(made_records, tmp_path):
    """Every page (the index and each suite's) as a browser shows it at 1,400 px: no script error, every figure
    loaded, no table wider than the window, no Markdown syntax in the visible text, every local link resolving,
    every row of the paper's tables present; the index lists every suite with its `bench check` verdicts."""
    import html as html_lib
    import re
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("CI: chromium not installed (.ci/run installs Debian's chromium)")
        pytest.skip("no chromium here: apt-get install chromium")
    root, results = made_records
    out = tmp_path / "reports"
    CliRunner().invoke(main, ["report", "--results", str(results), "--out", str(out), "--data-root", str(root)])
    pages = sorted(out.rglob("index.html"))
    suites = ["camvid-controlled", "camvid-controlled-mfb", "camvid-decoder-variants", "sunrgbd-controlled",
              "voc2012-transfer"]
    assert [p.relative_to(out).as_posix() for p in pages] == [f"{s}/index.html" for s in suites[:3]] + [
        "index.html", "sunrgbd-controlled/index.html", "voc2012-transfer/index.html"]
    without_records = {"sunrgbd-controlled": "Table 5", "camvid-controlled-mfb": "Table 3"}  # every suite rendered
    for page in pages:
        dom = _browser_dom(browser, page, tmp_path / "profile")
        assert 'data-ok="1"' in dom, (page, dom[-500:])
        assert 'data-error' not in dom, page
        assert 'data-viewport="1400"' in dom, page
        assert 'data-too-wide=""' in dom, (page, re.search(r'data-too-wide="([^"]*)"', dom).group(1))
        if page.parent.name == "voc2012-transfer":  # no paper table, no record: what its study states (issue 48)
            assert "<table" not in dom and "The study states for SegNet fine-tuned on val: G above 79" in dom, page
            assert ".toml" in "".join(re.findall(r'href="([^"]+)"', dom)), page
            continue
        right = int(re.search(r'data-table-right="(\d+)"', dom).group(1))
        assert 0 < right <= 1400, (page, right)
        text = re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", dom, flags=re.S))
        for leftover in ("**", "`", "](", "|---", "\n> ", "\n# "):
            assert leftover not in text, f"{page}: Markdown syntax {leftover!r} in the visible text"
        links = re.findall(r'href="([^"]+)"', dom)
        local = [h for h in links if not h.startswith(("http:", "https:", "data:", "#"))]
        assert local and all((page.parent / html_lib.unescape(h)).resolve().is_file() for h in local), (page, local)
        cells = {html_lib.unescape(c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", dom)}
        if page.parent != out:
            missing = [name for name in _paper_rows(page.parent.name)
                       if not any(c == name or c.startswith(name + " ") for c in cells)]
            assert not missing, (page, missing)  # every paper row, "not run" where no record exists
            assert len(re.findall(r"<h2>Notes</h2>", dom)) == 1  # the footnotes once per page
            notes = re.findall(r"<li>(.*?)</li>", dom.split("<h2>Notes</h2>")[1].split("<h2>")[0], flags=re.S)
            assert len(notes) == len(set(notes)), page
        if page.parent.name in without_records:  # no record yet: the paper's tables, ours "not run"
            assert "<table" in dom and "not run" in dom and without_records[page.parent.name] in dom, page
            assert ".toml" in "".join(local), page
        elif page.parent != out:  # a suite's page: tables, figures, the smoke banner, rows linking records and logs
            assert "<table" in dom and int(re.search(r'data-images="(\d+)"', dom).group(1)) >= 5, page
            assert "<blockquote>" in dom and "Smoke records" in dom
            assert {".json", ".txt", ".toml"} <= {os.path.splitext(h)[1] for h in local}, page
            assert 'colspan="3"' in dom and "ours" in cells | set(re.findall(r"<th>(.*?)</th>", dom))
    top = (out / "index.html").read_text()
    for suite in suites:  # the index: every suite, its verdicts, a row per run
        section = top.split(f'<h2><a href="{suite}/index.html">{suite}</a></h2>')[1].split("<h2>")[0]
        assert re.search(r"<code>bench check</code>: (\d+ (pass|fail|differs|not run)(, )?)+\.", section) or \
            "<code>bench check</code>: no rules" in section, suite
        assert "<table" in section and "not run" in section or "s0" in section, suite
    assert "band ✓" not in top  # smoke records: no band judges them
    assert "Claims of the paper judged on these records" in top and "Costs (Table 6)" in top


def test_check_rescoring_passes_then_catches_altered_predictions(made_records, tmp_path):
    root, results = made_records
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    report = run_check(copy, root)
    rescored = [o for o in report["outcomes"] if o["rule"].startswith("rescore:")]
    assert rescored and all(o["status"] == "pass" for o in rescored)
    assert report["failed"] == 0
    # bands and claims have only smoke records: not run, never passed
    assert all(o["status"] == "not run" for o in report["outcomes"]
               if not o["rule"].startswith(("rescore:", "seal:", "derive:", "provenance:"))), \
        [o for o in report["outcomes"] if o["status"] != "not run"][:3]
    victim = sorted(copy.rglob("predictions/*.png"))[0]
    arr = np.array(Image.open(victim))
    Image.fromarray(((arr.astype(int) + 1) % 11).astype(np.uint8)).save(victim)
    r = CliRunner().invoke(main, ["check", "--results", str(copy), "--data-root", str(root)])
    assert r.exit_code == 1
    assert any(line.startswith("fail") and "rescore:" in line for line in r.output.splitlines())


def test_check_never_passes_what_it_could_not_rescore(made_records, tmp_path):
    """Found by trying: without the dataset, a test mIoU edited by hand inside its band passed the gate. Records
    that cannot be re-scored are an error, one line saying how to get the data; --no-rescore judges them as
    recorded and the first lines say so."""
    _, results = made_records
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    path = sorted(copy.rglob("run.json"))[0]
    rec = json.loads(path.read_text())
    rec["test"]["mIoU"] += 0.5
    path.write_text(json.dumps(rec))
    empty = tmp_path / "no-data"
    empty.mkdir()
    r = CliRunner().invoke(main, ["check", "--results", str(copy), "--data-root", str(empty)])
    lines = r.output.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1, r.output
    assert "cannot be re-scored" in lines[0] and "bench data download camvid" in lines[0] and "--no-rescore" in lines[0]
    r = CliRunner().invoke(main, ["check", "--results", str(copy), "--data-root", str(empty), "--no-rescore"])
    lines = r.output.splitlines()
    n = len(list(copy.rglob("run.json")))
    assert lines[1] == (f"not verified: {n} record(s) judged as recorded, their predictions not re-scored "
                        "(--no-rescore)"), r.output
    # the edit itself is caught by the seal, naming the field, with or without the data
    assert r.exit_code == 1 and any(line.startswith("fail") and f"seal:{path.parent.relative_to(copy)}" in line
                                    and "run.json differs (fields: test)" in line for line in lines), r.output


def test_a_record_that_vanishes_or_changes_kind_fails_the_gate(made_records, tmp_path):
    """Found by trying: a deleted run.json, or a kind changed by hand, made the record disappear from the gate and
    the reports in silence; a truncated one gave a header that disagreed with the rows."""
    root, results = made_records
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    first, second, third = sorted(copy.rglob("run.json"))[:3]
    first.unlink()
    rec = json.loads(second.read_text())
    rec["kind"] = "something-else"
    second.write_text(json.dumps(rec))
    third.write_text(third.read_text()[:200])
    r = CliRunner().invoke(main, ["check", "--results", str(copy), "--data-root", str(root)])
    assert r.exit_code == 1, r.output
    fails = [line for line in r.output.splitlines() if line.startswith("fail")]
    assert any(f"{first.parent}: run.json is missing" in line for line in fails), r.output
    assert any(str(second) in line and "unknown record kind 'something-else'" in line for line in fails), r.output
    assert any(str(third) in line and "not a readable run record" in line for line in fails), r.output
    n = len(list(copy.rglob("run.json"))) - 2
    assert f"; {n} training records (and 3 unusable), 0 profiles" in r.output.splitlines()[0], r.output  # ("; N warning(s)" follows where the tree is dirty)
    out = tmp_path / "reports"
    CliRunner().invoke(main, ["report", "--results", str(copy), "--out", str(out), "--data-root", str(root)])
    index = (out / "README.md").read_text()
    assert f"{first.parent}: run.json is missing" in index and "unknown record kind" in index


def test_records_made_from_uncommitted_code_are_flagged(made_records, tmp_path):
    """Found by trying: `provenance.git.dirty = true` was never flagged. The gate gives each such record a warning
    line (not a failure) and the report marks them."""
    root, results = made_records
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    for other in sorted(copy.rglob("run.json")):  # made from committed code (the test may run in a dirty tree)
        rec = json.loads(other.read_text())
        rec["provenance"]["git"]["dirty"] = False
        other.write_text(json.dumps(rec))
        seal_records(copy, [other.parent])
    path = sorted(copy.rglob("run.json"))[0]
    rec = json.loads(path.read_text())
    rec["provenance"]["git"]["dirty"] = True
    path.write_text(json.dumps(rec))
    seal_records(copy, [path.parent])  # as `bench run` sealed it
    r = CliRunner().invoke(main, ["check", "--results", str(copy), "--no-rescore"])
    lines = r.output.splitlines()
    assert r.exit_code == 0 and lines[0].endswith("; 1 warning(s)"), r.output
    assert [ln for ln in lines if ln.startswith("warning")] == [
        ln for ln in lines if f"provenance:{path.parent.relative_to(copy)}" in ln and "uncommitted code" in ln]
    out = tmp_path / "reports"
    CliRunner().invoke(main, ["report", "--results", str(copy), "--out", str(out), "--data-root", str(root)])
    page = (out / rec["suite"] / "README.md").read_text()
    assert "Made from uncommitted code" in page and rec["run_id"] in page


def test_an_untracked_module_among_the_sources_makes_the_code_dirty(tmp_path):
    """Found by trying: an untracked package folder that shadows the project's code did not count as dirty."""
    import subprocess
    from bench.records import commit_info
    repo = tmp_path / "repo"
    (repo / "bench").mkdir(parents=True)
    (repo / "bench" / "a.py").write_text("x = 1\n")
    run = dict(cwd=repo, check=True, capture_output=True)
    subprocess.run(["git", "init", "-q"], **run)
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "."], **run)
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "c"], **run)
    assert commit_info(repo)["dirty"] is False
    (repo / "bench" / "shadow").mkdir()
    (repo / "bench" / "shadow" / "__init__.py").write_text("")
    info = commit_info(repo)
    assert info["dirty"] is True and info["untracked_source_files"] == 1
    (repo / "notes.txt").write_text("not code")  # outside the source folders: not dirty
    (repo / "bench" / "shadow" / "__init__.py").unlink()
    assert commit_info(repo)["dirty"] is False


def test_every_file_and_field_of_a_record_is_held_to_its_seal(made_records, tmp_path):
    """Found by trying: hand edits to train scores, per-class rows, per-image BF, the curves, the selected iteration
    or the budgets passed the gate and appeared in reports. What can be re-derived is (scores from the
    predictions, the selection from the curve, the test points from the recipe); every file and field is held to
    the seal `bench run` wrote."""
    root, results = made_records
    assert (results / "records.seal.json").is_file()
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    paths = [p for p in sorted(copy.rglob("run.json")) if "postprocess" not in json.loads(p.read_text())
             and json.loads(p.read_text())["curves"]["val"] and json.loads(p.read_text())["budgets"]]
    edits = {"stop": lambda r: r["stop"].__setitem__("reason", "plateau"),
             "curves": lambda r: r["curves"]["val"][0].__setitem__("G", 99.0),
             "selected": lambda r: r["selected"].__setitem__("iteration", r["selected"]["iteration"] + 1),
             "budgets": lambda r: r["budgets"].pop(),
             "test": lambda r: r["test"]["per_class"][next(iter(r["test"]["per_class"]))].__setitem__("accuracy", 1.0)}
    edited = {field: paths[i % len(paths)] for i, field in enumerate(edits)}  # several fields of one record
    for field, path in edited.items():
        rec = json.loads(path.read_text())
        edits[field](rec)
        path.write_text(json.dumps(rec))
    (paths[-1].parent / "log.txt").write_text("rewritten\n")
    r = CliRunner().invoke(main, ["check", "--results", str(copy), "--data-root", str(root)])
    fails = [line for line in r.output.splitlines() if line.startswith("fail")]
    assert r.exit_code == 1
    for field, path in edited.items():
        assert any(f"seal:{path.parent.relative_to(copy)}" in line and "fields: " in line
                   and field in line.split("fields: ")[1].rstrip(")").split(", ") for line in fails), (field, r.output)
    assert any("log.txt differs" in line for line in fails)
    rel = {field: str(path.parent.relative_to(copy)) for field, path in edited.items()}
    assert any(f"derive:{rel['selected']}" in line and "but its curve selects" in line for line in fails), r.output
    assert any(f"derive:{rel['budgets']}" in line and "but its recipe's are" in line for line in fails), r.output
    assert any(f"rescore:{rel['test']}" in line and "per_class differs" in line for line in fails), r.output
    shutil.rmtree(paths[0].parent)  # a deleted record fails too
    r = CliRunner().invoke(main, ["check", "--results", str(copy), "--data-root", str(root)])
    assert any(line.startswith("fail") and f"{paths[0].parent}: sealed in" in line and "gone" in line
               for line in r.output.splitlines()), r.output


def test_check_with_nothing_recorded_says_so_and_passes(tmp_path):
    (tmp_path / "none").mkdir()
    r = CliRunner().invoke(main, ["check", "--results", str(tmp_path / "none")])
    assert r.exit_code == 0 and "nothing to compare yet" in r.output and "0 failed" in r.output


def _full(member, variant, **scores):
    return {("camvid-decoder-variants", member, variant): [{"test": scores}]}


def test_band_fails_outside_tolerance_and_passes_inside():
    rules = load_rules()
    inside = check_bands(rules, _full("segnet-basic", "median-frequency", G=82.0, C=60.0, mIoU=47.0, BF=34.0))
    assert {o["status"] for o in inside if "median-frequency:segnet-basic" in o["rule"]} == {"pass"}
    outside = check_bands(rules, _full("segnet-basic", "median-frequency", G=70.0, C=60.0, mIoU=47.0, BF=34.0))
    status = {o["rule"].split(":")[-1]: o["status"] for o in outside if "segnet-basic" in o["rule"]}
    assert status == {"G": "fail", "C": "pass", "mIoU": "pass", "BF": "pass"}
    assert any(o["status"] == "not run" and "natural-frequency" in o["rule"] for o in outside)


def test_claims_are_judged_or_not_run():
    rules = load_rules()
    full = {**_full("segnet-basic", "median-frequency", mIoU=47.0, BF=30.0),
            **_full("fcn-basic", "median-frequency", mIoU=49.5, BF=31.0),
            **_full("bilinear-interpolation", "median-frequency", mIoU=40.0, BF=20.0)}
    out = {o["rule"]: o["status"] for o in check_claims(rules, full, profiles=[])}
    assert out["segnet-basic-within-1-of-fcn-basic"] == "fail"  # 2.5 points apart
    assert out["segnet-basic-bf-above-bilinear"] == "pass"
    assert out["segnet-lowest-inference-memory"] == "not run"  # no GPU profile
    cpu_profile = {"settings": {"device": "cpu"}, "models": []}
    out = {o["rule"]: o["status"] for o in check_claims(rules, full, profiles=[cpu_profile])}
    assert out["deeplab-fastest-forward"] == "not run"


def _profile(device, dtype, finished_at, memory, forward=None, counted=None):
    """A profile record with the fields the check and the report read; memory: {model: device_used_MB}; forward:
    {model: median ms}; counted: {model: Caffe-style inference MiB} (rows without it where not given)."""
    return {"settings": {"device": device, "dtype": dtype, "device_name": "GPU"}, "finished_at": finished_at,
            "input_size": [360, 480],
            "models": [{"model": m, "forward": {"median_ms": (forward or {}).get(m, 1.0)},
                        "inference_memory": {"device_used_MB": v},
                        **({"caffe_style_memory": {"inference_MiB": counted[m]}} if counted else {})}
                       for m, v in memory.items()]}


FOUR = ("segnet", "deeplab-largefov", "fcn-learnt-deconv", "deconvnet")


def test_profile_claims_read_the_newest_gpu_rows_of_the_papers_precision():
    from bench.records import latest_profile_rows, profile_sets
    rules = load_rules()
    segnet_fastest = dict(zip(FOUR, (90.0, 100.0, 200.0, 150.0)))
    deeplab_fastest = dict(zip(FOUR, (120.0, 100.0, 200.0, 150.0)))
    memory = dict(zip(FOUR, (1.0, 1.0, 1.0, 1.0)))
    profiles = [_profile("cuda", "bf16", "2026-01-03T00:00:00Z", memory, forward=segnet_fastest),  # newest, but bf16
                _profile("cuda", "fp32", "2026-01-02T00:00:00Z", memory, forward=deeplab_fastest),
                _profile("cuda", "fp32", "2026-01-01T00:00:00Z", memory, forward=segnet_fastest),  # older fp32
                _profile("cpu", "fp32", "2026-01-04T00:00:00Z", memory, forward=segnet_fastest)]
    assert [k for k, _ in profile_sets(profiles)] == [("cuda", "fp32"), ("cuda", "bf16"), ("cpu", "fp32")]
    assert latest_profile_rows(profiles)["segnet"][1]["dtype"] == "fp32"
    out = {o["rule"]: o for o in check_claims(rules, {}, profiles)}
    assert out["deeplab-fastest-forward"]["status"] == "pass"           # judged on the newest fp32 rows
    assert "(fp32)" in out["deeplab-fastest-forward"]["detail"]
    assert out["segnet-lowest-inference-memory"]["status"] == "not run"  # no row has the Caffe-style count
    out = {o["rule"]: o["status"] for o in check_claims(rules, {}, profiles[:1])}
    assert out["deeplab-fastest-forward"] == "not run"                  # bf16 alone: not the paper's precision


def test_memory_claim_is_judged_on_the_newest_caffe_style_count_of_any_device():
    rules = load_rules()
    memory = dict(zip(FOUR, (1.0, 1.0, 1.0, 1.0)))
    segnet_lowest = dict(zip(FOUR, (300.0, 340.0, 900.0, 700.0)))
    deeplab_lowest = dict(zip(FOUR, (545.0, 340.0, 970.0, 790.0)))
    older = _profile("cuda", "fp32", "2026-01-01T00:00:00Z", memory, counted=segnet_lowest)
    newer = _profile("cpu", "fp32", "2026-01-02T00:00:00Z", memory, counted=deeplab_lowest)
    out = {o["rule"]: o for o in check_claims(rules, {}, [newer, older])}
    claim = out["segnet-lowest-inference-memory"]
    assert claim["status"] == "fail" and "(counted)" in claim["detail"] and "segnet 545.0" in claim["detail"]
    out = {o["rule"]: o for o in check_claims(rules, {}, [older])}
    assert out["segnet-lowest-inference-memory"]["status"] == "pass"


def test_acknowledged_difference_is_reported_and_does_not_fail_the_gate():
    from bench.check import acknowledge
    rules = {"acknowledged": [{"rule": "a", "why": "looked at it"}, {"rule": "b", "why": "old"},
                              {"rule": "gone", "why": "x"}]}
    out = {o["rule"]: o for o in acknowledge(rules, [{"rule": "a", "status": "fail", "detail": "d"},
                                                     {"rule": "b", "status": "pass", "detail": "d"},
                                                     {"rule": "c", "status": "fail", "detail": "d"}])}
    assert out["a"]["status"] == "differs" and "looked at it" in out["a"]["detail"]
    assert out["b"]["status"] == "pass" and "remove the acknowledgement" in out["b"]["detail"]
    assert out["c"]["status"] == "fail"                                  # not acknowledged: still fails
    assert out["gone"]["status"] == "not run"


def test_every_acknowledgement_names_a_rule_and_says_why():
    rules = load_rules()
    ids = {r["id"] for r in rules["bands"]} | {c["id"] for c in rules["claims"]}
    for a in rules.get("acknowledged", []):
        assert a["rule"].split(":")[0] in ids and a["why"].strip() and a["examined_on"]


def _rec(member, seed, finished_at, commit, profile="full"):
    from pathlib import Path
    run_id = f"{profile}-seed{seed}-{finished_at.replace('-', '').replace(':', '')}"
    return (Path(f"results/s/{member}/{run_id}/run.json"),
            {"kind": "training-run", "suite": "s", "member": member, "variant": None, "profile": profile, "seed": seed,
             "run_id": run_id,
             "finished_at": finished_at, "provenance": {"git": {"commit": commit}}})


def test_records_are_selected_by_profile_commit_date_and_run():
    from bench.errors import BenchError
    from bench.records import select_records
    recs = [_rec("segnet", 0, "2026-11-25T10:00:00Z", "aaaa111"), _rec("segnet", 0, "2026-11-26T21:10:00Z", "bbbb222"),
            _rec("fcn", 1, "2026-11-26T22:00:00Z", "bbbb222", profile="smoke")]
    ids = lambda sel: [r["run_id"] for _, r in sel]  # noqa: E731
    assert ids(select_records(recs, profile="smoke")) == [recs[2][1]["run_id"]]
    assert ids(select_records(recs, commit="bbbb")) == ids(recs[1:])
    assert ids(select_records(recs, since="2026-11-26T21:30")) == ids(recs[2:])
    assert ids(select_records(recs, since="2026-11-26")) == ids(recs[1:])
    assert ids(select_records(recs, runs=f"x/{recs[0][1]['run_id']}/, {recs[2][1]['run_id']}")) == ids(recs[::2])
    with pytest.raises(BenchError, match="--since 'last week'"):
        select_records(recs, since="last week")


def test_same_seed_and_recipe_from_two_commits_is_never_pooled():
    from bench.check import group_training
    from bench.records import latest_per_seed
    older, newer = _rec("segnet", 0, "2026-11-25T10:00:00Z", "aaaa111"), _rec("segnet", 0, "2026-11-26T21:10:00Z", "bbbb222")
    other_seed = _rec("segnet", 1, "2026-11-24T10:00:00Z", "aaaa111")
    kept, superseded = latest_per_seed([newer, older, other_seed])
    assert [r for _, r in kept] == [newer[1], other_seed[1]]
    assert [(r, by) for _, r, by in superseded] == [(older[1], newer[0])]
    assert len(group_training([older, newer, other_seed])[("s", "segnet", None)]) == 2  # seeds 0 and 1, once each


def test_report_and_runs_name_the_record_a_later_one_replaces(made_records, tmp_path):
    import json
    root, results = made_records
    results_copy = tmp_path / "results"
    shutil.copytree(results, results_copy)
    first = next((results_copy / "camvid-decoder-variants" / "segnet-basic").glob("*/run.json"))
    rec = json.loads(first.read_text())
    rec["run_id"] += "-again"
    rec["finished_at"] = "2099-01-01T00:00:00Z"
    again = first.parent.parent / rec["run_id"]
    shutil.copytree(first.parent, again)
    (again / "run.json").write_text(json.dumps(rec))
    out = tmp_path / "reports"
    r = CliRunner().invoke(main, ["report", "--results", str(results_copy), "--out", str(out)])
    assert r.exit_code == 0, r.output
    text = (out / "camvid-decoder-variants" / "README.md").read_text()
    assert "not pooled (the latest wins)" in text and f"(replaced by {rec['run_id']})" in text
    r = CliRunner().invoke(main, ["runs", "--results", str(results_copy), "--profile", "smoke"])
    assert r.exit_code == 0, r.output
    lines = [line for line in r.output.splitlines() if "segnet-basic" in line and f" {rec['variant']} " in line]
    assert len(lines) == 2 and sum("(old)" in line for line in lines) == 1
    assert any(f"{rec['run_id']} " in line and "(old)" not in line for line in lines)


def test_table1_puts_ours_paper_and_delta_in_columns_marks_the_band_and_the_best():
    from bench.report import IN_BAND, OUT_OF_BAND, table1

    def rec(G, C, mIoU, BF):
        return {"test": {"G": G, "C": C, "mIoU": mIoU, "BF": BF}, "train": {"G": 90.0, "C": 80.0, "mIoU": 70.0}}
    groups = {("camvid-decoder-variants", "segnet-basic", "median-frequency"): [rec(82.0, 60.0, 47.0, 34.0)],
              ("camvid-decoder-variants", "bilinear-interpolation", "median-frequency"): [rec(79.0, 61.0, 43.0, 29.0)]}
    tables = table1(groups, "full", "camvid-decoder-variants")
    t, natural, train = tables  # the median-frequency half, the natural-frequency half, the train scores
    col = {h: i for i, h in enumerate(t.header)}
    assert t.header_groups[1] == ("G", ["ours", "paper", "Δ"])  # grouped: one metric over ours | paper | Δ
    seg = next(r for r in t.rows if r[0] == "SegNet-Basic")
    bil = next(r for r in t.rows if r[0] == "Bilinear-Interpolation")
    assert seg[col["G ours"]] == "**82.00**" and seg[col["G paper"]] == "82.70"
    assert seg[col["G Δ"]] == f"−0.70 {IN_BAND}" and seg[col["G Δ"]].kind == "in-band"  # paper 82.7, band 3
    assert bil[col["BF Δ"]] == f"+8.17 {OUT_OF_BAND}" and bil[col["BF ours"]] == "29.00"  # paper 20.83, band 5
    assert bil[col["BF Δ"]].kind == "out-of-band" and "±5" in bil[col["BF Δ"]].title
    assert bil[col["C ours"]] == "**61.00**"
    # every variant of the paper is a row of each half, "not run" where no record exists
    assert [r[0] for r in t.rows] == [r[0] for r in natural.rows] and len(t.rows) == 8
    fcn = next(r for r in t.rows if r[0] == "FCN-Basic")
    assert fcn[col["G ours"]] == "not run" and fcn[col["G paper"]] == "81.70" and fcn[col["G Δ"]] == "–"
    assert all(r[1] == "not run" for r in natural.rows)
    tcol = {h: i for i, h in enumerate(train.header)}
    tseg = next(r for r in train.rows if r[0] == "SegNet-Basic")
    assert str(tseg[tcol["train G Δ"]]).count(IN_BAND) == 0  # no band on train scores


def test_a_difference_acknowledged_in_the_rules_is_marked_as_such(monkeypatch):
    """A band outcome acknowledged in the rules: ≈ and its reason, not ✗."""
    from bench import check
    from bench.report import table1
    from bench.report.table import ACKNOWLEDGED
    rules = check.load_rules()
    rules = {**rules, "acknowledged": [*rules.get("acknowledged", []), {
        "rule": "table1-median-frequency:segnet-basic:BF", "why": "examined: our BF matcher differs", "examined_on": []}]}
    monkeypatch.setattr(check, "load_rules", lambda path=None: rules)
    recs = {("camvid-decoder-variants", "segnet-basic", "median-frequency"): [
        {"test": {"G": 82.0, "C": 62.0, "mIoU": 47.0, "BF": 20.0}, "train": {}}]}
    t = table1(recs, "full", "camvid-decoder-variants")[0]
    col = {h: i for i, h in enumerate(t.header)}
    seg = next(r for r in t.rows if r[0] == "SegNet-Basic")
    assert seg[col["BF Δ"]] == f"−15.78 {ACKNOWLEDGED}" and seg[col["BF Δ"]].kind == "acknowledged"
    assert "our BF matcher differs" in seg[col["BF Δ"]].title and seg[col["G Δ"]].kind == "in-band"


def test_every_model_keeps_one_colour_and_marker_in_every_figure():
    from bench import architectures
    from bench.report import model_style
    styles = {m: model_style(m) for m in architectures.list_models()}
    assert len({tuple(s["color"]) for s in styles.values()}) == len(styles)  # distinct colours
    assert all(model_style(m) == styles[m] for m in styles)  # the same whenever asked


def test_qualitative_images_spread_over_sequences():
    """Sequences taken in turn, images evenly spaced within each (hand-worked: A has 10 images, B 4, C 1)."""
    from bench.report import spread_over_sequences
    names = [f"A_{i:02d}.png" for i in range(10)] + [f"B_{i:02d}.png" for i in range(4)] + ["C_00.png"]
    assert spread_over_sequences(names, 3) == ["A_05.png", "B_02.png", "C_00.png"]
    assert spread_over_sequences(names, 6) == ["A_01.png", "B_01.png", "C_00.png", "A_05.png", "B_03.png", "A_08.png"]
    every = spread_over_sequences(names, 99)
    assert every[:5] == ["A_00.png", "B_00.png", "C_00.png", "A_01.png", "B_01.png"] and sorted(every) == sorted(names)
    assert spread_over_sequences([], 3) == []


def test_paper_tradeoff_points_pair_table3_with_table6():
    from bench.published import number, row_by
    from bench.report import paper_tradeoff_points
    points = paper_tradeoff_points()
    assert set(points) == {"SegNet", "DeepLab-LargeFOV", "FCN (learnt deconv)", "DeconvNet"}
    for name, (mem, miou) in points.items():
        assert mem == number(row_by("table6", "network", name)["gpu_infer_mem_MB"])
        assert miou == number(row_by("table3", "network", name)["itmax_mIoU"])


# -- records of an older model revision or an earlier recipe, and Table 3's claims (issue 34) -----------------------
def _copy_record(first, results_copy, **changes):
    """A copy of the record folder ``first`` beside it, its run.json changed as given (dotted keys for nested ones)."""
    import json
    rec = json.loads(first.read_text())
    for dotted, value in changes.items():
        d = rec
        *parts, last = dotted.split(".")
        for p in parts:
            d = d[p]
        d[last] = value
    rec["run_id"] += "-copy"
    again = first.parent.parent / rec["run_id"]
    shutil.copytree(first.parent, again)
    (again / "run.json").write_text(json.dumps(rec))
    seal_records(results_copy, [again])  # as `bench run` seals what it records
    return rec


def test_records_of_an_outdated_model_revision_are_superseded_everywhere(made_records, tmp_path):
    import json
    root, results = made_records
    results_copy = tmp_path / "results"
    shutil.copytree(results, results_copy)
    for path in (results_copy / "camvid-decoder-variants" / "fcn-basic").glob("*/run.json"):
        rec = json.loads(path.read_text())
        assert rec["model"]["revision"] == 3  # what the runner records today
        rec["model"]["revision"] = 2  # as the records made before the batch norm after its deconvolutions
        path.write_text(json.dumps(rec))
        seal_records(results_copy, [path.parent])  # as `bench run` sealed them then
    out = tmp_path / "reports"
    r = CliRunner().invoke(main, ["report", "--results", str(results_copy), "--out", str(out)])
    assert r.exit_code == 0, r.output
    text = (out / "camvid-decoder-variants" / "README.md").read_text()
    assert "superseded and not shown: fcn-basic" in text and "fcn-basic revision 2, now 3" in text
    fcn_rows = [line for line in text.splitlines() if line.startswith("| FCN-Basic |")]
    assert fcn_rows and all(line.startswith("| FCN-Basic | not run |") for line in fcn_rows)  # the paper's rows stay
    assert any(line.startswith("| SegNet-Basic |") and "not run" not in line for line in text.splitlines())
    assert run_check(results_copy, root)["failed"] == 0  # superseded is not a failure: the gate judges current rows
    r = CliRunner().invoke(main, ["runs", "--results", str(results_copy)])
    lines = [line for line in r.output.splitlines() if " fcn-basic " in line]
    assert lines and all("(superseded)" in line for line in lines)
    assert not any("(superseded)" in line for line in r.output.splitlines() if " segnet-basic " in line)


def test_records_of_an_earlier_recipe_get_their_own_tables_and_are_never_pooled(made_records, tmp_path):
    root, results = made_records
    results_copy = tmp_path / "results"
    shutil.copytree(results, results_copy)
    first = next((results_copy / "camvid-decoder-variants" / "segnet-basic").glob("*/run.json"))
    rec = _copy_record(first, results_copy, seed=1, **{"config.max_iters": 3})  # as if the suite's length changed
    from bench.records import current_recipe, load_records, recipe_key, standing
    assert standing(rec) == "earlier-recipe" and not current_recipe(rec)
    records, _ = load_records(results_copy)
    assert all(standing(r) == "current" for _, r in records if r["run_id"] != rec["run_id"])
    keys = {recipe_key(r) for _, r in records if r["member"] == "segnet-basic" and r.get("variant") == rec["variant"]}
    assert len(keys) == 2  # seed and recipe both differ: two runs, not repeats
    out = tmp_path / "reports"
    r = CliRunner().invoke(main, ["report", "--results", str(results_copy), "--out", str(out)])
    assert r.exit_code == 0, r.output
    text = (out / "camvid-decoder-variants" / "README.md").read_text()
    heading = next(line for line in text.splitlines() if line.startswith("### Table 1") and "Earlier recipe" in line)
    assert "recorded with max_iters 3" in heading
    current = text.split(heading)[0]
    natural = current.split("natural-frequency balancing")[1].split("###")[0]
    row = next(line for line in natural.splitlines() if line.startswith("| SegNet-Basic |"))
    assert "[s0](" in row and "[s1](" not in row  # seed 0 alone: seed 1 is not pooled with it
    assert (out / "camvid-decoder-variants" / "table1_earlier1.csv").is_file()


def _t3(member, converged, **scores):
    stop = {"reason": "plateau" if converged else "cap", "iteration": 20000, "converged": converged,
            "selected_at_last_evaluation": not converged}
    return {("camvid-controlled", member, None): [{"test": scores, "stop": stop}]}


def test_table3_claims_are_judged_only_on_runs_stopped_by_the_papers_rule():
    rules = load_rules()
    paperlike = {"segnet": (90, 71, 60, 47), "deconvnet": (89.6, 70, 59.8, 52), "fcn": (83, 59, 49, 28),
                 "fcn-learnt-deconv": (83.1, 64, 52, 33), "deeplab-largefov": (88, 62, 54, 33)}

    def full(converged=True, changes=None):
        out = {}
        for m, (g, c, miou, bf) in {**paperlike, **(changes or {})}.items():
            out.update(_t3(m, converged, G=g, C=c, mIoU=miou, BF=bf))
        return out
    out = {o["rule"]: o for o in check_claims(rules, full(), profiles=[])}
    for rid in ("segnet-bf-above-fcn", "segnet-bf-above-deeplab", "segnet-deconvnet-highest",
                "fcn-learnt-deconv-bf-above-fcn"):
        assert out[rid]["status"] == "pass", out[rid]
    out = {o["rule"]: o for o in check_claims(rules, full(changes={"deeplab-largefov": (88, 62, 54, 48)}),
                                              profiles=[])}  # DeepLab's BF above SegNet's, under DeconvNet's
    assert out["segnet-bf-above-deeplab"]["status"] == "fail" and out["segnet-deconvnet-highest"]["status"] == "fail"
    assert "BF segnet 47.00, deconvnet 52.00" in out["segnet-deconvnet-highest"]["detail"]
    assert out["segnet-bf-above-fcn"]["status"] == "pass"
    out = {o["rule"]: o for o in check_claims(rules, full(converged=False), profiles=[])}
    assert out["segnet-bf-above-fcn"]["status"] == "not run"
    assert out["segnet-bf-above-fcn"]["detail"].startswith("not converged: segnet: stopped at the cap")


def test_check_prints_the_verdicts_first_folds_rescores_and_shows_failures_whole():
    from bench.check import format_check
    long_path = "results/camvid-controlled/segnet/" + "x" * 150 + "/run.json"
    outcomes = [{"rule": "table1:segnet-basic:mIoU", "status": "fail", "detail": "ours 55.00 vs paper 47.70: "
                 "Δ +7.30 outside ±5.0 (n=1)", "short": "ours 55.00 vs paper 47.70: Δ +7.30 outside ±5.0"},
                {"rule": "claim", "status": "pass", "detail": "a long claim " * 30, "short": "values " * 40},
                {"rule": "record", "status": "fail", "detail": f"{long_path}: run record lacks test"}]
    outcomes += [{"rule": f"rescore:r{i}", "status": "pass", "detail": "2 predictions re-scored"} for i in range(5)]
    outcomes += [{"rule": "rescore:bad", "status": "fail", "detail": "G 80.00->79.00"},
                 {"rule": "superseded:s:m", "status": "not run", "detail": "outdated model"}]
    report = {"outcomes": outcomes, "passed": 6, "failed": 3, "differs": 0, "not_run": 1, "records": 6, "profiles": 0}
    lines = format_check(report)
    assert lines[0].startswith("bench check: 6 passed, 3 failed, 0 differ")
    assert "Δ +7.30 outside ±5.0" in lines[1] and "<=" not in "\n".join(lines)
    assert any(line.startswith("fail") and long_path in line for line in lines)  # a failure is never cut
    assert any(line.startswith("fail") and "rescore:bad" in line for line in lines)
    assert not any("rescore:r1" in line for line in lines)
    assert "re-scored predictions of 6 records: 5 pass, 1 fail (--verbose lists them)" in lines
    assert all(len(line) <= 120 for line in lines if long_path not in line)
    claim = [line for line in lines if "values" in line]
    assert len(claim) == 2 and claim[1].endswith("…")  # wrapped under its column, cut after two lines
    verbose = format_check(report, verbose=True)
    assert any("rescore:r1" in line for line in verbose) and any("a long claim" in line for line in verbose)


@pytest.mark.camvid
def test_the_docs_bench_check_sample_is_its_output_on_the_committed_records(camvid_root):
    repo = Path(__file__).resolve().parents[1]
    text = (repo / "docs" / "reports.md").read_text()
    block = text.split("<!-- bench check sample: bench check --data-root ../shared/datasets -->\n```\n")[1]
    block = block.split("```\n<!-- end bench check sample -->")[0]
    r = CliRunner().invoke(main, ["check", "--results", str(repo / "results"), "--data-root", str(camvid_root)])
    assert r.exit_code == 0, r.output
    assert r.output == block  # regenerate: python tools/update-docs.py


def test_report_with_a_filter_that_matches_nothing_says_so_and_leaves_the_reports(made_records, tmp_path):
    _, results = made_records
    out = tmp_path / "reports"
    out.mkdir()
    (out / "README.md").write_text("the previous report")
    r = CliRunner().invoke(main, ["report", "--results", str(results), "--out", str(out), "--commit", "deadbeef"])
    assert r.exit_code == 2 and "match --commit deadbeef; nothing rendered" in r.output, r.output
    assert "Traceback" not in r.output and (out / "README.md").read_text() == "the previous report"


def test_a_claim_never_compares_one_recipes_run_with_anothers(monkeypatch):
    """Issue 48: SegNet-Basic recorded only under the earlier fixed schedule was judged against FCN-Basic under the
    paper's stopping rule, and the claim failed; it now reads "not run" and names the member."""
    import bench.check as check
    rules = load_rules()
    claim = next(c for c in rules["claims"] if c["id"] == "segnet-basic-within-1-of-fcn-basic")
    stop = {"reason": "loss-converged", "iteration": 12000, "converged": True}
    full = {("camvid-decoder-variants", "segnet-basic", "median-frequency"): [
                {"test": {"mIoU": 45.0}, "stop": stop, "when": "earlier"}],
            ("camvid-decoder-variants", "fcn-basic", "median-frequency"): [
                {"test": {"mIoU": 48.9}, "stop": stop, "when": "now"}]}
    monkeypatch.setattr(check, "current_recipe", lambda rec: rec["when"] == "now")
    out = check.check_comparison(claim, full)
    assert out == {"rule": claim["id"], "status": "not run",
                   "detail": "segnet-basic only under an earlier recipe"}
    full[("camvid-decoder-variants", "segnet-basic", "median-frequency")][0]["when"] = "now"
    assert check.check_comparison(claim, full)["status"] == "fail"  # like with like: judged (48.9 vs 45.0)
    for recs in full.values():  # both under the same earlier recipe: judged, and said so
        recs[0]["when"] = "earlier"
    out = check.check_comparison(claim, full)
    assert out["status"] == "fail" and out["detail"].endswith("(earlier recipe)")


def test_a_claim_names_a_member_recorded_only_with_an_outdated_model(monkeypatch):
    """FCN-Basic's median-frequency row exists only at revision 2 (revision 3 changed its decoder): the claim against
    SegNet-Basic says so rather than that no record exists; a member never recorded is still "needs ..."."""
    import bench.check as check
    claim = next(c for c in load_rules()["claims"] if c["id"] == "segnet-basic-within-1-of-fcn-basic")
    key = lambda m: ("camvid-decoder-variants", m, "median-frequency")  # noqa: E731
    old = {"suite": "camvid-decoder-variants", "member": "fcn-basic", "variant": "median-frequency",
           "profile": "full", "run_id": "r2", "model": {"name": "fcn-basic", "revision": 2}}
    monkeypatch.setattr(check, "standing", lambda rec: "outdated-model" if rec["run_id"] == "r2" else "current")
    monkeypatch.setattr("bench.architectures.model_revision", lambda name: 3)
    outdated = check.outdated_runs([(None, old)])
    assert list(outdated) == [key("fcn-basic")]
    full = {key("segnet-basic"): [{"test": {"mIoU": 47.0}, "stop": {"converged": True}}]}
    out = check.check_comparison(claim, full, outdated)
    assert out["status"] == "not run"
    assert out["detail"] == "fcn-basic recorded only with an outdated model (revision 2, now 3)"
    out = check.check_comparison(claim, {}, outdated)
    assert out["detail"] == ("needs full-profile records of segnet-basic in camvid-decoder-variants; fcn-basic "
                             "recorded only with an outdated model (revision 2, now 3)")
    newer = {**old, "run_id": "r3", "model": {"name": "fcn-basic", "revision": 3}}
    assert check.outdated_runs([(None, old), (None, newer)]) == {}  # a current record of the run: not outdated


def test_a_deadline_record_replaced_by_its_resumed_run_is_named_and_not_judged(made_records, tmp_path):
    """Issue 48: a lease records the run its deadline cuts, the next resumes and records it again; the gate says
    which record replaced which and judges the later one only."""
    import json
    root, results = made_records
    results_copy = tmp_path / "results"
    shutil.copytree(results, results_copy)
    first = next((results_copy / "camvid-decoder-variants" / "segnet-basic").glob("*/run.json"))
    rec = json.loads(first.read_text())
    stop = {**rec["stop"], "reason": "deadline", "converged": False}
    _copy_record(first, results_copy, stop=stop, finished_at="2000-01-01T00:00:00+00:00")  # the older, cut one
    report = run_check(results_copy, root)
    replaced = [o for o in report["outcomes"] if o["rule"].startswith("replaced:")]
    assert len(replaced) == 1 and replaced[0]["rule"].endswith(rec["run_id"] + "-copy")
    assert replaced[0]["detail"] == (f"replaced by the later record {rec['run_id']} of the same run (this one "
                                     f"stopped at the deadline at {stop['iteration']:,})")
    lines = format_check(report)
    assert "replaced: 1 record(s) by a later one of their run, e.g. at a deadline and resumed (--verbose lists " \
           "them)" in lines, lines


def test_records_made_elsewhere_are_imported_with_their_seals_checked_and_forgotten_deliberately(made_records,
                                                                                                tmp_path):
    """A lease's records come back with their seal: `python -m bench.seal --import` checks each against it before
    copying (an edited one is refused, nothing copied) and merges the seals; --forget removes records with their
    seal entries, so the gate reports nothing vanished."""
    import json
    from bench.seal import main as seal_main, read_seal
    root, results = made_records
    lease, mine = tmp_path / "lease", tmp_path / "results"
    shutil.copytree(results, lease)
    (mine / "camvid-decoder-variants").mkdir(parents=True)
    edited = next(lease.glob("camvid-decoder-variants/segnet-basic/*/run.json"))
    original = edited.read_text()
    edited.write_text(original.replace('"seed": 0', '"seed": 7'))
    assert seal_main(["--import", str(lease), str(mine)]) == 1
    assert not list(mine.rglob("run.json"))  # nothing copied
    edited.write_text(original)
    assert seal_main(["--import", str(lease), str(mine)]) == 0
    assert read_seal(mine) == read_seal(lease) and len(list(mine.rglob("run.json"))) == len(read_seal(lease))
    assert seal_main(["--import", str(lease), str(mine)]) == 1  # never twice
    assert run_check(mine, root)["failed"] == 0
    gone = next(mine.glob("camvid-controlled/segnet/*/run.json")).parent
    assert seal_main(["--forget", str(mine), str(gone)]) == 0
    assert not gone.exists() and gone.relative_to(mine).as_posix() not in read_seal(mine)
    assert run_check(mine, root)["failed"] == 0  # removed deliberately, not vanished
    assert json.loads(edited.read_text())["seed"] == 0


def test_report_without_a_data_root_keeps_every_file_it_cannot_redraw_byte_identical(made_records, tmp_path,
                                                                                       monkeypatch):
    """Issue 49: `bench report` without a data root deleted committed qualitative figures and edited the pages that
    showed them. Now it keeps what it cannot redraw, says so in one line, and changes nothing."""
    root, results = made_records
    out = tmp_path / "reports"
    r = CliRunner().invoke(main, ["report", "--results", str(results), "--out", str(out), "--data-root", str(root)])
    assert r.exit_code == 0, r.output
    before = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert any(p.name == "qualitative.png" for p in before)
    monkeypatch.setenv("BENCH_DATA_ROOT", str(tmp_path / "no-datasets-here"))
    r = CliRunner().invoke(main, ["report", "--results", str(results), "--out", str(out)])
    assert r.exit_code == 0, r.output
    after = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert after.keys() == before.keys()
    assert [str(k) for k in after if after[k] != before[k]] == []
    kept = [line for line in r.stderr.splitlines() if line.startswith("kept ")]
    assert len(kept) == 1 and "qualitative.png" in kept[0] and "--data-root" in kept[0]
