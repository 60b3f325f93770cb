"""`bench run --plan FILE`: a list of runs (and `bench profile` entries) in priority order, worked through in ONE
process under ONE deadline: the splits are decoded once per size, runs already recorded are skipped, and the run
in progress at the deadline is checkpointed and resumed by the same command.

A plan is a TOML file of `[[step]]` tables, in order:

    [[step]]                          # a training step (kind = "run" is the default)
    suite = "camvid-controlled"
    members = ["segnet"]              # default: every member of the suite
    variants = ["median-frequency"]   # default: every variant
    seeds = [0]                       # default: [0]
    profile = "full"                  # default: "full"; `bench run --plan F --profile P` sets it for every step

    [[step]]
    kind = "profile"                  # a `bench profile` entry, recorded once per device kind, dtype and size
    models = ["segnet", "deconvnet"]
    dtype = "bf16"
    size = [360, 480]

Under `--profile smoke` a profile step measures at 256x256 with one timed run (the size CI uses) on a GPU, and
is skipped on a CPU (a CPU profile of twelve models takes minutes and says nothing about Table 6's GPU costs;
`bench profile` measures the CPU when wanted), so a whole plan can be tried on a CPU in minutes. Before a run that its estimate says will not finish before the deadline,
the plan says so and starts it anyway (the next call resumes it); estimates come from the achieved FLOP rate of
earlier records on the same device.
"""
from __future__ import annotations

import json
import math
import statistics
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from bench.config import PROFILES, load_suite
from bench.errors import BenchError
from bench.records import load_profiles, load_records

PLANS_DIR = Path(__file__).with_name("plans")
SMOKE_PROFILE_SETTINGS = {"size": (256, 256), "runs": 1, "warmup": 0}


@dataclass(frozen=True)
class Step:
    kind: str  # "run" or "profile"
    suite: str | None = None
    members: tuple = ()
    variants: tuple = ()
    seeds: tuple = (0,)
    profile: str = "full"
    models: tuple = ()
    dtype: str = "fp32"
    size: tuple = (360, 480)
    runs: int = 10
    warmup: int = 3

    def describe(self) -> str:
        if self.kind == "profile":
            return f"profile {', '.join(self.models)} ({self.dtype}, {self.size[0]}x{self.size[1]})"
        parts = [Path(self.suite).stem, ", ".join(self.members) or "every member"]
        if self.variants:
            parts.append(", ".join(self.variants))
        return " / ".join(parts) + f" / seeds {', '.join(map(str, self.seeds))} / {self.profile}"


@dataclass
class Plan:
    path: str
    name: str
    steps: list = field(default_factory=list)


RUN_KEYS = {"kind", "suite", "members", "variants", "seeds", "profile"}
PROFILE_KEYS = {"kind", "models", "dtype", "size", "runs", "warmup"}


def _strings(value, key, where) -> tuple:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BenchError(f"{where}: {key} must be a list of names")
    return tuple(value)


def load_plan(path) -> Plan:
    """A plan file, every step checked (suites, members, variants, models, values) before anything runs."""
    from bench import architectures
    p = Path(path)
    if not p.suffix == ".toml" and not p.is_file():
        p = PLANS_DIR / f"{path}.toml"
    if not p.is_file():
        raise BenchError(f"{path}: plan file not found")
    try:
        data = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BenchError(f"{p}: not valid TOML ({exc})") from None
    steps = data.get("step")
    if not isinstance(steps, list) or not steps or not all(isinstance(s, dict) for s in steps):
        raise BenchError(f"{p}: a plan needs one or more [[step]] tables")
    plan = Plan(str(p), str(data.get("name", p.stem)))
    for n, raw in enumerate(steps, 1):
        where = f"{p}, step {n}"
        kind = raw.get("kind", "run")
        if kind == "run":
            unknown = set(raw) - RUN_KEYS
            if unknown:
                raise BenchError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; a run step has "
                                 f"{', '.join(sorted(RUN_KEYS))}")
            if not isinstance(raw.get("suite"), str):
                raise BenchError(f"{where}: a run step needs suite = \"<name>\"")
            suite = load_suite(raw["suite"])
            members = _strings(raw.get("members", []), "members", where)
            for m in members:
                if m not in suite.members:
                    raise BenchError(f"{where}: {m!r} is not a member of {suite.name}")
            variants = _strings(raw.get("variants", []), "variants", where)
            for v in variants:
                if v not in suite.variants:
                    raise BenchError(f"{where}: {v!r} is not a variant of {suite.name}")
            seeds = raw.get("seeds", [0])
            if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                                                   and s >= 0 for s in seeds):
                raise BenchError(f"{where}: seeds must be a list of integers >= 0")
            profile = raw.get("profile", "full")
            if profile not in PROFILES:
                raise BenchError(f"{where}: profile must be one of {', '.join(PROFILES)}, got {profile!r}")
            plan.steps.append(Step("run", raw["suite"], members, variants, tuple(seeds), profile))
        elif kind == "profile":
            unknown = set(raw) - PROFILE_KEYS
            if unknown:
                raise BenchError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; a profile step has "
                                 f"{', '.join(sorted(PROFILE_KEYS))}")
            models = _strings(raw.get("models", []), "models", where)
            if not models:
                raise BenchError(f"{where}: a profile step needs models = [...]")
            for m in models:
                if m not in architectures.list_models():
                    raise BenchError(f"{where}: unknown model {m!r}")
            dtype = raw.get("dtype", "fp32")
            if dtype not in ("fp32", "bf16"):
                raise BenchError(f"{where}: dtype must be fp32 or bf16")
            size = raw.get("size", [360, 480])
            if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v >= 32 for v in size)):
                raise BenchError(f"{where}: size must be [height, width], each >= 32")
            runs, warmup = raw.get("runs", 10), raw.get("warmup", 3)
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (runs, warmup)) or runs < 1:
                raise BenchError(f"{where}: runs must be >= 1 and warmup >= 0 (integers)")
            plan.steps.append(Step("profile", models=models, dtype=dtype, size=tuple(size), runs=runs, warmup=warmup))
        else:
            raise BenchError(f"{where}: kind must be \"run\" or \"profile\", got {kind!r}")
    return plan


