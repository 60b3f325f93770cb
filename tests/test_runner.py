"""`bench run`: records, resume, seeds and bad input (tiny budgets on the CPU)."""
import json

import pytest
from click.testing import CliRunner

from bench.cli import main
from bench.errors import BenchError
from bench.runner import train_suite

TINY = {"image_size": [64, 96], "max_iters": 4, "batch_size": 2, "eval_every_iters": 2,
        "deterministic": True}


def tiny_run(fake_root, tmp_path, **kw):
    args = dict(profile="smoke", members=["segnet-basic"], variants=["natural-frequency"], data_root=fake_root,
                results=tmp_path / "results", checkpoints=tmp_path / "ckpt", overrides=dict(TINY), log=lambda m: None)
    args.update(kw)
    return train_suite("camvid-decoder-variants", **args)


def test_run_writes_a_complete_record(fake_root, tmp_path):
    (folder,) = tiny_run(fake_root, tmp_path)
    rec = json.loads((folder / "run.json").read_text())
    assert rec["suite"] == "camvid-decoder-variants" and rec["member"] == "segnet-basic"
    assert rec["config"]["class_weighting"] == "natural" and rec["config"]["max_iters"] == 4
    assert rec["seed"] == 0 and rec["iterations"] == 4
    assert [p["iteration"] for p in rec["curves"]["val"]] == [2, 4]
    assert len(rec["curves"]["loss"]) == 4
    assert rec["selected"]["iteration"] in (2, 4)
    assert set(rec["test"]) >= {"G", "C", "mIoU", "BF", "per_class", "confusion_matrix", "conventions"}
    assert rec["train"] is not None  # Table 1 reports train scores
    assert rec["provenance"]["git"]["commit"] is None or len(rec["provenance"]["git"]["commit"]) == 40
    assert rec["provenance"]["libraries"]["torch"]
    assert rec["timing"]["train_images_per_second"] > 0
    log = (folder / rec["log"]).read_text().splitlines()  # the run's own lines, time-stamped
    assert [line.split(" ", 1)[1].strip().split(" |")[0].split(" (")[0] for line in log] == [
        "segnet-basic it 2 ep 1.0", "segnet-basic it 4 ep 2.0", "segnet-basic: stopped at iteration 4: cap"]
    assert rec["stop"]["reason"] == "cap" and rec["stop"]["iteration"] == 4 and not rec["stop"]["converged"]
    assert rec["model"]["revision"] == 1 and rec["train"]["confusion_matrix"] and rec["train"]["per_class"]
    preds = sorted(p.name for p in (folder / "predictions").iterdir())
    assert len(preds) == rec["predictions"]["count"] == 2  # the smoke profile scores 2 test images
    assert not (tmp_path / "ckpt").exists() or not list((tmp_path / "ckpt").rglob("*.pt"))  # removed when done
    r = CliRunner().invoke(main, ["runs", "--results", str(tmp_path / "results"), "--format", "json"])
    rows = json.loads(r.output)
    assert r.exit_code == 0 and len(rows) == 1 and rows[0]["member"] == "segnet-basic"


def test_interrupted_and_resumed_run_equals_uninterrupted(fake_root, tmp_path):
    (a,) = tiny_run(fake_root, tmp_path / "a")
    with pytest.raises(BenchError, match="interrupted at iteration 2 .* --resume"):
        tiny_run(fake_root, tmp_path / "b", stop_after=2)
    assert list((tmp_path / "b" / "ckpt").rglob("*.pt"))
    assert not (tmp_path / "b" / "results").exists() or not list((tmp_path / "b" / "results").rglob("run.json"))
    with pytest.raises(BenchError, match="a checkpoint of this run exists"):
        tiny_run(fake_root, tmp_path / "b")
    (b,) = tiny_run(fake_root, tmp_path / "b", resume=True)
    ra = json.loads((a / "run.json").read_text())
    rb = json.loads((b / "run.json").read_text())
    assert ra["curves"]["loss"] == rb["curves"]["loss"]
    assert ra["curves"]["val"] == rb["curves"]["val"]
    for k in ("G", "C", "mIoU", "BF", "confusion_matrix"):
        assert ra["test"][k] == rb["test"][k]
    for f in (a / "predictions").iterdir():
        assert f.read_bytes() == (b / "predictions" / f.name).read_bytes()
    log_b = (b / "log.txt").read_text()  # the lines before the interruption survive it, the resume is noted
    assert "it 2 " in log_b and "resumed segnet-basic from iteration 2" in log_b and "it 4 " in log_b
    # the wall-clock time counts both segments (issue 48: a resumed record said only its last one)
    assert ra["timing"]["segments"] == 1 and "wall_seconds_last_segment" not in ra["timing"]
    assert rb["timing"]["segments"] == 2
    assert rb["timing"]["wall_seconds"] > rb["timing"]["wall_seconds_last_segment"] > 0


