"""Benchmark: score all 233 CamVid test images against realistic imperfect predictions (prints seconds).

Not a test: it prints figures. Target (issue 2): G, C, mIoU and exact one-to-one BF in <= 5 s on a
2-core machine. The predictions are the ground truth warped by a smooth random displacement field (up to
a few pixels, as a real model's boundaries wander), void filled with the nearest class (a model labels
every pixel), and a few blobs of wrong classes (hallucinated objects).

    python -m bench.benchmarks.eval_speed [--data-root DIR] [--workers N] [--repeat 3] [--out FILE.json]
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from scipy import ndimage as ndi


def imperfect_prediction(gt: np.ndarray, rng: np.random.Generator, void_label: int = 11) -> np.ndarray:
    h, w = gt.shape
    dy = ndi.gaussian_filter(rng.normal(size=(h, w)), 20) * 60
    dx = ndi.gaussian_filter(rng.normal(size=(h, w)), 20) * 60
    yy, xx = np.mgrid[:h, :w]
    pred = ndi.map_coordinates(gt, [np.clip(yy + dy, 0, h - 1), np.clip(xx + dx, 0, w - 1)], order=0)
    void = pred == void_label
    if void.any() and not void.all():
        iy, ix = ndi.distance_transform_edt(void, return_distances=False, return_indices=True)
        pred = pred[iy, ix]
    for _ in range(8):
        cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(3, 25)
        pred[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.integers(0, void_label)
    return pred.astype(np.uint8)


def main(argv=None):
    import datasets
    from bench.evaluate import score_label_maps
    from bench.matching import backend
    from bench.records import machine_info

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root")
    ap.add_argument("--workers", type=int, default=None, help="processes for BF (default: all cores)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", help="also write the figures as JSON here (with provenance; never overwritten)")
    args = ap.parse_args(argv)

    ds = datasets.get_dataset("camvid", args.data_root)
    t0 = time.perf_counter()
    samples, labels = ds.read_labels("test")
    decode = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    preds = [imperfect_prediction(g, rng) for g in labels]
    gts = list(labels)
    times_all, times_cm = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        score_label_maps(preds, gts, class_names=ds.class_names, with_bf=False)
        times_cm.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        res = score_label_maps(preds, gts, class_names=ds.class_names, workers=args.workers)
        times_all.append(time.perf_counter() - t0)
    out = {
        "images": len(gts),
        "decode_ground_truth_s": round(decode, 3),
        "G_C_mIoU_s": round(min(times_cm), 3),
        "all_four_metrics_s_best": round(min(times_all), 3),
        "all_four_metrics_s_runs": [round(t, 3) for t in times_all],
        "workers": args.workers or os.cpu_count(),
        "matching_backend": backend(),
        "scores": {k: round(res[k], 2) for k in ("G", "C", "mIoU", "BF")},
        "machine": {k: v for k, v in machine_info().items() if k in ("processor", "cpu_count", "platform")},
    }
    print(json.dumps(out, indent=1))
    if args.out:
        from bench.records import provenance
        from pathlib import Path
        path = Path(args.out)
        if path.exists():
            raise SystemExit(f"error: {path}: already exists; nothing was written")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"kind": "benchmark", "benchmark": "eval_speed", **out,
                                    "provenance": provenance()}, indent=1) + "\n")


if __name__ == "__main__":
    main()
