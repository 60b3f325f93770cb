"""`bench profile`: the paper's cost columns (Table 6, Table 1) measured one documented way.

Per model, at an input of `size` (360x480 by default):
- forward and backward time at batch 1: `warmup` untimed runs, then `runs` timed ones; on CUDA with device
  events around each run, on the CPU with `time.perf_counter`; median, min, max and inter-quartile range;
  backward = (forward+backward) - forward of the same run set;
- memory of one full training step (forward, backward, SGD step) at batch 4 and of inference at batch 1:
  on CUDA the caching allocator's peak (`max_memory_allocated`), the reserved peak (`max_memory_reserved`) and
  the device-level use an external tool like nvidia-smi shows (`mem_get_info`: total - free, the paper's
  method, which includes the CUDA context); on the CPU the process's peak resident set growth, labelled so;
- the memory Caffe would hold (every layer output kept: `bench.caffe_memory`), counted on the meta device, so
  that the paper's nvidia-smi readings of Caffe have a like-for-like column whatever the device measured;
- model size on disk (the saved state dict), parameters, MACs (torch's FLOP counter / 2);
- for the Table 1 variants, the bytes the decoder keeps from the first encoder (pooling indices or feature
  maps at 1/2 resolution), measured on the tensors themselves, beside Table 1's storage multiplier;
- the settings that change the numbers (device, dtype, cudnn.benchmark, TF32, torch version, GPU, driver).
"""
from __future__ import annotations

import gc
import io
import os
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from bench.caffe_memory import caffe_style_memory
from bench.errors import BenchError
from bench.models import count_macs
from bench.published import table1_row
from bench.records import SCHEMA_VERSION, new_run_id, now_iso, provenance


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_runs(fn, device, warmup: int, runs: int) -> list[float]:
    """Milliseconds of each timed call of ``fn``."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(runs):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return times


def summarise(ms: list[float]) -> dict:
    q = np.percentile(ms, [25, 75])
    return {"median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms), "iqr_ms": float(q[1] - q[0]),
            "runs": len(ms)}


def _rss_peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _memory_of(fn, device) -> dict:
    """Peak memory of one call of ``fn``, named by how it was measured."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        free0, total = torch.cuda.mem_get_info(device)
        fn()
        torch.cuda.synchronize(device)
        free1, _ = torch.cuda.mem_get_info(device)
        return {"allocator_peak_MB": torch.cuda.max_memory_allocated(device) / 1e6,
                "reserved_peak_MB": torch.cuda.max_memory_reserved(device) / 1e6,
                "device_used_MB": (total - min(free0, free1)) / 1e6,
                "method": "torch.cuda.max_memory_allocated / max_memory_reserved; device_used = mem_get_info "
                          "total - free after the step (what nvidia-smi shows, CUDA context included)"}
    raise ValueError("CPU memory is measured by _cpu_memory in a fresh process")


def _cpu_step_memory(spec) -> int:
    """In a fresh (spawned) process: build the model and inputs, then run one step; the peak RSS growth."""
    name, kind, batch, size, dtype = spec
    from bench import architectures
    torch.manual_seed(0)
    model = architectures.create_model(name)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16")
    x = torch.randn(batch, 3, *size)
    y = torch.randint(0, 11, (batch, *size))
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-6, momentum=0.9)

    def train_step():
        model.train()
        with autocast:
            out = model(x)
        torch.nn.functional.cross_entropy(out.float(), y).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    if kind == "train":
        train_step()  # optimizer state exists before the measured step, as in training
    gc.collect()
    with open("/proc/self/statm") as f:
        rss0 = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    if kind == "train":
        train_step()
    else:
        model.eval()
        with torch.no_grad(), autocast:
            model(x)
    return max(0, _rss_peak_bytes() - rss0)


def _cpu_memory(spec) -> dict:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as fresh:  # shut down, never killed
        growth = fresh.submit(_cpu_step_memory, spec).result()
    return {"process_peak_rss_growth_MB": growth / 1e6,
            "method": "CPU: growth of the peak resident set (getrusage ru_maxrss) of a fresh process over its "
                      "RSS just before the step (model, inputs and, for training, optimizer state already built)"}


