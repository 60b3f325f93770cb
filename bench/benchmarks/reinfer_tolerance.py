"""Benchmark: how far a record re-tested from its own weights may differ, by setting (issue 51). Not a test.

For each (record, training checkpoint) given: the checkpoint's selected weights (those validation chose: the
record's) re-infer the record's test split in fp32 and in bf16 on this machine, and the checkpoint's current
weights (another iteration of the same run) once, in bf16: what the tolerance tiers of `bench.reinfer` must let
through, and what they must catch.

    python -m bench.benchmarks.reinfer_tolerance RECORD CHECKPOINT [RECORD CHECKPOINT ...] [--images N] [--out F]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def weights_file(record: Path, state_dict: dict, folder: Path, name: str) -> Path:
    from bench.config import Recipe, plain_recipe
    from bench.datasets import get_dataset
    from bench.weights import weights_bytes, weights_metadata, write_weights
    rec = json.loads((record / "run.json").read_text())
    meta = weights_metadata(member=rec["member"], revision=rec["model"].get("revision", 1),
                            num_classes=get_dataset(rec["dataset"]).num_classes,
                            recipe=Recipe(**plain_recipe(rec["config"])), dataset=rec["dataset"], suite=rec["suite"],
                            run_id=rec["run_id"], iteration=rec["selected"]["iteration"])
    path = folder / f"{name}.safetensors"
    write_weights(path, weights_bytes(state_dict, meta))
    return path


def measure(record: Path, checkpoint: Path, images: int | None, folder: Path) -> list[dict]:
    import torch
    from bench.reinfer import reinfer
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    rec = json.loads((record / "run.json").read_text())
    if saved["state"]["best"]["iteration"] != rec["selected"]["iteration"]:
        raise SystemExit(f"{checkpoint}: not the checkpoint of {record} (selected iteration differs)")
    selected = weights_file(record, saved["state"]["best"]["model"], folder, "selected")
    current = weights_file(record, saved["model"], folder, "current")
    rows = []
    for label, path, precision in (("selected", selected, "fp32"), ("selected", selected, "bf16"),
                                   (f"iteration {saved['state']['iteration']} (not selected)", current, "bf16")):
        t0 = time.perf_counter()
        r = reinfer(record, weights=path, images=images, precision=precision, log=lambda *_: None)
        rows.append({"record": str(record), "member": rec["member"], "weights": label, "precision": precision,
                     "setting": r["setting"], "recorded_setting": r["recorded_setting"], "tier": r["tolerance"],
                     "images": r["images"], "agreement": r["agreement"], "delta": r["delta"],
                     "within_tolerance": r["within_tolerance"], "seconds": time.perf_counter() - t0})
        print(f"{rec['member']:<14} {label:<28} {r['setting']:<10} agree {r['agreement']:.4%} "
              + " ".join(f"Δ{k} {v:+.2f}" for k, v in r["delta"].items()) + f"  {r['tolerance']}: "
              + ("within" if r["within_tolerance"] else "outside"), flush=True)
    return rows


def main(argv=None):
    from bench.records import provenance
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pairs", nargs="+", help="RECORD CHECKPOINT pairs")
    ap.add_argument("--images", type=int, default=None, help="the first N test images (default: all)")
    ap.add_argument("--out", default=None, help="write the rows and provenance as JSON here (must not exist)")
    args = ap.parse_args(argv)
    if len(args.pairs) % 2:
        ap.error("give RECORD CHECKPOINT pairs")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for record, checkpoint in zip(args.pairs[::2], args.pairs[1::2]):
            rows += measure(Path(record), Path(checkpoint), args.images, Path(tmp))
    if args.out:
        from bench.reinfer import TOLERANCE
        with open(args.out, "x") as f:
            json.dump({"benchmark": "reinfer_tolerance", "images": args.images, "tolerance": TOLERANCE,
                       "rows": rows, "provenance": provenance()}, f, indent=1)
        print(f"written {args.out}")


if __name__ == "__main__":
    main()