# -- estimates ------------------------------------------------------------------------------------------------------
def _device_name(device) -> str:
    import torch
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def achieved_flop_rate(results: Path, device=None, gpu: str | None = None) -> float | None:
    """The median training FLOP rate (6 x MACs x images / second) of earlier records on this device kind, or
    with ``gpu`` on any GPU whose name contains it (e.g. "H100")."""
    name = _device_name(device) if gpu is None else None
    rates = []
    for _, rec in load_records(results)[0]:
        machine = rec.get("provenance", {}).get("machine", {})
        rec_name = machine.get("gpu") if str(rec.get("device", "")).startswith("cuda") else "cpu"
        t = rec.get("timing") or {}
        same = rec_name == name if gpu is None else gpu in str(rec_name if rec_name != "cpu" else "")
        if same and t.get("train_images_per_second") and t.get("model_flops_per_train_image"):
            rates.append(t["train_images_per_second"] * t["model_flops_per_train_image"])
    return statistics.median(rates) if rates else None


def plan_costs(plan_path, results="results", gpu: str = "H100", profile: str | None = None) -> list[dict]:
    """What each training run of a plan costs on a GPU: its updates at its first test point and at its cap, and
    the minutes they take at the FLOP rate records achieved on that GPU (None without such records). A run with a
    stopping rule may end before its cap; the cap is the most it can cost."""
    from bench.models import model_macs
    plan, rate, rows = load_plan(plan_path), achieved_flop_rate(Path(results), gpu=gpu), []
    for step in (s for s in plan.steps if s.kind == "run"):
        suite = load_suite(step.suite)
        for run in suite.run_specs(step.members, step.variants, step.seeds):
            if run.member in suite.postprocessed:
                continue
            recipe = suite.resolve(profile or step.profile, run.variant, member=run.member)
            if recipe.max_iters is None:  # a length in epochs needs the dataset's size
                continue
            first = min(recipe.budgets_iters) if recipe.budgets_iters else None
            minutes = None if not rate else (lambda n: 6 * model_macs(run.member, tuple(recipe.image_size))
                                             * n * recipe.batch_size / rate / 60)
            rows.append({"suite": suite.name, "member": run.member, "variant": run.variant, "seed": run.seed,
                         "stopping": recipe.stopping, "first_test_point": first, "cap": recipe.max_iters,
                         "minutes_to_first_test_point": minutes and first and minutes(first),
                         "minutes_to_cap": minutes and minutes(recipe.max_iters)})
    return rows


