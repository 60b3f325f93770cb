"""`python -m bench.benchmarks.train_speed --select`: every step variant (`bench.step_variants`) of the models of a
plan (or --models) timed on this device within a time budget, each checked against the eager step's losses over the
same updates; the fastest that matched is recorded per model as the one `bench run` takes here, with images/s, MFU
against the measured peak, how many times the roofline floor (`bench.roofline`), peak memory, and a
`torch.profiler` summary of where the chosen step's time goes. Not a test.
"""
from __future__ import annotations

import re
import time
from collections import defaultdict

import torch

# kernel (CUDA) or operator (CPU) names, by what they do: the first pattern that matches names the group
KERNEL_GROUPS = (
    ("compiled graph (fused kernels)", r"compiledfxgraph"),  # on a CPU inductor's kernels run inside this call
    ("unpooling", r"unpool|max_unpool|index_put|scatter"),
    ("pooling", r"max_pool|avg_pool|pool2d|adaptive"),
    ("batch norm", r"batch_norm|batchnorm|bn_fw|bn_bw|welford|native_batch_norm"),
    ("convolution", r"conv|cudnn|implicit|xmma|cutlass|gemm|wgrad|dgrad|sm\d\d_|mm_|addmm|matmul|winograd"),
    ("copies", r"copy|memcpy|memset|contiguous|nchw|nhwc|transpose|permute|cat_|clone|to_copy|fill"),
    ("loss", r"nll|log_softmax|cross_entropy|softmax"),
    ("optimiser", r"sgd|foreach|fused_sgd|multi_tensor"),
    ("elementwise", r"elementwise|vectorized|unrolled|add|mul|relu|threshold|where|div|sub|pointwise|triton"),
)


def kernel_group(name: str) -> str:
    low = name.lower()
    return next((group for group, pattern in KERNEL_GROUPS if re.search(pattern, low)), "other")


def profile_summary(run, device, steps: int = 3, top: int = 12) -> dict:
    """Where a step's time goes: ``steps`` calls of ``run(i)`` under torch.profiler; the time by group
    (`KERNEL_GROUPS`) and the top kernels (CUDA: device time of each kernel; CPU: self time of each operator)."""
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for i in range(steps):
            run(i)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    rows = []
    for e in prof.key_averages():
        if device.type == "cuda":
            t = getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0)
            is_kernel = getattr(e, "device_type", None) is not None and str(e.device_type).endswith("CUDA")
            if not t or (not is_kernel and e.key.startswith("aten::")):
                continue
        else:
            t = e.self_cpu_time_total
            if not (e.key.startswith("aten::") or "CompiledFxGraph" in e.key) or not t:
                continue
        rows.append((e.key, t / 1e3 / steps))  # ms per step
    total = sum(t for _, t in rows) or 1.0
    groups = defaultdict(float)
    for name, t in rows:
        groups[kernel_group(name)] += t
    return {"clock": "CUDA kernel time" if device.type == "cuda" else "CPU operator self time",
            "ms_per_step": total, "groups": {g: {"ms_per_step": t, "share": t / total}
                                             for g, t in sorted(groups.items(), key=lambda kv: -kv[1])},
            "top": [{"name": n[:120], "group": kernel_group(n), "ms_per_step": t, "share": t / total}
                    for n, t in sorted(rows, key=lambda r: -r[1])[:top]]}


def _data(batch: int, size, device, n_batches: int = 4):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n_batches * batch, 3, *size), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 12, (n_batches * batch, *size), dtype=torch.uint8, generator=g)
    return images.to(device), labels.to(device)


def build_step(name: str, variant, device, batch: int, size, precision: str = "auto"):
    """A fresh model (seed 0) and the runner's step under ``variant`` on random data; returns run(i) -> loss."""
    from bench import architectures
    from bench.build import make_optimizer
    from bench.config import Recipe
    from bench.step import make_train_step, training_module, uses_channels_last
    torch.manual_seed(0)
    recipe = Recipe(batch_size=batch, encoder_weights="none", precision=precision, image_size=tuple(size),
                    lr=0.01)
    model = architectures.create_model(name).to(device)
    if uses_channels_last(recipe, device, variant):
        model = model.to(memory_format=torch.channels_last)
    train_model = training_module(model)
    if variant.compile_mode:
        train_model = torch.compile(train_model, mode=variant.compile_mode)
    optimizer = make_optimizer(model, recipe, device)
    step = make_train_step(model, train_model, optimizer, torch.ones(11, device=device), recipe, device, 11,
                           variant=variant)
    images, labels = _data(batch, size, device)

    def run(i):
        sl = slice((i % 4) * batch, (i % 4 + 1) * batch)
        return step(images[sl], labels[sl].long(), i)
    return run, optimizer


