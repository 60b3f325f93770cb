"""`bench`: a thin click CLI over the Python API (every command is one call into a module)."""
from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path

import click

from bench.errors import BenchError
from bench.progress import log_line, progress_bar

DATA_ROOT_HELP = "folder holding the datasets (default: $BENCH_DATA_ROOT, else ~/.cache/segnet-bench/datasets)"


def clean_errors(fn):
    """Bad input ends in one line on stderr and exit status 2, never a traceback; Ctrl-C or SIGTERM outside a
    training step (which checkpoints and says so itself) ends in one line and exit status 130."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BenchError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("error: interrupted; nothing half-written was left (run again to continue)", err=True)
            sys.exit(130)
    return wrapper


def sigterm_as_interrupt(fn):
    """SIGTERM (`timeout`, job schedulers) during the command acts as Ctrl-C: training checkpoints and says so.
    The previous handler comes back when the command returns, so a process that calls the command (a test, a
    notebook) keeps its own, and its later worker processes do not inherit this one."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import signal
        import threading
        if threading.current_thread() is not threading.main_thread():
            return fn(*args, **kwargs)

        def _term(signum, frame):
            raise KeyboardInterrupt
        previous = signal.signal(signal.SIGTERM, _term)
        try:
            return fn(*args, **kwargs)
        finally:
            signal.signal(signal.SIGTERM, previous)
    return wrapper


def write_json_new(path: Path, obj) -> None:
    """Writes JSON atomically; refuses to replace an existing file."""
    from bench.safety import write_text_atomic
    path = Path(path)
    if path.exists():
        raise BenchError(f"{path}: already exists; nothing was written (choose another --out)")
    write_text_atomic(path, json.dumps(obj, indent=1) + "\n", what="the scores", overwrite=False)


@click.group()
@click.version_option(package_name="segnet-bench")
def main():
    """SegNet benchmark harness: the paper's controlled comparison, measured one way."""


# -- data ---------------------------------------------------------------------------------------------
@main.group()
def data():
    """Check, download or prepare datasets."""


@data.command("verify")
@click.argument("dataset", default="camvid")
@click.option("--data-root", help=DATA_ROOT_HELP)
@click.option("--no-checksums", is_flag=True, help="skip the SHA-256 comparison")
@clean_errors
def data_verify(dataset, data_root, no_checksums):
    """Check that DATASET's files are present, decode, and match their SHA-256 list.

    Example: bench data verify camvid --data-root ../shared/datasets
    """
    from bench import datasets
    ds = datasets.get_dataset(dataset, data_root)
    summary = ds.verify(checksums=not no_checksums, progress=progress_bar)
    counts = ", ".join(f"{k} {v}" for k, v in summary["images"].items())
    click.echo(f"{dataset}: OK at {summary['root']} ({counts}); sha256: {summary['sha256']}")


@data.command("download")
@click.argument("dataset", default="camvid")
@click.option("--data-root", help=DATA_ROOT_HELP)
@click.option("--url", help="archive address (default: the authors' archive)")
@click.option("--manifest", type=click.Path(dir_okay=False), help="SHA-256 list to verify against")
@clean_errors
def data_download(dataset, data_root, url, manifest):
    """Download DATASET from its authors' archive and verify every file.

    Example: bench data download camvid
    """
    from bench import datasets
    from bench.datasets.download import download_dataset
    ds = datasets.get_dataset(dataset, data_root)
    summary = download_dataset(ds, url=url, manifest=manifest, progress=sys.stderr.isatty())
    if summary.get("next"):
        click.echo(f"{dataset}: archives {'already present' if summary['already_present'] else 'downloaded'} at "
                   f"{summary['root']}; next: {summary['next']}")
    elif summary["already_present"]:
        click.echo(f"{dataset}: already present at {summary['root']}; {summary['files_verified']} files verified")
    else:
        click.echo(f"{dataset}: downloaded to {summary['root']}; {summary['files_verified']} files verified")


