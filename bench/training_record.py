"""The one builder of a run's record (run.json), for a trained member and a post-processed one alike, and the
writing of its folder: the test predictions as 8-bit PNG label maps, log.txt, the loss of every step
(loss.npy) and run.json, made in a temporary folder and renamed into place (`bench.records.RunFolder`).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from bench import safety, stopping
from bench.records import SCHEMA_VERSION, RunFolder, now_iso, provenance

LOSS_CURVE_POINTS = 5000  # run.json keeps at most this many points of the loss curve; loss.npy keeps every step


def training_record(*, suite, member: str, variant: str | None, run_id: str, profile: str, seed: int, dataset,
                    recipe, overrides: dict | None, model: dict, method: dict, device, precision, world_size: int,
                    progress: dict, curves: dict, selected: dict, stop: dict, budgets: list, test: dict,
                    train: dict | None, test_split, timing: dict, resolution=None,
                    step_variant: dict | None = None, weights: dict | None = None,
                    live_curves: str | None = None) -> dict:
    """run.json of a run: who it is (suite, member, variant, profile, seed), what made it (recipe, model, the
    training ``method``: {"optimiser": ...} or {"postprocess": ...}, provenance, device), how far it went
    (``progress``: iterations, iterations_per_epoch, train_images), its curves, selected point, stop and scores,
    where its predictions are (at ``resolution``, the recipe's image size unless given), its timing, and its kept
    ``weights`` (`bench.weights`: their SHA-256, where they are) and where its ``live_curves`` went (TensorBoard)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "training-run",
        "suite": suite.name, "member": member, "variant": variant, "run_id": run_id, "profile": profile,
        "seed": seed, "dataset": dataset.name, "splits": getattr(dataset, "split_rule", None),
        "suite_file": suite.path, "config": asdict(recipe), "overrides": dict(overrides or {}),
        "model": model,
        **method,
        "provenance": provenance(),
        "device": str(device), "precision": precision, "world_size": world_size,
        **({"step_variant": step_variant} if step_variant is not None else {}),
        **progress,
        "curves": curves,
        "selected": selected,
        "stop": stop,
        "budgets": budgets,
        "test": test,
        "train": train,
        "predictions": {"folder": "predictions", "split": "test", "count": len(test_split.names),
                        "resolution": list(resolution or recipe.image_size),
                        "at_original_size": test_split.frames is not None},
        "log": "log.txt",
        **({"weights": weights} if weights is not None else {}),
        **({"tensorboard": live_curves} if live_curves else {}),
        "timing": timing,
        "finished_at": now_iso(),
    }


def loss_curve(losses: np.ndarray) -> dict:
    """The training loss as run.json keeps it: means over windows of steps, at most LOSS_CURVE_POINTS points,
    each at the iteration its window ends (every step's loss is in loss.npy)."""
    window = max(1, math.ceil(len(losses) / LOSS_CURVE_POINTS))
    return {"loss": [[min(i + window, len(losses)), float(losses[i:i + window].mean())]
                     for i in range(0, len(losses), window)],
            "loss_window": window, "loss_per_step": "loss.npy"}


def write_run(results: Path, suite_name: str, member: str, run_id: str, test_split, test_pred, log_lines: list,
              make_record, losses: np.ndarray | None = None, extra_files=None) -> Path:
    """A run's record folder, published whole or not at all: the test predictions at each image's own size,
    log.txt, loss.npy (where given), what ``extra_files(folder)`` writes there (the weights) and run.json,
    ``make_record()`` called once the files are written."""
    from bench.labelmap import write_label_map
    folder = RunFolder(Path(results) / suite_name / member, run_id)
    try:
        for name, label_map in zip(test_split.names, test_split.full_size(test_pred)):
            write_label_map(folder.predictions / name, label_map)
        if losses is not None:
            np.save(folder.tmp / "loss.npy", losses)
        (folder.tmp / "log.txt").write_text("".join(line + "\n" for line in log_lines))
        if extra_files is not None:
            extra_files(folder.tmp)
        safety.interruption_point("record", -1)
        final = folder.publish(make_record())
    except OSError as exc:
        folder.discard()
        raise safety.write_error(folder.tmp, exc, f"the record of {member}") from None
    except BaseException:
        folder.discard()
        raise
    from bench.seal import seal_record
    seal_record(results, final)  # its digests in the results folder's seal, which `bench check` holds it to
    return final