def model_size_on_disk(model) -> int:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


def decoder_kept_from_first_encoder(model, x) -> dict | None:
    """Bytes the decoder keeps from the first encoder (the 1/2-resolution level) for the Table 1 variants."""
    from bench.architectures.fcn import FCNBasic
    from bench.architectures.segnet import SegNetBasic
    if not isinstance(model, (SegNetBasic, FCNBasic)):
        return None
    with torch.no_grad():
        pooled, indices, _ = model.encoder(x)
        kept = []
        if isinstance(model, SegNetBasic):
            kept.append(("pool indices", indices[0]))
            if model.encoder_addition:
                kept.append(("feature maps", pooled[0]))
        elif model.addition:
            kept.append(("feature maps", model._skip(pooled, 0)))
    n_bytes = sum(t.numel() * t.element_size() for _, t in kept)
    one_map = pooled[0][0, 0].numel() * 4  # one float32 map at 1/2 resolution
    # the paper's convention counts pooling indices as one map's worth of storage (Table 1 caption)
    paper_units = sum(1 if kind == "pool indices" else t.shape[1] for kind, t in kept)
    return {"what": [f"{kind} {tuple(t.shape[1:])} {t.dtype}" for kind, t in kept], "bytes": int(n_bytes),
            "float32_maps_equivalent": n_bytes / one_map, "multiplier_paper_convention": paper_units}


def profile_model(name: str, device, dtype: str = "fp32", size=(360, 480), runs: int = 10, warmup: int = 3,
                  train_batch: int = 4, infer_batch: int = 1) -> dict:
    from bench import architectures
    model = architectures.create_model(name).to(device)
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    with torch.device("meta"):
        macs, out_shape = count_macs(architectures.create_model(name), size)
        caffe = caffe_style_memory(architectures.create_model(name), size, train_batch, infer_batch)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16")
    x1 = torch.randn(infer_batch, 3, *size, device=device)
    timing_batch = architectures.model_facts(name).get("min_train_batch", 1)  # batch 1 unless the model needs more
    train_batch = max(train_batch, timing_batch)
    xb = torch.randn(timing_batch, 3, *size, device=device)
    xt = torch.randn(train_batch, 3, *size, device=device)
    yt = torch.randint(0, 11, (train_batch, *size), device=device)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-6, momentum=0.9)

    model.eval()
    def forward():
        with torch.no_grad(), autocast:
            model(xb)
    fwd = _time_runs(forward, device, warmup, runs)

    model.train()
    def forward_backward():
        with autocast:
            out = model(xb)
        out.float().mean().backward()
        model.zero_grad(set_to_none=True)
    fb = _time_runs(forward_backward, device, warmup, runs)
    bwd = [max(0.0, b - f) for f, b in zip(sorted(fwd), sorted(fb))]

    def train_step():
        with autocast:
            out = model(xt)
        torch.nn.functional.cross_entropy(out.float(), yt).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        train_step()  # optimizer state exists before the measured step, as in training
        train_mem = _memory_of(train_step, device)
        model.eval()
        def infer():
            with torch.no_grad(), autocast:
                model(x1)
        infer_mem = _memory_of(infer, device)
    else:
        train_mem = _cpu_memory((name, "train", train_batch, tuple(size), dtype))
        infer_mem = _cpu_memory((name, "infer", infer_batch, tuple(size), dtype))

    t1 = table1_row(architectures.model_facts(name).get("paper_name", ""))
    kept = decoder_kept_from_first_encoder(model, xb)
    return {
        "model": name, "paper_name": architectures.model_facts(name).get("paper_name"),
        "params": params, "trainable_params": trainable, "gmacs": macs / 1e9, "output_shape": list(out_shape),
        "model_size_MB": model_size_on_disk(model) / 1e6,
        "timing_batch": timing_batch,
        "forward": summarise(fwd), "backward": summarise(bwd), "forward_backward": summarise(fb),
        "train_memory": {"batch": train_batch, **train_mem}, "inference_memory": {"batch": infer_batch, **infer_mem},
        "caffe_style_memory": caffe, "revision": architectures.model_revision(name),
        "decoder_storage": kept,
        "table1_storage_multiplier": t1["storage_mult"] if t1 else None,
    }