def time_variant(name: str, variant, device, batch: int, size, steps: int, timed: int) -> dict:
    """``steps`` updates of ``variant`` (the first ``steps - timed`` untimed: compilation, capture, warm-up): their
    losses, images/s over the timed ones, peak memory; or {"built": False, "reason": ...} in one line."""
    reason = variant.unavailable(device)
    if reason:
        return {"variant": variant.name, "built": False, "reason": reason}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    try:
        run, _ = build_step(name, variant, device, batch, size)
        losses = [run(i) for i in range(steps - timed)]
        _sync(device)
        t0 = time.perf_counter()
        losses += [run(i) for i in range(steps - timed, steps)]
        _sync(device)
        seconds = time.perf_counter() - t0
        values = [float(v) for v in losses]
    except Exception as exc:  # a variant that does not build here is left out, and says why
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        return {"variant": variant.name, "built": False, "reason": f"{exc.__class__.__name__}: {first}",
                "seconds": time.perf_counter() - started}
    return {"variant": variant.name, "built": True, "losses": values, "images_per_second": timed * batch / seconds,
            "step_ms": seconds / timed * 1e3, "seconds": time.perf_counter() - started,
            "peak_memory_MB": torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else None,
            "_run": run}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def select(models, device, batches: dict, size, steps: int, timed: int, budget_s: float, peak: float,
           log=print, variants=None, share: bool = False) -> dict:
    """Every variant of each model (or those named in ``variants``), the default (eager) first as the reference,
    within ``budget_s`` seconds in all; the fastest that matched per model, its profile summary, and with ``share``
    whether two processes train more on this device than one (`shared_by_processes`). ``batches``:
    {model: mini-batch}."""
    from bench.models import model_macs
    from bench.roofline import GPUS, step_costs
    from bench.step_variants import SELECTION_ORDER, VARIANTS, default_variant, losses_match, selection_key
    started = time.perf_counter()
    gpu = next((g for g in GPUS if device.type == "cuda" and g in torch.cuda.get_device_name(device)), None)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    rows, chosen, summaries = [], {}, {}
    for name in models:
        batch = batches[name]
        floor = step_costs(name, batch, tuple(size))["floor_images_per_second"].get(gpu) if gpu else None
        flops_per_image = 6 * model_macs(name, tuple(size))
        reference = default_variant(device)
        order = [reference.name] + [v for v in SELECTION_ORDER if v != reference.name
                                    and (variants is None or v in variants)]
        ref, best = None, None
        for vname in order:
            if time.perf_counter() - started > budget_s:
                rows.append({"model": name, "batch": batch, "variant": vname, "built": False,
                             "reason": f"not tried: the selection's {budget_s:.0f} s were spent"})
                continue
            r = time_variant(name, VARIANTS[vname], device, batch, size, steps, timed)
            run = r.pop("_run", None)
            r.update(model=name, batch=batch)
            if r["built"]:
                if ref is None:
                    ref, r["matched"], r["why"] = r, True, "the reference (eager)"
                else:
                    r["matched"], r["why"] = losses_match(ref["losses"], r["losses"])
                r["mfu_of_measured_peak"] = flops_per_image * r["images_per_second"] / peak if peak else None
                r["times_floor"] = floor / r["images_per_second"] if floor else None
                if r["matched"] and (best is None or r["images_per_second"] > best[0]["images_per_second"]):
                    best = (r, run)
            log(_line(r))
            rows.append(r)
        if best is not None:
            chosen[selection_key(device_name, torch.__version__, name, batch, size)] = best[0]["variant"]
            summaries[name] = {"variant": best[0]["variant"], **profile_summary(best[1], device)}
            if share and time.perf_counter() - started < budget_s:
                summaries[name]["sharing"] = shared_by_processes(name, best[0]["variant"], device, batch, size,
                                                                 steps, timed)
                log(f"  {name}: " + _sharing_line(summaries[name]["sharing"]))
            log(f"  {name}: chosen {best[0]['variant']} ({best[0]['images_per_second']:.1f} img/s); time by group: "
                + ", ".join(f"{g} {100 * v['share']:.0f} %" for g, v in summaries[name]["groups"].items()))
    shares = [p["sharing"]["processes_per_gpu"] for p in summaries.values() if "sharing" in p]
    return {"chosen": chosen, "rows": rows, "profiles": summaries, "device_name": device_name,
            "processes_per_gpu": 2 if shares and all(n == 2 for n in shares) else 1,
            "torch": torch.__version__, "floor_gpu": gpu, "seconds": time.perf_counter() - started}