def record_trained_member(run, reason: str) -> Path:
    """The record of a trained member (`bench.train.MemberTraining`): the selected point's weights loaded, its test
    predictions and scores (and train scores where the recipe asks), with everything the run did."""
    from bench import architectures
    from bench.inference import full_scores, predict, train_split_scores
    from bench.records import new_run_id
    from bench.step import peak_flops
    recipe, state, model, optimizer = run.recipe, run.state, run.model, run.optimizer
    train, test = run.data["train"], run.data["test"]
    run.model.load_state_dict(state.best["model"])
    test_pred = predict(model, test, recipe, run.device)
    safety.interruption_point("final-test", state.iteration)
    test_scores = full_scores(test_pred, test, run.dataset)
    train_scores = train_split_scores(predict(model, train, recipe, run.device), train, run.dataset) \
        if recipe.evaluate_train else None
    losses = state.losses_so_far().cpu().numpy().astype(np.float32)
    run_id = new_run_id(run.profile, run.seed, run.variant)
    weights: dict = {}

    def keep_weights(folder: Path) -> None:  # under checkpoints/, and beside run.json where small (bench.weights)
        from bench.weights import keep_selected_weights
        weights.update(keep_selected_weights(run, run_id, folder))

    def make_record() -> dict:
        tps = state.images_trained / state.train_seconds if state.train_seconds else None
        peak = peak_flops(run.device, run.precision)
        return training_record(
            suite=run.suite, member=run.member, variant=run.variant, run_id=run_id, profile=run.profile,
            seed=run.seed, dataset=run.dataset, recipe=recipe, overrides=run.overrides,
            model={"name": run.member, "revision": architectures.model_revision(run.member),
                   "params": sum(p.numel() for p in model.parameters()),
                   "gmacs_per_image": run.macs_per_image / 1e9, "pretrained_layers": model.pretrained_layers,
                   "weights_source": model.weights_source, "weights_sha256": run.weights_sha,
                   "initialisation": model.initialisation, "class_weights": run.class_weights.tolist(),
                   **run.frozen},
            method={"optimiser": optimiser_record(recipe, optimizer)},
            device=run.device, precision=run.precision, world_size=run.world, step_variant=run.step_variant,
            progress={"iterations": state.iteration, "iterations_per_epoch": run.sched.iterations_per_epoch,
                      "train_images": len(train)},
            curves={**loss_curve(losses), "val": state.val},
            selected={"iteration": state.best["iteration"], "epoch": state.best["epoch"], "rule": recipe.selection},
            stop=stopping.stop_record(recipe, reason, state.iteration, run.sched.total, state.val,
                                      state.best["iteration"]),
            budgets=state.budgets, test=test_scores, train=train_scores, test_split=test, weights=weights,
            live_curves=state.tensorboard_dir,
            timing={**wall_clock(state, time.time() - run.started), "train_seconds": state.train_seconds,
                    "images_trained": state.images_trained, "train_images_per_second": tps,
                    "model_flops_per_train_image": 6 * run.macs_per_image,
                    "mfu": (6 * run.macs_per_image * tps / peak) if (tps and peak) else None, "peak_flops": peak,
                    **times_floor(run.device, run.member, recipe, tps)})
    return write_run(run.results, run.suite.name, run.member, run_id, test, test_pred, state.log, make_record,
                     losses, keep_weights)


def times_floor(device, member: str, recipe, images_per_second) -> dict:
    """On an H100 or H200: the step's floor (`bench.roofline`) in images/s and how many times slower the run
    trained ("times_floor"); {} elsewhere."""
    import torch
    from bench.roofline import GPUS, step_costs
    if device.type != "cuda" or not images_per_second:
        return {}
    gpu = next((g for g in GPUS if g in torch.cuda.get_device_name(device)), None)
    if gpu is None:
        return {}
    try:  # a trace on the meta device; a model it cannot trace there records no floor rather than no run
        floor = step_costs(member, recipe.batch_size, tuple(recipe.image_size))["floor_images_per_second"][gpu]
    except Exception:
        return {}
    return {"floor_images_per_second": floor, "times_floor": floor / images_per_second, "floor_gpu": gpu}


def wall_clock(state, this_segment: float) -> dict:
    """The run's wall-clock time over every segment it was trained in (each resume is one more), with the count;
    None where a segment's time was not kept (a checkpoint from before it was), and then this segment's alone."""
    before = state.wall_seconds_before
    out = {"wall_seconds": None if before is None else before + this_segment, "segments": state.segments}
    if state.segments > 1:
        out["wall_seconds_last_segment"] = this_segment
    return out


def optimiser_record(recipe, optimizer) -> dict:
    """What run.json says of the optimiser: SGD's momentum, fused or not, and each parameter group."""
    return {"type": "SGD", "momentum": recipe.momentum, "fused": bool(optimizer.defaults.get("fused")),
            "param_groups": [{"name": g["name"], "lr": g["lr"], "weight_decay": g["weight_decay"],
                              "tensors": len(g["params"]), "parameters": sum(p.numel() for p in g["params"])}
                             for g in optimizer.param_groups]}