@data.command("prepare")
@click.argument("dataset", default="sunrgbd")
@click.option("--data-root", help=DATA_ROOT_HELP)
@click.option("--archives", type=click.Path(file_okay=False), help="folder holding the official archives (default: "
              "<data root>/SUNRGBD-archives, where `bench data download` puts them)")
@clean_errors
def data_prepare(dataset, data_root, archives):
    """Convert DATASET's official archives once into the harness's layout (images, label PNGs, list files).

    Example: bench data prepare sunrgbd --archives ~/Downloads
    """
    from bench import datasets
    ds = datasets.get_dataset(dataset, data_root)
    if not hasattr(ds, "prepare"):
        raise BenchError(f"{dataset}: nothing to prepare (its download is already in the layout the loader reads)")
    ds.prepare(archives, progress=progress_bar, log=click.echo)


# -- eval ---------------------------------------------------------------------------------------------
def format_scores(result: dict) -> str:
    lines = [f"{'G':>8} {'C':>8} {'mIoU':>8} {'BF':>8}",
             " ".join(f"{result[k]:8.2f}" if result[k] is not None else f"{'-':>8}" for k in ("G", "C", "mIoU", "BF")),
             "", f"{'class':<12} {'acc':>7} {'IoU':>7} {'BF':>7}"]
    for name, v in result["per_class"].items():
        cells = [f"{v[k]:7.2f}" if v[k] is not None else f"{'-':>7}" for k in ("accuracy", "iou", "bf")]
        lines.append(f"{name:<12} " + " ".join(cells))
    return "\n".join(lines)


@main.command("eval")
@click.option("--data-root", help=DATA_ROOT_HELP)
@click.option("--dataset", default="camvid", show_default=True, help="registered dataset the predictions are for")
@click.option("--split", default="test", show_default=True, help="split whose images the files are named after")
@click.option("--predictions", required=True, type=click.Path(), help="folder of 8-bit PNG label maps named like the split's images")
@click.option("--out", type=click.Path(dir_okay=False), help="write the scores as JSON here (must not exist)")
@click.option("--absent", type=click.Choice(["zero", "skip"]), default="zero", show_default=True,
              help="C and mIoU: a class absent from the ground truth scores 0 (authors' script) or is skipped")
@click.option("--bf-matching", type=click.Choice(["one-to-one", "distance"]), default="one-to-one", show_default=True,
              help="BF: maximum one-to-one matching of boundary pixels (computeBFmeasure.m) or any pixel within the "
                   "radius (MATLAB bfscore)")
@click.option("--bf-class-rule", type=click.Choice(["gt-or-pred", "gt"]), default="gt-or-pred", show_default=True,
              help="BF: a class counts in an image when it has a boundary in the ground truth or the prediction "
                   "(the script) or in the ground truth only (the paper's text)")
@click.option("--workers", type=int, default=None, help="processes for BF (default: all cores)")
@clean_errors
def eval_cmd(data_root, dataset, split, predictions, out, absent, bf_matching, bf_class_rule, workers):
    """Score a folder of predicted label maps with G, C, mIoU and BF (the authors' conventions).

    Example: bench eval --predictions my_model/test_predictions --out scores.json
    """
    # scoring does no linear algebra: OpenBLAS's idle threads (started with numpy) would only take CPU time
    # from the scoring workers
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from bench import datasets
    from bench.evaluate import evaluate_predictions
    if out and Path(out).exists():
        raise BenchError(f"{out}: already exists; nothing was written (choose another --out)")
    ds = datasets.get_dataset(dataset, data_root)
    result = evaluate_predictions(ds, split, predictions, progress=progress_bar, absent=absent,
                                  matching=bf_matching, class_rule=bf_class_rule, workers=workers)
    click.echo(f"{dataset} {split}: {result['num_images']} images from {predictions}")
    click.echo(format_scores(result))
    if out:
        write_json_new(Path(out), result)
        click.echo(f"wrote {out}")


