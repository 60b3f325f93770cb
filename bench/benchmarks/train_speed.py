"""Benchmark: the training step `bench run` takes, against a plain fp32 loop, on the same device. Not a test.

For each model it prints (and with --out records) images/s, the step time split into forward+backward,
optimiser and host overhead, model FLOP utilisation against the device's *measured* peak (a large matmul timed
here, not the datasheet), and the peak memory:
- plain: fp32 (on CUDA its convolutions in TF32, PyTorch's default; its MFU is against a TF32 matmul), NCHW, batches normalised on the host and copied to the device each step, the loss read every
  step (a DataLoader-style loop);
- runner: the runner's own step (`bench.runner.make_train_step`): uint8 data resident on the device, bf16
  autocast and channels_last on CUDA, fused SGD, the loss left on the device; optionally torch.compile'd
  (--compile), to measure whether its warm-up pays.
Targets (issue 13), read off a GPU run: SegNet >= 40 % of the measured bf16 peak and >= 3x the plain loop.
With --select, every step variant instead (`bench.benchmarks.select_step`): the fastest that matched the eager
step's losses is recorded as the one `bench run` takes on this GPU.

    python -m bench.benchmarks.train_speed --models segnet,segnet-basic --batch 5 --steps 20 [--compile]
    python -m bench.benchmarks.train_speed --select --plan paper [--profile full] [--budget 90]
        [--out results/benchmarks/train_speed-select-<time>.json]
"""
from __future__ import annotations

import argparse
import json
import time

import torch


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measured_peak_flops(device, dtype=torch.bfloat16, n: int = 8192, reps: int = 20) -> float:
    """FLOP/s of an n x n x n matmul on ``device`` (CUDA: bf16 tensor cores; CPU: fp32, smaller n)."""
    if device.type != "cuda":
        dtype, n, reps = torch.float32, 1024, 5
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - t0)


class _Timer:
    """Wall time of phases of a step; on CUDA, device events (the time the GPU spent)."""

    def __init__(self, device):
        self.device, self.marks = device, []

    def mark(self):
        if self.device.type == "cuda":
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            self.marks.append(e)
        else:
            self.marks.append(time.perf_counter())

    def spans_ms(self):
        _sync(self.device)
        if self.device.type == "cuda":
            return [a.elapsed_time(b) for a, b in zip(self.marks[:-1], self.marks[1:])]
        return [(b - a) * 1e3 for a, b in zip(self.marks[:-1], self.marks[1:])]


def _fp32_name(device) -> str:
    """An fp32 model on CUDA runs its convolutions in TF32 unless cudnn.allow_tf32 is off (PyTorch's default: on),
    so its utilisation is judged against a TF32 matmul, not a strict-fp32 one (which it would exceed)."""
    return "tf32" if device.type == "cuda" and torch.backends.cudnn.allow_tf32 else "fp32"


