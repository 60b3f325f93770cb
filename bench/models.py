"""`bench models`: what each registered model is, counted from a real build (parameters, MACs, output size)."""
from __future__ import annotations

import functools

import torch

from bench.published import number, table1_row


def count_macs(model: torch.nn.Module, size=(360, 480), batch: int = 1) -> tuple[int, tuple]:
    """Multiply-accumulates of one forward pass (torch's FLOP counter / 2), run on the meta device: no compute.

    Counts convolutions, transposed convolutions and matmuls, as the reference's MAC columns do.
    """
    from torch.utils.flop_counter import FlopCounterMode
    model = model.to("meta").eval()
    x = torch.zeros(batch, 3, *size, device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        y = model(x)
    return counter.get_total_flops() // 2, tuple(y.shape[1:])


@functools.lru_cache(maxsize=None)
def model_macs(name: str, size=(360, 480), num_classes: int = 11) -> int:
    """MACs of one forward pass of a registered model at ``size`` (built on the meta device; counted once)."""
    from bench import architectures
    with torch.device("meta"):
        return count_macs(architectures.create_model(name, num_classes=num_classes), tuple(size))[0]


def describe_model(name: str, size=(360, 480), num_classes: int = 11) -> dict:
    from bench import architectures
    meta = architectures.model_meta(name)
    with torch.device("meta"):
        model = architectures.create_model(name, num_classes=num_classes)
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    macs, out_shape = count_macs(model, size)
    t1 = table1_row(meta.get("paper_name", ""))
    return {
        "name": name,
        "paper_name": meta.get("paper_name"),
        "family": meta.get("family"),
        "paper_tables": list(meta.get("tables", ())),
        "params": params,
        "trainable_params": trainable,
        "reference_params": meta.get("params"),
        "gmacs": macs / 1e9,
        "reference_gmacs": meta["macs"] / 1e9 if meta.get("macs") else None,
        "input_size": list(size),
        "output_shape": list(out_shape),
        "fp32_size_MB": params * 4 / 1e6,
        "table1_params_M": number(t1["params_M"]) if t1 else None,
        "table1_storage_multiplier": (t1["storage_mult"] if t1 else None),
        "reference": meta.get("reference"),
    }