def costs_markdown(rows: list[dict], gpu: str) -> str:
    """`plan_costs` as a Markdown table (docs/training.md's budget table), one row per run in plan order, its seeds
    together."""
    def m(v):
        return "–" if v is None else f"{v:,.0f}"
    seeds: dict = {}
    for r in rows:
        seeds.setdefault((r["suite"], r["member"], r["variant"]), (r, []))[1].append(r["seed"])
    lines = [f"| run | seeds | stopping | first test point | minutes ({gpu}) | cap | minutes to the cap ({gpu}) |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['suite']} / {r['member']}{' / ' + r['variant'] if r['variant'] else ''} | "
              f"{', '.join(map(str, sorted(set(ss))))} | {r['stopping']} | "
              f"{'–' if r['first_test_point'] is None else format(r['first_test_point'], ',')} | "
              f"{m(r['minutes_to_first_test_point'])} | {r['cap']:,} | {m(r['minutes_to_cap'])} |"
              for r, ss in seeds.values()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m bench.plan [PLAN] [GPU]: the plan's costs on a GPU, as a Markdown table
    import sys
    args = sys.argv[1:] + ["paper", "H100"][len(sys.argv[1:]):]
    print(costs_markdown(plan_costs(PLANS_DIR / f"{args[0]}.toml" if "/" not in args[0] else args[0],
                                    gpu=args[1]), args[1]), end="")


def estimate_minutes(member: str, recipe, n_train: int, done_iterations: int, rate: float | None) -> float | None:
    """Minutes of training left for a run, from the FLOP rate achieved on this device (None without one)."""
    from bench.architectures import postprocessed_members
    from bench.models import model_macs
    if not rate or member in postprocessed_members():  # trains nothing
        return None
    macs = model_macs(member, tuple(recipe.image_size))
    left = max(0, recipe.total_iterations(n_train) - done_iterations) * recipe.batch_size
    return 6 * macs * left / rate / 60


def checkpoint_progress(ckpt: Path) -> int:
    """The iteration an interrupted run's checkpoint reached (its small JSON note), 0 where there is none."""
    note = ckpt.with_suffix(".json")
    try:
        return int(json.loads(note.read_text())["iteration"]) if ckpt.exists() else 0
    except (OSError, ValueError, KeyError, TypeError):
        return 0


# -- running ---------------------------------------------------------------------------------------------------------
def _profile_recorded(step: Step, settings: dict, profiles: list) -> Path | None:
    for rec in profiles:
        s = rec.get("settings", {})
        if (s.get("device", "").split(":")[0], s.get("device_name"), s.get("dtype")) == \
                (settings["device"].split(":")[0], settings["device_name"], step.dtype) and \
                tuple(rec.get("input_size", ())) == tuple(settings["size"]) and \
                set(step.models) <= {m.get("model") for m in rec.get("models", [])}:
            return rec
    return None


def run_plan(plan_path, *, profile: str | None = None, max_minutes: float | None = None, data_root=None,
             results="results", checkpoints="checkpoints", encoder_weights=None, device: str | None = None,
             log=print, progress=None, options=None) -> dict:
    """Works through a plan in order under one deadline; returns {"recorded": [...], "skipped": n, "done": bool}.

    Raises TimeBudgetReached (after a checkpoint) when the deadline comes in the middle of a run, and when it
    comes between steps; the same call continues where it stopped. A run whose training diverges is not
    recorded and does not stop the plan: the next run starts, and the plan ends with a BenchError naming every
    diverged run (so a lease does not lose its remaining minutes to one unstable run).
    """
    import torch
    from bench.runner import resolve_device
    from bench.train import RunOptions, TimeBudgetReached
    if max_minutes is not None and not (math.isfinite(max_minutes) and max_minutes > 0):
        raise BenchError(f"--max-minutes {max_minutes}: must be a positive number")
    if profile is not None and profile not in PROFILES:
        raise BenchError(f"--profile {profile!r}: one of {', '.join(PROFILES)}")
    plan = load_plan(plan_path)
    work = PlanWork(plan, profile, resolve_device(device), time.time() + 60 * max_minutes if max_minutes else None,
                    Path(results), Path(checkpoints), data_root, encoder_weights, options or RunOptions(), log,
                    progress)
    log(f"plan {plan.name}: {len(plan.steps)} steps from {plan.path}"
        + (f"; deadline in {max_minutes:g} min" if max_minutes else ""))
    for n, step in enumerate(plan.steps, 1):
        if work.deadline is not None and time.time() >= work.deadline:
            raise TimeBudgetReached(f"deadline reached before step {n} of plan {plan.name}; run the same command "
                                    "to continue")
        if step.kind == "profile":
            work.profile_step(n, step)
            continue
        work.run_step(n, step)
        if work.device.type == "cuda":
            torch.cuda.empty_cache()
    if work.diverged:
        raise BenchError(f"plan {plan.name}: every step tried; {len(work.diverged)} run(s) diverged or could not run "
                         "and were not recorded: " + "; ".join(work.diverged))
    log(f"plan {plan.name}: every step done")
    return {"recorded": work.recorded, "skipped": work.skipped, "done": True}


@dataclass
class PlanWork:
    """A plan being worked through: its settings, and what was recorded, skipped and diverged so far."""
    plan: Plan
    profile: str | None
    device: object
    deadline: float | None
    results: Path
    checkpoints: Path
    data_root: object
    encoder_weights: object
    options: object
    log: object
    progress: object
    recorded: list = field(default_factory=list)
    skipped: int = 0
    diverged: list = field(default_factory=list)
    cache: dict = field(default_factory=dict)

    def minutes_left(self) -> float | None:
        return None if self.deadline is None else (self.deadline - time.time()) / 60

    def profile_step(self, n: int, step: Step) -> None:
        """A `bench profile` step, skipped where recorded already (or, smoke on the CPU, where it needs a GPU)."""
        from bench.profile import run_profile, settings as profile_settings
        size, runs, warmup = step.size, step.runs, step.warmup
        if (self.profile or "full") == "smoke":
            if self.device.type == "cpu":
                self.log(f"step {n}: {step.describe()}: a GPU measurement; skipped under --profile smoke on the CPU "
                         "(`bench profile` measures the CPU)")
                self.skipped += 1
                return
            size, runs, warmup = (SMOKE_PROFILE_SETTINGS[k] for k in ("size", "runs", "warmup"))
        want = {**profile_settings(self.device, step.dtype), "size": size}
        done = _profile_recorded(step, want, load_profiles(self.results)[0])
        if done is not None:
            self.log(f"step {n}: {step.describe()}: already recorded ({done.get('finished_at')}); skipped")
            self.skipped += 1
            return
        self.log(f"step {n}: {step.describe()}" + (f" at {size[0]}x{size[1]}" if size != step.size else ""))
        path = run_profile(list(step.models), device=str(self.device), dtype=step.dtype, size=tuple(size), runs=runs,
                           warmup=warmup, results=self.results, log=self.log)
        self.recorded.append(path.parent)

    def run_step(self, n: int, step: Step) -> None:
        """A step of training runs, each through `bench run` with --resume (recorded ones skipped)."""
        from bench import datasets
        from bench.checkpoint import TrainingDiverged, checkpoint_path
        from bench.records import recorded_run
        from bench.runner import train_suite
        from bench.safety import RunLocked
        from bench.train import TimeBudgetReached
        prof = self.profile or step.profile
        suite = load_suite(step.suite)
        ds = datasets.get_dataset(suite.dataset, self.data_root)
        rate = achieved_flop_rate(self.results, self.device)
        for run in suite.run_specs(step.members, step.variants, step.seeds):
            member, variant, seed = run.member, run.variant, run.seed
            recipe = suite.resolve(prof, variant, member=member)
            label = run.label(suite.name, prof)
            recorded_already = recorded_run(self.results, suite.name, member, prof, seed, variant, recipe)
            if recorded_already is None and self.deadline is not None and time.time() >= self.deadline:
                raise TimeBudgetReached(f"deadline reached before {label} (step {n} of plan {self.plan.name}); "
                                        "run the same command to continue")
            ckpt = checkpoint_path(self.checkpoints, suite.name, member, prof, variant, seed)
            n_train = len(ds.samples("train")[:recipe.train_subset or None])
            est = estimate_minutes(member, recipe, n_train, checkpoint_progress(ckpt), rate)
            left = self.minutes_left()
            if recorded_already is None and est is not None and left is not None and est > left:
                self.log(f"step {n}: {label}: about {est:.1f} min of training left, {left:.1f} min before the "
                         "deadline: it will not finish in this call; starting it anyway (the next call resumes it)")
            try:
                self.recorded += train_suite(
                    step.suite, profile=prof, seeds=(seed,), members=[member], variants=[variant] if variant else None,
                    data_root=self.data_root, results=self.results, checkpoints=self.checkpoints, resume=True,
                    encoder_weights=self.encoder_weights, device=str(self.device), log=self.log,
                    progress=self.progress, deadline=self.deadline, options=self.options, data_cache=self.cache)
            except TrainingDiverged as exc:
                self.log(f"error: {label}: {exc}; the plan goes on")
                self.diverged.append(f"{label} ({exc})")
            except RunLocked:  # another process works through the same plan (gpu-lease.sh: two on one GPU)
                self.log(f"step {n}: {label}: trained by another process now; skipped")
                self.skipped += 1
            except BenchError as exc:
                if member not in suite.postprocessed:
                    raise
                # e.g. the run it post-processes was recorded without its weights: the rest still runs
                self.log(f"error: {label}: {exc}; the plan goes on")
                self.diverged.append(f"{label} ({exc})")
