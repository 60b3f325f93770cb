"""Benchmark: the per-step overhead of `bench run`'s loop on the CPU. Not a test.

Trains `segnet-basic` at 64x64 (where the network itself is cheap, so bookkeeping would show) for --steps steps
twice and prints steps/s side by side:
- runner: `bench run`'s own loop (`train_suite` on a synthetic CamVid: mini-batches from the shuffled stream,
  the loss kept on the device, stop requests, sync points), its training time as the record measures it
  (`timing.train_seconds`, evaluations excluded);
- bare: the same model, batch and optimiser in a minimal loop over pre-made tensors.

    python -m bench.benchmarks.loop_overhead --steps 200 [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def bare_loop(steps: int, batch: int, size) -> float:
    from bench import architectures
    from bench.config import load_suite
    from bench.build import param_groups
    from bench.benchmarks import seg_loss
    torch.manual_seed(0)
    recipe = load_suite("camvid-decoder-variants").resolve("full", "natural-frequency")
    model = architectures.create_model("segnet-basic")
    opt = torch.optim.SGD(param_groups(model, recipe), lr=recipe.lr, momentum=recipe.momentum)
    x = torch.randint(0, 256, (batch, 3, *size)).float()
    y = torch.randint(0, 12, (batch, *size))
    w = torch.ones(11)
    for _ in range(3):
        loss = seg_loss(model(x), y, w, 11)
        opt.zero_grad()
        loss.backward()
        opt.step()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = seg_loss(model(x), y, w, 11)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps / (time.perf_counter() - t0)


def runner_loop(steps: int, batch: int, size) -> float:
    from bench.runner import train_suite
    from bench.datasets.synthetic import make_synthetic_camvid
    with tempfile.TemporaryDirectory() as tmp:
        root = make_synthetic_camvid(Path(tmp) / "data", splits={"train": 16, "val": 2, "test": 2})
        (folder,) = train_suite("camvid-decoder-variants", profile="full", members=["segnet-basic"],
                              variants=["natural-frequency"], data_root=root, results=Path(tmp) / "r",
                              checkpoints=Path(tmp) / "c", device="cpu", log=lambda m: None,
                              overrides={"image_size": list(size), "max_iters": steps, "eval_every_iters": steps,
                                         "batch_size": batch, "evaluate_train": False, "stopping": "schedule"})
        rec = json.loads((folder / "run.json").read_text())
    return rec["iterations"] / rec["timing"]["train_seconds"]


def main(argv=None):
    from bench.records import machine_info, provenance
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--out", default=None, help="write the figures as JSON here (must not exist)")
    args = ap.parse_args(argv)
    size = (64, 64)
    bare = bare_loop(args.steps, args.batch, size)
    ours = runner_loop(args.steps, args.batch, size)
    print(f"segnet-basic 64x64 batch {args.batch}, {args.steps} steps on the CPU ({torch.get_num_threads()} threads)")
    print(f"  runner loop {ours:8.2f} steps/s")
    print(f"  bare loop   {bare:8.2f} steps/s")
    print(f"  runner / bare {ours / bare:.3f}")
    if args.out:
        from bench.safety import write_text_atomic
        out = {"benchmark": "loop_overhead", "model": "segnet-basic", "size": list(size), "batch": args.batch,
               "steps": args.steps, "runner_steps_per_second": ours, "bare_steps_per_second": bare,
               "ratio": ours / bare, "machine": machine_info(), "provenance": provenance()}
        write_text_atomic(Path(args.out), json.dumps(out, indent=1) + "\n", "the benchmark record", overwrite=False)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
