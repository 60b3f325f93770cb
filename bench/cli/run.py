"""`bench run` (a suite, a plan, or their runs as jobs) and `bench runs` (records and jobs)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from bench.cli.common import (DATA_ROOT_HELP, POSITIVE_MINUTES, SMOKE_RESULTS, clean_errors, main, record_selection,
                              report_hint, sigterm_as_interrupt)
from bench.errors import BenchError
from bench.progress import log_line, progress_bar


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
@click.option("--add-member", "add_members", multiple=True,
              help="a registered model beyond the suite's members (your own, through --plugin), trained under the "
                   "suite's recipe beside them; repeatable")
@click.option("--seeds", default="0", show_default=True, help="comma-separated seeds; each member runs once per seed")
@click.option("--data-root", help=DATA_ROOT_HELP)
@click.option("--results", default=None, type=click.Path(file_okay=False),
              help="folder of run records (<results>/<suite>/<member>/<run>/run.json); default: results/, or for a "
                   f"smoke run {SMOKE_RESULTS} (outside the committed results/)")
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
@click.option("--tensorboard", "tensorboard_dir", default="runs/tensorboard", show_default=True,
              type=click.Path(file_okay=False), help="where each run writes its live curves (TensorBoard event files)")
@click.option("--no-tensorboard", is_flag=True, help="no live curves")
@click.option("--executor", type=click.Choice(["local", "slurm", "debug"]), default=None,
              help="run each (member, variant, seed) as a job through submitit: local (separate processes), slurm, "
                   "debug (in this process); default: in this process, as one loop")
@click.option("--jobs", "jobs_dir", default="jobs", show_default=True, type=click.Path(file_okay=False),
              help="with --executor: where job logs and states go (never committed)")
@click.option("--time-limit", type=POSITIVE_MINUTES, default=None,
              help="with --executor: each job's time limit in minutes (Slurm's --time; required there); each run "
                   "stops with a checkpoint a little before it and is submitted again to continue")
@click.option("--gpus-per-job", type=click.IntRange(0, 64), default=None, help="with --executor: GPUs per job (Slurm default: 1)")
@click.option("--cpus-per-job", type=click.IntRange(1, 1024), default=None, help="with --executor slurm: CPUs per job")
@click.option("--partition", default=None, help="with --executor slurm: the Slurm partition")
@click.option("--account", default=None, help="with --executor slurm: the Slurm account")
@click.option("--max-parallel", type=click.IntRange(1, 1024), default=1, show_default=True,
              help="with --executor local/debug: jobs running at once (one GPU: 1)")
@click.option("--no-wait", is_flag=True, help="with --executor slurm: submit and return; `bench runs --jobs` shows "
                                              "the jobs, the same command later continues any that stopped")
@clean_errors
@sigterm_as_interrupt
def run_cmd(suite, plan, profile, members, variants, add_members, seeds, data_root, results, checkpoints, resume, encoder_weights,
            sets, device, max_minutes, checkpoint_minutes, record_at_deadline, tensorboard_dir, no_tensorboard, executor,
            jobs_dir, time_limit, gpus_per_job, cpus_per_job, partition, account, max_parallel, no_wait):
    """Train every member of a suite with its recipe (or work through a plan) and record the results.

    Example: bench run --suite camvid-decoder-variants --profile full --members segnet-basic --seeds 0,1,2
    """
    import math
    from bench.config import parse_override
    from bench.runner import train_suite
    from bench.train import RunOptions, TimeBudgetReached

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
    if plan is not None and (members or variants or add_members or sets or seeds != "0"):
        raise BenchError("--plan takes its members, variants and seeds from the plan file; "
                         "--members, --variants, --add-member, --seeds and --set apply to --suite only")
    if add_members and executor is not None:
        raise BenchError("--add-member trains in this process; not with --executor")
    if record_at_deadline and (max_minutes is None or executor is not None):
        raise BenchError("--record-at-deadline applies with --max-minutes, in this process (not with --executor)")
    tensorboard = None if no_tensorboard else str(Path(tensorboard_dir).resolve())
    options = RunOptions(checkpoint_minutes=checkpoint_minutes, record_at_deadline=record_at_deadline,
                         tensorboard=tensorboard)
    if executor is not None:
        results = results or _default_results(plan, profile, device, executor)
        _dispatch_runs(suite, plan, profile, split(members), split(variants), seed_list, executor, jobs_dir,
                       time_limit, gpus_per_job, cpus_per_job, partition, account, max_parallel, not no_wait,
                       job_settings=dict(data_root=data_root, results=results, checkpoints=checkpoints,
                                           encoder_weights=encoder_weights, overrides=overrides, device=device,
                                           max_minutes=max_minutes, checkpoint_minutes=checkpoint_minutes,
                                           tensorboard=tensorboard))
        return
    if any(v is not None for v in (time_limit, gpus_per_job, cpus_per_job, partition, account)) or no_wait:
        raise BenchError("--time-limit, --gpus-per-job, --cpus-per-job, --partition, --account and --no-wait "
                         "apply with --executor only")
    results = results or _default_results(plan, profile, device, executor)
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
        click.echo(report_hint(results, data_root))
        return
    try:
        folders = train_suite(suite, profile=profile, seeds=seed_list, members=split(members),
                            variants=split(variants), add_members=list(add_members), data_root=data_root, results=results, checkpoints=checkpoints,
                            resume=resume, encoder_weights=encoder_weights, overrides=overrides, device=device,
                            log=log_line, progress=progress_bar, max_minutes=max_minutes, options=options)
    except TimeBudgetReached as exc:
        click.echo(f"stopped: {exc}", err=True)
        sys.exit(3)
    click.echo(f"{len(folders)} record(s) written under {results}")
    click.echo(report_hint(results, data_root))


def _default_results(plan, profile, device, executor) -> str:
    """results/ for the suite's recipe (and for plans); for a smoke run (asked for, or the default without a
    GPU), SMOKE_RESULTS, so that a first run never mixes its few-iteration records into the committed ones."""
    if plan is not None:
        return "results"
    if profile is None:
        import torch
        on_gpu = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
        profile = "full" if on_gpu or executor == "slurm" else "smoke"
    from bench.records import default_results
    return default_results(profile, click.echo)


def _dispatch_runs(suite, plan, profile, members, variants, seeds, executor, jobs_dir, time_limit, gpus, cpus,
                   partition, account, max_parallel, wait, job_settings):
    """`bench run --executor`: the runs as submitit jobs; exit 1 when any failed (one line each, with its log)."""
    from bench.dispatch import dispatch
    from bench.jobs import JobSettings, plan_specs, suite_specs
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
    click.echo(report_hint(job_settings["results"], job_settings["data_root"]))
    if failed:
        sys.exit(1)
    if stopped:
        sys.exit(3)  # as in-process: the deadline came; the same command continues


def _show_jobs(jobs_dir, fmt):
    from bench.jobs import job_rows
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
    from bench.safety import describe_removed, remove_stale_temporaries
    removed = remove_stale_temporaries(Path(results))
    if removed[0]:
        click.echo(describe_removed(*removed), err=True)
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
