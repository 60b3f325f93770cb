"""A post-processed member: one that trains nothing but post-processes the recorded run of another member of its
suite (`Suite.postprocess`): DeepLab's dense CRF over the selected weights' softmax (`bench.crf`), its parameters
chosen on validation images, written as a record like any other.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path


from bench import crf, stopping
from bench.config import Recipe, Suite
from bench.data import data_for
from bench.errors import BenchError
from bench.inference import full_scores, host_images, predict_probs
from bench.metrics import confusion_matrix, segmentation_scores
from bench.records import new_run_id, now_iso, recorded_run
from bench.training_record import training_record, write_run
from bench.weights import load_model



def postprocess_member(suite: Suite, member: str, recipe: Recipe, base_recipe: Recipe, *, profile: str, seed: int,
                       variant: str | None, dataset, data_cache: dict, results: Path, checkpoints: Path, device,
                       log=print, progress=None, overrides: dict | None = None) -> Path:
    """A member that post-processes the recorded run of another (`Suite.postprocessed`): the dense CRF over
    the selected weights' softmax, its parameters chosen on validation images; written as a normal record."""
    started, run_log = time.time(), []

    def note(message):
        run_log.append(f"{now_iso()} {message}")
        log(message)
    spec = suite.postprocessed[member]
    base_folder, base_record, model = selected_model_of(suite, member, spec["of"], base_recipe, profile=profile,
                                                        seed=seed, variant=variant, dataset=dataset,
                                                        results=results, checkpoints=checkpoints, device=device)
    data = data_for(base_recipe, dataset, device, data_cache, progress)
    val, test = data["val"], data["test"]
    n_val = min(len(val), crf.VAL_IMAGES)
    note(f"  {member}: dense CRF over {base_folder.name}; grid of {len(crf.grid())} settings on {n_val} val images")
    params, table = choose_crf_params(model, val.subset(n_val), base_recipe, dataset, device)
    note(f"  {member}: chosen {asdict(params)} (val mIoU {max(t['score'] for t in table):.2f})")
    test_probs = predict_probs(model, test, base_recipe, device)
    workers = os.cpu_count() or 1
    t0 = time.perf_counter()
    test_pred = crf.crf_label_maps(host_images(test, len(test)), test_probs, params, workers)
    crf_seconds = time.perf_counter() - t0
    test_scores = full_scores(test_pred, test, dataset)
    note(f"  {member} test G {test_scores['G']:.2f} mIoU {test_scores['mIoU']:.2f} BF {test_scores['BF']:.2f}")
    postprocess = {"stage": spec["stage"], "of": spec["of"], "record": base_record["run_id"],
                   "record_commit": base_record["provenance"]["git"]["commit"], "params": asdict(params),
                   "grid": table, "chosen_by": f"mIoU of the first {n_val} val images",
                   "core_seconds_per_test_image": crf_seconds / max(1, len(test)) * workers, "workers": workers,
                   "implementation": "pydensecrf2 (Krähenbühl and Koltun's C++ code)"}
    run_id = new_run_id(profile, seed, variant)

    def make_record() -> dict:  # the training side taken from the run it post-processed
        return training_record(
            suite=suite, member=member, variant=variant, run_id=run_id, profile=profile, seed=seed, dataset=dataset,
            recipe=recipe, overrides=overrides, model=base_record["model"], method={"postprocess": postprocess},
            device=device, precision=base_record.get("precision"), world_size=1,
            progress={k: base_record[k] for k in ("iterations", "iterations_per_epoch", "train_images")},
            curves={"loss": [], "val": []}, selected=base_record["selected"], stop=stopping.stop_of(base_record),
            budgets=[], test=test_scores, train=None, test_split=test, resolution=base_recipe.image_size,
            timing={"wall_seconds": time.time() - started, "crf_test_seconds": crf_seconds})
    return write_run(results, suite.name, member, run_id, test, test_pred, run_log, make_record)


def choose_crf_params(model, val, recipe: Recipe, dataset, device):
    """The CRF's parameters chosen on validation images by mIoU (`bench.crf.choose_params`), and every
    candidate's score."""
    val_probs = predict_probs(model, val, recipe, device)

    def val_miou(maps, labels):
        cm = confusion_matrix(maps, labels, dataset.num_classes, dataset.void_label)
        return 100 * segmentation_scores(cm)["mIoU"]
    return crf.choose_params(host_images(val, len(val)), val_probs, val.labels.cpu().numpy(), val_miou)


def selected_model_of(suite: Suite, member: str, base: str, base_recipe: Recipe, *, profile, seed, variant,
                      dataset, results, checkpoints, device):
    """The latest record of ``base`` for this profile, seed and variant, and its model with the selected weights
    kept for post-processing; one line naming the `bench run` to do first where either is missing."""
    tag = f"profile {profile}, seed {seed}" + (f", variant {variant}" if variant else "")
    command = (f"bench run --suite {suite.name} --members {base} --profile {profile} --seeds {seed}"
               + (f" --variants {variant}" if variant else ""))
    base_folder = recorded_run(results, suite.name, base, profile, seed, variant, base_recipe)
    if base_folder is None:
        raise BenchError(f"{member}: no recorded {base} run ({tag}) under {results / suite.name / base}; run "
                         f"`{command}` first")
    try:
        model = load_model(base_folder, checkpoints=checkpoints, device=device)
    except BenchError as exc:
        raise BenchError(f"{exc}; record {base} again: `{command}` (without --resume)") from None
    return base_folder, json.loads((base_folder / "run.json").read_text()), model