# -- models -------------------------------------------------------------------------------------------
@main.command("models")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="a table to read, or JSON for scripts")
@click.option("--pattern", default="*", show_default=True, help="fnmatch pattern of model names")
@clean_errors
def models_cmd(fmt, pattern):
    """List the registered models: parameters, GMACs at 360x480, output size, Table 1 storage multiplier.

    Example: bench models --pattern "segnet*"
    """
    from bench import architectures
    from bench.models import describe_model
    rows = [describe_model(n) for n in architectures.list_models(pattern)]
    if not rows:
        raise BenchError(f"no model matches {pattern!r}; known models: {', '.join(architectures.list_models())}")
    if fmt == "json":
        click.echo(json.dumps(rows, indent=1))
        return
    click.echo(f"{'model':<40} {'params':>12} {'trainable':>12} {'GMACs':>8} {'output':>12} {'T1 storage':>10}  paper")
    for r in rows:
        out = "x".join(str(v) for v in r["output_shape"])
        store = r["table1_storage_multiplier"] or ""
        click.echo(f"{r['name']:<40} {r['params']:>12,} {r['trainable_params']:>12,} {r['gmacs']:>8.2f} {out:>12} "
                   f"{store:>10}  {r['paper_name']}")


# -- run / runs ---------------------------------------------------------------------------------------
@main.command("run")
@click.option("--suite", default=None, help="suite name (bench/suites/<name>.toml) or path to a suite TOML")
@click.option("--plan", default=None,
              help="a plan (bench/plans/<name>.toml or a path): runs and profiles in priority order, in one process "
                   "under one deadline (--max-minutes), recorded ones skipped, the one in progress resumed")
@click.option("--profile", type=click.Choice(["full", "paper", "smoke"]), default=None,
              help="full: the suite's recipe (for Table 3: test points at 40K/80K updates, stopped when validation "
                   "no longer improves, capped at the paper's Max iter); paper: the paper's iteration counts without "
                   "a stopping rule; smoke: every member, a few iterations at reduced size (default: full where CUDA "
                   "is present, else smoke)")
@click.option("--members", default=None, help="comma-separated subset of the suite's members")
@click.option("--variants", default=None, help="comma-separated subset of the suite's variants")
@click.option("--seeds", default="0", show_default=True, help="comma-separated seeds; each member runs once per seed")
@click.option("--data-root", help=DATA_ROOT_HELP)
@click.option("--results", default="results", show_default=True, type=click.Path(file_okay=False),
              help="folder of run records (results/<suite>/<member>/<run>/run.json)")
@click.option("--checkpoints", default="checkpoints", show_default=True, type=click.Path(file_okay=False),
              help="where checkpoints go (never committed)")
@click.option("--resume", is_flag=True, help="continue from this run's checkpoint where one exists")
@click.option("--encoder-weights", type=click.Path(dir_okay=False), default=None,
              help="local VGG16 weights (torchvision layout) instead of torchvision's download; also $BENCH_WEIGHTS")
@click.option("--set", "sets", multiple=True, help="override a recipe value, e.g. --set max_iters=20 (repeatable)")
@click.option("--device", default=None, help="cuda, cpu, cuda:1 ... (default: cuda where present)")
@click.option("--max-minutes", type=float, default=None,
              help="stop after this many minutes with a checkpoint (exit status 3); --resume continues")
@click.option("--checkpoint-minutes", type=float, default=10.0, show_default=True,
              help="write a checkpoint at least this often (also on Ctrl-C/SIGTERM and at --max-minutes); "
                   "not part of the recipe")
@click.option("--record-at-deadline", is_flag=True,
              help="at --max-minutes, also record the run in progress as it stands (its stop reason \"deadline\": "
                   "never counted as converged; --resume continues it from the checkpoint)")
@click.option("--executor", type=click.Choice(["local", "slurm", "debug"]), default=None,
              help="run each (member, variant, seed) as a job through submitit: local (separate processes), slurm, "
                   "debug (in this process); default: in this process, as one loop")
@click.option("--jobs", "jobs_dir", default="jobs", show_default=True, type=click.Path(file_okay=False),
              help="with --executor: where job logs and states go (never committed)")
@click.option("--time-limit", type=float, default=None,
              help="with --executor: each job's time limit in minutes (Slurm's --time; required there); each run "
                   "stops with a checkpoint a little before it and is submitted again to continue")
