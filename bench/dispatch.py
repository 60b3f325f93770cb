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
import os
import re
import socket
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.errors import BenchError
from bench.records import now_iso
from bench.safety import write_text_atomic

EXECUTORS = ("local", "slurm", "debug")
MAX_FAILURES = 2
STATES = ("queued", "running", "stopped", "failed", "recorded")


@dataclass(frozen=True)
class RunSpec:
    """One run: what `bench run --suite S --members M --variants V --seeds N` trains."""
    suite: str
    member: str
    variant: str | None
    seed: int
    profile: str | None
    then: tuple = ()  # post-processed members of the suite run in the same job right after (bench.crf)

    @property
    def label(self) -> str:
        return f"{self.suite} / {self.member}{' / ' + self.variant if self.variant else ''} / seed {self.seed}"

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{self.suite}__{self.member}__{self.variant or '-'}__{self.seed}")


@dataclass
class JobSettings:
    """What every job of a dispatch shares (the `bench run` options besides the run itself)."""
    data_root: str | None = None
    results: str = "results"
    checkpoints: str = "checkpoints"
    encoder_weights: str | None = None
    overrides: dict = field(default_factory=dict)
    device: str | None = None
    max_minutes: float | None = None      # each job's own limit (a little under the scheduler's time limit)
    deadline: float | None = None         # the whole dispatch's end (time.time() seconds; --max-minutes)
    checkpoint_minutes: float = 10.0
    waited: bool = True                   # a dispatcher waits for the jobs (False: --no-wait)


def status_path(folder: Path, spec: RunSpec) -> Path:
    """Where a job of the dispatch kept in ``folder`` writes its own state."""
    return Path(folder) / "status" / f"{spec.slug}.json"


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(data, indent=1) + "\n", "the job state")


def _checkpoint_iteration(spec: RunSpec, settings: JobSettings) -> int:
    from bench.plan import checkpoint_progress
    from bench.runner import checkpoint_path
    profile = spec.profile or "full"
    return checkpoint_progress(checkpoint_path(Path(settings.checkpoints), _suite_name(spec.suite), spec.member,
                                               profile, spec.variant, spec.seed))


def _suite_name(suite: str) -> str:
    from bench.config import load_suite
    return load_suite(suite).name


# -- the job ----------------------------------------------------------------------------------------------------
try:
    from submitit.helpers import Checkpointable as _Checkpointable
except ImportError:  # submitit is a dependency; this keeps `import bench.dispatch` working for a clear error later
    _Checkpointable = object