def _split_step(run, optimizer, device, n: int) -> tuple[float, float]:
    """The median milliseconds of a step's forward and backward and of its optimiser step, over ``n`` more steps:
    device events around the optimiser step inside the same step function."""
    timer = _Timer(device)
    real_step = optimizer.step

    def timed_step(*a, **k):
        timer.mark()
        out = real_step(*a, **k)
        timer.mark()
        return out
    optimizer.step = timed_step
    splits = []
    try:
        for i in range(n):
            timer.marks = []
            timer.mark()
            run(i)
            splits.append(timer.spans_ms())
    finally:
        optimizer.step = real_step
    return sorted(s[0] for s in splits)[len(splits) // 2], sorted(s[1] for s in splits)[len(splits) // 2]


def measure(name, device, mode, batch, steps, warmup, size, compile_model=False):
    from bench import architectures
    from bench.config import Recipe
    from bench.models import model_macs
    from bench.build import make_optimizer, param_groups
    from bench.benchmarks import normalise, seg_loss
    from bench.step import labels_for_logits, make_train_step, training_module

    torch.manual_seed(0)
    fast = mode == "runner"
    recipe = Recipe(batch_size=batch, encoder_weights="none", compile=compile_model,
                    precision="auto" if fast else "fp32", channels_last="auto" if fast else "off")
    model = architectures.create_model(name).to(device)
    macs = model_macs(name, size)
    if fast and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    train_model = training_module(model)
    if fast and compile_model:
        train_model = torch.compile(train_model)
    class_weights = torch.ones(11, device=device)
    n_data = batch * 4
    images = torch.randint(0, 256, (n_data, 3, *size), dtype=torch.uint8)
    labels = torch.randint(0, 12, (n_data, *size), dtype=torch.uint8)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    if fast:
        optimizer = make_optimizer(model, recipe, device)
        images, labels = images.to(device), labels.to(device)
        step = make_train_step(model, train_model, optimizer, class_weights, recipe, device, 11)

        def run(i):
            sl = slice((i % 4) * batch, (i % 4 + 1) * batch)
            return step(images[sl], labels[sl].long())
    else:
        optimizer = torch.optim.SGD(param_groups(model, recipe), lr=1e-3, momentum=0.9)

        def run(i):
            sl = slice((i % 4) * batch, (i % 4 + 1) * batch)
            x, y = normalise(images[sl], "imagenet").to(device), labels[sl].long().to(device)
            logits = train_model(x)
            loss = seg_loss(logits, labels_for_logits(model, y, logits), class_weights, 11)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return loss.item()  # a DataLoader-style loop reads its loss every step

    for i in range(warmup):
        run(i)
    _sync(device)
    t0 = time.perf_counter()
    for i in range(steps):
        loss = run(i)
    if torch.is_tensor(loss):
        float(loss)
    _sync(device)
    seconds = time.perf_counter() - t0
    fb, op = _split_step(run, optimizer, device, min(steps, 5))
    step_ms = seconds / steps * 1e3
    ips = steps * batch / seconds
    return {"model": name, "mode": mode, "precision": "bf16" if (fast and device.type == "cuda") else _fp32_name(device),
            "batch": batch, "steps": steps, "images_per_second": ips, "step_ms": step_ms,
            "forward_backward_ms": fb, "optimiser_ms": op, "host_overhead_ms": max(0.0, step_ms - fb - op),
            "model_flops_per_second": 6 * macs * ips,
            "peak_memory_MB": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
            "compile": bool(fast and compile_model)}


def plan_models(plan: str, profile: str) -> dict:
    """{model: (mini-batch, input size)} of every training run of a plan under ``profile`` (post-processed members,
    which train nothing, left out), in the plan's order."""
    from bench.config import load_suite
    from bench.plan import load_plan
    out = {}
    for step in load_plan(plan).steps:
        if step.kind != "run":
            continue
        suite = load_suite(step.suite)
        for run in suite.run_specs(step.members or None, step.variants or None, (0,)):
            if run.member in suite.postprocessed or run.member in out:
                continue
            recipe = suite.resolve(profile, run.variant, member=run.member)
            out[run.member] = (recipe.batch_size, tuple(recipe.image_size))
    return out


def main_select(args, device, peak: float) -> None:
    """--select: the step variants of the plan's (or --models') models, timed and checked; the record written."""
    from bench.benchmarks.select_step import select
    from bench.records import machine_info, provenance
    size_arg = tuple(int(v) for v in args.size.split("x"))
    if args.plan:
        models = plan_models(args.plan, args.profile)
    else:
        models = {m: (args.batch, size_arg) for m in args.models.split(",")}
    out = {"benchmark": "train_speed-select", "device": str(device), "plan": args.plan, "profile": args.profile,
           "steps": args.steps, "timed": args.timed, "budget_seconds": args.budget, "measured_peak_flops": peak,
           "machine": machine_info(), "provenance": provenance(), "chosen": {}, "rows": [], "profiles": {}}
    by_size = {}
    for m, (batch, size) in models.items():
        by_size.setdefault(size, {})[m] = batch
    left = args.budget
    for size, batches in by_size.items():
        got = select(list(batches), device, batches, size, args.steps, args.timed, left, peak,
                     variants=args.variants.split(",") if args.variants else None, share=args.share)
        out["processes_per_gpu"] = min(out.get("processes_per_gpu", 2), got["processes_per_gpu"])
        left -= got["seconds"]
        out["chosen"].update(got["chosen"])
        out["rows"] += [{**r, "size": list(size)} for r in got["rows"]]
        out["profiles"].update(got["profiles"])
        out.update(device_name=got["device_name"], torch=got["torch"], floor_gpu=got["floor_gpu"])
    path = args.out or f"results/benchmarks/train_speed-select-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    from pathlib import Path
    from bench.safety import write_text_atomic
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(Path(path), json.dumps(out, indent=1) + "\n", "the selection record", overwrite=False)
    print(f"chosen: " + ", ".join(f"{k.split('|')[2]} {v}" for k, v in out["chosen"].items())
          + (f"; processes per GPU: {out['processes_per_gpu']}" if args.share else ""))
    print(f"wrote {path}")


def main(argv=None):
    from bench.records import machine_info, provenance
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="segnet")
    ap.add_argument("--select", action="store_true", help="time and check every step variant; record the fastest")
    ap.add_argument("--plan", default=None, help="with --select: the models of this plan, at their suites' batch")
    ap.add_argument("--profile", default="full", help="with --plan: the suites' profile (smoke on a CPU)")
    ap.add_argument("--budget", type=float, default=90.0, help="with --select: seconds for every variant in all")
    ap.add_argument("--timed", type=int, default=20, help="with --select: of --steps, the last ones timed")
    ap.add_argument("--variants", default=None, help="with --select: only these (comma-separated; the eager "
                                                     "reference always)")
    ap.add_argument("--share", action="store_true", help="with --select: also time the chosen step in one process "
                                                        "and in two at once; record how many a GPU should run")
    ap.add_argument("--device", default=None)
    ap.add_argument("--batch", type=int, default=5)
    ap.add_argument("--steps", type=int, default=None, help="steps per measurement (default 20; --select: 50)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--size", default="360x480")
    ap.add_argument("--compile", action="store_true", help="also time the runner's step under torch.compile")
    ap.add_argument("--out", default=None, help="write the figures as JSON here (must not exist)")
    args = ap.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    size = tuple(int(v) for v in args.size.split("x"))
    peak = {"bf16" if device.type == "cuda" else "fp32": measured_peak_flops(device)}
    if device.type == "cuda":
        tf32 = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = _fp32_name(device) == "tf32"
        try:
            peak[_fp32_name(device)] = measured_peak_flops(device, torch.float32, reps=5)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = tf32
    if args.select:
        args.steps = args.steps or 50
        main_select(args, device, peak["bf16" if device.type == "cuda" else "fp32"])
        return
    args.steps = args.steps or 20
    rows = []
    for name in args.models.split(","):
        plain = measure(name, device, "plain", args.batch, args.steps, args.warmup, size)
        modes = [measure(name, device, "runner", args.batch, args.steps, args.warmup, size)]
        if args.compile:
            modes.append(measure(name, device, "runner", args.batch, args.steps, args.warmup, size, True))
        for r in [plain] + modes:
            r["mfu_of_measured_peak"] = r["model_flops_per_second"] / peak[r["precision"]]
        for r in modes:
            r["speedup_over_plain"] = r["images_per_second"] / plain["images_per_second"]
        rows += [plain] + modes
        for r in [plain] + modes:
            print(f"{r['model']:<22} {r['mode']:<7}{' compiled' if r['compile'] else '':<9} {r['precision']:<5} "
                  f"{r['images_per_second']:8.2f} img/s  step {r['step_ms']:8.1f} ms = fwd+bwd {r['forward_backward_ms']:.1f}"
                  f" + opt {r['optimiser_ms']:.1f} + host {r['host_overhead_ms']:.1f}  MFU {100 * r['mfu_of_measured_peak']:.1f} %"
                  + (f"  x{r['speedup_over_plain']:.2f} plain" if "speedup_over_plain" in r else ""))
    out = {"benchmark": "train_speed", "device": str(device), "size": list(size),
           "measured_peak_flops": peak, "machine": machine_info(), "provenance": provenance(), "results": rows}
    if args.out:
        from pathlib import Path
        from bench.safety import write_text_atomic
        write_text_atomic(Path(args.out), json.dumps(out, indent=1) + "\n", "the benchmark record", overwrite=False)
        print(f"wrote {args.out}")
    else:
        print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
