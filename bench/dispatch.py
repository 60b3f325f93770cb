"""Runs as jobs: each (member, variant, seed) of a suite, or each run of a plan, becomes one job of `submitit`.

    local   separate processes on this machine (at most --max-parallel at a time);
    slurm   one Slurm job per run (partition, account, GPUs, time limit);
    debug   in this process, one after another (submitit's debug executor: a failure opens pdb).

A job runs exactly what `bench run` runs in-process (`bench.runner.train_suite` for one run, resume on), so it
writes its record atomically into the shared results folder, skips a run already recorded and continues a
checkpoint left by an earlier job. The dispatcher waits for the jobs (a progress bar over them) and resubmits:
  - a job that stopped at its own limit (a little under --time-limit): it continues from its checkpoint, as long
    as each attempt moves the checkpoint on;
  - a job that failed, was killed or was pre-empted: once more (it resumes from its last checkpoint); a job
    that fails twice is reported with its error line and log path, not retried again.
--max-minutes is the whole dispatch's deadline, as for `bench run` in-process: every job stops by then with a
checkpoint, nothing is submitted after it, and the same command later continues. On Slurm, pre-emption and the time limit are also handled inside the job by submitit (`checkpoint()` requeues
it; the run continues from its last checkpoint, written every --checkpoint-minutes and at SIGTERM).

Every dispatch keeps a folder under --jobs (default `jobs/`, never committed): submitit's logs per job and
`jobs.json` (what was submitted, attempts, states, log paths); each job also writes its own state there as it
starts and ends, so `bench runs --jobs jobs` shows queued, running, failed and finished jobs, also of a
`--no-wait` dispatch.
"""
from __future__ import annotations

import datetime as _dt
import json
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.errors import BenchError
from bench.records import now_iso
from bench.jobs import (JobSettings, RunSpec, TrainingJob, checkpoint_iteration, own_state, spec_of, status_path,
                        write_json)

EXECUTORS = ("local", "slurm", "debug")
MAX_FAILURES = 2


# -- the dispatcher ---------------------------------------------------------------------------------------------
@dataclass
class Entry:
    """One run's life in a dispatch: its attempts and where their logs are."""
    spec: RunSpec
    state: str = "queued"
    attempts: int = 0
    failures: int = 0
    job_id: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    detail: str = ""
    progress: int = 0
    status_file: str | None = None  # where the job writes its own state (another dispatch's folder if adopted)

    def row(self) -> dict:
        return {"label": self.spec.label, "spec": asdict(self.spec), "state": self.state, "attempts": self.attempts,
                "failures": self.failures, "job_id": self.job_id, "stdout": self.stdout, "stderr": self.stderr,
                "detail": self.detail, "status_file": self.status_file}


def make_executor(kind: str, folder: Path, *, time_limit_min: float | None, gpus: int | None,
                  partition: str | None = None, account: str | None = None, cpus: int | None = None):
    import submitit
    if kind not in EXECUTORS:
        raise BenchError(f"--executor {kind!r}: one of {', '.join(EXECUTORS)}")
    if kind == "slurm" and time_limit_min is None:
        raise BenchError("--executor slurm needs --time-limit (minutes): the jobs' Slurm time limit")
    try:
        ex = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=kind)
    except (RuntimeError, ValueError) as exc:
        raise BenchError(f"--executor {kind}: {exc}") from None
    params = {"timeout_min": int(time_limit_min) if time_limit_min else 60 * 24 * 7, "name": "bench-run"}
    if kind == "slurm":  # submitit's own warning (USR2: checkpoint and requeue) only if the run overruns its own stop
        params["slurm_signal_delay_s"] = int(min(90, 30 * (time_limit_min - job_minutes(time_limit_min))))
    if gpus is not None:
        params["gpus_per_node"] = gpus
    if cpus is not None:
        params["cpus_per_task"] = cpus
    if kind == "slurm":
        params.update({k: v for k, v in (("slurm_partition", partition), ("slurm_account", account)) if v})
    elif partition or account:
        raise BenchError("--partition and --account apply to --executor slurm only")
    ex.update_parameters(**params)
    return ex


def _slurm(*args: str) -> tuple[int, str]:
    """A Slurm command's exit status and output (stdout and stderr); 127 where Slurm is not installed."""
    import subprocess
    try:
        out = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return 127, str(exc)
    return out.returncode, (out.stdout + out.stderr).strip()