class TrainingJob(_Checkpointable):
    """The callable a job runs: one run through `train_suite`, its state written to ``status_file`` as it goes.
    As a submitit Checkpointable it is requeued as it is on pre-emption or at the Slurm time limit; the run then
    continues from its last checkpoint."""

    def __init__(self, spec: RunSpec, settings: JobSettings, status_file: str):
        self.spec, self.settings, self.status_file = spec, settings, status_file

    def _continue_later(self, detail: str) -> dict:
        """A Slurm job stopped before its time limit, its run checkpointed: a waiting dispatcher submits it again
        (at once); without one (--no-wait) the job requeues itself (Slurm holds a requeued job two minutes)."""
        import subprocess
        if self.settings.waited:
            self._status("stopped", detail=detail)
            return {"state": "stopped", "detail": detail}
        job_id = os.environ["SLURM_JOB_ID"]
        subprocess.run(["scontrol", "requeue", job_id], check=False, timeout=60)
        self._status("queued", detail=f"{detail}; requeued itself to continue (job {job_id})")
        raise SystemExit(0)

    def _status(self, state: str, **extra) -> None:
        _write_json(Path(self.status_file), {"state": state, "at": now_iso(), "host": socket.gethostname(),
                                             "pid": os.getpid(), **extra})

    def __call__(self) -> dict:
        from bench.runner import RunInterrupted, RunOptions, TimeBudgetReached, train_suite
        s, spec = self.settings, self.spec
        ends = [t for t in (s.deadline, time.time() + 60 * s.max_minutes if s.max_minutes else None) if t]
        deadline = min(ends) if ends else None
        if deadline is not None and deadline <= time.time():
            self._status("stopped", detail="started after the dispatch's deadline")
            return {"state": "stopped", "detail": "started after the dispatch's deadline"}
        self._status("running")
        slurm = bool(os.environ.get("SLURM_JOB_ID"))
        own_limit = s.max_minutes is not None and (s.deadline is None or time.time() + 60 * s.max_minutes < s.deadline)
        try:
            folders = train_suite(spec.suite, profile=spec.profile, seeds=(spec.seed,),
                                  members=[spec.member, *spec.then],
                                variants=[spec.variant] if spec.variant else None, data_root=s.data_root,
                                results=s.results, checkpoints=s.checkpoints, resume=True,
                                encoder_weights=s.encoder_weights, overrides=dict(s.overrides), device=s.device,
                                log=print, deadline=deadline,
                                options=RunOptions(checkpoint_minutes=s.checkpoint_minutes,
                                                   stop_signals=("SIGUSR2",) if slurm else ()))
        except TimeBudgetReached as exc:
            if slurm and own_limit:  # the job's own limit, not the dispatch's deadline: it is to go on
                return self._continue_later(str(exc))
            self._status("stopped", detail=str(exc))
            return {"state": "stopped", "detail": str(exc)}
        except RunInterrupted as exc:
            if not slurm:
                self._status("failed", detail=f"{type(exc).__name__}: {exc}")
                raise
            if exc.signal == "SIGUSR2":  # Slurm's warning before the time limit (up to a minute early)
                return self._continue_later(str(exc))
            # SIGTERM from Slurm: the job is pre-empted, requeued or cancelled. The run has checkpointed; leaving
            # without a result lets Slurm run a requeued job again (same id: it resumes), and the dispatcher sees a
            # cancelled one end without a result (a failure: submitted once more)
            self._status("queued", detail=f"interrupted by Slurm ({exc}); a requeued job resumes from the checkpoint")
            raise SystemExit(0) from None
        except BaseException as exc:  # noqa: BLE001 - recorded, then re-raised for submitit to report
            self._status("failed", detail=f"{type(exc).__name__}: {exc}".strip())
            raise
        self._status("recorded", records=[str(f) for f in folders])
        return {"state": "recorded", "records": [str(f) for f in folders]}


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
             log=print, progress: bool = False, poll_seconds: float = 1.0, _probe=None) -> dict:
    """Submits one job per run and (with ``wait``) sees them through; returns {"folder", "entries"}.

    ``max_parallel`` bounds the jobs of the local and debug executors running at once (Slurm queues them all).
    ``_probe(entry, job)``, called for each running job at every poll, lets tests interfere (kill a job).
    """
    if not specs:
        raise BenchError("nothing to dispatch: no runs selected")
    if not wait and executor != "slurm":
        raise BenchError(f"--no-wait needs --executor slurm: {executor} jobs end with this process")
    if max_parallel is not None and max_parallel < 1:
        raise BenchError(f"--max-parallel {max_parallel}: must be >= 1")
    folder = Path(jobs_dir) / _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    absolute = {k: str(Path(v).expanduser().resolve()) for k, v in asdict(settings).items()
                if k in ("data_root", "results", "checkpoints", "encoder_weights") and v}  # jobs may start elsewhere
    if settings.max_minutes is not None and not settings.max_minutes > 0:
        raise BenchError(f"--max-minutes {settings.max_minutes}: must be a positive number")
    deadline = time.time() + 60 * settings.max_minutes if settings.max_minutes else None
    settings = JobSettings(**{**asdict(settings), **absolute, "max_minutes": job_minutes(time_limit_min),
                              "deadline": deadline, "waited": wait})
    ex = make_executor(executor, folder, time_limit_min=time_limit_min, gpus=gpus, partition=partition,
                       account=account, cpus=cpus)
    if executor == "slurm":
        check_slurm_options(partition, gpus)
    folder.mkdir(parents=True, exist_ok=True)  # submitit may have made it; the name is unique to the microsecond
    entries = [Entry(s) for s in specs]
    index = {"executor": executor, "created_at": now_iso(), "settings": asdict(settings), "entries": []}

    def save():
        index["entries"] = [e.row() for e in entries]
        _write_json(folder / "jobs.json", index)

    def submit(e: Entry):
        e.status_file = str(status_path(folder, e.spec))
        _write_json(Path(e.status_file), {"state": "queued", "at": now_iso()})  # not an earlier attempt's state
        job = ex.submit(TrainingJob(e.spec, settings, e.status_file))
        e.state, e.attempts, e.job_id = "queued", e.attempts + 1, str(job.job_id)
        e.stdout, e.stderr = str(job.paths.stdout), str(job.paths.stderr)
        e.progress = _checkpoint_iteration(e.spec, settings)
        log(f"submitted {e.spec.label}: job {e.job_id} (attempt {e.attempts}), log {e.stdout}")
        save()
        return job

    pending = deque(entries)
    active: dict = {}
    for e in entries:  # what an earlier dispatch finished is collected, what it still has queued or running adopted
        done = _recorded_folders(e.spec, settings)
        if done:
            e.state, e.detail = "recorded", ", ".join(map(str, done))
            log(f"recorded {e.spec.label} already: {e.detail}; not submitted")
            pending.remove(e)
        elif executor == "slurm" and (job := _job_in_queue(e, jobs_dir, folder)) is not None:
            log(f"{e.spec.label}: job {e.job_id} of an earlier dispatch is still in the queue; waiting for it")
            pending.remove(e)
            active[id(e)] = (e, job)
    save()
    if not wait:
        for e in list(pending):
            submit(e)
        log(f"{len(pending)} job(s) submitted; `bench runs --jobs {jobs_dir}` shows them; the same `bench run` "
            "command later continues any that stopped")
        return {"folder": folder, "entries": entries}
    gone_checked: dict = {}
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(entries), desc="jobs", unit="run", dynamic_ncols=True)
    try:
        while pending or active:
            if deadline is not None and time.time() >= deadline and pending:
                for e in pending:  # the dispatch's time is up: what has not started waits for the next command
                    e.state, e.detail = "stopped", e.detail or "not started before the deadline (--max-minutes)"
                pending.clear()
            while pending and (executor == "slurm" or max_parallel is None or len(active) < max_parallel):
                e = pending.popleft()
                active[id(e)] = (e, submit(e))
            for key, (e, job) in list(active.items()):
                if not job.done() and not _ended_without_result(executor, job, gone_checked):
                    if e.state == "queued" and e.status_file and _own_state(e.status_file) == "running":
                        e.state = "running"
                        save()
                    if _probe:
                        _probe(e, job)
                    continue
                del active[key]
                if _settle(e, job, settings, folder, log):
                    pending.append(e)
                elif bar is not None:
                    bar.update(1)
                save()
            if active:
                time.sleep(poll_seconds)
    finally:
        if bar is not None:
            bar.close()
        save()
    return {"folder": folder, "entries": entries}


