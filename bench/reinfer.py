"""A record re-tested from its own weights: the kept model (`bench.weights.load_model`) run again over the record's
test split, fed as the run fed it (its size, fit and normalisation), and compared with the record's committed
predictions: the share of pixels that agree, and each score's difference on the same images. It ties a number to a
model, not only to a folder of PNGs.

The re-test runs in the record's precision (a bf16 record in bf16 on the CPU too) unless told otherwise.
Tolerance (`TOLERANCE`, by how the re-test's setting differs from the record's):
- "same" (device type and precision): the same arithmetic up to the order of reductions; all but a few pixels in
  a hundred thousand agree (argmax ties);
- "device" (same precision, another device: bf16 in cuDNN against bf16 on a CPU): other kernels round other
  partial sums; pixels where two classes are within bf16's rounding flip, and in SegNet's decoders a tie in a
  max-pooling window moves an index, so whole unpooled positions differ;
- "precision" (bf16 against fp32): more of the same.
Measured on the committed Table 1 records (`python -m bench.benchmarks.reinfer_tolerance`, its record in
results/benchmarks/): the right weights stay inside their tier with room to spare; weights of another iteration of
the same run fall far outside every tier.
"""
from __future__ import annotations

import json
from pathlib import Path


from bench.errors import BenchError

TOLERANCE = {  # (minimum share of pixels that agree, largest |Δ| of G, C, mIoU, largest |Δ| of BF), in points
    "same": (0.9999, 0.05, 0.1),
    "device": (0.995, 0.2, 0.5),
    "precision": (0.99, 0.5, 1.0),
}
SCORES = ("G", "C", "mIoU", "BF")


def setting_of(device, precision: str) -> str:
    return f"{str(device).split(':')[0]}/{precision}"


def reinfer(record, *, weights=None, checkpoints="checkpoints", data_root=None, device="cpu",
            images: int | None = None, precision: str | None = None, log=print, progress=None) -> dict:
    """Re-infers a record's test split (its first ``images`` images where given) with its kept weights (or the
    file ``weights``) and compares with its committed predictions; {"agreement", "delta", "within_tolerance", ...}.
    ``precision`` ("fp32", "bf16"): instead of the recipe's on ``device`` (bf16 on a GPU, fp32 on a CPU)."""
    import torch
    from bench.config import Recipe, plain_recipe
    from bench.data import load_split
    from bench.datasets import get_dataset
    from bench.evaluate import score_label_maps
    from bench.inference import predict
    from bench.labelmap import read_label_png
    from bench.step import autocast
    from bench.weights import load_model, record_folder_of
    folder = record_folder_of(record)
    rec = json.loads((folder / "run.json").read_text())
    if rec.get("kind", "training-run") != "training-run" or "postprocess" in rec:
        raise BenchError(f"{folder}: a post-processed record; re-test the record it post-processed")
    device = torch.device(device)
    model = load_model(weights if weights is not None else folder, checkpoints=checkpoints, device=device)
    precision = precision or rec.get("precision") or "auto"  # as recorded, unless told
    recipe = Recipe(**{**plain_recipe(rec["config"]), "precision": precision})
    dataset = get_dataset(rec["dataset"], data_root)
    test = load_split(dataset, "test", tuple(recipe.image_size), images or recipe.test_subset, device, progress,
                      recipe.fit)
    precision = autocast(device, recipe)[1]
    log(f"re-inferring {len(test)} test images of {folder} on {device} ({precision}; recorded on "
        f"{rec.get('device')} in {rec.get('precision')})")
    ours = test.full_size(predict(model, test, recipe, device))
    committed = [read_label_png(folder / "predictions" / name, m.shape, max_label=255)
                 for name, m in zip(test.names, ours)]
    same = [int((a == b).sum()) for a, b in zip(ours, committed)]
    total = sum(m.size for m in ours)
    labels = test.originals if test.frames is not None else list(test.labels.cpu().numpy())
    kw = dict(class_names=dataset.class_names, void_label=dataset.void_label)
    s_ours, s_committed = score_label_maps(ours, labels, **kw), score_label_maps(committed, labels, **kw)
    delta = {k: s_ours[k] - s_committed[k] for k in SCORES}
    kind = tolerance_kind(setting_of(device, precision), setting_of(rec.get("device", "cpu"), rec.get("precision")))
    min_agree, max_d, max_bf = TOLERANCE[kind]
    within = sum(same) / total >= min_agree and all(abs(delta[k]) <= max_d for k in SCORES[:3]) \
        and abs(delta["BF"]) <= max_bf
    return {"record": str(folder), "images": len(test), "pixels": total, "agreement": sum(same) / total,
            "delta": delta, "scores": {k: s_ours[k] for k in SCORES},
            "committed_scores": {k: s_committed[k] for k in SCORES}, "setting": setting_of(device, precision),
            "recorded_setting": setting_of(rec.get("device", "cpu"), rec.get("precision")), "tolerance": kind,
            "tolerance_values": {"agreement": min_agree, "G_C_mIoU": max_d, "BF": max_bf}, "within_tolerance": within,
            "weights": model.kept_weights["path"],
            "worst_images": sorted(((1 - s / m.size, n) for s, m, n in zip(same, ours, test.names)), reverse=True)[:3]}


def tolerance_kind(setting: str, recorded: str) -> str:
    """Which tier of `TOLERANCE` a re-test in ``setting`` ("cpu/fp32") of a record made in ``recorded`` is held to."""
    if setting == recorded:
        return "same"
    return "device" if setting.split("/")[1] == recorded.split("/")[1] else "precision"


def describe(result: dict) -> str:
    """One line of a re-test."""
    d = result["delta"]
    return (f"{result['images']} images on {result['setting']} (recorded on {result['recorded_setting']}): "
            f"{result['agreement']:.4%} of pixels agree; Δ G {d['G']:+.2f} C {d['C']:+.2f} mIoU {d['mIoU']:+.2f} "
            f"BF {d['BF']:+.2f} ({'within' if result['within_tolerance'] else 'outside'} the "
            f"{result['tolerance']} tolerance)")


def records_with_weights(results: Path, checkpoints="checkpoints") -> list[Path]:
    """The record folders of ``results`` whose weights are present (committed or kept under ``checkpoints``)."""
    from bench.records import find_records
    from bench.weights import record_weights
    out = []
    for path in find_records(Path(results)):
        try:
            record_weights(path.parent, checkpoints)
        except (BenchError, KeyError):
            continue
        out.append(path.parent)
    return out


def reinfer_outcomes(results: Path, *, checkpoints="checkpoints", data_root=None, images=None, device="cpu",
                     log=print) -> list[dict]:
    """`bench check --reinfer`: one outcome per record whose weights are present."""
    outcomes = []
    for folder in records_with_weights(results, checkpoints):
        rel = folder.resolve().relative_to(Path(results).resolve()).as_posix()
        try:
            r = reinfer(folder, checkpoints=checkpoints, data_root=data_root, images=images, device=device,
                        log=lambda *_: None)
        except BenchError as exc:
            outcomes.append({"rule": f"reinfer:{rel}", "status": "fail", "detail": str(exc)})
            continue
        outcomes.append({"rule": f"reinfer:{rel}", "status": "pass" if r["within_tolerance"] else "fail",
                         "detail": describe(r)})
    return outcomes
