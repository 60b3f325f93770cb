"""Run records: provenance, atomic writing (never overwriting), and listing.

Layout: `<results>/<suite>/<member>/<run-id>/run.json` with `predictions/` (8-bit PNG label maps of the test
split) beside it. A run folder is assembled under a temporary name and renamed into place in one step, so
a record is either complete or absent, and an existing record is never replaced.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from bench.errors import BenchError

SCHEMA_VERSION = 1
LIBRARIES = ("torch", "torchvision", "timm", "segmentation-models-pytorch", "numpy", "scipy", "pandas",
             "scikit-image", "pillow", "click")


SOURCE_FOLDERS = ("bench", "architectures", "datasets")  # where the code that makes a record lives
SOURCE_MANIFEST = ".source-manifest.json"   # stands in for .git where a copy of the tree runs without it


SMOKE_RESULTS = "runs/smoke/results"  # where smoke records go unless told otherwise (never committed)


def default_results(profile: str, log=print) -> str:
    """results/ for a suite's recipe; for a smoke run SMOKE_RESULTS, said in one line, so that a first run never
    mixes its few-iteration records into the committed ones (the API and `bench run` alike)."""
    if profile != "smoke":
        return "results"
    log(f"smoke records go to {SMOKE_RESULTS} (outside the committed results/; --results to choose)")
    return SMOKE_RESULTS


def git_blob_id(path: Path) -> str:
    """The id git gives a file's content (`git hash-object`): SHA-1 of "blob <size>\\0" + bytes."""
    data = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def write_source_manifest(repo: Path | None = None) -> Path:
    """Write `.source-manifest.json` (HEAD and the blob id of every tracked file) for a copy of the tree that
    travels without `.git` (the lent GPU machine): there `commit_info` reads it and checks every file against
    it, so a record made there names its commit and says honestly whether the code differed."""
    repo = Path(repo or Path(__file__).resolve().parents[1])
    info = commit_info(repo)
    if info["commit"] is None:
        raise BenchError(f"{repo}: not a git checkout; a source manifest needs the commit")
    listing = subprocess.run(["git", "ls-files", "-s", "-z"], cwd=repo, capture_output=True, text=True,
                             check=True).stdout
    files = {}
    for entry in filter(None, listing.split("\0")):
        meta, path = entry.split("\t", 1)
        files[path] = meta.split()[1]
    out = repo / SOURCE_MANIFEST
    out.write_text(json.dumps({"commit": info["commit"], "branch": info["branch"], "dirty": info["dirty"],
                               "files": files}, indent=1))
    return out


