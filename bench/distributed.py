"""Data-parallel training under `torchrun` (DDP), equivalent to one process with the same global batch.

    torchrun --nproc_per_node=2 -m bench.cli run --suite camvid-controlled --profile full

Each rank takes an equal share of every global mini-batch (the same epoch shuffle on every rank). To keep the
optimisation identical to a single process:
- batch norm is synchronised: statistics over the whole global batch (`SyncBatchNorm2d`, which works on the
  CPU with gloo as well as on CUDA with NCCL);
- the loss of a rank is its share of the global loss (its pixel sum divided by the global non-void count),
  multiplied by the world size because DDP averages gradients over ranks.
Rank 0 evaluates, checkpoints and writes the records; the other ranks wait for it in the next step.
"""
from __future__ import annotations

import contextlib
import os

import torch
import torch.distributed as dist
from torch import nn

_LOCAL = {"on": False}


def world() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) for a single process."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def init(device_type: str) -> tuple[int, int]:
    rank, size, _ = world()
    if size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return rank, size


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


@contextlib.contextmanager
def local_batch_norm():
    """Batch norm on local statistics only (rank 0's re-estimation of population statistics)."""
    prev = _LOCAL["on"]
    _LOCAL["on"] = True
    try:
        yield
    finally:
        _LOCAL["on"] = prev


class _SyncBN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        c = x.shape[1]
        xf = x.float()
        stats = torch.cat([xf.sum(dim=(0, 2, 3)), (xf * xf).sum(dim=(0, 2, 3)),
                           torch.tensor([x.numel() / c], dtype=torch.float32, device=x.device)])
        dist.all_reduce(stats)
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean * mean).clamp(min=0)
        invstd = torch.rsqrt(var + eps)
        xhat = (xf - mean.view(1, c, 1, 1)) * invstd.view(1, c, 1, 1)
        ctx.save_for_backward(xhat, invstd, weight, n)
        y = xhat * weight.view(1, c, 1, 1) + bias.view(1, c, 1, 1)
        return y.to(x.dtype), mean, var * n / (n - 1).clamp(min=1)

    @staticmethod
    def backward(ctx, gy, _gmean, _gvar):
        xhat, invstd, weight, n = ctx.saved_tensors
        c = xhat.shape[1]
        gyf = gy.float()
        g_bias = gyf.sum(dim=(0, 2, 3))
        g_weight = (gyf * xhat).sum(dim=(0, 2, 3))
        sums = torch.cat([g_bias, g_weight])
        dist.all_reduce(sums)
        sum_gy, sum_gy_xhat = sums[:c], sums[c:]
        gx = (weight * invstd).view(1, c, 1, 1) / n * (
            n * gyf - sum_gy.view(1, c, 1, 1) - xhat * sum_gy_xhat.view(1, c, 1, 1))
        return gx.to(gy.dtype), g_weight, g_bias, None


class SyncBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch across ranks (CPU or CUDA)."""

    def forward(self, x):
        if not (self.training and active() and not _LOCAL["on"]):
            return super().forward(x)
        y, mean, var_unbiased = _SyncBN.apply(x, self.weight, self.bias, self.eps)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = (1.0 / float(self.num_batches_tracked)) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - m).add_(mean.detach().to(self.running_mean.dtype), alpha=m)
                self.running_var.mul_(1 - m).add_(var_unbiased.detach().to(self.running_var.dtype), alpha=m)
        return y


def convert_sync_batch_norm(module: nn.Module) -> nn.Module:
    """Replaces every BatchNorm2d by a SyncBatchNorm2d holding the same parameters and buffers."""
    for name, child in list(module.named_children()):
        if type(child) is nn.BatchNorm2d:
            new = SyncBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            new.load_state_dict(child.state_dict())
            new.to(child.weight.device)
            setattr(module, name, new)
        else:
            convert_sync_batch_norm(child)
    return module


class CoarseLogits(nn.Module):
    """Exposes `model.coarse_logits` as `forward`, so DDP's hooks see DeepLab's training forward."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.coarse_logits(x)


def all_reduce_sum(value: torch.Tensor) -> torch.Tensor:
    if active():
        value = value.clone()
        dist.all_reduce(value)
    return value


def from_rank0(value: int, device) -> int:
    """Rank 0's integer on every rank (a decision only rank 0 can make, e.g. to stop after its evaluation)."""
    if not active():
        return value
    t = torch.tensor([value], dtype=torch.int64, device=device)
    dist.broadcast(t, 0)
    return int(t)


def barrier():
    if active():
        dist.barrier()
