"""`bench run` over a suite: every (seed, variant, member) of it (`Suite.run_specs`), everything checked before any
training, each run trained (`bench.train.train_member`) or post-processed (`bench.postprocess`), a run already
recorded skipped under --resume. The steps of one run live in their own modules, in the paper's order:
`bench.data` -> `bench.build` -> `bench.step` -> `bench.train` (the loop) -> `bench.inference` ->
`bench.training_record`, with `bench.checkpoint` and `bench.safety` keeping it whole.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from bench import distributed as dist_utils
from bench.checkpoint import checkpoint_path, remove_checkpoint
from bench.config import load_suite
from bench.errors import BenchError
from bench.postprocess import postprocess_member
from bench.records import RunRecord, recorded_run
from bench.safety import check_writable, describe_removed, remove_stale_temporaries
from bench.train import RunOptions, train_member

def resolve_device(device: str | None) -> torch.device:
    """--device as a torch device; one line for an unknown or absent one."""
    try:
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except (RuntimeError, TypeError):
        raise BenchError(f"--device {device!r}: not a device (use cpu, cuda or cuda:N)") from None
    if dev.type not in ("cpu", "cuda"):
        raise BenchError(f"--device {device!r}: only cpu and cuda are supported")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BenchError(f"--device {device!r}: CUDA is not available on this machine")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise BenchError(f"--device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev


def run_suite(suite_name: str, **kw) -> list[RunRecord]:
    """Trains every (member, variant, seed) of a suite and returns their records (``record.folder`` is where
    each lies, beside its predictions). The keywords are `train_suite`'s; the log and progress default to
    lines that keep a live bar intact and a bar that works on a terminal, in a notebook and in a batch log, and the
    live curves go to runs/tensorboard (`bench.curves`; ``options=RunOptions(tensorboard=None)`` for none)."""
    from bench.progress import log_line, progress_bar
    kw.setdefault("log", log_line)
    kw.setdefault("progress", progress_bar)
    kw.setdefault("options", RunOptions(tensorboard="runs/tensorboard"))  # live curves, as `bench run` writes them
    return [RunRecord.load(folder) for folder in train_suite(suite_name, **kw)]



def train_suite(suite_name: str, *, profile: str | None = None, seeds=(0,), members=None, variants=None,
                add_members=(), data_root=None, results=None, checkpoints="checkpoints", resume=False,
                encoder_weights=None,
                overrides: dict | None = None, device: str | None = None, log=print, progress=None,
                stop_after: int | None = None, max_minutes: float | None = None, deadline: float | None = None,
                options: RunOptions = RunOptions(), data_cache: dict | None = None) -> list[Path]:
    """Trains every (member, variant, seed) of a suite; returns the record folders. Everything is checked first.

    members: a subset of the suite's; add_members: registered models beyond the suite (a plugin's), trained under
    its recipe beside them (a name in ``members`` that is not the suite's but a registered model counts as added).
    results: the records' folder; by default results/, or for a smoke run `SMOKE_RESULTS` (as `bench run`).

    max_minutes (or an absolute ``deadline``, time.time() seconds): stop after this much wall-clock time,
    writing a checkpoint (TimeBudgetReached); with resume=True the same call continues, and members already
    recorded are skipped.
    """
    if max_minutes is not None and not (math.isfinite(max_minutes) and max_minutes > 0):
        raise BenchError(f"--max-minutes {max_minutes}: must be a positive number")
    if max_minutes:
        deadline = time.time() + 60 * max_minutes
    suite = load_suite(suite_name)
    dev, rank = start_processes(device)
    if rank != 0:
        log, progress = (lambda m: None), None
    if profile is None:
        profile = "full" if dev.type == "cuda" else "smoke"
        log(f"profile: {profile} (CUDA {'present' if dev.type == 'cuda' else 'absent'}; pass --profile to choose)")
    if results is None:
        from bench.records import default_results
        results = default_results(profile, log)
    members, add_members = split_added(suite, members, add_members)
    runs = suite.run_specs(members, variants, seeds, add_members)
    recipes = {(r.variant, r.member): suite.resolve(profile, r.variant, overrides, member=r.member) for r in runs}
    dataset = checked_inputs(suite, recipes, data_root, encoder_weights)
    if rank == 0:  # unwritable output folders are found now, not after hours of training
        check_writable(Path(results), "results")
        check_writable(Path(checkpoints), "checkpoints")
        removed = remove_stale_temporaries(Path(results), Path(checkpoints))
        if removed[0]:
            log(describe_removed(*removed))
        from bench.curves import announce
        announce(options.tensorboard, log)
    results, checkpoints, out = Path(results), Path(checkpoints), []
    cache: dict = {} if data_cache is None else data_cache
    for run in runs:
        v, m, seed = run.variant, run.member, run.seed
        done = recorded_run(results, suite.name, m, profile, seed, v, recipes[v, m])
        if resume and done is not None:
            log(f"{run.label(suite.name)}: already recorded in {done}; skipped")
            # a checkpoint left by an interruption after the record was written
            remove_checkpoint(checkpoint_path(checkpoints, suite.name, m, profile, v, seed))
            out.append(done)
            continue
        log(run.label(suite.name, profile))
        if m in suite.postprocessed:
            folder = postprocess_member(suite, m, recipes[v, m], suite.base_recipe(m, profile, v, overrides),
                                        profile=profile, seed=seed, variant=v, dataset=dataset, data_cache=cache,
                                        results=results, checkpoints=checkpoints, device=dev, log=log,
                                        progress=progress, overrides=overrides) if rank == 0 else None
        else:
            folder = train_member(suite, m, recipes[v, m], profile=profile, seed=seed, variant=v, dataset=dataset,
                                  data_cache=cache, results=results, checkpoints=checkpoints, resume=resume,
                                  device=dev, encoder_weights_override=encoder_weights, log=log, progress=progress,
                                  stop_after=stop_after, deadline=deadline, options=options, overrides=overrides)
        if folder is not None:  # rank 0 writes the records
            out.append(folder)
            log(f"  recorded {folder}")
    return out


def split_added(suite, members, add_members) -> tuple:
    """(the suite's members chosen or None, the added ones): a name in ``members`` that the suite lacks but the
    registry holds (a plugin's model) is added, as `bench run --add-member` adds it."""
    from bench.architectures import list_models
    if not members:
        return members, list(add_members or ())
    known = set(list_models())
    extra = [m for m in members if m not in suite.members and m not in suite.postprocessed and m in known]
    own = [m for m in members if m not in extra]  # [] where only added models were named: none of the suite's
    return own, [*extra, *(add_members or ())]


def start_processes(device: str | None) -> tuple[torch.device, int]:
    """The training device, and this process's rank where several train together (torchrun)."""
    dev = resolve_device(device)
    rank, world = dist_utils.init(dev.type)
    if world > 1 and dev.type == "cuda":
        dev = torch.device("cuda", dist_utils.world()[2])
        torch.cuda.set_device(dev)
    return dev, rank


def checked_inputs(suite, recipes: dict, data_root, encoder_weights):
    """The suite's dataset, with every split present, and every weights file and class weighting the runs name
    checked: a data root without the dataset or a missing file fails here, before any training."""
    from bench import datasets
    dataset = datasets.get_dataset(suite.dataset, data_root)
    for split in ("train", "val", "test"):
        dataset.samples(split)
    for r in recipes.values():
        if r.encoder_weights not in ("imagenet", "none") and not Path(r.encoder_weights).is_file():
            raise BenchError(f"{r.encoder_weights}: encoder weights file not found")
        if r.class_weighting not in dataset.class_weightings:
            raise BenchError(f"{suite.path}: unknown class_weighting {r.class_weighting!r}; "
                             f"known: {', '.join(dataset.class_weightings)}")
    if encoder_weights is not None and not Path(encoder_weights).expanduser().is_file():
        raise BenchError(f"{encoder_weights}: encoder weights file not found")
    return dataset
