"""Benchmark: do the Table 1 decoder variants train at the paper's recipe (SGD lr 0.1, momentum 0.9, batch 12,
He initialisation, raw RGB into LRN, median-frequency or natural-frequency balancing)? Not a test.

FCN-Basic revision 1 (a linear decoder whose 1x1 reductions read raw ReLU+pooled maps, architectures.md A4/A10)
diverged at lr 0.1; revision 2 put batch norm after the reductions, and still diverged under natural frequency
(loss NaN at update ~26 at 180x240, fp32 and bf16: its learnt deconvolutions, a chain of linear maps with no
normalisation between them, grew until the scores overflowed); revision 3 puts batch norm after the learnt
deconvolutions of decoders 4-2 too (`bench.architectures.fcn.FCNBasic`, issue 48). For each variant, balancing,
seed, precision and revision this trains the runner's own step (`bench.step.make_train_step`: the loss, parameter
groups and SGD of `bench run`) on the real CamVid training images for ``--updates`` updates at ``--size`` and
records the loss trajectory and the first non-finite loss, if any; at the end, how many runs stayed finite.
Revisions of one variant see the same initial encoder and the same batches.

    python -m bench.benchmarks.decoder_stability --size 180x240 --updates 40 --variants median-frequency,natural-frequency
        --seeds 0,1 --precisions fp32,bf16 [--members fcn-basic,...] [--revisions 2,3] [--batch 12]
        [--out results/benchmarks/decoder_stability-<time>.json]
    python -m bench.benchmarks.decoder_stability --members fcn-basic --revisions 2 --variants natural-frequency
        --size 180x240 --updates 30 --first-non-finite     (every update's largest activation per layer, and the
                                                            first layer whose output went non-finite)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time

import torch

FCN_BASIC = ("bilinear-interpolation", "fcn-basic", "fcn-basic-no-addition", "fcn-basic-no-dim-reduction",
             "fcn-basic-no-addition-no-dim-reduction")
# the FCNBasic arguments of each FCN-Basic family member (architectures/fcn.py's builders)
FCN_BASIC_ARGS = {"bilinear-interpolation": {"addition": False, "learnt_upsampling": False},
                  "fcn-basic": {}, "fcn-basic-no-addition": {"addition": False},
                  "fcn-basic-no-dim-reduction": {"dim_reduction": False},
                  "fcn-basic-no-addition-no-dim-reduction": {"addition": False, "dim_reduction": False}}
BLOWN_UP = 1e4  # a loss this large has left training for good (cross-entropy starts near ln 11 = 2.4)


def build(member: str, revision: int, num_classes: int):
    """The registered model (the current revision), or an earlier revision of an FCN-Basic family member."""
    from bench import architectures
    from bench.architectures.fcn import FCNBasic
    if revision == architectures.model_revision(member):
        return architectures.create_model(member, num_classes=num_classes)
    if member not in FCN_BASIC or not 1 <= revision < architectures.model_revision(member):
        raise SystemExit(f"{member}: no revision {revision} to build")
    return FCNBasic(num_classes, revision=revision, **FCN_BASIC_ARGS[member]).init_weights()


def train(member: str, revision: int, recipe, dataset, data, updates: int, device, log_every: int = 10,
          seed: int = 0, trace: bool = False, log=print) -> dict:
    """``updates`` steps of the recipe from seed ``seed``; the loss of every step up to the first non-finite one
    (or one above BLOWN_UP: the run has diverged). ``trace``: every update's largest output magnitude of the
    layers that grew most, and the first layer whose output went non-finite (`bench.nonfinite.LayerTrace`)."""
    from bench.build import make_optimizer
    from bench.data import ShuffledStream
    from bench.nonfinite import LayerTrace, describe_growth
    from bench.step import make_train_step
    torch.manual_seed(seed)
    model = build(member, revision, dataset.num_classes).to(device)
    model.train()
    optimizer = make_optimizer(model, recipe, device)
    weights = torch.tensor(dataset.class_weights(recipe.class_weighting), dtype=torch.float32, device=device)
    step = make_train_step(model, model, optimizer, weights, recipe, device, dataset.void_label)
    stream = ShuffledStream(seed, len(data), device)
    losses, diverged_at, first_layer, t0 = [], None, None, time.perf_counter()
    tracer = LayerTrace(model) if trace else None
    with tracer or _nothing():
        for it in range(updates):
            idx = stream.batch(it, recipe.batch_size)
            if tracer:
                tracer.reset()
            loss = float(step(data.images[idx], data.labels[idx].long(), it))
            losses.append(loss)
            bad = not math.isfinite(loss) or loss > BLOWN_UP
            if tracer:
                top = sorted(tracer.max_abs.items(), key=lambda kv: -float(kv[1]))[:3]
                log(f"  it {it + 1:3d} loss {loss:.4g} largest outputs " + ", ".join(f"{n} {float(v):.3g}" for n, v in top)
                    + (f" | first non-finite: {tracer.first_non_finite}" if tracer.first_non_finite else ""))
                first_layer = first_layer or tracer.first_non_finite
            elif (it + 1) % log_every == 0 or it == 0 or bad:
                log(f"  {member} r{revision} it {it + 1:4d} loss {loss:.4f}")
            if bad:
                diverged_at = it + 1
                break
    finite = [v for v in losses if math.isfinite(v) and v <= BLOWN_UP]
    return {"member": member, "revision": revision, "variant": recipe.class_weighting, "seed": seed,
            "precision": recipe.precision, "updates": len(losses), "diverged_at": diverged_at,
            "growth": describe_growth(losses, diverged_at - 1) if diverged_at else None,
            "first_non_finite_layer": first_layer,
            "loss_first": losses[0], "loss_last": _number(losses[-1]), "loss_min": min(finite) if finite else None,
            "loss_last_10_mean": sum(finite[-10:]) / len(finite[-10:]) if finite and not diverged_at else None,
            "losses": [_number(v) for v in losses], "seconds": time.perf_counter() - t0}


def _number(v: float):
    """A loss for JSON: a number, or "nan" / "inf" as text."""
    return v if math.isfinite(v) else str(v)


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _rounded(v):
    return None if v is None else round(v, 3)


def _arguments(argv):
    from bench.config import load_suite
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", default=",".join(load_suite("camvid-decoder-variants").members))
    ap.add_argument("--revisions", default=None, help="FCN-Basic revisions to train (default: the current one; "
                                                      "other members have only their own)")
    ap.add_argument("--size", default="180x240", help="HxW the images are resized to (360x480 is the paper's)")
    ap.add_argument("--updates", type=int, default=40)
    ap.add_argument("--variants", default="median-frequency,natural-frequency")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--precisions", default="fp32", help="fp32, bf16 (autocast, as on a GPU) or both")
    ap.add_argument("--batch", type=int, default=None, help="mini-batch (default: the recipe's 12)")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--first-non-finite", action="store_true", help="trace every update's layers")
    ap.add_argument("--out", default=None, help="write the trajectories and provenance as JSON here (rewritten "
                                                "after every run, \"complete\" false until the last)")
    ap.add_argument("--resume", action="store_true", help="with --out: keep its runs, train only the others")
    return ap.parse_args(argv)


def _key(r: dict) -> tuple:
    return r["member"], r["revision"], r["variant"], r["seed"], r["precision"]


def main(argv=None):
    from bench import architectures, datasets
    from bench.config import load_suite
    from bench.data import load_split
    from bench.records import provenance
    args = _arguments(argv)
    size = tuple(int(v) for v in args.size.split("x"))
    device = torch.device(args.device)
    suite = load_suite("camvid-decoder-variants")
    dataset = datasets.get_dataset(suite.dataset, args.data_root)
    data = load_split(dataset, "train", size, None, device)
    made_by = provenance()["git"]  # the code this process loaded, whatever is committed while it trains
    rows, planned, earlier = [], [], []
    if args.out and args.resume and os.path.exists(args.out):
        with open(args.out) as f:
            kept = json.load(f)
        rows = kept["runs"]
        # a resumed record keeps the provenance of every earlier segment; each run names the commit that made it
        earlier = [*kept.get("earlier_provenance", []), kept["provenance"]]
    elif args.out and os.path.exists(args.out):
        raise SystemExit(f"{args.out}: exists (--resume to continue it)")
    done = {_key(r) for r in rows}
    # the members whose decoder changed first (the FCN-Basic family), each balancing and precision, then the rest
    members = sorted(args.members.split(","), key=lambda m: m not in FCN_BASIC)
    for member in members:
        current = architectures.model_revision(member)
        revisions = [int(r) for r in args.revisions.split(",")] if args.revisions and member in FCN_BASIC \
            else [current]
        for variant in args.variants.split(","):
            for precision in args.precisions.split(","):
                for seed in (int(s) for s in args.seeds.split(",")):
                    planned += [(member, revision, variant, seed, precision) for revision in revisions]
    recipe = None
    for member, revision, variant, seed, precision in planned:
        recipe = suite.resolve("full", variant, {"image_size": list(size), "precision": precision,
                                                 **({"batch_size": args.batch} if args.batch else {})})
        if (member, revision, recipe.class_weighting, seed, precision) in done or \
                (member, revision, variant, seed, precision) in done:
            continue
        rows.append({**train(member, revision, recipe, dataset, data, args.updates, device, args.log_every, seed,
                             args.first_non_finite), "variant": variant,
                     "commit": made_by["commit"], "dirty": made_by["dirty"]})
        print(_summary(rows[-1]), flush=True)
        if args.out:
            _write(args.out, rows, len(planned), size, args, recipe, device, provenance, earlier)
    finite = sum(r["diverged_at"] is None for r in rows)
    print(f"\n{finite} of {len(rows)} runs stayed finite for {args.updates} updates")
    if args.out and recipe is not None:
        _write(args.out, rows, len(planned), size, args, recipe, device, provenance, earlier)
        print(f"written {args.out}")


def _write(path, rows, planned: int, size, args, recipe, device, provenance, earlier=()) -> None:
    """The record as it stands (atomically): every run so far, how many stayed finite, complete or not."""
    from pathlib import Path
    from bench.safety import write_text_atomic
    finite = sum(r["diverged_at"] is None for r in rows)
    record = {"benchmark": "decoder_stability", "size": list(size), "updates": args.updates,
              "variants": args.variants.split(","), "seeds": args.seeds.split(","),
              "precisions": args.precisions.split(","), "batch_size": recipe.batch_size,
              "finite": finite, "runs_done": len(rows), "runs_planned": planned, "complete": len(rows) >= planned,
              "recipe": {k: getattr(recipe, k) for k in ("lr", "momentum", "weight_decay", "input_normalisation",
                                                          "bn_weight_decay")},
              "device": str(device), "threads": torch.get_num_threads(), "runs": rows, "provenance": provenance(),
              **({"earlier_provenance": list(earlier)} if earlier else {})}
    write_text_atomic(Path(path), json.dumps(record, indent=1) + "\n", "the benchmark record")


def _summary(r: dict) -> str:
    end = (f"DIVERGED at {r['diverged_at']} ({r['growth']})" if r["diverged_at"] else
           f"finite, loss {r['loss_first']:.3f} -> {r['loss_last']:.3f} (min {_rounded(r['loss_min'])})")
    return f"{r['member']:40s} r{r['revision']} {r['variant']:17s} seed {r['seed']} {r['precision']}: {end}"


if __name__ == "__main__":
    main()
