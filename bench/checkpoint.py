"""A run's checkpoint: the training state (`TrainState`), model, optimiser, recipe and random state, written
outside results/ to a temporary name and renamed (`bench.safety.save_atomic`), with a small note beside it so a
plan can tell how far the run got without loading it; and what happens to it when the loss diverges.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from bench.config import Recipe, same_recipe
from bench.errors import BenchError
from bench.safety import save_atomic, write_text_atomic

CHECKPOINT_FORMAT = 2


@dataclass
class TrainState:
    """Where a run stands: the iterations done and evaluated, the validation curve, the test scores at the
    budgets, the selected (best) point with its weights, the training time and images, every step's loss (a
    device tensor, read every `sync_every` steps) and the run's log lines. A checkpoint holds it whole."""
    losses: torch.Tensor
    iteration: int = 0
    evaluated: int = 0
    val: list = field(default_factory=list)
    budgets: list = field(default_factory=list)
    best: dict | None = None
    train_seconds: float = 0.0
    images_trained: int = 0
    log: list = field(default_factory=list)
    segments: int = 1  # the processes the run has been trained in: one more with each resume
    wall_seconds_before: float | None = 0.0  # the wall-clock time of the earlier segments (None: a checkpoint
                                             # written before this was kept)
    tensorboard_dir: str | None = None  # the folder of the run's live curves (bench.curves), kept across resumes
    curves_step: int = 0  # the last iteration whose training loss went to the live curves

    @classmethod
    def new(cls, total: int, device) -> "TrainState":
        return cls(losses=torch.full((total,), float("nan"), device=device))

    def losses_so_far(self) -> torch.Tensor:
        return self.losses[:self.iteration]


def save_checkpoint(ckpt: Path, state: TrainState, model, optimizer, recipe: Recipe, device, total: int,
                    segment_wall_seconds: float = 0.0) -> None:
    """The run as it stands, where its losses are all finite (a deadline or a signal may come before they were
    read: a diverged run is never saved). ``segment_wall_seconds``: the wall-clock time of this process's segment
    so far, kept so that a resumed run's record counts every segment."""
    losses = state.losses_so_far()
    stop_if_diverged(losses, 0, ckpt, ckpt.parent.name)
    before = state.wall_seconds_before
    saved = {**vars(state), "losses": losses.cpu(),
             "wall_seconds_before": None if before is None else before + segment_wall_seconds}
    save_atomic({"format": CHECKPOINT_FORMAT, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "state": saved, "recipe": asdict(recipe), "rng_cpu": torch.get_rng_state(),
                 "rng_cuda": torch.cuda.get_rng_state() if device.type == "cuda" else None}, ckpt)
    # a small note beside it, so a plan can tell how far the run got without loading the checkpoint
    write_text_atomic(ckpt.with_suffix(".json"), json.dumps({"iteration": state.iteration, "total": total}),
                      "the checkpoint note")


def load_checkpoint(ckpt: Path, recipe: Recipe, model, optimizer, device, total: int) -> TrainState:
    """The state of an interrupted run, its model and optimizer restored; one line for any unusable file."""
    try:
        saved = torch.load(ckpt, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise BenchError(f"{ckpt}: checkpoint cannot be read ({exc.__class__.__name__}; truncated or not a "
                         "checkpoint); delete it to start the run again") from None
    if not isinstance(saved, dict) or saved.get("format") != CHECKPOINT_FORMAT or "state" not in saved:
        raise BenchError(f"{ckpt}: not a checkpoint of this version of the harness; delete it to start again")
    if not same_recipe(saved["recipe"], recipe):
        raise BenchError(f"{ckpt}: checkpoint was made with a different recipe; delete it to start again")
    try:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise BenchError(f"{ckpt}: checkpoint does not fit this model ({str(exc).splitlines()[0]}); "
                         "delete it to start again") from None
    torch.set_rng_state(saved["rng_cpu"])
    if device.type == "cuda" and saved.get("rng_cuda") is not None:
        torch.cuda.set_rng_state(saved["rng_cuda"])
    state = TrainState(**{**saved["state"], "losses": torch.full((total,), float("nan"), device=device)})
    state.segments += 1  # this process trains the next segment
    if "wall_seconds_before" not in saved["state"]:
        state.wall_seconds_before = None  # earlier segments' wall-clock time not kept: unknown
    state.losses[:len(saved["state"]["losses"])] = saved["state"]["losses"].to(device)
    if state.best is not None:
        state.best["model"] = {k: v.to(device) for k, v in state.best["model"].items()}
    return state


def remove_checkpoint(ckpt: Path) -> None:
    """A run's checkpoint and its note, where they exist."""
    for p in (ckpt, ckpt.with_suffix(".json")):
        if p.exists():
            p.unlink()


def run_tag(profile: str, variant: str | None, seed: int) -> str:
    return "-".join([profile] + ([variant] if variant else []) + [f"seed{seed}"])


def checkpoint_path(checkpoints: Path, suite: str, member: str, profile: str, variant: str | None, seed: int) -> Path:
    return Path(checkpoints) / suite / member / f"{run_tag(profile, variant, seed)}.pt"


class TrainingDiverged(BenchError):
    """A run whose training loss became non-finite: nothing recorded (a plan goes on to its next run)."""


def stop_if_diverged(losses: torch.Tensor, first_iteration: int, ckpt: Path, member: str, explain=None) -> None:
    """Raises TrainingDiverged (via `diverged`) at the first non-finite loss of ``losses``, which start at
    ``first_iteration`` (0-based); one host read. ``explain(index)``, called then with the run's 0-based index of
    that loss, says where and how it went non-finite (`bench.nonfinite`)."""
    bad = (~torch.isfinite(losses)).nonzero()
    if len(bad):
        i = int(bad[0])
        detail = explain(first_iteration + i) if explain is not None else ""
        diverged(ckpt, member, first_iteration + i + 1, float(losses[i]), detail)


def diverged(ckpt: Path, member: str, iteration: int, value: float, detail: str = ""):
    """A non-finite loss: the run is not recorded, and its checkpoint is moved aside so the next run starts
    afresh instead of resuming into the same divergence (said in the message). ``detail``: where it went
    non-finite and how the loss grew before, in the same line."""
    msg = f"{member}: training loss became {value} at iteration {iteration}" + (f" ({detail})" if detail else "")
    msg += "; not recorded"
    if ckpt.exists():
        aside = ckpt.with_name(f"{ckpt.stem}.diverged-it{iteration}.pt")
        os.replace(ckpt, aside)
        remove_checkpoint(ckpt)
        msg += f"; its checkpoint was moved to {aside} so the next run starts afresh"
    raise TrainingDiverged(msg)

