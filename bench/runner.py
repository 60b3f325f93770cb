"""`bench run`: train every member of a suite with its one recipe, evaluate, and record.

Order of a run, as in nanoGPT's train.py: config -> data -> model -> optimizer -> loop -> record.
- Data are decoded once and held as uint8 tensors on the training device; each epoch is a fresh shuffle
  (a generator seeded by the run seed and the epoch) taken in mini-batches in order.
- Loss: class-weighted cross-entropy ignoring void, summed over the mini-batch's pixels and divided by
  the number of non-void pixels (caffe-segnet SoftmaxWithLoss with normalize: true).
- SGD with momentum; conv biases at `bias_lr_mult` times the learning rate and no weight decay on biases or
  BN parameters (the prototxts' lr_mult 2 / decay_mult 0).
- Before each evaluation, BN population statistics are recomputed over the training set (the authors'
  compute_bn_statistics.py), or the running averages are kept (`bn_statistics = "running"`).
- Validation at the recipe's cadence; selection of the best validation G (or the last point); test scores
  at fixed budgets; test predictions of the selected point saved as 8-bit PNGs beside run.json.
- Checkpoints every `checkpoint_every` iterations and on Ctrl-C, outside results/; `resume=True` continues.
"""
from __future__ import annotations

import hashlib
import math
import os
import random
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from bench import distributed as dist_utils
from bench.config import Recipe, Suite, load_suite
from datasets.camvid import resize_image, resize_label
from bench.errors import BenchError
from bench.evaluate import score_label_maps
from bench.metrics import confusion_matrix, segmentation_scores
from bench.records import SCHEMA_VERSION, RunFolder, new_run_id, now_iso, provenance

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Dense peak throughput (FLOP/s) for MFU, by GPU name fragment: bf16 tensor cores, fp32 (no TF32).
PEAK_FLOPS = {"H200": {"bf16": 989e12, "fp32": 67e12}, "H100 PCIe": {"bf16": 756e12, "fp32": 51e12},
              "H100": {"bf16": 989e12, "fp32": 67e12}, "A100": {"bf16": 312e12, "fp32": 19.5e12}}


# -- data ----------------------------------------------------------------------------------------------------
class SplitData:
    """One split decoded once: uint8 images N x 3 x H x W and labels N x H x W on a device."""

    def __init__(self, names, images, labels):
        self.names, self.images, self.labels = names, images, labels

    def __len__(self):
        return len(self.names)


def load_split(dataset, split: str, size, subset: int | None, device, progress=None) -> SplitData:
    samples = dataset.samples(split)
    if subset:
        samples = samples[:subset]
    images, labels = [], []
    it = progress(samples, desc=f"load {split}") if progress else samples
    for s in it:
        img = resize_image(dataset.read_image(s), size)
        lab = resize_label(dataset.read_label(s), size)
        images.append(torch.from_numpy(np.array(img, copy=True)).permute(2, 0, 1))
        labels.append(torch.from_numpy(np.array(lab, copy=True)))
    return SplitData([s.name for s in samples], torch.stack(images).to(device), torch.stack(labels).to(device))


def normalise(x_uint8: torch.Tensor, how: str) -> torch.Tensor:
    x = x_uint8.float()
    if how == "raw-0-255":
        return x
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1) * 255
    return (x - mean) / std


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The shuffle of one epoch: a function of (seed, epoch) only, so a resumed run sees the same order."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


# -- pieces of the loop ----------------------------------------------------------------------------------------
def seg_loss_sum(logits, labels, class_weights, void_label: int):
    """Weighted cross-entropy summed over the non-void pixels, and the number of those pixels."""
    if logits.shape[-2:] != labels.shape[-2:]:  # DeepLab: loss at 1/8 resolution on nearest-subsampled labels
        labels = F.interpolate(labels[:, None].float(), size=logits.shape[-2:], mode="nearest")[:, 0].long()
    valid = (labels != void_label).sum()
    loss = F.cross_entropy(logits.float(), labels, weight=class_weights, ignore_index=void_label, reduction="sum")
    return loss, valid