def _spec_of(row: dict) -> RunSpec:
    """The run of a row of jobs.json."""
    return RunSpec(**{**row["spec"], "then": tuple(row["spec"].get("then", ()))})


def _own_state(status_file: str) -> str | None:
    try:
        return json.loads(Path(status_file).read_text()).get("state")
    except (OSError, ValueError, AttributeError):
        return None


def _recorded_folders(spec: RunSpec, settings: JobSettings) -> list[Path]:
    """The records of a run (and of the members post-processed in its job) made with its recipe, where every one
    of them exists: nothing left to submit."""
    from bench.config import load_suite
    from bench.runner import _recorded
    suite, profile = load_suite(spec.suite), spec.profile or "full"
    out = []
    for member in (spec.member, *spec.then):
        recipe = suite.resolve(profile, spec.variant, dict(settings.overrides) or None, member=member)
        folder = _recorded(Path(settings.results), suite.name, member, profile, spec.seed, spec.variant, recipe)
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
            if r.get("job_id") and _spec_of(r) == e.spec and not slurm_job_gone(r["job_id"]):
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


def _settle(e: Entry, job, settings: JobSettings, folder: Path, log) -> bool:
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
        reached = _checkpoint_iteration(e.spec, settings)
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


# -- what to dispatch --------------------------------------------------------------------------------------------
def suite_specs(suite: str, profile: str | None, members=None, variants=None, seeds=(0,)) -> list[RunSpec]:
    """The runs `bench run --suite` trains, in its order (seed, variant, member), checked against the suite."""
    from bench.config import load_suite
    s = load_suite(suite)
    for m in members or ():
        if m not in s.members:
            raise BenchError(f"unknown member {m!r} of suite {s.name}; its members: {', '.join(s.members)}")
    for v in variants or ():
        if v not in (s.variants or ()):
            raise BenchError(f"unknown variant {v!r} of suite {s.name}; its variants: {', '.join(s.variants or [])}")
    from bench.crf import POSTPROCESSED
    chosen = list(members or s.members)
    # a post-processed member goes in the job of the member it post-processes (it needs that run's record)
    then = {m: tuple(p for p in chosen if p in POSTPROCESSED and POSTPROCESSED[p]["of"] == m) for m in chosen}
    alone = [m for m in chosen if not (m in POSTPROCESSED and POSTPROCESSED[m]["of"] in chosen)]
    return [RunSpec(suite, m, v, seed, profile, tuple(p for p in then[m] if s.applies(p, v))) for seed in seeds
            for v, m in s.runs(alone, variants)]


