"""`bench run --executor slurm` against a real one-node Slurm (`bash tests/slurm/cluster start`; `.ci/run` starts
it): the same records as in-process, a job stopped at its time limit and resubmitted, a job requeued (pre-emption)
and one killed on its node, `--no-wait` and what a later command makes of it, options the cluster rejects.

The jobs train smoke runs on the real CamVid (BENCH_DATA_ROOT or ../shared/datasets), deterministically, so that a
resumed run's record equals an uninterrupted one. Skipped where no cluster is up, except under CI."""
import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import main
from bench.dispatch import dispatch
from bench.jobs import JobSettings, RunSpec, job_rows
from bench.runner import train_suite
from tests.test_dispatch import assert_curves_once_each, records_content

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SUITE = "camvid-decoder-variants"
# about 100 s of training on 2 CPU cores (SegNet-Basic, the smoke profile's 240x320, batch 2): longer than a job with
# a 2-minute limit runs (it stops itself after one minute, or at Slurm's warning up to a minute earlier)
LONG = {"max_iters": 50, "eval_every_iters": 10, "stopping": "schedule", "deterministic": True}


def _cluster_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and any(s.startswith(("idle", "mix", "alloc", "comp")) for s in out.stdout.split())


@pytest.fixture(scope="module")
def root(camvid_root):
    if not _cluster_up():
        if os.environ.get("CI"):
            pytest.fail("CI: no Slurm cluster is up (.ci/run starts one: bash tests/slurm/cluster start)")
        pytest.skip("no Slurm cluster here: bash tests/slurm/cluster start")
    return camvid_root


@pytest.fixture(autouse=True)
def _no_jobs_left_behind():
    """A test that fails (or times out) mid-dispatch leaves no job of its own in the queue for the next one."""
    before = _squeue_ids() if _cluster_up() else set()
    yield
    if _cluster_up():
        left = _squeue_ids() - before
        if left:
            subprocess.run(["scancel", *sorted(left)], capture_output=True, timeout=20)


def _settings(root, tmp, overrides) -> JobSettings:
    return JobSettings(data_root=str(root), results=str(tmp / "r"), checkpoints=str(tmp / "c"),
                       overrides=dict(overrides), checkpoint_minutes=0.0)  # a checkpoint at every evaluation


@pytest.fixture(scope="module")
def uninterrupted(root, tmp_path_factory):
    """The in-process record of the long run the interruption tests cut: what a resumed job must end with."""
    base = tmp_path_factory.mktemp("slurm-reference")
    train_suite(SUITE, profile="smoke", members=["segnet-basic"], variants=["median-frequency"], data_root=root,
                results=base / "r", checkpoints=base / "c", overrides=dict(LONG), log=lambda m: None)
    return records_content(base / "r")


def _squeue_ids() -> set:
    out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, timeout=20).stdout
    return set(out.split())


def _pending_reason(job_id) -> str:
    out = subprocess.run(["squeue", "-h", "-j", str(job_id), "-t", "PD", "-o", "%r"], capture_output=True,
                         text=True, timeout=20).stdout
    return out.strip()


def _submitted(output: str) -> list:
    """The dispatcher's lines for jobs it submitted."""
    return [line for line in output.splitlines() if line.startswith("submitted ")]


def _cli(*args):
    return CliRunner().invoke(main, ["run", "--suite", SUITE, "--profile", "smoke", "--executor", "slurm",
                                     "--gpus-per-job", "0", *args])


def test_no_wait_then_the_same_command_waits_for_the_jobs_then_collects_the_records(root, tmp_path):
    """--no-wait submits and returns; the same command waits for the jobs still in the queue (not submitting them
    again), and once they are recorded only collects them; the jobs' records are the in-process loop's."""
    args = ["--members", "segnet-basic,fcn-basic", "--variants", "median-frequency", "--data-root", str(root),
            "--time-limit", "10", "--results", str(tmp_path / "slurm"), "--checkpoints", str(tmp_path / "c1"),
            "--jobs", str(tmp_path / "jobs"), "--set=deterministic=true"]
    r = _cli(*args, "--no-wait")
    assert r.exit_code == 0, r.output
    ids = [row["job_id"] for row in job_rows(tmp_path / "jobs")]
    assert len(ids) == 2 and all(f"job {i} " in r.output for i in ids)
    shown = CliRunner().invoke(main, ["runs", "--jobs", str(tmp_path / "jobs"), "--results", str(tmp_path / "r")])
    assert shown.exit_code == 0 and all(f" {i} " in shown.output for i in ids)
    r = _cli(*args)  # the jobs are still queued or running: waited for, not submitted again
    assert r.exit_code == 0, r.output
    assert not _submitted(r.output) and r.output.count("still in the queue; waiting for it") == 2, r.output
    r = _cli(*args)  # all recorded: collected, nothing submitted
    assert r.exit_code == 0 and not _submitted(r.output) and r.output.count("already") == 2, r.output
    assert {row["state"] for row in job_rows(tmp_path / "jobs")} == {"recorded"}
    train_suite(SUITE, profile="smoke", members=["segnet-basic", "fcn-basic"], variants=["median-frequency"],
                data_root=root, results=tmp_path / "inproc", checkpoints=tmp_path / "c2",
                overrides={"deterministic": True}, log=lambda m: None)
    assert records_content(tmp_path / "slurm") == records_content(tmp_path / "inproc")


