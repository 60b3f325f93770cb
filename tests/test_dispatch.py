"""`bench run --executor`: a job killed mid-run is resubmitted and resumes to the uninterrupted run's record; a
failing job is reported with its log; what a suite or plan dispatches. (The local executor against the in-process
run on the real CamVid smoke suite: tests/test_ci_jobs.py.)"""
import json
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from bench.cli import main
from bench.dispatch import dispatch
from bench.jobs import JobSettings, RunSpec, job_rows, plan_specs, suite_specs
from bench.records import load_records
from bench.runner import train_suite

pytest.importorskip("submitit")

TINY = {"image_size": [64, 96], "max_iters": 2, "batch_size": 2, "eval_every_iters": 1}
TINY_SET = [f"--set={k}={json.dumps(v).replace(' ', '')}" for k, v in TINY.items()]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from bench.datasets.synthetic import make_synthetic_camvid
    return make_synthetic_camvid(tmp_path_factory.mktemp("dispatch") / "data")


def records_content(results):
    """What two runs of the same recipe must share: scores, curves, schedule, config and prediction pixels."""
    recs, problems = load_records(Path(results))
    assert not problems
    out = {}
    for path, r in recs:
        preds = sorted((path.parent / "predictions").iterdir())
        out[(r["suite"], r["member"], r["variant"], r["seed"])] = (
            {k: r[k] for k in ("test", "curves", "budgets", "selected", "config", "iterations")},
            [np.asarray(Image.open(p)).tobytes() for p in preds])
    return out


@pytest.mark.slow
def test_a_job_killed_mid_run_is_resubmitted_and_resumes(data, tmp_path):
    longer = dict(TINY, max_iters=16, eval_every_iters=8)
    spec = RunSpec("camvid-decoder-variants", "segnet-basic", "median-frequency", 0, "smoke")
    settings = JobSettings(data_root=str(data), results=str(tmp_path / "r"), checkpoints=str(tmp_path / "c"),
                           overrides=longer, checkpoint_minutes=0.0, tensorboard=str(tmp_path / "tb"))
    ckpt_note = tmp_path / "c" / "camvid-decoder-variants" / "segnet-basic" / "smoke-median-frequency-seed0.json"
    killed = []

    def kill_once_checkpointed(entry, job):
        if not killed and ckpt_note.exists():
            status = json.loads((tmp_path / "jobs").glob("*/status/*.json").__next__().read_text())
            os.kill(status["pid"], signal.SIGKILL)   # the training process: no chance to checkpoint again
            killed.append(json.loads(ckpt_note.read_text())["iteration"])
    out = dispatch([spec], settings, executor="local", jobs_dir=tmp_path / "jobs", log=lambda m: None,
                   poll_seconds=0.05, on_poll=kill_once_checkpointed)
    (entry,) = out["entries"]
    assert killed and 0 < killed[0] < 16
    assert (entry.state, entry.attempts, entry.failures) == ("recorded", 2, 1)
    first_log = Path(entry.stdout).parent.parent
    assert len([p for p in first_log.iterdir() if p.name.isdigit()]) == 2  # two jobs, one folder of logs each
    base = tmp_path / "uninterrupted"
    train_suite("camvid-decoder-variants", profile="smoke", members=["segnet-basic"], variants=["median-frequency"],
              data_root=data, results=base / "r", checkpoints=base / "c", overrides=dict(longer), log=lambda m: None)
    assert records_content(tmp_path / "r") == records_content(base / "r")
    assert_curves_once_each(tmp_path / "tb", tmp_path / "r")


