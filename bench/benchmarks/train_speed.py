"""Benchmark: training throughput of the runner's fast path against a plain fp32 loop on the same device.

Prints images/s and model FLOP utilisation (6 x forward MACs per image; dense bf16 / fp32 peak of known GPUs)
for each model and both loops. Not a test. Targets (issue 4): SegNet training >= 3x the plain loop and >= 40 %
bf16 MFU on an H100.

- plain: fp32, NCHW, batches normalised on the host and copied to the device each step (a DataLoader-style loop);
- fast:  uint8 data resident on the device, bf16 autocast, channels_last, optional torch.compile (--compile).

    python -m bench.benchmarks.train_speed --models segnet --batch 5 --steps 20 [--compile] [--size 360x480]
"""
from __future__ import annotations

import argparse
import json
import time

import torch


def _step_fn(model, optimizer, autocast, class_weights, coarse):
    from bench.runner import seg_loss

    def step(x, y):
        with autocast:
            logits = model.coarse_logits(x) if coarse else model(x)
        loss = seg_loss(logits, y, class_weights, 11)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss
    return step


def measure(name, device, mode, batch, steps, warmup, size, compile_model=False):
    import architectures
    from bench.config import Recipe
    from bench.models import count_macs
    from bench.runner import _peak_flops, normalise, param_groups

    torch.manual_seed(0)
    recipe = Recipe(batch_size=batch)
    model = architectures.create_model(name).to(device)
    coarse = hasattr(model, "coarse_logits")
    with torch.device("meta"):
        macs, _ = count_macs(architectures.create_model(name), size)
    fast = mode == "fast"
    if fast and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    train_model = torch.compile(model) if (fast and compile_model) else model
    optimizer = torch.optim.SGD(param_groups(model, recipe), lr=1e-3, momentum=0.9)
    use_bf16 = fast and device.type == "cuda"
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16)
    class_weights = torch.ones(11, device=device)
    n_data = batch * 4
    images = torch.randint(0, 256, (n_data, 3, *size), dtype=torch.uint8)
    labels = torch.randint(0, 12, (n_data, *size), dtype=torch.uint8)
    if fast:
        images, labels = images.to(device), labels.to(device)
    step = _step_fn(train_model, optimizer, autocast, class_weights, coarse)

    def batch_at(i):
        sl = slice((i % 4) * batch, (i % 4 + 1) * batch)
        if fast:
            x = normalise(images[sl], "imagenet")
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            return x, labels[sl].long()
        return normalise(images[sl], "imagenet").to(device), labels[sl].long().to(device)

    for i in range(warmup):
        step(*batch_at(i))
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(steps):
        loss = step(*batch_at(i))
    float(loss.detach())
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    ips = steps * batch / seconds
    peak = _peak_flops(device, "bf16" if use_bf16 else "fp32")
    return {"model": name, "mode": mode, "precision": "bf16" if use_bf16 else "fp32", "batch": batch, "steps": steps,
            "images_per_second": ips, "mfu": 6 * macs * ips / peak if peak else None, "compile": bool(fast and compile_model)}


def main(argv=None):
    from bench.records import machine_info
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="segnet")
    ap.add_argument("--device", default=None)
    ap.add_argument("--batch", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--size", default="360x480")
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    size = tuple(int(v) for v in args.size.split("x"))
    rows = []
    for name in args.models.split(","):
        plain = measure(name, device, "plain", args.batch, args.steps, args.warmup, size)
        fast = measure(name, device, "fast", args.batch, args.steps, args.warmup, size, args.compile)
        fast["speedup_over_plain"] = fast["images_per_second"] / plain["images_per_second"]
        rows += [plain, fast]
    print(json.dumps({"device": str(device), "size": list(size), "machine": machine_info(), "results": rows}, indent=1))


if __name__ == "__main__":
    main()