@click.option("--gpus-per-job", type=int, default=None, help="with --executor: GPUs per job (Slurm default: 1)")
@click.option("--cpus-per-job", type=int, default=None, help="with --executor slurm: CPUs per job")
@click.option("--partition", default=None, help="with --executor slurm: the Slurm partition")
@click.option("--account", default=None, help="with --executor slurm: the Slurm account")
@click.option("--max-parallel", type=int, default=1, show_default=True,
              help="with --executor local/debug: jobs running at once (one GPU: 1)")
@click.option("--no-wait", is_flag=True, help="with --executor slurm: submit and return; `bench runs --jobs` shows "
                                              "the jobs, the same command later continues any that stopped")
@clean_errors
@sigterm_as_interrupt
def run_cmd(suite, plan, profile, members, variants, seeds, data_root, results, checkpoints, resume, encoder_weights,
            sets, device, max_minutes, checkpoint_minutes, record_at_deadline, executor, jobs_dir, time_limit,
            gpus_per_job, cpus_per_job, partition, account, max_parallel, no_wait):
    """Train every member of a suite with its recipe (or work through a plan) and record the results.

    Example: bench run --suite camvid-decoder-variants --profile full --members segnet-basic --seeds 0,1,2
    """
    import math
    from bench.config import parse_override
    from bench.runner import RunOptions, TimeBudgetReached, train_suite

    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise BenchError(f"--seeds {seeds!r}: expected comma-separated integers") from None
    if not (math.isfinite(checkpoint_minutes) and checkpoint_minutes >= 0):
        raise BenchError(f"--checkpoint-minutes {checkpoint_minutes}: must be a number >= 0")
    if (suite is None) == (plan is None):
        raise BenchError("give either --suite or --plan")
    overrides = dict(parse_override(s) for s in sets)
    split = lambda v: [x.strip() for x in v.split(",") if x.strip()] if v else None
    if plan is not None and (members or variants or sets or seeds != "0"):
        raise BenchError("--plan takes its members, variants and seeds from the plan file; "
                         "--members, --variants, --seeds and --set apply to --suite only")
    if record_at_deadline and (max_minutes is None or executor is not None):
        raise BenchError("--record-at-deadline applies with --max-minutes, in this process (not with --executor)")
    options = RunOptions(checkpoint_minutes=checkpoint_minutes, record_at_deadline=record_at_deadline)
    if executor is not None:
        _dispatch_runs(suite, plan, profile, split(members), split(variants), seed_list, executor, jobs_dir,
                       time_limit, gpus_per_job, cpus_per_job, partition, account, max_parallel, not no_wait,
                       job_settings=dict(data_root=data_root, results=results, checkpoints=checkpoints,
                                           encoder_weights=encoder_weights, overrides=overrides, device=device,
                                           max_minutes=max_minutes, checkpoint_minutes=checkpoint_minutes))
        return
    if any(v is not None for v in (time_limit, gpus_per_job, cpus_per_job, partition, account)) or no_wait:
        raise BenchError("--time-limit, --gpus-per-job, --cpus-per-job, --partition, --account and --no-wait "
                         "apply with --executor only")
    if plan is not None:
        from bench.plan import run_plan
        try:
            out = run_plan(plan, profile=profile, max_minutes=max_minutes, data_root=data_root, results=results,
                           checkpoints=checkpoints, encoder_weights=encoder_weights, device=device,
                           log=log_line, progress=progress_bar, options=options)
        except TimeBudgetReached as exc:
            click.echo(f"stopped: {exc}", err=True)
            sys.exit(3)
        click.echo(f"plan done: {len(out['recorded'])} record(s) under {results}")
        return
    try:
        folders = train_suite(suite, profile=profile, seeds=seed_list, members=split(members),
                            variants=split(variants), data_root=data_root, results=results, checkpoints=checkpoints,
                            resume=resume, encoder_weights=encoder_weights, overrides=overrides, device=device,
                            log=log_line, progress=progress_bar, max_minutes=max_minutes, options=options)
    except TimeBudgetReached as exc:
        click.echo(f"stopped: {exc}", err=True)
        sys.exit(3)
    click.echo(f"{len(folders)} record(s) written under {results}")