def check_slurm_options(partition: str | None, gpus: int | None) -> None:
    """Options this cluster would reject, found before anything is submitted: a partition it does not have, GPUs
    on nodes without any. One BenchError line each."""
    rc, out = _slurm("sinfo", "-h", "-o", "%P|%G")
    if rc != 0:
        return  # no sinfo answer: submitit says what is wrong when it submits
    rows = [line.split("|", 1) for line in out.splitlines() if "|" in line]
    names = {p.rstrip("*"): g for p, g in rows}
    default = next((p.rstrip("*") for p, _ in rows if p.endswith("*")), None)
    if partition is not None and partition not in names:
        raise BenchError(f"--partition {partition}: this Slurm cluster has no such partition; it has "
                         f"{', '.join(sorted(names)) or 'none'}")
    gres = names.get(partition or default, "")
    if gpus and "gpu" not in gres:
        raise BenchError(f"--gpus-per-job {gpus}: the nodes of partition {partition or default} have no GPUs "
                         f"(GRES {gres or '(null)'}); pass --gpus-per-job 0 to train on their CPUs")


def slurm_job_gone(job_id: str) -> bool:
    """Whether Slurm no longer holds a job (ended, whatever way); needed where the cluster keeps no accounting
    (sacct), so that submitit cannot tell a job killed without a result from one still running."""
    rc, out = _slurm("squeue", "-h", "-j", str(job_id), "-o", "%T")
    if rc == 127:
        return False
    return (rc == 0 and not out.strip()) or "Invalid job id" in out


def job_minutes(time_limit_min: float | None) -> float | None:
    """Each job's own limit: a little under the scheduler's time limit (5 %, at least 2 minutes), so that the run
    checkpoints and stops cleanly before it is killed."""
    if time_limit_min is None:
        return None
    return max(time_limit_min - max(2.0, 0.05 * time_limit_min), 0.5 * time_limit_min)


def dispatch(specs: list[RunSpec], settings: JobSettings, *, executor: str = "local", jobs_dir="jobs",
             time_limit_min: float | None = None, gpus: int | None = None, partition: str | None = None,
             account: str | None = None, cpus: int | None = None, max_parallel: int | None = 1, wait: bool = True,
             log=print, progress: bool = False, poll_seconds: float = 1.0, on_poll=None) -> dict:
    """Submits one job per run and (with ``wait``) sees them through; returns {"folder", "entries"}.

    ``max_parallel`` bounds the jobs of the local and debug executors running at once (Slurm queues them all).
    ``on_poll(entry, job)``, called for each running job at every poll, lets tests interfere (kill a job).
    """
    if not specs:
        raise BenchError("nothing to dispatch: no runs selected")
    if not wait and executor != "slurm":
        raise BenchError(f"--no-wait needs --executor slurm: {executor} jobs end with this process")
    if max_parallel is not None and max_parallel < 1:
        raise BenchError(f"--max-parallel {max_parallel}: must be >= 1")
    if settings.max_minutes is not None and not settings.max_minutes > 0:
        raise BenchError(f"--max-minutes {settings.max_minutes}: must be a positive number")
    folder = Path(jobs_dir) / _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    settings = _settings_of_jobs(settings, time_limit_min, wait)
    ex = make_executor(executor, folder, time_limit_min=time_limit_min, gpus=gpus, partition=partition,
                       account=account, cpus=cpus)
    if executor == "slurm":
        check_slurm_options(partition, gpus)
    from bench.curves import announce
    announce(settings.tensorboard, log)
    folder.mkdir(parents=True, exist_ok=True)  # submitit may have made it; the name is unique to the microsecond
    run = Dispatch(folder, ex, executor, settings, [Entry(s) for s in specs], log)
    run.collect_earlier(jobs_dir)
    if not wait:
        for e in list(run.pending):
            run.submit(e)
        log(f"{len(run.pending)} job(s) submitted; `bench runs --jobs {jobs_dir}` shows them; the same `bench run` "
            "command later continues any that stopped")
        return {"folder": folder, "entries": run.entries}
    run.see_through(max_parallel, progress, poll_seconds, on_poll)
    return {"folder": folder, "entries": run.entries}


def _settings_of_jobs(settings: JobSettings, time_limit_min: float | None, wait: bool) -> JobSettings:
    """The settings every job gets: paths made absolute (a job may start elsewhere), its own time limit and the
    dispatch's deadline."""
    absolute = {k: str(Path(v).expanduser().resolve()) for k, v in asdict(settings).items()
                if k in ("data_root", "results", "checkpoints", "encoder_weights", "tensorboard") and v}
    deadline = time.time() + 60 * settings.max_minutes if settings.max_minutes else None
    return JobSettings(**{**asdict(settings), **absolute, "max_minutes": job_minutes(time_limit_min),
                          "deadline": deadline, "waited": wait})


