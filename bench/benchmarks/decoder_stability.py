"""Benchmark: do the Table 1 decoder variants train at the paper's recipe (SGD lr 0.1, momentum 0.9, batch 12,
He initialisation, raw RGB into LRN, the authors' median-frequency weights)? Not a test.

FCN-Basic revision 1 (a linear decoder whose 1x1 reductions read raw ReLU+pooled maps, architectures.md A4/A10)
diverged at lr 0.1 on the GPU and the CPU; revision 2 puts batch norm after the reductions (after the deconvolutions
in the NoDimReduction variants; `bench.architectures.fcn.FCNBasic`). For each variant and revision this trains the
runner's own step (`bench.runner.make_train_step`: the loss, parameter groups and SGD of `bench run`) on the real
CamVid training images for ``--updates`` updates at ``--size`` and prints the loss trajectory, the first
non-finite loss if any, and a summary line. Both revisions see the same initial encoder and the same batches.

    python -m bench.benchmarks.decoder_stability --size 120x160 --updates 200 [--members fcn-basic,...]
        [--revisions 1,2] [--out results/benchmarks/decoder_stability-<time>.json]
"""
from __future__ import annotations

import argparse
import json
import math
import time

import torch

FCN_BASIC = ("bilinear-interpolation", "fcn-basic", "fcn-basic-no-addition", "fcn-basic-no-dim-reduction",
             "fcn-basic-no-addition-no-dim-reduction")
# the FCNBasic arguments of each FCN-Basic family member (architectures/fcn.py's builders)
FCN_BASIC_ARGS = {"bilinear-interpolation": {"addition": False, "learnt_upsampling": False},
                  "fcn-basic": {}, "fcn-basic-no-addition": {"addition": False},
                  "fcn-basic-no-dim-reduction": {"dim_reduction": False},
                  "fcn-basic-no-addition-no-dim-reduction": {"addition": False, "dim_reduction": False}}


def build(member: str, revision: int, num_classes: int):
    """The registered model (the current revision), or an earlier revision of an FCN-Basic family member."""
    from bench import architectures
    from bench.architectures.fcn import FCNBasic
    if revision == architectures.model_revision(member):
        return architectures.create_model(member, num_classes=num_classes)
    if member not in FCN_BASIC or not 1 <= revision < architectures.model_revision(member):
        raise SystemExit(f"{member}: no revision {revision} to build")
    return FCNBasic(num_classes, revision=revision, **FCN_BASIC_ARGS[member]).init_weights()


def train(member: str, revision: int, recipe, dataset, data, updates: int, device, log_every: int) -> dict:
    """``updates`` steps of the suite's recipe; the loss of every step (NaN from the first non-finite one on)."""
    from bench.build import make_optimizer
    from bench.data import ShuffledStream
    from bench.step import make_train_step
    torch.manual_seed(0)
    model = build(member, revision, dataset.num_classes).to(device)
    model.train()
    optimizer = make_optimizer(model, recipe, device)
    weights = torch.tensor(dataset.class_weights(recipe.class_weighting), dtype=torch.float32, device=device)
    step = make_train_step(model, model, optimizer, weights, recipe, device, dataset.void_label)
    stream = ShuffledStream(0, len(data), device)
    losses, diverged_at, t0 = [], None, time.perf_counter()
    for it in range(updates):
        idx = stream.batch(it, recipe.batch_size)
        loss = float(step(data.images[idx], data.labels[idx].long(), it))
        losses.append(loss)
        if (it + 1) % log_every == 0 or it == 0 or not math.isfinite(loss):
            print(f"  {member} r{revision} it {it + 1:4d} loss {loss:.4f}", flush=True)
        if not math.isfinite(loss):
            diverged_at = it + 1
            break
    finite = [v for v in losses if math.isfinite(v)]
    return {"member": member, "revision": revision, "updates": len(losses), "diverged_at": diverged_at,
            "loss_first": losses[0], "loss_last": losses[-1], "loss_min": min(finite) if finite else None,
            "loss_last_10_mean": sum(finite[-10:]) / len(finite[-10:]) if finite and not diverged_at else None,
            "losses": losses, "seconds": time.perf_counter() - t0}


def _rounded(v):
    return None if v is None else round(v, 3)


def main(argv=None):
    from bench import architectures
    from bench import datasets
    from bench.config import load_suite
    from bench.records import provenance
    from bench.data import load_split
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", default=",".join(load_suite("camvid-decoder-variants").members))
    ap.add_argument("--revisions", default="1,2", help="FCN-Basic revisions to train (others have only their own)")
    ap.add_argument("--size", default="120x160", help="HxW the images are resized to (360x480 is the paper's)")
    ap.add_argument("--updates", type=int, default=200)
    ap.add_argument("--variant", default="median-frequency")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--out", default=None, help="write the trajectories and provenance as JSON here")
    args = ap.parse_args(argv)
    size = tuple(int(v) for v in args.size.split("x"))
    device = torch.device(args.device)
    suite = load_suite("camvid-decoder-variants")
    recipe = suite.resolve("full", args.variant, {"image_size": list(size)})
    dataset = datasets.get_dataset(suite.dataset, args.data_root)
    data = load_split(dataset, "train", size, None, device)
    print(f"recipe: lr {recipe.lr}, momentum {recipe.momentum}, batch {recipe.batch_size}, "
          f"{recipe.class_weighting} weights, {recipe.input_normalisation} input, {size[0]}x{size[1]}, "
          f"{len(data)} CamVid training images, {args.updates} updates")
    revisions = [int(r) for r in args.revisions.split(",")]
    rows = []
    for member in args.members.split(","):
        for revision in (revisions if member in FCN_BASIC else [architectures.model_revision(member)]):
            rows.append(train(member, revision, recipe, dataset, data, args.updates, device, args.log_every))
    print(f"\n{'member':42s} rev  updates  diverged  loss first -> last (min)")
    for r in rows:
        print(f"{r['member']:42s} {r['revision']:3d}  {r['updates']:7d}  {str(r['diverged_at'] or '-'):>8s}  "
              f"{r['loss_first']:.3f} -> {r['loss_last']:.3f} ({_rounded(r['loss_min'])})")
    if args.out:
        with open(args.out, "x") as f:
            json.dump({"benchmark": "decoder_stability", "size": list(size), "updates": args.updates,
                       "variant": args.variant, "recipe": {k: getattr(recipe, k) for k in (
                           "lr", "momentum", "weight_decay", "batch_size", "class_weighting",
                           "input_normalisation", "bn_weight_decay")},
                       "device": str(device), "threads": torch.get_num_threads(), "runs": rows,
                       "provenance": provenance()}, f, indent=1)
        print(f"written {args.out}")


if __name__ == "__main__":
    main()