def _dispatch_runs(suite, plan, profile, members, variants, seeds, executor, jobs_dir, time_limit, gpus, cpus,
                   partition, account, max_parallel, wait, job_settings):
    """`bench run --executor`: the runs as submitit jobs; exit 1 when any failed (one line each, with its log)."""
    from bench.dispatch import JobSettings, dispatch, plan_specs, suite_specs
    log = log_line
    if profile is None:
        import torch
        profile = "full" if torch.cuda.is_available() or executor == "slurm" else "smoke"
        log(f"profile: {profile} (pass --profile to choose)")
    specs = (plan_specs(plan, profile, log=log) if plan is not None
             else suite_specs(suite, profile, members, variants, seeds))
    if executor == "slurm" and gpus is None:
        gpus = 1
    out = dispatch(specs, JobSettings(**job_settings), executor=executor, jobs_dir=jobs_dir,
                   time_limit_min=time_limit, gpus=gpus, partition=partition, account=account, cpus=cpus,
                   max_parallel=max_parallel, wait=wait, log=log, progress=sys.stderr.isatty())
    if not wait:
        return
    failed = [e for e in out["entries"] if e.state == "failed"]
    stopped = [e for e in out["entries"] if e.state == "stopped"]
    for e in failed:
        click.echo(f"error: {e.spec.label}: {e.detail} (log {e.stderr})", err=True)
    for e in stopped:
        click.echo(f"stopped: {e.spec.label}: {e.detail}", err=True)
    done = sum(e.state == "recorded" for e in out["entries"])
    click.echo(f"{done} of {len(out['entries'])} run(s) recorded under {job_settings['results']}; jobs in "
               f"{out['folder']}")
    if failed:
        sys.exit(1)
    if stopped:
        sys.exit(3)  # as in-process: the deadline came; the same command continues


def _show_jobs(jobs_dir, fmt):
    from bench.dispatch import job_rows
    if not Path(jobs_dir).is_dir():
        raise BenchError(f"{jobs_dir}: jobs folder not found")
    rows = job_rows(jobs_dir)
    if fmt == "json":
        click.echo(json.dumps(rows, indent=1))
        return
    if not rows:
        click.echo(f"no jobs under {jobs_dir}")
        return
    click.echo(f"{'dispatch':<24} {'run':<70} {'state':<9} {'job':>9} {'tries':>5}  log / detail")
    for r in rows:
        click.echo(f"{r['dispatch']:<24} {r['label']:<70} {r['state']:<9} {str(r.get('job_id') or '-'):>9} "
                   f"{r.get('attempts', 0):>5}  {r.get('stdout') or '-'}" + (f"  {r['detail']}" if r.get("detail") else ""))
    click.echo("")


def describe_initialisation(init: dict | None) -> str:
    """One cell of `bench runs`: which layers came from ImageNet, which were initialised though pretrained online."""
    if not init:
        return "not recorded"
    taken = init.get("from_weights", [])
    if not taken:
        return "none pretrained"
    fcs = [n for n in taken if n.startswith("fc")]
    text = f"{len(taken) - len(fcs)} encoder layers" + (f" + {','.join(fcs)}" if fcs else "") + " from weights"
    if init.get("missing_from_weights"):
        text += f"; {','.join(init['missing_from_weights'])} NOT pretrained (He; weights lack them)"
    return text


def record_selection(f):
    """--profile, --commit, --since, --runs: which records `bench runs` and `bench report` take."""
    for opt in reversed([
        click.option("--profile", type=click.Choice(["full", "paper", "smoke"]), default=None,
                     help="only records of this profile"),
        click.option("--commit", default=None, help="only records made at a git commit starting with this"),
        click.option("--since", default=None, help="only records finished at or after this UTC date or time, "
                                                   "e.g. 2026-11-26 or 2026-11-26T21:00"),
        click.option("--runs", default=None, help="only these runs: comma-separated run ids or run folders"),
    ]):
        f = opt(f)
    return f


