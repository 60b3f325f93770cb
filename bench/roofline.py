"""How fast a training step could be: the floor that a model's arithmetic and its unavoidable memory traffic set
on a GPU (issue 50), worked out on the meta device (nothing computed), to read every measured step time against.

One training step of mini-batch B (SGD with momentum, bf16 autocast, fp32 master weights), counted as:
- FLOPs: 2 x MACs forward, 4 x MACs backward (the gradients of the inputs and of the weights), per image; plus
  the update, 4 FLOPs per parameter (momentum, weight decay, step).
- the bytes that must cross HBM at least, assuming every batch norm, ReLU and dropout fused into the layer that
  feeds it (one kernel per conv-BN-ReLU, forward and backward), and nothing else fused:
  - per image, each stored tensor (the output of every convolution, transposed convolution, linear layer, pooling,
    unpooling and interpolation; the input) in bf16: written forward, read back for the backward pass, and its
    gradient written and read once in the backward pass: 4 x 2 bytes per element; each max-pooling's indices at one
    byte per pooled element, written forward, read backward;
  - per step, each parameter in fp32: read forward and backward, its gradient written, and the update reading the
    weight, gradient and momentum and writing the weight and momentum: 8 x 4 bytes.
- the floor: max(FLOPs / peak, bytes / bandwidth), for the GPUs of `GPUS` (datasheet dense bf16 and HBM figures).

    python -m bench.roofline [--models segnet,...] [--batch N] [--size 360x480]   (the table of docs/costs.md)
"""
from __future__ import annotations

import argparse

GPUS = {"H100": {"peak_flops": 989e12, "bandwidth": 3.35e12}, "H200": {"peak_flops": 989e12, "bandwidth": 4.8e12}}
# layers whose outputs are stored (max-pooling, unpooling and interpolation are counted where torch.nn.functional
# is called, by their modules or by a forward directly: `_functional_pools`)
STORED = ("Conv2d", "ConvTranspose2d", "Linear", "AvgPool2d", "LocalResponseNorm")
BYTES_PER_STORED_ELEMENT = 8  # bf16 written forward, read backward; its gradient written and read
BYTES_PER_PARAMETER = 32  # fp32 read forward and backward, gradient written, update: 3 reads and 2 writes
BYTES_PER_POOL_INDEX = 2  # one byte per pooled element, written forward and read backward
FLOPS_PER_PARAMETER_UPDATE = 4


def floor_from_catalogue(name: str, batch: int, gpu: str) -> float | None:
    """The floor in images/s of a catalogue model's training step at 360x480 and ``batch`` on ``gpu`` (a key of
    `GPUS`), from its catalogue counts (`architectures/models.toml`: macs, trainable parameters, training
    activation bytes), without building it or importing torch; None where the catalogue lacks a count."""
    from bench import architectures
    facts = architectures.model_facts(name)
    macs, act = facts.get("macs"), facts.get("train_activation_bytes")
    params = facts.get("trainable_params", facts.get("params"))
    if None in (macs, act, params) or gpu not in GPUS:
        return None
    flops = 6 * macs * batch + FLOPS_PER_PARAMETER_UPDATE * params
    total_bytes = act * batch + BYTES_PER_PARAMETER * params
    seconds = max(flops / GPUS[gpu]["peak_flops"], total_bytes / GPUS[gpu]["bandwidth"])
    return batch / seconds


def _suite_batch(name: str) -> int:
    """The mini-batch a model trains with in the paper's suites (Table 1: 12, Table 3: 5), else 4 (Table 6)."""
    from bench import architectures
    tables = architectures.model_facts(name).get("tables", ())
    return 12 if 1 in tables else 5 if 3 in tables else 4


def step_costs(name: str, batch: int | None = None, size=(360, 480), num_classes: int = 11) -> dict:
    """FLOPs and minimum HBM bytes of one training step of a registered model (see the module's docstring), and
    the floor on each GPU of `GPUS`: {"flops", "bytes", "activation_bytes_per_image", "parameter_bytes",
    "floor_ms": {gpu: ms}, "bound": {gpu: "compute" | "memory"}, ...}."""
    import torch
    from bench import architectures
    with torch.device("meta"):
        model = architectures.create_model(name, num_classes=num_classes)
    return {"model": name, **model_step_costs(model, batch or _suite_batch(name), size)}


