"""A run as a job of `submitit`: what it trains (`RunSpec`, one per (member, variant, seed) of a suite or run of a
plan, `suite_specs`, `plan_specs`), what every job shares (`JobSettings`), the callable a job runs (`TrainingJob`:
`bench run` for one run, resume on, its own state written as it goes) and what `bench runs --jobs` shows of
every dispatch's jobs (`job_rows`). The dispatcher that submits and sees them through is `bench.dispatch`.
"""
from __future__ import annotations

import json
import os
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.records import now_iso
from bench.safety import write_text_atomic

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
    tensorboard: str | None = None        # where the jobs write live curves (an absolute path: bench.curves)
    waited: bool = True                   # a dispatcher waits for the jobs (False: --no-wait)


def status_path(folder: Path, spec: RunSpec) -> Path:
    """Where a job of the dispatch kept in ``folder`` writes its own state."""
    return Path(folder) / "status" / f"{spec.slug}.json"


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(data, indent=1) + "\n", "the job state")


def checkpoint_iteration(spec: RunSpec, settings: JobSettings) -> int:
    from bench.plan import checkpoint_progress
    from bench.checkpoint import checkpoint_path
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
        write_json(Path(self.status_file), {"state": state, "at": now_iso(), "host": socket.gethostname(),
                                             "pid": os.getpid(), **extra})

    def __call__(self) -> dict:
        from bench.runner import train_suite
        from bench.train import RunInterrupted, RunOptions, TimeBudgetReached
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
                                                   stop_signals=("SIGUSR2",) if slurm else (),
                                                   tensorboard=s.tensorboard))
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


# -- what to dispatch --------------------------------------------------------------------------------------------
def suite_specs(suite: str, profile: str | None, members=None, variants=None, seeds=(0,)) -> list[RunSpec]:
    """The runs `bench run --suite` trains, in its order (seed, variant, member), checked against the suite."""
    from bench.config import load_suite
    s = load_suite(suite)
    runs = s.run_specs(members, variants, seeds)
    chosen = list(members or s.members)
    # a post-processed member goes in the job of the member it post-processes (it needs that run's record)
    then = {m: tuple(p for p in s.postprocessed_from(m) if p in chosen) for m in chosen}
    in_another_job = {m for m in chosen if m in s.postprocessed and s.postprocessed[m]["of"] in chosen}
    return [RunSpec(suite, r.member, r.variant, r.seed, profile,
                    tuple(p for p in then[r.member] if s.applies(p, r.variant)))
            for r in runs if r.member not in in_another_job]


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


def spec_of(row: dict) -> RunSpec:
    """The run of a row of jobs.json."""
    return RunSpec(**{**row["spec"], "then": tuple(row["spec"].get("then", ()))})


def own_state(status_file: str) -> str | None:
    try:
        return json.loads(Path(status_file).read_text()).get("state")
    except (OSError, ValueError, AttributeError):
        return None


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
            status = Path(r.get("status_file") or status_path(index_path.parent, spec_of(r)))
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