def memory_summary(row: dict) -> str:
    """The memory a profile row records, in words: device memory in use on a GPU (the allocator's peak beside
    it), the growth of the process's peak resident set on a CPU."""
    def one(what, mem, caffe):
        counted = f", Caffe-style {caffe:.0f} MiB" if caffe is not None else ""
        if "device_used_MB" in mem:
            return (f"{what} (batch {mem['batch']}) {mem['device_used_MB']:.0f} MB on the device "
                    f"(allocator peak {mem['allocator_peak_MB']:.0f} MB{counted})")
        return f"{what} (batch {mem['batch']}) +{mem['process_peak_rss_growth_MB']:.0f} MB process RSS{counted}"
    caffe = row.get("caffe_style_memory") or {}
    return (f"memory: {one('training', row['train_memory'], caffe.get('train_MiB'))}, "
            f"{one('inference', row['inference_memory'], caffe.get('inference_MiB'))}")


def settings(device, dtype: str) -> dict:
    return {"device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else
            "cpu", "dtype": dtype, "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32,
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "timing": "device events (CUDA) / perf_counter (CPU), warm-up untimed, median of N runs, batch 1, "
                      "no data loading"}


def run_profile(models, device: str | None = None, dtype: str = "fp32", size=(360, 480), runs: int = 10,
                warmup: int = 3, results="results", log=print, train_batch: int = 4, infer_batch: int = 1,
                progress=None) -> Path:
    """Profiles each model and writes `<results>/profile/<run-id>/profile.json`; returns that file. ``log``
    gets a line per model with its times, memory and size; ``progress`` (a tqdm-like factory, e.g.
    `bench.progress.progress_bar`) shows how many models are done."""
    from bench import architectures
    for m in models:
        if m not in architectures.list_models():
            raise BenchError(f"unknown model {m!r}; known models: {', '.join(architectures.list_models())}")
    from bench.runner import resolve_device
    from bench.safety import check_writable
    dev = resolve_device(device)
    check_writable(Path(results) / "profile", "results")  # found now, not after minutes of profiling
    if dtype not in ("fp32", "bf16"):
        raise BenchError(f"--dtype {dtype!r}: choose fp32 or bf16")
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    rows = []
    bar = progress(total=len(models), desc="profiling", unit="model") if progress else None
    try:
        for m in models:
            log(f"profiling {m} on {dev} ({dtype}, {size[0]}x{size[1]})")
            try:
                rows.append(profile_model(m, dev, dtype, size, runs, warmup, train_batch, infer_batch))
            except (ValueError, RuntimeError) as exc:  # e.g. an input too small for the model
                raise BenchError(f"{m} cannot be profiled at {size[0]}x{size[1]}: {exc}") from None
            r = rows[-1]
            log(f"  forward {r['forward']['median_ms']:.1f} ms, backward {r['backward']['median_ms']:.1f} ms, "
                f"size {r['model_size_MB']:.1f} MB; {memory_summary(r)}")
            if bar:
                bar.update(1)
            gc.collect()
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    finally:
        if bar:
            bar.close()
    record = {"schema_version": SCHEMA_VERSION, "kind": "profile", "input_size": list(size),
              "settings": settings(dev, dtype), "provenance": provenance(), "models": rows, "finished_at": now_iso(),
              "labels": {"cpu": "CPU figures: wall-clock time and process memory, not comparable with GPU tables"}
              if dev.type == "cpu" else {}}
    run_id = new_run_id(dev.type, 0, dtype).replace("-seed0", "")
    import json
    import shutil
    from bench.safety import write_error, write_text_atomic
    folder = Path(results) / "profile" / run_id
    try:
        folder.mkdir(parents=True, exist_ok=False)
    except OSError as exc:
        raise write_error(folder / "profile.json", exc, "the profile record") from None
    try:
        write_text_atomic(folder / "profile.json", json.dumps(record, indent=1) + "\n", what="the profile record",
                          overwrite=False)
    except BenchError:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder / "profile.json"