class Dispatch:
    """One dispatch: its folder and jobs.json, the runs waiting to be submitted and the jobs under way."""

    def __init__(self, folder: Path, executor, kind: str, settings: JobSettings, entries: list, log):
        self.folder, self.executor, self.kind, self.settings, self.log = folder, executor, kind, settings, log
        self.entries, self.pending, self.active = entries, deque(entries), {}
        self.index = {"executor": kind, "created_at": now_iso(), "settings": asdict(settings), "entries": []}

    def save(self) -> None:
        self.index["entries"] = [e.row() for e in self.entries]
        write_json(self.folder / "jobs.json", self.index)

    def submit(self, e: Entry):
        e.status_file = str(status_path(self.folder, e.spec))
        write_json(Path(e.status_file), {"state": "queued", "at": now_iso()})  # not an earlier attempt's state
        job = self.executor.submit(TrainingJob(e.spec, self.settings, e.status_file))
        e.state, e.attempts, e.job_id = "queued", e.attempts + 1, str(job.job_id)
        e.stdout, e.stderr = str(job.paths.stdout), str(job.paths.stderr)
        e.progress = checkpoint_iteration(e.spec, self.settings)
        self.log(f"submitted {e.spec.label}: job {e.job_id} (attempt {e.attempts}), log {e.stdout}")
        self.save()
        return job

    def collect_earlier(self, jobs_dir) -> None:
        """What an earlier dispatch finished is collected, what it still has queued or running adopted."""
        for e in self.entries:
            done = _recorded_folders(e.spec, self.settings)
            if done:
                e.state, e.detail = "recorded", ", ".join(map(str, done))
                self.log(f"recorded {e.spec.label} already: {e.detail}; not submitted")
                self.pending.remove(e)
            elif self.kind == "slurm" and (job := _job_in_queue(e, jobs_dir, self.folder)) is not None:
                self.log(f"{e.spec.label}: job {e.job_id} of an earlier dispatch is still in the queue; waiting for it")
                self.pending.remove(e)
                self.active[id(e)] = (e, job)
        self.save()

    def see_through(self, max_parallel, progress: bool, poll_seconds: float, on_poll) -> None:
        """Submits within ``max_parallel`` and polls until every run is recorded, stopped or failed for good."""
        gone_checked: dict = {}
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=len(self.entries), desc="jobs", unit="run", dynamic_ncols=True)
        try:
            while self.pending or self.active:
                self.stop_pending_at_deadline()
                while self.pending and (self.kind == "slurm" or max_parallel is None
                                        or len(self.active) < max_parallel):
                    e = self.pending.popleft()
                    self.active[id(e)] = (e, self.submit(e))
                for key, (e, job) in list(self.active.items()):
                    if not job.done() and not _ended_without_result(self.kind, job, gone_checked):
                        if e.state == "queued" and e.status_file and own_state(e.status_file) == "running":
                            e.state = "running"
                            self.save()
                        if on_poll:
                            on_poll(e, job)
                        continue
                    del self.active[key]
                    if read_outcome(e, job, self.settings, self.folder, self.log):
                        self.pending.append(e)
                    elif bar is not None:
                        bar.update(1)
                    self.save()
                if self.active:
                    time.sleep(poll_seconds)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM to the dispatcher
            self.stop_jobs()
            raise
        finally:
            if bar is not None:
                bar.close()
            self.save()

    def stop_jobs(self, wait_s: float = 300.0) -> None:
        """The dispatcher is stopped: jobs of this machine (local, debug) are its children and are stopped too, each
        with a checkpoint (SIGINT), and waited for; Slurm jobs go on in the queue, named so they can be followed."""
        if not self.active:
            return
        if self.kind == "slurm":
            ids = ", ".join(str(job.job_id) for _, job in self.active.values())
            self.log(f"the dispatcher stopped; its Slurm jobs go on: {ids} (`bench runs --jobs` shows them; the same "
                     "command later collects them)")
            return
        for e, job in self.active.values():
            job.cancel(check=False)  # SIGINT: the run checkpoints at the end of its step and stops
            e.state, e.detail = "stopped", "stopped with the dispatcher (its checkpoint continues it)"
        end = time.time() + wait_s
        while time.time() < end and not all(job.done() for _, job in self.active.values()):
            time.sleep(0.2)
        running = [f"{e.spec.label} (job {e.job_id})" for e, job in self.active.values() if not job.done()]
        self.log("the dispatcher stopped; its jobs stopped with a checkpoint" if not running else
                 f"the dispatcher stopped; still running after {wait_s:.0f} s: {'; '.join(running)}")

    def stop_pending_at_deadline(self) -> None:
        """The dispatch's time is up: what has not started waits for the next command."""
        deadline = self.settings.deadline
        if deadline is not None and time.time() >= deadline and self.pending:
            for e in self.pending:
                e.state, e.detail = "stopped", e.detail or "not started before the deadline (--max-minutes)"
            self.pending.clear()


