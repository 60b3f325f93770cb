"""Ways to take the same training step faster (issue 50): eager or `torch.compile`d, channels-last or not, the whole
step captured in a CUDA graph. None changes the recipe: each must give the eager step's losses (`losses_match`), and
`python -m bench.benchmarks.train_speed --select` times them on a GPU and records the fastest that matched, which
`bench run` then takes on the same GPU, torch, model, batch and size (`chosen_variant`); run.json names it.

    eager                 PyTorch's kernels one by one (on CUDA channels-last: today's default there)
    eager-nchw            the same in NCHW (the default on a CPU)
    compile               torch.compile (inductor, mode "default"): batch norm and ReLU fused into generated
                          kernels, which eager PyTorch has no fused kernel for
    compile-nchw          the same in NCHW
    compile-max-autotune  torch.compile, mode "max-autotune-no-cudagraphs" (autotuned matmul/conv templates)
    cuda-graph            the eager step (forward, loss, backward, SGD update) captured once in a CUDA graph and
                          replayed: static shapes, the batch copied into static buffers, the loss left on the device
"""
from __future__ import annotations

import glob
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class StepVariant:
    name: str
    compile_mode: str | None = None  # None: eager; else torch.compile's mode
    channels_last: bool = True
    cuda_graph: bool = False

    def unavailable(self, device) -> str | None:
        """Why this variant cannot run on ``device`` (one line), or None."""
        if self.cuda_graph and getattr(device, "type", str(device)) != "cuda":
            return "a CUDA graph needs a CUDA device"
        return None


VARIANTS = {v.name: v for v in (
    StepVariant("eager"), StepVariant("eager-nchw", channels_last=False),
    StepVariant("compile", "default"), StepVariant("compile-nchw", "default", channels_last=False),
    StepVariant("compile-max-autotune", "max-autotune-no-cudagraphs"),
    StepVariant("cuda-graph", cuda_graph=True))}
# the order --select tries them in: the cheap ones first, the compiled ones (a minute of warm-up each) last
SELECTION_ORDER = ("eager", "eager-nchw", "cuda-graph", "compile", "compile-nchw", "compile-max-autotune")
SELECTION_GLOB = "train_speed-select-*.json"


def default_variant(device) -> StepVariant:
    """Today's step where nothing was selected: channels-last eager on CUDA, NCHW eager elsewhere."""
    return VARIANTS["eager" if getattr(device, "type", str(device)) == "cuda" else "eager-nchw"]


def losses_match(reference, other, rtol: float = 0.05, atol: float = 0.02) -> tuple[bool, str]:
    """Whether a variant's losses follow the eager step's over the same updates within bf16 tolerance (each within
    ``atol + rtol * |reference|``), and one line saying where they part if not."""
    if len(reference) != len(other):
        return False, f"{len(other)} losses against the eager step's {len(reference)}"
    worst, at = 0.0, None
    for i, (a, b) in enumerate(zip(reference, other)):
        if not math.isfinite(b):
            return False, f"loss non-finite at update {i + 1}"
        excess = abs(a - b) - (atol + rtol * abs(a))
        if excess > worst:
            worst, at = excess, i
    if at is not None:
        return False, (f"loss {other[at]:.4f} against the eager step's {reference[at]:.4f} at update {at + 1}, "
                       f"beyond the tolerance ({atol} + {rtol:.0%})")
    return True, ""


def selection_key(device_name: str, torch_version: str, model: str, batch: int, size) -> str:
    """What a selection holds for: the GPU, torch, the model, its mini-batch and input size."""
    return f"{device_name}|{torch_version}|{model}|{batch}|{size[0]}x{size[1]}"


def chosen_variant(device, model: str, batch: int, size, folders) -> tuple[StepVariant, str]:
    """The variant `bench run` takes on ``device``: the newest selection record (`SELECTION_GLOB` in ``folders``)
    made on this GPU with this torch for this model, batch and size, else `default_variant`; and where it came
    from (the record's path, or "default")."""
    import torch
    if getattr(device, "type", str(device)) != "cuda":
        return default_variant(device), "default (not a CUDA device)"
    key = selection_key(torch.cuda.get_device_name(device), torch.__version__, model, batch, size)
    paths = sorted({p for f in folders for p in glob.glob(os.path.join(str(f), SELECTION_GLOB))},
                   key=os.path.basename, reverse=True)
    for path in paths:
        try:
            chosen = json.loads(Path(path).read_text()).get("chosen", {})
        except (OSError, ValueError):
            continue
        if key in chosen and chosen[key] in VARIANTS:
            return VARIANTS[chosen[key]], path
    return default_variant(device), "default (no selection for this GPU, torch, model, batch and size)"


def describe(variant: StepVariant, source: str, recipe) -> dict:
    """What run.json records of the step taken (not part of the recipe); where the recipe fixes the layout or
    compilation itself (channels_last "on"/"off", compile true), that wins, and this says so."""
    out = {**asdict(variant), "source": source}
    if recipe.channels_last != "auto":
        out["channels_last"] = recipe.channels_last == "on"
        out["note"] = f"channels_last {recipe.channels_last} by the recipe"
    if recipe.compile and not variant.compile_mode:
        out["compile_mode"] = "default"
        out["note"] = (out.get("note", "") + "; " if out.get("note") else "") + "compile true by the recipe"
    return out