@main.command("runs")
@click.option("--results", default="results", show_default=True, type=click.Path(file_okay=False),
              help="folder of run records (results/<suite>/<member>/<run>/run.json)")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="a table to read, or JSON for scripts")
@click.option("--jobs", "jobs_dir", default=None, type=click.Path(file_okay=False),
              help="also list the jobs of `bench run --executor` kept here (queued, running, stopped, failed, "
                   "recorded, with their logs)")
@record_selection
@clean_errors
def runs_cmd(results, fmt, jobs_dir, profile, commit, since, runs):
    """List the recorded training runs (and, with --jobs, the dispatched jobs).

    A run marked "old" has a later record of the same seed and recipe, which reports and checks use instead; one
    marked "superseded" was made with an older revision of its model, which reports and checks do not use. The
    "stop" column says how each run ended: converged by its suite's rule, at the cap, at the end of a fixed
    schedule or at a deadline, and whether it was still improving at its last evaluation.

    Example: bench runs --profile full --since 2026-11-26
    """
    from bench.records import latest_per_seed, load_records, outdated_model, select_records
    from bench.stopping import status_words, stop_of
    if jobs_dir is not None:
        _show_jobs(jobs_dir, fmt)
        if fmt == "json" or not Path(results).is_dir():
            return
    if not Path(results).is_dir():
        raise BenchError(f"{results}: results folder not found")
    rows = []
    records, problems = load_records(Path(results))
    for line in problems:
        click.echo(f"skipped {line}", err=True)
    records = select_records(records, profile, commit, since, runs)
    old = {id(r) for _, r, _ in latest_per_seed(records)[1]}
    for path, rec in records:
        t = rec["test"]
        init = (rec.get("model") or {}).get("initialisation")
        rows.append({"suite": rec["suite"], "member": rec["member"], "variant": rec.get("variant"),
                     "profile": rec["profile"], "seed": rec["seed"], "run_id": rec["run_id"],
                     "finished_at": rec.get("finished_at"), "latest": id(rec) not in old,
                     "commit": (rec.get("provenance") or {}).get("git", {}).get("commit"),
                     "iteration": rec["selected"]["iteration"], "G": t.get("G"), "C": t.get("C"),
                     "mIoU": t.get("mIoU"), "BF": t.get("BF"), "path": str(path.parent),
                     "weights_source": (rec.get("model") or {}).get("weights_source"),
                     "not_pretrained": init["missing_from_weights"] if init else None, "initialisation": init,
                     "stop": stop_of(rec), "stop_words": status_words(rec), "superseded": outdated_model(rec)})
    if fmt == "json":
        click.echo(json.dumps(rows, indent=1))
        return
    if not rows:
        click.echo(f"no training records under {results}")
        return
    click.echo(f"{'suite':<26} {'member':<40} {'variant':<18} {'profile':<7} {'seed':>4} {'finished (UTC)':<17} "
               f"{'commit':<10} {'iter':>6} {'G':>6} {'C':>6} {'mIoU':>6} {'BF':>6}  {'run id':<52} init; stop")
    for r in rows:
        init = describe_initialisation(r["initialisation"])
        when = (r["finished_at"] or "-").replace("T", " ")[:16]
        mark = " (superseded)" if r["superseded"] else "" if r["latest"] else " (old)"
        click.echo(f"{r['suite']:<26} {r['member']:<40} {r['variant'] or '-':<18} {r['profile']:<7} {r['seed']:>4} "
                   f"{when:<17} {(r['commit'] or 'unknown')[:10]:<10} {r['iteration']:>6} {r['G']:6.2f} "
                   f"{r['C']:6.2f} {r['mIoU']:6.2f} {r['BF']:6.2f}  {r['run_id'] + mark:<52} "
                   f"{init}; {r['stop_words']}")


# -- profile ------------------------------------------------------------------------------------------
def _size(text: str):
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise BenchError(f"--size {text!r}: expected HxW, e.g. 360x480") from None
    if min(h, w) < 32:
        raise BenchError(f"--size {text!r}: each side must be >= 32")
    return h, w


