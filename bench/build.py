"""The model and optimiser of a run, as the recipe says: encoder weights (ImageNet, a local file or none), the
registered model on the device, its encoder frozen where asked, and SGD with the authors' parameter groups
(conv biases at `bias_lr_mult` x lr without decay; BN scale and shift decayed per `bn_weight_decay`).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from bench.config import Recipe
from bench.errors import BenchError
from bench.step import uses_channels_last

def resolve_encoder_weights(recipe: Recipe, override: str | None):
    """The weights and their SHA-256: "none" -> None; "imagenet" -> a local file where given (--encoder-weights or
    BENCH_WEIGHTS), else torchvision's download."""
    if recipe.encoder_weights == "none":
        return None, "he-init"
    path = override or (os.environ.get("BENCH_WEIGHTS") if recipe.encoder_weights == "imagenet" else None)
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise BenchError(f"{p}: encoder weights file not found")
        return str(p), hashlib.sha256(p.read_bytes()).hexdigest()
    return recipe.encoder_weights, None


def create_model(member: str, recipe: Recipe, num_classes: int, encoder_weights):
    """The registered model with the recipe's options where the model takes them (the registry's ``options``)."""
    from bench import architectures
    options = architectures.model_meta(member)["options"]
    return architectures.create_model(member, num_classes=num_classes, encoder_weights=encoder_weights,
                                      **({"dropout": recipe.dropout} if "dropout" in options else {}))


def build_model(member: str, recipe: Recipe, dataset, device, encoder_weights_override, log, variant=None):
    """The registered model with the recipe's initialisation, on the device; warns where its fc layers were
    initialised although the online recipe would take them from ImageNet."""
    weights, weights_sha = resolve_encoder_weights(recipe, encoder_weights_override)
    model = create_model(member, recipe, dataset.num_classes, weights)
    missing = model.initialisation["missing_from_weights"]
    if missing:
        log(f"warning: {member}: {', '.join(missing)} not in {model.weights_source} (VGG16 conv layers only): "
            f"initialised instead ({model.initialisation['initialised'][missing[0]]}); torchvision's download "
            "would give them ImageNet weights, so this run differs from the online recipe (recorded in run.json)")
    model.to(device)
    if uses_channels_last(recipe, device, variant):
        model = model.to(memory_format=torch.channels_last)
    return model, weights_sha


def encoder_modules(model) -> tuple[list, list]:
    """The VGG16 encoder's 13 convs and the batch norms in their units; BenchError for a model without one."""
    from bench.architectures import model_facts
    if model_facts(model.registry_name)["encoder"] != "vgg16":
        raise BenchError(f"freeze_encoder: {type(model).__name__} has no VGG16 encoder of 13 convs to freeze")
    convs, _ = model.encoder_convs()
    ids = {id(c) for c in convs}
    bns = [x for m in model.modules() if isinstance(m, torch.nn.Sequential) and len(m) and id(m[0]) in ids
           for x in m if isinstance(x, torch.nn.modules.batchnorm._BatchNorm)]
    return convs, bns


def freeze_encoder_(model, recipe: Recipe) -> dict:
    """Freezes the encoder where the recipe asks (no gradient; `param_groups` leaves the parameters out, so no
    weight decay either); returns what the run record says about it."""
    if recipe.freeze_encoder:
        convs, bns = encoder_modules(model)
        for module in (*convs, *bns):
            for p in module.parameters():
                p.requires_grad_(False)
    _, names = model.encoder_convs() if recipe.freeze_encoder else ([], [])
    return {"frozen_encoder": list(names), "frozen_encoder_bn": recipe.frozen_encoder_bn if recipe.freeze_encoder
            else None, "trained_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "frozen_parameters": sum(p.numel() for p in model.parameters() if not p.requires_grad)}


def frozen_statistics(model, recipe: Recipe) -> list:
    """The batch norms whose statistics stay as they are (a frozen encoder's, with frozen_encoder_bn "frozen")."""
    if recipe.freeze_encoder and recipe.frozen_encoder_bn == "frozen":
        return encoder_modules(model)[1]
    return []


def train_mode(model, recipe: Recipe):
    """model.train(), except the batch norms whose statistics stay frozen."""
    model.train()
    for bn in frozen_statistics(model, recipe):
        bn.eval()


def param_groups(model, recipe: Recipe) -> list[dict]:
    """SGD parameter groups as the authors' prototxts: conv/deconv weights at lr with weight decay; their biases
    at `bias_lr_mult` x lr without decay (lr_mult 2, decay_mult 0); batch-norm scale and shift at lr, decayed as
    `recipe.bn_weight_decay` says ("scale": segnet_train.prototxt's decay_mult 1 / 0; "scale-and-shift": Caffe's
    default, segnet_basic_train.prototxt; "none"). Frozen parameters are left out; empty groups too."""
    decayed_bn = {"scale": ("weight",), "scale-and-shift": ("weight", "bias"), "none": ()}[recipe.bn_weight_decay]
    groups = {"weights": [], "biases": [], "bn-decayed": [], "bn-not-decayed": []}
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                groups["bn-decayed" if name in decayed_bn else "bn-not-decayed"].append(p)
            elif name == "bias":
                groups["biases"].append(p)
            else:
                groups["weights"].append(p)
    settings = {"weights": (recipe.lr, recipe.weight_decay), "biases": (recipe.lr * recipe.bias_lr_mult, 0.0),
                "bn-decayed": (recipe.lr, recipe.weight_decay), "bn-not-decayed": (recipe.lr, 0.0)}
    return [{"name": k, "params": v, "lr": settings[k][0], "weight_decay": settings[k][1]}
            for k, v in groups.items() if v]


def make_optimizer(model, recipe: Recipe, device) -> torch.optim.SGD:
    """SGD with momentum over `param_groups`; fused into one kernel where the device supports it (CUDA)."""
    fused = device.type == "cuda"
    return torch.optim.SGD(param_groups(model, recipe), lr=recipe.lr, momentum=recipe.momentum,
                           **({"fused": True} if fused else {}))

