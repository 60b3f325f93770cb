"""One training step as the authors' solver takes it: the input normalised on the device, bf16 autocast and the
channels-last layout where the recipe (or CUDA) says so, the class-weighted cross-entropy ignoring void summed
and divided by the number of non-void pixels (caffe-segnet SoftmaxWithLoss with normalize: true), and one SGD
update (`make_train_step`). DeepLab-LargeFOV's loss is on its 45x60 logits, against the labels where its
upsampling places each cell (`labels_for_logits`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from bench import distributed as dist_utils
from bench import safety
from bench.config import Recipe
from bench.data import Normaliser
from bench.errors import BenchError

# Dense peak throughput (FLOP/s) for MFU, by GPU name fragment: bf16 tensor cores, fp32 (no TF32).
PEAK_FLOPS = {"H200": {"bf16": 989e12, "fp32": 67e12}, "H100 PCIe": {"bf16": 756e12, "fp32": 51e12},
              "H100": {"bf16": 989e12, "fp32": 67e12}, "A100": {"bf16": 312e12, "fp32": 19.5e12}}



def autocast(device, recipe: Recipe, cache: bool = True):
    """The autocast context of the recipe's precision on ``device``, and the precision's name (bf16 or fp32);
    ``cache=False`` for a step captured in a CUDA graph (autocast's weight cache must not outlive the capture)."""
    use_bf16 = recipe.precision == "bf16" or (recipe.precision == "auto" and device.type == "cuda")
    return (torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16, cache_enabled=cache),
            "bf16" if use_bf16 else "fp32")


def uses_channels_last(recipe: Recipe, device, variant=None) -> bool:
    """Channels-last where the recipe says "on"; with "auto", as the step variant says (`bench.step_variants`),
    else on CUDA."""
    if recipe.channels_last != "auto":
        return recipe.channels_last == "on"
    return variant.channels_last if variant is not None else device.type == "cuda"


def to_layout(x, recipe: Recipe, device, variant=None):
    """A batch in the memory layout the recipe trains in (channels-last where `uses_channels_last`)."""
    return x.contiguous(memory_format=torch.channels_last) if uses_channels_last(recipe, device, variant) else x


def peak_flops(device, precision: str) -> float | None:
    """The dense peak FLOP/s of a known GPU at ``precision`` (for MFU); None on the CPU or an unknown GPU."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for frag, peaks in PEAK_FLOPS.items():
        if frag in name:
            return peaks[precision]
    return None


def labels_for_logits(model, labels, logits):
    """The labels the loss compares with ``logits``: the labels themselves, or for a model trained on coarse
    logits (DeepLab-LargeFOV, loss at stride 8) the labels at the pixels where the model's own upsampling places
    each coarse cell (`model.coarse_labels`), so it learns each label where it later draws it."""
    if logits.shape[-2:] == labels.shape[-2:]:
        return labels
    if trains_on(model) != "coarse-logits":
        raise BenchError(f"{type(model).__name__}: logits of size {tuple(logits.shape[-2:])} for labels of size "
                         f"{tuple(labels.shape[-2:])}, and the model defines no coarse_labels rule")
    return model.coarse_labels(labels, logits.shape[-2:])


def seg_loss_sum(logits, labels, class_weights, void_label: int):
    """Weighted cross-entropy summed over the non-void pixels, and the number of those pixels."""
    if logits.shape[-2:] != labels.shape[-2:]:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} differ in size; "
                         "take the labels through labels_for_logits first")
    valid = (labels != void_label).sum()
    loss = F.cross_entropy(logits.float(), labels, weight=class_weights, ignore_index=void_label, reduction="sum")
    return loss, valid


def make_train_step(model, train_model, optimizer, class_weights, recipe: Recipe, device, void_label: int,
                    world: int = 1, variant=None):
    """The step `bench run` takes (and `bench.benchmarks.train_speed` times): uint8 batch in, the global
    mini-batch loss out as a device tensor (not read: no host synchronisation). ``variant``
    (`bench.step_variants.StepVariant`): its layout, and with ``cuda_graph`` the whole step captured in a CUDA
    graph (`GraphedStep`); the caller compiles ``train_model`` where the variant compiles."""
    norm = Normaliser(recipe.input_normalisation, device)
    graphed = variant is not None and variant.cuda_graph
    autocast_ctx, _ = autocast(device, recipe, cache=not graphed)

    def step(x_uint8, y, it: int = -1):
        x = to_layout(norm(x_uint8), recipe, device, variant)
        with autocast_ctx:
            logits = train_model(x)
        loss_sum, valid = seg_loss_sum(logits, labels_for_logits(model, y, logits), class_weights, void_label)
        share = loss_sum / dist_utils.all_reduce_sum(valid).clamp(min=1)  # this rank's share of the global loss
        optimizer.zero_grad(set_to_none=True)
        (share * world).backward()  # DDP averages gradients over ranks
        safety.interruption_point("step", it)
        optimizer.step()
        return dist_utils.all_reduce_sum(share.detach())
    if graphed:
        if world > 1:
            raise BenchError("the cuda-graph step variant trains in one process (not with several ranks)")
        return GraphedStep(step, optimizer, device)
    return step


class GraphedStep:
    """A training step captured in a CUDA graph and replayed (PyTorch's whole-network capture): the first
    ``warmup`` calls run eagerly on a side stream (each a real update), the next is captured with static copies of
    its batch and then replayed, and every later call copies its batch into those buffers and replays. The loss
    returned is a copy (the static one is overwritten by the next replay)."""

    def __init__(self, step, optimizer, device, warmup: int = 3):
        self.step, self.optimizer, self.device, self.warmup = step, optimizer, device, warmup
        self.calls, self.graph = 0, None
        self.stream = torch.cuda.Stream(device)

    def __call__(self, x_uint8, y, it: int = -1):
        self.calls += 1
        if self.calls <= self.warmup:
            self.stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(self.stream):
                loss = self.step(x_uint8, y, it)
            torch.cuda.current_stream(self.device).wait_stream(self.stream)
            return loss
        if self.graph is None:
            self.static_x, self.static_y = x_uint8.clone(), y.clone()
            self.optimizer.zero_grad(set_to_none=True)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.static_loss = self.step(self.static_x, self.static_y, it)
        else:
            self.static_x.copy_(x_uint8)
            self.static_y.copy_(y)
        safety.interruption_point("step", it)
        self.graph.replay()
        return self.static_loss.clone()


def trains_on(model) -> str:
    """What the loss compares with the labels (the registry's ``loss_on``): "logits" or "coarse-logits"."""
    from bench.architectures import model_facts
    name = getattr(model, "registry_name", None)
    return model_facts(name)["loss_on"] if name else "logits"


def training_module(model):
    """The module a training step calls: the model, or for one whose loss is on coarse logits a wrapper whose
    forward is ``model.coarse_logits`` (so DDP and torch.compile see one forward)."""
    return dist_utils.CoarseLogits(model) if trains_on(model) == "coarse-logits" else model