@main.command("profile")
@click.option("--models", default=None, help="comma-separated model names (default: every registered model)")
@click.option("--device", default=None, help="cuda or cpu (default: cuda where present)")
@click.option("--dtype", type=click.Choice(["fp32", "bf16"]), default="fp32", show_default=True,
              help="precision of the measured passes (the paper: fp32 in Caffe)")
@click.option("--size", default="360x480", show_default=True, help="input HxW")
@click.option("--runs", default=10, show_default=True, type=click.IntRange(1, 10000), help="timed repetitions per pass")
@click.option("--warmup", default=3, show_default=True, type=click.IntRange(0, 10000),
              help="untimed repetitions first")
@click.option("--train-batch", default=4, show_default=True, type=click.IntRange(1, 1024),
              help="batch of the measured training step (the paper: 4)")
@click.option("--infer-batch", default=1, show_default=True, type=click.IntRange(1, 1024),
              help="batch of the measured inference (the paper: 1)")
@click.option("--results", default="results", show_default=True, type=click.Path(file_okay=False),
              help="folder of run records (results/<suite>/<member>/<run>/run.json)")
@clean_errors
def profile_cmd(models, device, dtype, size, runs, warmup, train_batch, infer_batch, results):
    """Time forward and backward passes and measure training/inference memory and model size per model.

    Example: bench profile --models segnet,deeplab-largefov --device cuda --dtype fp32
    """
    from bench import architectures
    from bench.profile import run_profile
    names = [m.strip() for m in models.split(",") if m.strip()] if models else architectures.list_models()
    path = run_profile(names, device=device, dtype=dtype, size=_size(size), runs=runs, warmup=warmup,
                       results=results, log=log_line, train_batch=train_batch, infer_batch=infer_batch,
                       progress=progress_bar)
    click.echo(f"wrote {path}")


# -- report -------------------------------------------------------------------------------------------
@main.command("report")
@click.option("--results", default="results", show_default=True, type=click.Path(file_okay=False),
              help="folder of run records (results/<suite>/<member>/<run>/run.json)")
@click.option("--out", default="reports", show_default=True, type=click.Path(file_okay=False),
              help="folder the reports are written to (replaced whole when rendering succeeds)")
@click.option("--data-root", help=DATA_ROOT_HELP + " (for the qualitative figure)")
@record_selection
@clean_errors
def report_cmd(results, out, data_root, profile, commit, since, runs):
    """Render the paper's tables and figures from recorded runs, ours beside the published numbers.

    Of several records of the same seed and recipe only the latest is shown (the report names the others).

    Example: bench report --profile full --commit 2833e02
    """
    from bench.report import render_reports
    problems: list = []
    written = render_reports(results, out, data_root, problems=problems, profile=profile, commit=commit,
                             since=since, runs=runs)
    for line in problems:
        click.echo(f"skipped {line}", err=True)
    for p in written:
        click.echo(f"wrote {p}/README.md, {p}/index.html")
    if not written:
        click.echo(f"no training records under {results}; wrote {out}/README.md")


# -- check ----------------------------------------------------------------------------------------------
@main.command("check")
@click.option("--results", default="results", show_default=True, type=click.Path(file_okay=False),
              help="folder of run records (results/<suite>/<member>/<run>/run.json)")
@click.option("--data-root", help=DATA_ROOT_HELP)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="a table to read, or JSON for scripts")
@click.option("--verbose", is_flag=True, help="every outcome in full, each re-scored record and superseded run too")
@clean_errors
def check_cmd(results, data_root, fmt, verbose):
    """Regression gate: recorded results against the published numbers, and predictions re-scored.

    Example: bench check --data-root ../shared/datasets
    """
    from bench.check import format_check, run_check
    report = run_check(results, data_root)
    if fmt == "json":
        click.echo(json.dumps(report, indent=1, ensure_ascii=False))
    else:
        click.echo("\n".join(format_check(report, verbose=verbose)))
    if report["failed"]:
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