def seg_loss(logits, labels, class_weights, void_label: int):
    """Weighted cross-entropy over non-void pixels, summed, divided by the number of non-void pixels."""
    loss, valid = seg_loss_sum(logits, labels, class_weights, void_label)
    return loss / valid.clamp(min=1)


def param_groups(model, recipe: Recipe):
    decay, biases, no_decay = [], [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                no_decay.append(p)
            elif name == "bias":
                biases.append(p)
            else:
                decay.append(p)
    return [{"params": decay, "lr": recipe.lr, "weight_decay": recipe.weight_decay},
            {"params": biases, "lr": recipe.lr * recipe.bias_lr_mult, "weight_decay": 0.0},
            {"params": no_decay, "lr": recipe.lr, "weight_decay": 0.0}]


def _autocast(device, recipe: Recipe):
    use_bf16 = recipe.precision == "bf16" or (recipe.precision == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16), ("bf16" if use_bf16 else "fp32")


@torch.no_grad()
def recompute_bn_statistics(model, data: SplitData, recipe: Recipe, device):
    """Population BN statistics over the training set (compute_bn_statistics.py): cumulative averages of the
    batch statistics, dropout off."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    autocast, _ = _autocast(device, recipe)
    for i in range(0, len(data), recipe.batch_size):
        x = normalise(data.images[i:i + recipe.batch_size], recipe.input_normalisation)
        with autocast:
            model(_layout(x, recipe, device))
    for m, mom in zip(bns, saved):
        m.momentum = mom
    model.eval()


def _layout(x, recipe, device):
    on = recipe.channels_last == "on" or (recipe.channels_last == "auto" and device.type == "cuda")
    return x.contiguous(memory_format=torch.channels_last) if on else x


@torch.no_grad()
def predict(model, data: SplitData, recipe: Recipe, device) -> np.ndarray:
    model.eval()
    autocast, _ = _autocast(device, recipe)
    out = []
    for i in range(0, len(data), recipe.batch_size):
        x = normalise(data.images[i:i + recipe.batch_size], recipe.input_normalisation)
        with autocast:
            logits = model(_layout(x, recipe, device))
        out.append(logits.argmax(1).to(torch.uint8).cpu())
    return torch.cat(out).numpy()


def quick_scores(pred: np.ndarray, data: SplitData, num_classes: int, void: int) -> dict:
    """G, C, mIoU in percent (no BF): for validation curves and train scores."""
    cm = confusion_matrix(torch.from_numpy(pred).to(data.labels.device), data.labels, num_classes, void)
    s = segmentation_scores(cm)
    return {k: 100 * s[k] for k in ("G", "C", "mIoU")}


def full_scores(pred: np.ndarray, data: SplitData, dataset) -> dict:
    labels = data.labels.cpu().numpy()
    return score_label_maps(list(pred), list(labels), class_names=dataset.class_names, void_label=dataset.void_label)


# -- one run ---------------------------------------------------------------------------------------------------
def checkpoint_path(checkpoints: Path, suite: str, member: str, profile: str, variant: str | None, seed: int) -> Path:
    tag = "-".join([profile] + ([variant] if variant else []) + [f"seed{seed}"])
    return Path(checkpoints) / suite / member / f"{tag}.pt"


def resolve_encoder_weights(recipe: Recipe, override: str | None):
    """"none" -> None; "imagenet" -> a local file where given (--encoder-weights or BENCH_WEIGHTS), else the download."""
    if recipe.encoder_weights == "none":
        return None, "he-init"
    path = override or (os.environ.get("BENCH_WEIGHTS") if recipe.encoder_weights == "imagenet" else None)
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise BenchError(f"{p}: encoder weights file not found")
        return str(p), hashlib.sha256(p.read_bytes()).hexdigest()
    return recipe.encoder_weights, None


class TimeBudgetReached(BenchError):
    """Training stopped at the wall-clock budget (--max-minutes) after writing a checkpoint."""


def train_member(suite: Suite, member: str, recipe: Recipe, *, profile: str, seed: int, variant: str | None,
                 dataset, data_cache: dict, results: Path, checkpoints: Path, resume: bool, device,
                 encoder_weights_override: str | None = None, log=print, progress=None, stop_after: int | None = None,
                 deadline: float | None = None) -> Path:
    """Trains one member for one seed; returns the published record folder."""
    import architectures
    from bench.models import count_macs

    started = time.time()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if recipe.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = not recipe.deterministic
    size = tuple(recipe.image_size)
    key = (size, recipe.train_subset, recipe.val_subset, recipe.test_subset)
    if key not in data_cache:
        data_cache.clear()
        data_cache[key] = {split: load_split(dataset, split, size, getattr(recipe, f"{split}_subset"), device, progress)
                           for split in ("train", "val", "test")}
    data = data_cache[key]
    train, val, test = data["train"], data["val"], data["test"]

    weights, weights_sha = resolve_encoder_weights(recipe, encoder_weights_override)
    model_kwargs = {"dropout": recipe.dropout} if "dropout" in _builder_args(member) else {}
    model = architectures.create_model(member, num_classes=dataset.num_classes, encoder_weights=weights, **model_kwargs)
    with torch.device("meta"):
        macs_per_image, _ = count_macs(architectures.create_model(member, num_classes=dataset.num_classes), size)
    model.to(device)
    if recipe.channels_last == "on" or (recipe.channels_last == "auto" and device.type == "cuda"):
        model = model.to(memory_format=torch.channels_last)
    rank, world = (dist_utils.world()[0], dist_utils.world()[1]) if dist_utils.active() else (0, 1)
    train_model = dist_utils.CoarseLogits(model) if hasattr(model, "coarse_logits") else model
    if world > 1:
        dist_utils.convert_sync_batch_norm(model)
        train_model = torch.nn.parallel.DistributedDataParallel(
            train_model, device_ids=[device.index] if device.type == "cuda" else None)
    if recipe.compile:
        train_model = torch.compile(train_model)
    optimizer = torch.optim.SGD(param_groups(model, recipe), lr=recipe.lr, momentum=recipe.momentum)
    class_weights = torch.tensor(dataset.class_weights(recipe.class_weighting, _train_labels(dataset, recipe, train)),
                                 dtype=torch.float32, device=device)
    ipe = recipe.iterations_per_epoch(len(train))
    total = min(x for x in (recipe.max_iters, recipe.max_epochs and recipe.max_epochs * ipe) if x)
    eval_every = recipe.eval_every_iters or recipe.eval_every_epochs * ipe
    eval_points = sorted({i for i in range(eval_every, total + 1, eval_every)} | {total})
    budgets = sorted({b for b in (recipe.budgets_iters or [e * ipe for e in recipe.budgets_epochs]) if b <= total})
    autocast, precision = _autocast(device, recipe)

    state = {"iteration": 0, "losses": [], "val": [], "budgets": [], "best": None, "train_seconds": 0.0,
             "images_trained": 0}
    ckpt = checkpoint_path(checkpoints, suite.name, member, profile, variant, seed)
    if ckpt.exists():
        if not resume:
            raise BenchError(f"{ckpt}: a checkpoint of this run exists; pass --resume to continue it "
                             "(or delete the file to start again)")
        saved = torch.load(ckpt, map_location="cpu", weights_only=False)
        if saved["recipe"] != asdict(recipe):
            raise BenchError(f"{ckpt}: checkpoint was made with a different recipe; delete it to start again")
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["rng_cpu"])
        if device.type == "cuda" and saved.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(saved["rng_cuda"])
        state = saved["state"]
        log(f"  resumed {member} from iteration {state['iteration']} ({ckpt})")

    def save_checkpoint():
        if rank != 0:
            return
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        tmp = ckpt.with_suffix(f".tmp-{os.getpid()}")
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "state": state,
                    "recipe": asdict(recipe), "rng_cpu": torch.get_rng_state(),
                    "rng_cuda": torch.cuda.get_rng_state() if device.type == "cuda" else None}, tmp)
        os.replace(tmp, ckpt)

    def evaluate_point(it):
        if rank != 0:  # rank 0 evaluates; the others meet it again in the next step's gradient all-reduce
            return
        if recipe.bn_statistics == "recompute":
            with dist_utils.local_batch_norm():
                recompute_bn_statistics(model, train, recipe, device)
        epoch = it / ipe
        line = f"  {member} it {it} ep {epoch:.1f}"
        if it in eval_points:
            pred = predict(model, val, recipe, device)
            scores = quick_scores(pred, val, dataset.num_classes, dataset.void_label)
            if recipe.bf_on_val:
                scores["BF"] = full_scores(pred, val, dataset)["BF"]
            point = {"iteration": it, "epoch": epoch, **scores}
            state["val"].append(point)
            better = state["best"] is None or recipe.selection == "last" or scores["G"] > state["best"]["G"]
            if better:
                state["best"] = {"iteration": it, "epoch": epoch, "G": scores["G"],
                                 "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
            line += " | val " + " ".join(f"{k} {v:.2f}" for k, v in scores.items())
        if it in budgets:
            res = full_scores(predict(model, test, recipe, device), test, dataset)
            state["budgets"].append({"iteration": it, "epoch": epoch,
                                     **{k: res[k] for k in ("G", "C", "mIoU", "BF")}})
            line += f" | test@budget G {res['G']:.2f} mIoU {res['mIoU']:.2f} BF {res['BF']:.2f}"
        log(line)
        model.train()

    model.train()
    bar = progress(total=total, initial=state["iteration"], desc=member) if progress else None
    order, order_epoch = None, None
    try:
        while state["iteration"] < total:
            it = state["iteration"]
            epoch, pos = divmod(it, ipe)
            if order_epoch != epoch:  # one shuffle per epoch, not per step
                order, order_epoch = epoch_order(seed, epoch, len(train)), epoch
            batch_idx = order[pos * recipe.batch_size:(pos + 1) * recipe.batch_size]
            idx = batch_idx[rank::world].to(device)  # this rank's share of the global mini-batch
            t0 = time.perf_counter()
            x = train.images[idx]
            y = train.labels[idx].long()
            if recipe.hflip:
                g = torch.Generator().manual_seed(seed * 7919 + it)
                flip = (torch.rand(len(idx), generator=g) < 0.5).to(device)
                x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
                y = torch.where(flip.view(-1, 1, 1), y.flip(-1), y)
            x = _layout(normalise(x, recipe.input_normalisation), recipe, device)
            with autocast:
                logits = train_model(x)
            loss_sum, valid = seg_loss_sum(logits, y, class_weights, dataset.void_label)
            share = loss_sum / dist_utils.all_reduce_sum(valid).clamp(min=1)  # this rank's share of the global loss
            optimizer.zero_grad(set_to_none=True)
            (share * world).backward()  # DDP averages gradients over ranks
            optimizer.step()
            loss_value = float(dist_utils.all_reduce_sum(share.detach()))  # synchronises: the timing is the step's
            if not math.isfinite(loss_value):
                raise BenchError(f"{member}: training loss became {loss_value} at iteration {it + 1}")
            state["train_seconds"] += time.perf_counter() - t0
            state["images_trained"] += len(batch_idx)
            state["iteration"] = it + 1
            state["losses"].append([it + 1, loss_value])
            if bar:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.3f}", ep=epoch)
            if state["iteration"] in eval_points or state["iteration"] in budgets:
                evaluate_point(state["iteration"])
            if state["iteration"] % recipe.checkpoint_every == 0 and state["iteration"] < total:
                save_checkpoint()
            if stop_after is not None and state["iteration"] >= stop_after and state["iteration"] < total:
                raise KeyboardInterrupt  # used by the tests to interrupt a run
            if deadline is not None and time.time() > deadline and state["iteration"] < total:
                save_checkpoint()
                raise TimeBudgetReached(f"time budget reached at iteration {state['iteration']} of {total} of {member}; "
                                        f"checkpoint saved to {ckpt}; run the same command with --resume to continue")
    except KeyboardInterrupt:
        save_checkpoint()
        raise BenchError(f"interrupted at iteration {state['iteration']} of {member}; checkpoint saved to {ckpt}; "
                         "run the same command with --resume to continue") from None
    finally:
        if bar:
            bar.close()
    if rank != 0:
        dist_utils.barrier()
        return None

    # the selected point: test predictions and scores
    best = state["best"]
    model.load_state_dict(best["model"])
    test_pred = predict(model, test, recipe, device)
    test_scores = full_scores(test_pred, test, dataset)
    train_scores = quick_scores(predict(model, train, recipe, device), train, dataset.num_classes,
                                dataset.void_label) if recipe.evaluate_train else None

    run_id = new_run_id(profile, seed, variant)
    folder = RunFolder(Path(results) / suite.name / member, run_id)
    try:
        for name, p in zip(test.names, test_pred):
            Image.fromarray(p).save(folder.predictions / name)
        tps = state["images_trained"] / state["train_seconds"] if state["train_seconds"] else None
        peak = _peak_flops(device, precision)
        record = {
            "schema_version": SCHEMA_VERSION,
            "kind": "training-run",
            "suite": suite.name, "member": member, "variant": variant, "run_id": run_id, "profile": profile,
            "seed": seed, "dataset": dataset.name, "suite_file": suite.path,
            "config": asdict(recipe),
            "model": {"name": member, "params": sum(p.numel() for p in model.parameters()),
                      "gmacs_per_image": macs_per_image / 1e9, "pretrained_layers": model.pretrained_layers,
                      "weights_source": model.weights_source, "weights_sha256": weights_sha,
                      "class_weights": class_weights.tolist()},
            "provenance": provenance(),
            "device": str(device), "precision": precision, "world_size": world,
            "iterations": state["iteration"], "iterations_per_epoch": ipe,
            "curves": {"loss": state["losses"], "val": state["val"]},
            "selected": {"iteration": best["iteration"], "epoch": best["epoch"], "rule": recipe.selection},
            "budgets": state["budgets"],
            "test": test_scores,
            "train": train_scores,
            "predictions": {"folder": "predictions", "split": "test", "count": len(test.names),
                            "resolution": list(size)},
            "timing": {"wall_seconds": time.time() - started, "train_seconds": state["train_seconds"],
                       "train_images_per_second": tps,
                       "model_flops_per_train_image": 6 * macs_per_image,
                       "mfu": (6 * macs_per_image * tps / peak) if (tps and peak) else None,
                       "peak_flops": peak},
            "finished_at": now_iso(),
        }
        out = folder.publish(record)
    except BaseException:
        folder.discard()
        raise
    if ckpt.exists():
        ckpt.unlink()
    dist_utils.barrier()
    return out


def _recorded(results: Path, suite: str, member: str, profile: str, seed: int, variant, recipe: Recipe):
    """The record folder of this exact run (same profile, seed, variant and recipe) if one exists."""
    import json
    folder = results / suite / member
    if not folder.is_dir():
        return None
    for run in sorted(folder.iterdir()):
        path = run / "run.json"
        if run.name.startswith(".tmp-") or not path.is_file():
            continue
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if (rec.get("profile"), rec.get("seed"), rec.get("variant")) == (profile, seed, variant) and \
                rec.get("config") == json.loads(json.dumps(asdict(recipe))):
            return run
    return None


def _train_labels(dataset, recipe, train: SplitData):
    if recipe.class_weighting.startswith("median-frequency"):
        return train.labels.cpu().numpy()
    return None


def _builder_args(member: str):
    import inspect
    import architectures.registry as reg
    return inspect.signature(reg._MODELS[member]).parameters


def _peak_flops(device, precision):
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for frag, peaks in PEAK_FLOPS.items():
        if frag in name:
            return peaks[precision]
    return None


def run_suite(suite_name: str, *, profile: str | None = None, seeds=(0,), members=None, variants=None,
              data_root=None, results="results", checkpoints="checkpoints", resume=False, encoder_weights=None,
              overrides: dict | None = None, device: str | None = None, log=print, progress=None,
              stop_after: int | None = None, max_minutes: float | None = None) -> list[Path]:
    """Trains every (member, variant, seed) of a suite; returns the record folders. Everything is checked first.

    max_minutes: stop after this much wall-clock time, writing a checkpoint (TimeBudgetReached); with
    resume=True the same call continues, and members already recorded are skipped.
    """
    import datasets
    deadline = time.time() + 60 * max_minutes if max_minutes else None
    suite = load_suite(suite_name)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    rank, world = dist_utils.init(dev.type)
    if world > 1 and dev.type == "cuda":
        dev = torch.device("cuda", dist_utils.world()[2])
        torch.cuda.set_device(dev)
    if rank != 0:
        log, progress = (lambda m: None), None
    if profile is None:
        profile = "full" if dev.type == "cuda" else "smoke"
        log(f"profile: {profile} (CUDA {'present' if dev.type == 'cuda' else 'absent'}; pass --profile to choose)")
    members = list(members or suite.members)
    for m in members:
        if m not in suite.members:
            raise BenchError(f"unknown member {m!r} of suite {suite.name}; its members: {', '.join(suite.members)}")
    variants = list(variants or suite.variants or [None])
    for v in variants:
        if v is not None and v not in suite.variants:
            raise BenchError(f"unknown variant {v!r} of suite {suite.name}; its variants: {', '.join(suite.variants)}")
    recipes = {v: suite.resolve(profile, v, overrides) for v in variants}
    dataset = datasets.get_dataset(suite.dataset, data_root)
    for split in ("train", "val", "test"):
        dataset.samples(split)  # a data root without the dataset fails here, before any training
    for v, r in recipes.items():
        if r.encoder_weights not in ("imagenet", "none") and not Path(r.encoder_weights).is_file():
            raise BenchError(f"{r.encoder_weights}: encoder weights file not found")
        if r.class_weighting not in dataset.class_weightings:
            raise BenchError(f"{suite.path}: unknown class_weighting {r.class_weighting!r}; "
                             f"known: {', '.join(dataset.class_weightings)}")
    out = []
    cache: dict = {}
    for seed in seeds:
        for v in variants:
            for m in members:
                done = _recorded(Path(results), suite.name, m, profile, seed, v, recipes[v])
                if resume and done is not None:
                    log(f"{suite.name} / {m}{' / ' + v if v else ''} / seed {seed}: already recorded in {done}; skipped")
                    out.append(done)
                    continue
                log(f"{suite.name} / {m}{' / ' + v if v else ''} / seed {seed} / {profile}")
                folder = train_member(suite, m, recipes[v], profile=profile, seed=seed, variant=v, dataset=dataset,
                                      data_cache=cache, results=Path(results), checkpoints=Path(checkpoints),
                                      resume=resume, device=dev, encoder_weights_override=encoder_weights, log=log,
                                      progress=progress, stop_after=stop_after, deadline=deadline)
                if folder is not None:  # rank 0 writes the records
                    out.append(folder)
                    log(f"  recorded {folder}")
    return out