def shared_by_processes(name: str, variant_name: str, device, batch: int, size, steps: int, timed: int,
                        processes=(1, 2), timeout: float = 600) -> dict:
    """Images/s of ``variant_name`` trained by 1 and by 2 processes at once on ``device`` (each its own
    `python -m bench.benchmarks.select_step --one ...`, started together), and how many processes a GPU should
    run: 2 where two together train at least 10 % more images/s than one alone. One line where a process
    failed."""
    import json as json_lib
    import subprocess
    import sys
    totals = {}
    for n in processes:
        cmd = [sys.executable, "-m", "bench.benchmarks.select_step", "--one", name, variant_name, str(batch),
               f"{size[0]}x{size[1]}", str(steps), str(timed), str(device)]
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(n)]
        outs = [p.communicate(timeout=timeout) for p in procs]
        bad = [err.strip().splitlines()[-1] if err.strip() else f"exit {p.returncode}"
               for p, (_, err) in zip(procs, outs) if p.returncode != 0]
        if bad:
            return {"processes_per_gpu": 1, "reason": f"{n} process(es): {bad[0]}"}
        totals[n] = sum(json_lib.loads(out.strip().splitlines()[-1])["images_per_second"] for out, _ in outs)
    best = 2 if totals.get(2, 0) >= 1.1 * totals[1] else 1
    return {"processes_per_gpu": best, "images_per_second": {str(k): v for k, v in totals.items()},
            "gain_of_two": totals[2] / totals[1] if 2 in totals else None}


def _one(argv) -> None:
    """`--one MODEL VARIANT BATCH HxW STEPS TIMED DEVICE`: one timed run, its figures as a JSON line (no losses)."""
    import json as json_lib
    from bench.step_variants import VARIANTS
    name, variant, batch, size, steps, timed, device = argv
    r = time_variant(name, VARIANTS[variant], torch.device(device), int(batch), tuple(int(v) for v in size.split("x")),
                     int(steps), int(timed))
    r.pop("_run", None)
    r.pop("losses", None)
    print(json_lib.dumps(r))
    if not r["built"]:
        raise SystemExit(f"{name} {variant}: {r['reason']}")



def _sharing_line(sharing: dict) -> str:
    if "reason" in sharing:
        return f"sharing not measured: {sharing['reason']}"
    ips = sharing["images_per_second"]
    return (f"one process {ips['1']:.1f} img/s, two together {ips.get('2', 0):.1f} img/s: "
            f"{sharing['processes_per_gpu']} process(es) per GPU")


def _line(r: dict) -> str:
    if not r["built"]:
        return f"  {r['model']:<24} {r['variant']:<21} not built: {r['reason']}"
    floor = f"  x{r['times_floor']:.1f} floor" if r.get("times_floor") else ""
    mfu = f"  MFU {100 * r['mfu_of_measured_peak']:.1f} %" if r.get("mfu_of_measured_peak") else ""
    match = "matches eager" if r["matched"] else f"NOT chosen: {r['why']}"
    return (f"  {r['model']:<24} {r['variant']:<21} {r['images_per_second']:9.1f} img/s  step {r['step_ms']:7.1f} ms"
            f"{mfu}{floor}  ({match})")


if __name__ == "__main__":
    import sys
    if sys.argv[1:2] == ["--one"]:
        _one(sys.argv[2:])