def assert_curves_once_each(tb: Path, results: Path) -> None:
    """The run's live curves (one folder, however many jobs wrote to it) hold each loss read and each evaluation
    once, as TensorBoard reads them (what a killed job wrote past its checkpoint purged)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    (rec,) = [json.loads(p.read_text()) for p in results.rglob("run.json")]
    assert Path(rec["tensorboard"]).parent.parent.parent == tb and len(list(tb.glob("*/*/*"))) == 1
    acc = EventAccumulator(rec["tensorboard"])
    acc.Reload()
    assert [e.step for e in acc.Scalars("val/G")] == [p["iteration"] for p in rec["curves"]["val"]]
    steps = [e.step for e in acc.Scalars("train/loss")]
    assert steps == sorted(set(steps)) and steps[-1] == rec["iterations"]


@pytest.mark.slow
def test_a_stopped_dispatcher_stops_its_local_jobs_with_a_checkpoint(data, tmp_path):
    """Found by trying: SIGTERM to `bench run --executor local` left its job running as an orphan while the parent
    said nothing was half written. The jobs stop with a checkpoint and the dispatcher waits for them."""
    longer = dict(TINY, max_iters=400, eval_every_iters=400)
    spec = RunSpec("camvid-decoder-variants", "segnet-basic", "median-frequency", 0, "smoke")
    settings = JobSettings(data_root=str(data), results=str(tmp_path / "r"), checkpoints=str(tmp_path / "c"),
                           overrides=longer, checkpoint_minutes=10.0)
    pids, lines = [], []

    def stop_when_training(entry, job):
        status = next((tmp_path / "jobs").glob("*/status/*.json"), None)
        state = json.loads(status.read_text()) if status else {}
        if state.get("state") == "running" and not pids:
            pids.append(state["pid"])
            time.sleep(3)  # into the training loop
            raise KeyboardInterrupt  # as SIGTERM does to the dispatcher
    with pytest.raises(KeyboardInterrupt):
        dispatch([spec], settings, executor="local", jobs_dir=tmp_path / "jobs", log=lines.append,
                 poll_seconds=0.05, on_poll=stop_when_training)
    assert pids
    status = Path(f"/proc/{pids[0]}/status")  # the job's process has ended (gone, or a zombie not yet reaped)
    assert not status.exists() or "\tZ" in next(ln for ln in status.read_text().splitlines() if ln.startswith("State"))
    assert list((tmp_path / "c").rglob("*.pt")), "the job stopped without its checkpoint"
    assert lines[-1] == "the dispatcher stopped; its jobs stopped with a checkpoint", lines


def test_a_failing_job_is_reported_with_its_error_and_log_after_two_tries(data, tmp_path):
    r = CliRunner().invoke(main, ["run", "--suite", "camvid-decoder-variants", "--members", "segnet-basic",
                                  "--variants", "median-frequency", "--profile", "smoke", "--executor", "local",
                                  "--data-root", str(data), "--results", str(tmp_path / "r"),
                                  "--checkpoints", str(tmp_path / "c"), "--jobs", str(tmp_path / "jobs"),
                                  "--encoder-weights", str(tmp_path / "missing.pth"), *TINY_SET])
    assert r.exit_code == 1
    line = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(line) == 1 and "missing.pth" in line[0] and "log " in line[0]
    (row,) = job_rows(tmp_path / "jobs")
    assert (row["state"], row["attempts"]) == ("failed", 2) and Path(row["stderr"]).is_file()
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").rglob("run.json"))


def test_what_is_dispatched():
    specs = suite_specs("camvid-decoder-variants", "smoke", ["segnet-basic"], None, (0, 1))
    assert [(s.variant, s.seed) for s in specs] == [("median-frequency", 0), ("natural-frequency", 0),
                                                     ("median-frequency", 1), ("natural-frequency", 1)]
    plan = plan_specs("paper", None, log=lambda m: None)
    assert plan[0] == RunSpec("camvid-decoder-variants", "segnet-basic", "median-frequency", 0, "full")
    assert RunSpec("camvid-controlled", "segnet", None, 0, "full") in plan  # the profile step is not a job
    assert len(plan) == len(set(plan)) and RunSpec("camvid-controlled", "segnet", None, 2, "full") in plan
    with pytest.raises(Exception, match="unknown member"):
        suite_specs("camvid-decoder-variants", "smoke", ["nope"], None, (0,))


def test_bad_executor_options_are_one_line_errors(tmp_path):
    r = CliRunner().invoke(main, ["run", "--suite", "camvid-decoder-variants", "--executor", "local", "--no-wait",
                                  "--jobs", str(tmp_path / "j")])
    assert r.exit_code == 2 and "--no-wait needs --executor slurm" in r.stderr and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["run", "--suite", "camvid-decoder-variants", "--time-limit", "60"])
    assert r.exit_code == 2 and "apply with --executor only" in r.stderr


@pytest.mark.skipif(shutil.which("srun") is not None, reason="a Slurm cluster is present")
def test_slurm_without_slurm_is_a_one_line_error(tmp_path):
    base = ["run", "--suite", "camvid-decoder-variants", "--executor", "slurm", "--jobs", str(tmp_path / "j")]
    r = CliRunner().invoke(main, base)
    assert r.exit_code == 2 and "needs --time-limit" in r.stderr
    r = CliRunner().invoke(main, base + ["--time-limit", "30", "--partition", "gpu"])
    assert r.exit_code == 2 and "--executor slurm" in r.stderr and "srun" in r.stderr and "Traceback" not in r.output
    assert not (tmp_path / "j").exists() or not any((tmp_path / "j").iterdir())


def test_job_deadline_is_a_little_under_the_time_limit():
    from bench.dispatch import job_minutes
    assert job_minutes(240) == 228 and job_minutes(30) == 28 and job_minutes(3) == 1.5 and job_minutes(None) is None


def test_max_minutes_is_the_whole_dispatchs_deadline(data, tmp_path):
    """Two runs one at a time under a deadline shorter than one run: the first stops with a checkpoint, the
    second never starts, nothing is resubmitted after the deadline, and the command exits 3 as in-process."""
    r = CliRunner().invoke(main, ["run", "--suite", "camvid-decoder-variants", "--members", "segnet-basic,fcn-basic",
                                  "--variants", "median-frequency", "--profile", "smoke", "--executor", "local",
                                  "--max-minutes", "0.3", "--checkpoint-minutes", "0", "--data-root", str(data),
                                  "--results", str(tmp_path / "r"), "--checkpoints", str(tmp_path / "c"),
                                  "--jobs", str(tmp_path / "jobs"), "--set=image_size=[64,96]",
                                  "--set=max_iters=100000", "--set=eval_every_iters=5", "--set=stopping=schedule"])
    assert r.exit_code == 3, r.output
    rows = {row["spec"]["member"]: row for row in job_rows(tmp_path / "jobs")}
    assert rows["segnet-basic"]["state"] == "stopped" and rows["segnet-basic"]["attempts"] == 1
    assert rows["fcn-basic"]["state"] == "stopped" and rows["fcn-basic"]["attempts"] == 0
    assert (tmp_path / "c" / "camvid-decoder-variants" / "segnet-basic").is_dir()
    assert "stopped: camvid-decoder-variants / fcn-basic" in r.stderr


def test_postprocessed_member_runs_in_the_job_of_the_member_it_postprocesses():
    from bench.jobs import suite_specs
    specs = suite_specs("camvid-controlled", "smoke")
    deeplab = [s for s in specs if s.member == "deeplab-largefov"]
    assert [s.then for s in deeplab] == [("deeplab-largefov-densecrf",)]
    assert not any(s.member == "deeplab-largefov-densecrf" for s in specs)  # no job of its own: it would race
    (alone,) = suite_specs("camvid-controlled", "smoke", members=["deeplab-largefov-densecrf"])
    assert alone.member == "deeplab-largefov-densecrf" and alone.then == ()  # the DeepLab record must exist
