"""Where a diverged run went non-finite: the first layer (in execution order) whose output holds a NaN or an
infinity in a forward pass, the parameters already non-finite, and how the loss grew before it (issue 48: FCN-Basic
revision 2 under natural frequency). Used by the runner's one-line divergence error and by
`python -m bench.benchmarks.decoder_stability --first-non-finite`, which traces every update.
"""
from __future__ import annotations

import math

import torch


def leaf_modules(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """(name, module) of every module without children: the layers a trace watches."""
    return [(n, m) for n, m in model.named_modules() if n and not any(True for _ in m.children())]


class LayerTrace:
    """Forward hooks on every layer of ``model`` noting, per forward pass, each output's largest magnitude (in
    execution order) and the first layer whose output is non-finite. A context manager: the hooks go on exit."""

    def __init__(self, model: torch.nn.Module):
        self.model, self.handles = model, []
        self.reset()

    def reset(self) -> None:
        self.first_non_finite: str | None = None
        self.max_abs: dict[str, torch.Tensor] = {}

    def _hook(self, name: str, module: torch.nn.Module):
        def hook(_module, _inputs, output):
            out = output[0] if isinstance(output, (tuple, list)) else output
            if not torch.is_tensor(out) or not out.is_floating_point():
                return
            peak = out.detach().abs().amax().float()
            self.max_abs[name] = peak
            if self.first_non_finite is None and not bool(torch.isfinite(peak)):
                self.first_non_finite = f"{name} ({type(module).__name__})"
        return hook

    def __enter__(self) -> "LayerTrace":
        self.handles = [m.register_forward_hook(self._hook(n, m)) for n, m in leaf_modules(self.model)]
        return self

    def __exit__(self, *exc) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


def non_finite_parameters(model: torch.nn.Module) -> list[str]:
    """The names of the parameters holding a NaN or an infinity, in module order."""
    return [n for n, p in model.named_parameters() if not bool(torch.isfinite(p.detach()).all())]


def describe_forward(model: torch.nn.Module, forward) -> str:
    """One phrase: the first layer whose output is non-finite when ``forward()`` runs ``model`` (eval-free: the
    model's mode is kept, no gradient), and how many parameter tensors are non-finite already."""
    bad = non_finite_parameters(model)
    with torch.no_grad(), LayerTrace(model) as trace:
        forward()
    where = (f"first non-finite layer output in a forward pass of that batch: {trace.first_non_finite}"
             if trace.first_non_finite else "a forward pass of that batch stays finite")
    total = sum(1 for _ in model.parameters())
    params = (f"; {len(bad)} of {total} parameter tensors non-finite, the first {bad[0]}" if bad
              else "; every parameter finite")
    return where + params


def describe_growth(losses, first_bad: int) -> str:
    """How the loss rose before its first non-finite value at index ``first_bad`` (0-based; the run's iteration
    ``first_bad + 1``): from its lowest point of the last 20 updates, e.g. "the loss rose from 1.40 at iteration 16
    to 7.0e+27 at iteration 25 (9 updates)"; "" where there is nothing before it."""
    start = max(0, first_bad - 20)
    window = [float(v) for v in losses[start:first_bad]]
    if not window or not all(math.isfinite(v) for v in window):
        return ""
    low = min(range(len(window)), key=window.__getitem__)
    if low == len(window) - 1:
        return f"the loss was {window[-1]:.3g} at iteration {first_bad} and became non-finite at once"
    return (f"the loss rose from {window[low]:.3g} at iteration {start + low + 1} to {window[-1]:.3g} at iteration "
            f"{first_bad} ({len(window) - 1 - low} updates)")