def test_a_requeued_job_and_one_at_its_time_limit_resume_to_the_uninterrupted_record(root, tmp_path, uninterrupted):
    """Requeued once (pre-emption: SIGTERM) after its first checkpoint, the job checkpoints, leaves without a
    result and runs again under the same id; its run is longer than the job's 2-minute limit allows, so it stops
    at that limit (its own, or Slurm's warning signal) and is submitted again; it ends with the record of the run
    that nothing interrupted."""
    spec = RunSpec(SUITE, "segnet-basic", "median-frequency", 0, "smoke")
    note = tmp_path / "c" / SUITE / "segnet-basic" / "smoke-median-frequency-seed0.json"
    requeued, lines = [], []

    def preempt_once_checkpointed(entry, job):
        if not requeued and note.exists() and entry.attempts == 1:
            subprocess.run(["scontrol", "requeue", str(job.job_id)], check=True)
            requeued.append(job.job_id)
        elif requeued and _pending_reason(job.job_id) == "BeginTime":  # Slurm holds a requeued job two minutes
            subprocess.run(["scontrol", "update", f"jobid={job.job_id}", "starttime=now"], capture_output=True)
    settings = dataclasses.replace(_settings(root, tmp_path, LONG), tensorboard=str(tmp_path / "tb"))
    out = dispatch([spec], settings, executor="slurm", jobs_dir=tmp_path / "jobs",
                   time_limit_min=2, gpus=0, log=lines.append, poll_seconds=0.5, on_poll=preempt_once_checkpointed)
    (e,) = out["entries"]
    assert requeued and (e.state, e.failures) == ("recorded", 0), lines
    first = Path(e.stdout).parents[1] / requeued[0] / f"{requeued[0]}_0_log.out"
    log = first.read_text(errors="replace")  # one job, two starts: interrupted, then resumed under the same id
    assert log.count("Starting with JobEnvironment") >= 2 and "resumed segnet-basic from iteration" in log
    assert e.attempts >= 2 and any("at its time limit" in line for line in lines), lines
    assert records_content(tmp_path / "r") == uninterrupted
    assert_curves_once_each(tmp_path / "tb", tmp_path / "r")  # every job of the run wrote to the same live curves


def test_a_job_killed_on_its_node_is_tried_once_more_then_reported(root, tmp_path):
    spec = RunSpec(SUITE, "segnet-basic", "median-frequency", 0, "smoke")
    killed = []

    def kill_when_running(entry, job):
        if entry.state == "running" and job.job_id not in killed:
            subprocess.run(["scancel", "--signal=KILL", str(job.job_id)], check=True)
            killed.append(job.job_id)
    lines = []
    out = dispatch([spec], _settings(root, tmp_path, LONG), executor="slurm", jobs_dir=tmp_path / "jobs",
                   time_limit_min=20, gpus=0, log=lines.append, poll_seconds=0.5, on_poll=kill_when_running)
    (e,) = out["entries"]
    assert len(killed) == 2 and (e.state, e.attempts, e.failures) == ("failed", 2, 2), lines
    report = [line for line in lines if line.startswith("failed") and "twice" in line]
    assert len(report) == 1 and e.stderr in report[0]
    assert not list((tmp_path / "r").rglob("run.json")) and not list((tmp_path / "r").rglob(".tmp-*"))


@pytest.mark.parametrize("args,message", [
    (["--partition", "nope"], "--partition nope: this Slurm cluster has no such partition"),
    (["--gpus-per-job", "1"], "--gpus-per-job 1: the nodes of partition"),
])
def test_options_the_cluster_rejects_fail_before_anything_is_submitted(root, tmp_path, args, message):
    before = _squeue_ids()
    r = CliRunner().invoke(main, ["run", "--suite", SUITE, "--profile", "smoke", "--executor", "slurm",
                                  "--time-limit", "5", "--data-root", str(root), "--jobs", str(tmp_path / "jobs"),
                                  "--results", str(tmp_path / "r"), *args])
    assert r.exit_code == 2 and message in r.stderr and "Traceback" not in r.output, r.output
    assert len([ln for ln in r.stderr.splitlines() if ln.strip()]) <= 2  # the profile line and the error
    assert _squeue_ids() == before and not list((tmp_path / "jobs").rglob("*.pkl"))


def test_a_second_start_stop_pair_leaves_the_first_cluster_running(root):
    """Issue 49: two test runs on one machine stopped each other's cluster (`stop` read a shared pid folder and ran
    `pkill -x munged`). A `start` that finds the cluster up takes no ownership, and its `stop` stops nothing."""
    script = Path(__file__).parent / "slurm" / "cluster"
    env = {**os.environ, "CLUSTER_OWNER": "a-second-test-run"}
    started = subprocess.run(["bash", str(script), "start"], capture_output=True, text=True, timeout=120, env=env)
    assert started.returncode == 0 and "up already" in started.stderr, started.stderr
    stopped = subprocess.run(["bash", str(script), "stop"], capture_output=True, text=True, timeout=60, env=env)
    assert stopped.returncode == 0 and "not stopped" in stopped.stderr, stopped.stderr
    assert _cluster_up()
    munge = subprocess.run(["pgrep", "-x", "munged"], capture_output=True)
    assert munge.returncode == 0  # munge, which the first run started, is still there
