"""Benchmark: score all 233 CamVid test images against realistic imperfect predictions (prints seconds).

Not a test: it prints figures. Targets (issue 14), on a 2-core machine, for the whole `bench eval` command
(process start-up, decoding and all four metrics): <= 1 s on smooth predictions, <= 2 s with 2 % noise.

Cases: ``smooth`` is the ground truth warped by a smooth random displacement field (up to a few pixels, as
a real model's boundaries wander), void filled with the nearest class (a model labels every pixel), and a
few blobs of wrong classes (hallucinated objects); ``noise-1%``, ``noise-2%`` and ``noise-5%`` add
salt-and-pepper noise (that share of pixels set to a random class, as early in training); ``pole-sign-2%``
sets 2 % of pixels to the thin, boundary-heavy classes Pole and SignSymbol.

For each case it writes the predictions as PNGs into a temporary folder, times the whole `bench eval`
command (best of --repeat; the decoded ground truth comes from the disk cache of `bench.cache`, as in every
evaluation after the first; also timed without it), and splits the work of one process: decoding the
predictions, reading the ground truth, confusion matrix, and BF's boundaries, candidate pixels and
matching; plus the start-up of a Python process that imports the CLI.

    python -m bench.benchmarks.eval_speed [--data-root DIR] [--workers N] [--repeat 3] [--cases a,b]
                                          [--out FILE.json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

TARGETS_S = {"smooth": 1.0, "noise-2%": 2.0}
POLE, SIGN = 2, 6  # CamVid class indices of Pole and SignSymbol


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


def salt_and_pepper(pred: np.ndarray, fraction: float, rng: np.random.Generator, classes=range(11)) -> np.ndarray:
    """A copy with ``fraction`` of the pixels set to a class drawn from ``classes``."""
    out = pred.copy()
    hit = rng.random(out.shape) < fraction
    out[hit] = rng.choice(np.asarray(list(classes), dtype=np.uint8), int(hit.sum()))
    return out


CASES = {
    "smooth": lambda gt, rng: imperfect_prediction(gt, rng),
    "noise-1%": lambda gt, rng: salt_and_pepper(imperfect_prediction(gt, rng), 0.01, rng),
    "noise-2%": lambda gt, rng: salt_and_pepper(imperfect_prediction(gt, rng), 0.02, rng),
    "noise-5%": lambda gt, rng: salt_and_pepper(imperfect_prediction(gt, rng), 0.05, rng),
    "pole-sign-2%": lambda gt, rng: salt_and_pepper(imperfect_prediction(gt, rng), 0.02, rng, (POLE, SIGN)),
}


def time_command(cmd: list[str], repeat: int, env: dict) -> list[float]:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        runs.append(time.perf_counter() - t0)
        if r.returncode != 0:
            raise SystemExit(f"error: {' '.join(cmd)} failed:\n{r.stderr.strip()}")
    return runs


def split_one_process(ds, samples, folder: Path) -> dict:
    """Where one process spends its time on the case (no worker processes)."""
    from bench.boundary import BoundaryScorer
    from bench.evaluate import read_prediction
    from bench.metrics import confusion_matrix

    import bench.datasets.camvid as camvid
    camvid._GROUND_TRUTH_CACHE.clear()  # as in a fresh `bench eval` process (the disk cache stays)
    t0 = time.perf_counter()
    preds = [read_prediction(ds, folder / s.name) for s in samples]
    tp = time.perf_counter()
    gts = list(ds.read_label_stack(samples))  # as `bench eval`: mapped from the disk cache
    t1 = time.perf_counter()
    for p, g in zip(preds, gts):
        confusion_matrix(p, g, len(ds.class_names), ds.void_label)
    t2 = time.perf_counter()
    scorer = BoundaryScorer(num_classes=len(ds.class_names))
    scorer.seconds = np.zeros(3)
    bf = [scorer.score(p, g).bf for p, g in zip(preds, gts)]
    t3 = time.perf_counter()
    b, c, m = scorer.seconds
    return {"decode_predictions_s": tp - t0, "read_ground_truth_s": t1 - tp, "confusion_s": t2 - t1, "bf_s": t3 - t2, "bf_boundaries_s": b,
            "bf_candidates_s": c, "bf_matching_s": m, "bf_other_s": (t3 - t2) - (b + c + m),
            "BF": 100 * float(np.mean(bf))}


def main(argv=None):
    from bench import datasets
    from bench.matching import backend
    from bench.records import machine_info

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root")
    ap.add_argument("--workers", type=int, default=None, help="processes for `bench eval` (default: all cores)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of: " + ", ".join(CASES).replace("%", "%%"))
    ap.add_argument("--out", help="also write the figures as JSON here (with provenance; never overwritten)")
    args = ap.parse_args(argv)
    if args.out and Path(args.out).exists():
        raise SystemExit(f"error: {args.out}: already exists; nothing was written")
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        raise SystemExit(f"error: unknown case {unknown[0]!r}; choose from {', '.join(CASES)}")

    ds = datasets.get_dataset("camvid", args.data_root)
    samples, labels = ds.read_labels("test")
    env = dict(os.environ, BENCH_DATA_ROOT=str(ds.data_root))
    startup = time_command([sys.executable, "-c", "import bench.cli, bench.evaluate, datasets"], args.repeat, env)
    out = {"images": len(samples), "workers": args.workers or os.cpu_count(), "matching_backend": backend(),
           "process_start_up_s": round(min(startup), 3), "cases": {}}
    from PIL import Image
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            rng = np.random.default_rng(0)
            folder = Path(tmp) / case
            folder.mkdir()
            for s, gt in zip(samples, labels):
                Image.fromarray(CASES[case](gt, rng)).save(folder / s.name)
            cmd = [sys.executable, "-m", "bench.cli", "eval", "--predictions", str(folder)]
            if args.workers:
                cmd += ["--workers", str(args.workers)]
            time_command(cmd, 1, env)  # warm-up: fills the label cache (and builds the C code) if empty
            runs = time_command(cmd, args.repeat, env)
            cold = time_command(cmd, args.repeat, dict(env, BENCH_NO_LABEL_CACHE="1"))
            row = {"bench_eval_s_best": round(min(runs), 3), "bench_eval_s_runs": [round(t, 3) for t in runs],
                   "without_label_cache_s_best": round(min(cold), 3)}
            if case in TARGETS_S:
                row["target_s"] = TARGETS_S[case]
                row["meets_target"] = min(runs) <= TARGETS_S[case]
            row["one_process"] = {k: round(v, 3) for k, v in split_one_process(ds, samples, folder).items()}
            out["cases"][case] = row
            print(f"{case:>13}: bench eval {min(runs):.2f} s" + (f" (target {TARGETS_S[case]:.0f} s)" if case in TARGETS_S else ""),
                  file=sys.stderr)
    out["machine"] = {k: v for k, v in machine_info().items() if k in ("processor", "cpu_count", "platform")}
    print(json.dumps(out, indent=1))
    if args.out:
        from bench.records import provenance
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"kind": "benchmark", "benchmark": "eval_speed", **out,
                                    "provenance": provenance()}, indent=1) + "\n")


if __name__ == "__main__":
    main()
