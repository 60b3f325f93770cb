"""What each registered model costs: `bench models` reads the catalogue (counts of our build at 360x480, held to
it by the tests: nothing is built, torch is not imported), and `model_macs` counts a build at any size."""
from __future__ import annotations

import functools

from bench.published import number, table1_row

CATALOGUE_SIZE = (360, 480)  # the input size of the catalogue's MAC counts (CamVid), 11 classes


def count_macs(model, size=(360, 480), batch: int = 1) -> tuple[int, tuple]:
    """Multiply-accumulates of one forward pass (torch's FLOP counter / 2), run on the meta device: no compute.

    Counts convolutions, transposed convolutions and matmuls, as the reference's MAC columns do.
    """
    import torch
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
    import torch
    from bench import architectures
    with torch.device("meta"):
        return count_macs(architectures.create_model(name, num_classes=num_classes), tuple(size))[0]


def counted(name: str) -> dict:
    """params, trainable_params and macs (at the catalogue's 360x480, 11 classes) of a model built on the meta
    device: what `bench models` shows for a registered model whose decorator gives no counts."""
    import torch
    from bench import architectures
    with torch.device("meta"):
        model = architectures.create_model(name, num_classes=11)
        macs = count_macs(model, CATALOGUE_SIZE)[0]
    return {"params": sum(p.numel() for p in model.parameters()),
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad), "macs": macs}


def describe_model(name: str) -> dict:
    """A model as `bench models` lists it, from the catalogue: parameters, GMACs and output at 360x480 with 11
    classes, the paper's name and tables, Table 1's storage multiplier."""
    from bench import architectures
    meta = architectures.model_facts(name)
    t1 = table1_row(meta.get("paper_name", ""))
    if meta.get("params") is None or meta.get("macs") is None:  # a model beyond the catalogue, its meta not given
        meta = {**meta, **counted(name)}
    params = meta.get("params")
    return {
        "name": name,
        "paper_name": meta.get("paper_name"),
        "family": meta.get("family"),
        "paper_tables": list(meta.get("tables", ())),
        "params": params,
        "trainable_params": meta.get("trainable_params", params),
        "reference_params": meta.get("reference_params", params),
        "gmacs": meta["macs"] / 1e9 if meta.get("macs") else None,
        "input_size": list(CATALOGUE_SIZE),
        "output_shape": [11, *CATALOGUE_SIZE],
        "fp32_size_MB": params * 4 / 1e6 if params else None,
        "table1_params_M": number(t1["params_M"]) if t1 else None,
        "table1_storage_multiplier": (t1["storage_mult"] if t1 else None),
        "reference": meta.get("reference"),
    }