def model_step_costs(model, batch: int, size=(360, 480)) -> dict:
    """`step_costs` of a built model (on the meta device, or it is moved there)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    model = model.to("meta")
    stored = [0]

    def hook(module, inputs, output):
        kind = type(module).__name__
        out = output[0] if isinstance(output, (tuple, list)) else output
        if kind in STORED and torch.is_tensor(out):
            stored[0] += out.numel()

    pools = _functional_pools()
    handles = [m.register_forward_hook(hook) for m in model.modules() if not any(True for _ in m.children())]
    x = torch.zeros(1, 3, *size, device="meta")
    counter = FlopCounterMode(display=False)
    try:
        with counter, torch.no_grad(), pools:
            model.eval()(x)  # shapes only: eval mode traces every model at batch 1 (no batch statistics)
    finally:
        for h in handles:
            h.remove()
    macs = counter.get_total_flops() // 2
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    per_image_elements = stored[0] + pools.pooled + x.numel()
    activation_bytes = per_image_elements * BYTES_PER_STORED_ELEMENT + pools.indices * BYTES_PER_POOL_INDEX
    flops = 6 * macs * batch + FLOPS_PER_PARAMETER_UPDATE * params
    total_bytes = activation_bytes * batch + BYTES_PER_PARAMETER * params
    floor, bound = {}, {}
    for gpu, spec in GPUS.items():
        compute_s, memory_s = flops / spec["peak_flops"], total_bytes / spec["bandwidth"]
        floor[gpu] = 1e3 * max(compute_s, memory_s)
        bound[gpu] = "compute" if compute_s >= memory_s else "memory"
    return {"batch": batch, "size": list(size), "macs_per_image": macs, "trained_parameters": params,
            "flops": flops, "bytes": total_bytes, "activation_bytes_per_image": activation_bytes,
            "parameter_bytes": BYTES_PER_PARAMETER * params, "arithmetic_intensity": flops / total_bytes,
            "floor_ms": floor, "bound": bound,
            "floor_images_per_second": {g: batch * 1e3 / ms for g, ms in floor.items()}}


class _functional_pools:
    """Counts the outputs and indices of `F.max_pool2d` / `F.max_unpool2d` / `F.interpolate` called by a model's
    forward outside any module (SegNet's pooling with indices is functional), while active."""

    def __init__(self, model=None):
        self.pooled = self.indices = 0

    def __enter__(self):
        import torch.nn.functional as F
        self._saved = {k: getattr(F, k) for k in ("max_pool2d", "max_unpool2d", "interpolate")}
        outer = self

        def max_pool2d(*a, **k):
            out = outer._saved["max_pool2d"](*a, **k)
            first = out[0] if isinstance(out, tuple) else out
            outer.pooled += first.numel()
            if isinstance(out, tuple):
                outer.indices += first.numel()
            return out

        def counted(name):
            def f(*a, **k):
                out = outer._saved[name](*a, **k)
                outer.pooled += out.numel()
                return out
            return f
        F.max_pool2d, F.max_unpool2d, F.interpolate = max_pool2d, counted("max_unpool2d"), counted("interpolate")
        return self

    def __exit__(self, *exc):
        import torch.nn.functional as F
        for k, v in self._saved.items():
            setattr(F, k, v)
        return False


def roofline_table(models, batch: int | None = None, size=(360, 480)) -> list[str]:
    """The Markdown table of docs/costs.md: one row per model at its suite's mini-batch (or ``batch``)."""
    rows = [step_costs(m, batch, size) for m in models]
    lines = ["| model | batch | GFLOP / step | activations MB / image | weights MB / step | arithmetic intensity "
             "(FLOP/byte) | floor H100 ms (bound) | floor H200 ms (bound) | images/s at the H200 floor |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['batch']} | {r['flops'] / 1e9:,.0f} | "
                     f"{r['activation_bytes_per_image'] / 1e6:,.0f} | {r['parameter_bytes'] / 1e6:,.0f} | "
                     f"{r['arithmetic_intensity']:,.0f} | {r['floor_ms']['H100']:.2f} ({r['bound']['H100']}) | "
                     f"{r['floor_ms']['H200']:.2f} ({r['bound']['H200']}) | "
                     f"{r['floor_images_per_second']['H200']:,.0f} |")
    return lines


def main(argv=None):
    from bench import architectures
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=None, help="comma-separated (default: every model of the paper's tables)")
    ap.add_argument("--batch", type=int, default=None, help="mini-batch (default: each model's suite's)")
    ap.add_argument("--size", default="360x480")
    args = ap.parse_args(argv)
    models = args.models.split(",") if args.models else [m for m in architectures.list_models()
                                                          if architectures.model_facts(m).get("tables")]
    print("\n".join(roofline_table(models, args.batch, tuple(int(v) for v in args.size.split("x")))))


if __name__ == "__main__":
    main()