def plan_specs(plan_path, profile: str | None, log=print) -> list[RunSpec]:
    """The training runs of a plan in its priority order (each once); its profile steps are left to `bench run
    --plan` on the GPU they measure."""
    from bench.plan import load_plan
    plan = load_plan(plan_path)
    out: list[RunSpec] = []
    for n, step in enumerate(plan.steps, 1):
        if step.kind == "profile":
            log(f"step {n}: {step.describe()}: a measurement of one GPU, not dispatched (run it with `bench run "
                "--plan` or `bench profile` there)")
            continue
        for spec in suite_specs(step.suite, profile or step.profile, step.members, step.variants, step.seeds):
            if spec not in out:
                out.append(spec)
    return out


# -- what `bench runs --jobs` shows -----------------------------------------------------------------------------
def job_rows(jobs_dir) -> list[dict]:
    """Every job of every dispatch under ``jobs_dir``, its state the newer of the dispatcher's and the job's own."""
    rows = []
    for index_path in sorted(Path(jobs_dir).glob("*/jobs.json")):
        try:
            index = json.loads(index_path.read_text())
        except (OSError, ValueError) as exc:
            rows.append({"dispatch": index_path.parent.name, "label": f"{index_path}: unreadable ({exc})",
                         "state": "unknown"})
            continue
        for r in index.get("entries", []):
            status = Path(r.get("status_file") or status_path(index_path.parent, _spec_of(r)))
            try:
                own = json.loads(status.read_text())
            except (OSError, ValueError):
                own = {}
            state = r["state"]
            if state in ("queued", "running", "stopped") and own.get("state") in STATES:
                state = own["state"]  # a --no-wait dispatch learns its jobs' fate from the jobs themselves
            rows.append({"dispatch": index_path.parent.name, "executor": index.get("executor"), **r, "state": state,
                         "detail": r.get("detail") or own.get("detail", "")})
    return rows