def _manifest_commit_info(repo: Path, path: Path | None = None) -> dict | None:
    try:
        manifest = json.loads(Path(path or repo / SOURCE_MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        if path is not None:
            raise BenchError(f"{path}: unreadable source manifest ($BENCH_SOURCE_MANIFEST): {exc}") from None
        return None
    def differs(path: str, blob: str) -> bool:
        f = repo / path
        return not (f.exists() or f.is_symlink()) or git_blob_id(f) != blob
    changed = [p for p, blob in manifest["files"].items()
               if not p.startswith(("results/", "reports/")) and differs(p, blob)]
    return {"commit": manifest["commit"], "dirty": bool(manifest["dirty"] or changed), "branch": manifest["branch"],
            "source": "manifest"}


def commit_info(repo: Path | None = None) -> dict:
    """The commit the code is at and whether it differs from it. Where $BENCH_SOURCE_MANIFEST names a manifest
    (`write_source_manifest`; the lease script sets it on the GPU machine, whose copy of the tree may carry an
    unrelated .git), the manifest's commit, every file checked against it; else git; else a manifest beside the
    tree."""
    repo = Path(repo or Path(__file__).resolve().parents[1])
    if os.environ.get("BENCH_SOURCE_MANIFEST"):
        return _manifest_commit_info(repo, Path(os.environ["BENCH_SOURCE_MANIFEST"]))
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    commit = git("rev-parse", "HEAD") or None
    if commit is None:  # a copy without .git: the manifest written beside it, if any
        return _manifest_commit_info(repo) or {"commit": None, "dirty": None, "branch": None}
    # dirty: the code differs from the commit (records and reports being added or replaced do not count), or a file
    # git does not track sits among the sources (a module, a package folder that shadows the project's code)
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results", ":(exclude)reports")
    untracked = [line for line in git("status", "--porcelain", "--untracked-files=all", "--", *SOURCE_FOLDERS)
                 .splitlines() if line.startswith("??")]
    return {"commit": commit, "dirty": bool(changed or untracked), "untracked_source_files": len(untracked),
            "branch": git("rev-parse", "--abbrev-ref", "HEAD") or None}


def made_from_uncommitted_code(rec: dict) -> bool:
    """Whether a record's code differed from its commit (`provenance.git.dirty`): its commit does not reproduce it."""
    return bool(((rec.get("provenance") or {}).get("git") or {}).get("dirty"))


def machine_info() -> dict:
    import torch
    info = {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_count=torch.cuda.device_count(), gpu_memory_GiB=round(props.total_memory / 2**30, 1),
                    cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10).stdout.strip()
            info["driver"] = out.splitlines()[0] if out else None
        except (OSError, subprocess.SubprocessError):
            info["driver"] = None
    return info


def library_versions() -> dict:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def provenance() -> dict:
    return {"git": commit_info(), "machine": machine_info(), "libraries": library_versions(),
            "command": " ".join(sys.argv), "recorded_at": now_iso()}


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_run_id(profile: str, seed: int, variant: str | None = None) -> str:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    parts = [profile] + ([variant] if variant else []) + [f"seed{seed}", stamp]
    return "-".join(parts)


class RunFolder:
    """A run's output assembled in `<parent>/.tmp-<run-id>-<host>-<pid>` and published with one rename."""

    def __init__(self, parent: Path, run_id: str):
        self.final = Path(parent) / run_id
        if self.final.exists():
            raise BenchError(f"{self.final}: a record with this run id exists; nothing was overwritten")
        from bench.safety import owner_tag
        self.tmp = Path(parent) / f".tmp-{run_id}-{owner_tag()}"
        self.tmp.mkdir(parents=True, exist_ok=False)
        (self.tmp / "predictions").mkdir()

    @property
    def predictions(self) -> Path:
        return self.tmp / "predictions"

    def publish(self, record: dict) -> Path:
        (self.tmp / "run.json").write_text(json.dumps(record, indent=1, default=_json_default) + "\n")
        if self.final.exists():
            raise BenchError(f"{self.final}: appeared while the run was writing; the new record stays in {self.tmp}")
        os.rename(self.tmp, self.final)
        return self.final

    def discard(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


def _json_default(o):
    import numpy as np
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def find_records(results: Path) -> list[Path]:
    """Every `run.json` under a results folder (temporary folders of unfinished runs excluded)."""
    results = Path(results)
    if not results.is_dir():
        return []
    return sorted(p for p in results.rglob("run.json") if not any(part.startswith(".tmp-") for part in p.parts))


class RunRecord(dict):
    """A run record (its run.json as a dict) that knows its folder: ``record.folder / "predictions"``."""

    def __init__(self, data: dict, folder: Path):
        super().__init__(data)
        self.folder = Path(folder)

    @classmethod
    def load(cls, folder) -> "RunRecord":
        return cls(load_record(Path(folder) / "run.json"), folder)

    def __repr__(self):
        return f"RunRecord({self.get('suite')}/{self.get('member')} seed {self.get('seed')}, {self.folder})"


def load_record(path: Path) -> dict:
    try:
        rec = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BenchError(f"{path}: not a readable run record ({exc})") from None
    if not isinstance(rec, dict) or "schema_version" not in rec:
        raise BenchError(f"{path}: not a run record (no schema_version)")
    return rec


# The fields every consumer of a training record (bench runs, report, check) reads, with their types.
TRAINING_FIELDS = {
    "suite": str, "member": str, "profile": str, "seed": int, "run_id": str, "dataset": str, "config": dict,
    "selected.iteration": int, "test.G": (int, float), "test.C": (int, float), "test.mIoU": (int, float),
    "test.BF": (int, float), "test.per_class": dict, "test.confusion_matrix": list, "test.conventions": dict,
    "predictions.folder": str, "predictions.count": int, "predictions.resolution": list, "curves.val": list,
    "budgets": list, "provenance": dict,
}


def check_training_record(path: Path, rec: dict) -> dict:
    """A training record with every field the tools read; BenchError naming the file and the first field that
    is missing or of the wrong type."""
    for dotted, kind in TRAINING_FIELDS.items():
        value = rec
        for part in dotted.split("."):
            if not isinstance(value, dict) or part not in value:
                raise BenchError(f"{path}: run record lacks {dotted}")
            value = value[part]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise BenchError(f"{path}: run record field {dotted} is {type(value).__name__}, not "
                             f"{getattr(kind, '__name__', 'a number')}")
    return rec


RECORD_KINDS = ("training-run",)  # what a run.json under results/<suite>/<member>/<run>/ may be
NOT_SUITES = ("profile", "benchmarks", "leases")  # folders of results/ that hold other things than suites' runs


def folders_without_record(results: Path) -> list[Path]:
    """Run folders (`<results>/<suite>/<member>/<run>/`) that have no run.json: a record whose file was deleted."""
    results = Path(results)
    if not results.is_dir():
        return []
    return sorted(run for suite in results.iterdir() if suite.is_dir() and suite.name not in NOT_SUITES
                  and not suite.name.startswith(".")
                  for member in suite.iterdir() if member.is_dir() and not member.name.startswith(".")
                  for run in member.iterdir() if run.is_dir() and not run.name.startswith(".")
                  and not (run / "run.json").is_file())


def load_records(results: Path) -> tuple[list[tuple[Path, dict]], list[str]]:
    """Every usable training record under ``results`` and one line for each record that is not usable: unreadable,
    missing a field, of an unknown kind, or a run folder whose run.json is gone. Nothing is skipped in silence."""
    good, problems = [], []
    for path in find_records(results):
        try:
            rec = load_record(path)
            if rec.get("kind") not in RECORD_KINDS:
                raise BenchError(f"{path}: unknown record kind {rec.get('kind')!r} (a run record is "
                                 f"{' or '.join(RECORD_KINDS)})")
            good.append((path, check_training_record(path, rec)))
        except BenchError as exc:
            problems.append(str(exc))
    problems += [f"{run}: run.json is missing (a record folder without its record)"
                 for run in folders_without_record(results)]
    return good, problems


def recorded_run(results: Path, suite: str, member: str, profile: str, seed: int, variant, recipe) -> Path | None:
    """The latest finished record folder of this exact run (same profile, seed, variant and recipe), if any."""
    from bench import stopping
    from bench.config import same_recipe
    folder = Path(results) / suite / member
    if not folder.is_dir():
        return None
    for run in sorted(folder.iterdir(), reverse=True):  # run ids end in their time: the latest first
        path = run / "run.json"
        if run.name.startswith(".tmp-") or not path.is_file():
            continue
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if (rec.get("profile"), rec.get("seed"), rec.get("variant")) == (profile, seed, variant) and \
                same_recipe(rec.get("config"), recipe) and stopping.stop_of(rec)["reason"] != "deadline" \
                and outdated_model(rec) is None:
            return run  # a run recorded at a deadline is not finished: --resume continues it
    return None



def model_revision_of(rec: dict) -> int:
    """The revision of its model's definition a record was made with (`bench.architectures.register_model`); records
    made before revisions were recorded were made with revision 1."""
    return int((rec.get("model") or {}).get("revision") or 1)


def outdated_revisions(rec: dict) -> str | None:
    """"revision 2, now 3" where a record's model revision is older than the registry's, else None."""
    from bench import architectures
    name = (rec.get("model") or {}).get("name") or rec.get("member")
    if name not in architectures.list_models():
        return None
    now, then = architectures.model_revision(name), model_revision_of(rec)
    return f"revision {then}, now {now}" if then < now else None


def outdated_model(rec: dict) -> str | None:
    """Why a record's model is not the current definition (its revision is older than the registry's), or None.
    Reports and `bench check` never use such a record for a current row."""
    from bench import architectures
    revisions = outdated_revisions(rec)
    if revisions is None:
        return None
    name = (rec.get("model") or {}).get("name") or rec.get("member")
    change = architectures.model_facts(name).get("revisions", {}).get(architectures.model_revision(name), "")
    return f"{name} {revisions}" + (f" ({change})" if change else "")


def recipe_fingerprint(rec: dict) -> str:
    """A short hash of the recipe a record ran with (keys it lacks at their defaults): records of different recipes
    are never pooled or compared as repeats."""
    from bench.config import plain_recipe
    text = json.dumps(plain_recipe(rec.get("config") or {}), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def recipe_key(rec: dict) -> tuple:
    """What makes two records repeats of one run: suite, member, variant, profile, seed, recipe and model
    revision."""
    return (rec["suite"], rec["member"], rec.get("variant"), rec["profile"], rec["seed"], recipe_fingerprint(rec),
            model_revision_of(rec))


def current_recipe(rec: dict) -> bool:
    """Whether a record ran with the recipe its suite gives its (profile, variant, member) today, with the command
    line's values it was run with ("overrides"); True where the suite's TOML is not in this checkout (nothing to
    compare with)."""
    from bench.config import load_suite, same_recipe
    if not rec.get("suite") or not rec.get("profile"):
        return True
    try:
        suite = load_suite(rec["suite"])
    except BenchError:
        return True
    try:  # with the command line's values (--set) the record was made with
        now = suite.resolve(rec["profile"], rec.get("variant"), rec.get("overrides") or None, member=rec["member"])
    except BenchError:
        return False
    return same_recipe(rec.get("config"), now)


def standing(rec: dict) -> str:
    """"current" (today's model revision and recipe), "earlier-recipe" (today's model, a recipe the suite has since
    changed: shown under its own recipe, never pooled with current records) or "outdated-model" (an older revision
    of its model: never used for a current row)."""
    if outdated_model(rec):
        return "outdated-model"
    return "current" if current_recipe(rec) else "earlier-recipe"


def recipe_changes(rec: dict) -> list[str]:
    """The recipe values of a record that differ from its suite's recipe today, as "key recorded -> now"."""
    from bench.config import load_suite, plain_recipe
    try:
        suite = load_suite(rec["suite"])
        now = plain_recipe(dataclasses.asdict(suite.resolve(rec["profile"], rec.get("variant"),
                                                            rec.get("overrides") or None, member=rec["member"])))
    except BenchError:
        return []
    then = plain_recipe(rec.get("config") or {})
    return [f"{k} {then.get(k)!r} -> {now[k]!r}" for k in now if then.get(k) != now[k]]


def latest_per_seed(records: list[tuple[Path, dict]]):
    """Records of the same seed and recipe are never pooled: the latest finished one wins. Returns the kept
    records and, for each older one, (path, record, path of the record that replaced it)."""
    newest: dict = {}
    for path, rec in records:
        key = recipe_key(rec)
        order = (str(rec.get("finished_at") or ""), str(rec.get("run_id") or ""))
        if key not in newest or order > newest[key][0]:
            newest[key] = (order, path)
    kept = [(p, r) for p, r in records if newest[recipe_key(r)][1] == p]
    superseded = [(p, r, newest[recipe_key(r)][1]) for p, r in records if newest[recipe_key(r)][1] != p]
    return kept, superseded


def _parse_since(text: str) -> _dt.datetime:
    try:
        when = _dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise BenchError(f"--since {text!r}: expected a date or time such as 2026-11-26 or 2026-11-26T21:00") from None
    return when if when.tzinfo else when.replace(tzinfo=_dt.timezone.utc)


def select_records(records: list[tuple[Path, dict]], profile: str | None = None, commit: str | None = None,
                   since: str | None = None, runs: str | None = None) -> list[tuple[Path, dict]]:
    """The records matching every given filter: ``profile`` (full, paper, smoke), ``commit`` (a prefix of the
    git commit that made them), ``since`` (finished at or after this date or time, UTC unless stated) and
    ``runs`` (comma-separated run ids or run folders, e.g. full-seed0-20261126T211002268616Z)."""
    after = _parse_since(since) if since else None
    wanted = {r.strip().rstrip("/").split("/")[-1] for r in runs.split(",") if r.strip()} if runs else None
    out = []
    for path, rec in records:
        if profile and rec["profile"] != profile:
            continue
        if commit and not str((rec.get("provenance") or {}).get("git", {}).get("commit") or "").startswith(commit):
            continue
        if after and not (rec.get("finished_at") and _parse_since(rec["finished_at"]) >= after):
            continue
        if wanted is not None and rec["run_id"] not in wanted and path.parent.name not in wanted:
            continue
        out.append((path, rec))
    return out


def load_profiles(results: Path) -> tuple[list[dict], list[str]]:
    """Every usable profile record under ``<results>/profile/`` and one line for each unusable one."""
    good, problems = [], []
    results = Path(results)
    for pf in sorted(results.glob("profile/*/profile.json")) if results.is_dir() else []:
        try:
            rec = json.loads(pf.read_text())
            if not isinstance(rec, dict) or not isinstance(rec.get("models"), list) \
                    or not isinstance(rec.get("settings"), dict) or "device" not in rec["settings"]:
                raise ValueError("no models or settings")
            for m in rec["models"]:
                if not isinstance(m, dict) or "model" not in m or "forward" not in m:
                    raise ValueError("a model entry lacks model or forward")
            good.append(rec)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            problems.append(f"{pf}: unusable profile record ({exc})")
    return good, problems


def profile_sets(profiles: list[dict]) -> list[tuple[tuple[str, str], dict]]:
    """Profile rows grouped by how they were measured, [((device kind, dtype), {model: (row, settings,
    input_size)})], the newest row of each model in each group. Groups in the order a comparison with the
    paper's Table 6 prefers them: GPU before CPU, then fp32 (the paper's Caffe precision) before bf16."""
    groups: dict = {}
    for rec in sorted(profiles, key=lambda r: str(r.get("finished_at", ""))):
        s = rec["settings"]
        key = ("cuda" if str(s["device"]).startswith("cuda") else "cpu", s.get("dtype", "fp32"))
        for m in rec["models"]:
            groups.setdefault(key, {})[m["model"]] = (m, s, rec.get("input_size"))
    order = sorted(groups, key=lambda k: (k[0] != "cuda", k[1] != "fp32", k[1]))
    return [(k, groups[k]) for k in order]


def latest_profile_rows(profiles: list[dict], device: str | None = None, dtype: str | None = None) -> dict:
    """{model: (row, settings, input_size)} of the first group of ``profile_sets`` matching ``device`` ("cuda" or
    "cpu") and ``dtype`` where given: rows of one device and precision, never a mixture."""
    for (dev, dt), rows in profile_sets(profiles):
        if (device is None or dev == device) and (dtype is None or dt == dtype):
            return rows
    return {}