def _recorded_folders(spec: RunSpec, settings: JobSettings) -> list[Path]:
    """The records of a run (and of the members post-processed in its job) made with its recipe, where every one
    of them exists: nothing left to submit."""
    from bench.config import load_suite
    from bench.records import recorded_run
    suite, profile = load_suite(spec.suite), spec.profile or "full"
    out = []
    for member in (spec.member, *spec.then):
        recipe = suite.resolve(profile, spec.variant, dict(settings.overrides) or None, member=member)
        folder = recorded_run(Path(settings.results), suite.name, member, profile, spec.seed, spec.variant, recipe)
        if folder is None:
            return []
        out.append(folder)
    return out


def _job_in_queue(e: Entry, jobs_dir, folder: Path):
    """The Slurm job an earlier dispatch under ``jobs_dir`` submitted for this run, where Slurm still holds it
    (queued, running or requeued), as a submitit job; ``e`` takes its id, logs and state file."""
    import submitit
    for index_path in sorted(Path(jobs_dir).glob("*/jobs.json"), reverse=True):
        if index_path.parent == folder:
            continue
        try:
            index = json.loads(index_path.read_text())
        except (OSError, ValueError):
            continue
        if index.get("executor") != "slurm":
            continue
        for r in index.get("entries", []):
            if r.get("job_id") and spec_of(r) == e.spec and not slurm_job_gone(r["job_id"]):
                job = submitit.SlurmJob(folder=index_path.parent / "%j", job_id=r["job_id"])
                e.job_id, e.attempts, e.stdout, e.stderr = r["job_id"], r.get("attempts", 1), r.get("stdout"), \
                    r.get("stderr")
                e.status_file = r.get("status_file") or str(status_path(index_path.parent, e.spec))
                return job
    return None


def _ended_without_result(executor: str, job, checked: dict, every_s: float = 5.0) -> bool:
    """A Slurm job that left the queue without writing its result (killed, cancelled, failed at start): without
    accounting submitit would wait for it for ever. Asked of squeue at most every ``every_s`` seconds a job."""
    if executor != "slurm" or time.time() - checked.get(job.job_id, 0.0) < every_s:
        return False
    checked[job.job_id] = time.time()
    return slurm_job_gone(job.job_id)


def _error_line(e: Entry, job, folder: Path) -> str:
    """The job's own one-line account of its failure, else the last line of its log."""
    try:
        st = json.loads(status_path(folder, e.spec).read_text())
    except (OSError, ValueError):
        st = {}
    if st.get("state") == "failed" and st.get("detail"):
        return st["detail"]
    for path in (e.stderr, e.stdout):
        try:
            lines = [ln.strip() for ln in Path(path).read_text(errors="replace").splitlines() if ln.strip()]
        except (OSError, TypeError):
            continue
        if lines:
            return lines[-1]
    return f"{type(job.exception()).__name__}" if job.exception() else "no error line"


def read_outcome(e: Entry, job, settings: JobSettings, folder: Path, log) -> bool:
    """Reads a finished job's outcome into ``e``; True where it is to be submitted again."""
    out = None
    if job.paths.result_pickle.exists() or job.done():  # a job gone without a result: job.result() would wait
        try:
            out = job.result()
        except Exception:  # noqa: BLE001 - failed, killed, cancelled or timed out: its error line is what counts
            out = None
    if out and out.get("state") == "recorded":
        e.state, e.detail = "recorded", ", ".join(out.get("records", []))
        log(f"recorded {e.spec.label}: {e.detail}")
        return False
    if out and out.get("state") == "stopped":
        reached = checkpoint_iteration(e.spec, settings)
        if settings.deadline is not None and time.time() >= settings.deadline:
            e.state, e.detail = "stopped", f"at iteration {reached}, at the deadline (--max-minutes); the same " \
                                           "command continues it"
            log(f"stopped {e.spec.label} at the deadline (iteration {reached})")
            return False
        if reached > e.progress:
            e.state, e.detail = "stopped", f"at iteration {reached}; continuing"
            log(f"stopped {e.spec.label} at its time limit (iteration {reached}): submitted again to continue")
            return True
        e.failures += 1
        e.detail = f"stopped at its deadline without progress (iteration {reached}): --max-minutes too short?"
    else:
        e.failures += 1
        e.detail = _error_line(e, job, folder)
    if e.failures < MAX_FAILURES:
        e.state = "failed"
        log(f"failed {e.spec.label} (job {e.job_id}): {e.detail}; submitted again (log {e.stderr})")
        return True
    e.state = "failed"
    log(f"failed {e.spec.label} twice (job {e.job_id}): {e.detail}; log {e.stderr}")
    return False