def test_seeds_run_each_member_per_seed(fake_root, tmp_path):
    folders = tiny_run(fake_root, tmp_path, seeds=(0, 1))
    seeds = sorted(json.loads((f / "run.json").read_text())["seed"] for f in folders)
    assert seeds == [0, 1]
    losses = [json.loads((f / "run.json").read_text())["curves"]["loss"] for f in folders]
    assert losses[0] != losses[1]


@pytest.mark.parametrize("args,message", [
    (["--suite", "camvid-nope"], "unknown suite 'camvid-nope'"),
    (["--suite", "camvid-controlled", "--members", "segnet,unet"], "unknown member 'unet'"),
    (["--suite", "camvid-controlled", "--profile", "huge"], "Invalid value for '--profile'"),
    (["--suite", "camvid-controlled", "--set", "batch_size=two"], "batch_size must be an integer"),
    (["--suite", "camvid-controlled", "--set", "lr=-1"], "lr must be positive"),
    (["--suite", "camvid-controlled", "--set", "momentum=1.5"], "momentum must be in"),
    (["--suite", "camvid-controlled", "--set", "learning_rate=0.1"], "unknown recipe key 'learning_rate'"),
    (["--suite", "camvid-controlled", "--seeds", "a,b"], "expected comma-separated integers"),
])
def test_bad_run_input_fails_before_training(fake_root, tmp_path, args, message):
    r = CliRunner().invoke(main, ["run", *args, "--profile", "smoke", "--data-root", str(fake_root),
                                  "--results", str(tmp_path / "res")] if "--profile" not in args else
                           ["run", *args, "--data-root", str(fake_root), "--results", str(tmp_path / "res")])
    assert r.exit_code == 2 and message in r.output, r.output
    assert not (tmp_path / "res").exists()


def test_bad_suite_file_and_missing_dataset(tmp_path, fake_root):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\ndataset = "camvid"\nmembers = ["segnet"]\n[recipe]\nmax_iters = 2\n'
                   'eval_every_iters = 1\ndropout = 1.5\n')
    r = CliRunner().invoke(main, ["run", "--suite", str(bad), "--profile", "smoke", "--data-root", str(fake_root)])
    assert r.exit_code == 2 and "dropout must be in [0, 1)" in r.output
    bad.write_text("name = [unclosed")
    r = CliRunner().invoke(main, ["run", "--suite", str(bad), "--profile", "smoke", "--data-root", str(fake_root)])
    assert r.exit_code == 2 and "not valid TOML" in r.output
    r = CliRunner().invoke(main, ["run", "--suite", "camvid-controlled", "--profile", "smoke",
                                  "--data-root", str(tmp_path / "empty"), "--results", str(tmp_path / "res")])
    assert r.exit_code == 2 and "CamVid folder not found" in r.output and "did you mean" not in r.output
    assert not (tmp_path / "res").exists()
    r = CliRunner().invoke(main, ["run", "--suite", "camvid-controlled", "--profile", "smoke",  # the folder itself
                                  "--data-root", str(fake_root / "CamVid"), "--results", str(tmp_path / "res")])
    assert r.exit_code == 2 and f"did you mean --data-root {fake_root}?" in r.output, r.output


def test_every_shipped_suite_resolves_both_profiles():
    from bench.config import list_suites, load_suite
    assert set(list_suites()) >= {"camvid-controlled", "camvid-controlled-mfb", "camvid-decoder-variants"}
    s = load_suite("camvid-decoder-variants")
    assert len(s.members) == 8 and s.variants == ("median-frequency", "natural-frequency")
    full = s.resolve("full", "median-frequency")
    assert (full.lr, full.batch_size, full.encoder_weights, full.class_weighting) == (0.1, 12, "none", "authors-prototxt")
    c = load_suite("camvid-controlled").resolve("full")
    assert (c.lr, c.momentum, c.batch_size, c.class_weighting, c.dropout) == (1e-3, 0.9, 5, "natural", 0.5)


def test_time_budget_stops_with_a_checkpoint_and_resume_skips_recorded(fake_root, tmp_path):
    from bench.train import TimeBudgetReached
    with pytest.raises(TimeBudgetReached, match="time budget reached at iteration 1 of 4"):
        tiny_run(fake_root, tmp_path, max_minutes=1e-9)
    assert list((tmp_path / "ckpt").rglob("*.pt"))
    (first,) = tiny_run(fake_root, tmp_path, resume=True)
    (again,) = tiny_run(fake_root, tmp_path, resume=True)  # already recorded: skipped, nothing new written
    assert again == first
    assert len(list((tmp_path / "results").rglob("run.json"))) == 1
    r = CliRunner().invoke(main, ["run", "--suite", "camvid-decoder-variants", "--profile", "smoke", "--members",
                                  "segnet-basic", "--variants", "natural-frequency", "--data-root", str(fake_root),
                                  "--results", str(tmp_path / "r2"), "--checkpoints", str(tmp_path / "c2"),
                                  "--max-minutes", "0.000001", *sum((["--set", f"{k}={json.dumps(v)}"]
                                                                      for k, v in TINY.items()), [])])
    assert r.exit_code == 3 and "--resume" in r.output
