"""When a run stops: the paper's stopping rules as small pure functions, and the words a record keeps about it.

The paper trains "until no further performance increase was observed" (Table 3: "the maximum number of iterations
... beyond which we observed no accuracy improvements or when over-fitting set in") and the Table 1 variants "until
the training loss converges". A recipe names one rule (`Recipe.stopping`), decided at evaluation points only (a
function of the recorded validation points and step losses, so a resumed run stops where an uninterrupted one
does), with ``max_iters`` (or ``max_epochs``) as the cap:

- "schedule": no rule; the run ends at its length (reason "schedule").
- "val-plateau": stop when no validation point of the last ``patience_iters`` updates beat the best before them
  on the selection metric (reason "plateau").
- "loss-converged": the training loss, as means over windows of ``loss_window_iters`` updates; stop when the
  lowest window mean of the last ``patience_iters`` updates is not ``loss_min_improvement`` (a fraction) below the
  lowest before them (reason "loss-converged").

A run that reaches its cap first stops with reason "cap"; one stopped by ``--max-minutes`` with
``--record-at-deadline`` with reason "deadline". Only "plateau" and "loss-converged" count as converged.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from typing import TYPE_CHECKING

from bench.config import MAX_EVALUATIONS
from bench.errors import BenchError

if TYPE_CHECKING:
    from bench.config import Recipe

RULES = ("schedule", "val-plateau", "loss-converged")
CONVERGED = ("plateau", "loss-converged")  # reasons that mean the paper's rule stopped the run
REASONS = ("plateau", "loss-converged", "cap", "schedule", "deadline")
SELECTION_METRIC = {"best-val-G": "G"}
STILL_IMPROVING = "still improving at the last evaluation"  # a run whose selected iteration was its last evaluation


def plateau_reached(points: list[dict], metric: str, iteration: int, patience: int) -> bool:
    """Whether no validation point of the last ``patience`` updates (iterations after ``iteration - patience``)
    beats the best point before them on ``metric``; False while no point lies before them."""
    before = [p[metric] for p in points if p["iteration"] <= iteration - patience]
    recent = [p[metric] for p in points if iteration - patience < p["iteration"] <= iteration]
    return bool(before) and (not recent or max(recent) <= max(before))


def window_means(losses: np.ndarray, window: int) -> np.ndarray:
    """The mean loss of each complete window of ``window`` updates: [0, w), [w, 2w), ..."""
    n = len(losses) // window
    return np.asarray(losses[:n * window], dtype=np.float64).reshape(n, window).mean(axis=1)


def loss_converged(losses: np.ndarray, window: int, patience: int, min_improvement: float) -> bool:
    """Whether the lowest window mean of the last ``patience`` updates is not ``min_improvement`` (a fraction)
    below the lowest window mean before them; False while fewer than ``patience`` updates follow a first window.
    ``losses``: the loss of every update so far."""
    means = window_means(losses, window)
    recent = patience // window
    if recent < 1 or len(means) <= recent:
        return False
    return bool(means[-recent:].min() >= (1 - min_improvement) * means[:-recent].min())


def stop_reason(recipe, val_points: list[dict], losses: np.ndarray, iteration: int) -> str | None:
    """The rule's reason to stop at ``iteration`` (an evaluation point), or None to go on."""
    if recipe.stopping == "val-plateau":
        metric = SELECTION_METRIC[recipe.selection]
        return "plateau" if plateau_reached(val_points, metric, iteration, recipe.patience_iters) else None
    if recipe.stopping == "loss-converged":
        window = recipe.loss_window_iters or recipe.eval_every_iters
        converged = loss_converged(losses[:iteration], window, recipe.patience_iters, recipe.loss_min_improvement)
        return "loss-converged" if converged else None
    return None


def end_reason(recipe) -> str:
    """Why a run that reached its length stopped: its cap under a rule, its schedule without one."""
    return "schedule" if recipe.stopping == "schedule" else "cap"


def describe_rule(recipe, cap: int) -> str:
    """The recipe's stopping rule in words, for the record and the report."""
    if recipe.stopping == "val-plateau":
        return (f"no new best validation {SELECTION_METRIC[recipe.selection]} in {recipe.patience_iters:,} updates, "
                f"at most {cap:,} updates")
    if recipe.stopping == "loss-converged":
        window = recipe.loss_window_iters or recipe.eval_every_iters
        return (f"training loss converged: the lowest {window:,}-update mean of the last {recipe.patience_iters:,} "
                f"updates not {100 * recipe.loss_min_improvement:g} % below the lowest before them, at most "
                f"{cap:,} updates")
    return f"a fixed schedule of {cap:,} updates"


def stop_record(recipe, reason: str, iteration: int, cap: int, val_points: list[dict], selected: int) -> dict:
    """What a record says about how its run ended (run.json "stop")."""
    last = val_points[-1]["iteration"] if val_points else None
    return {"reason": reason, "iteration": iteration, "cap": cap, "rule": recipe.stopping,
            "rule_text": describe_rule(recipe, cap), "converged": reason in CONVERGED,
            "last_evaluation": last, "selected_at_last_evaluation": last is not None and selected == last}


def stop_of(record: dict) -> dict:
    """A record's "stop", for records made before runs said why they stopped: those ran a fixed schedule."""
    stop = record.get("stop")
    if stop:
        return stop
    val = (record.get("curves") or {}).get("val") or []
    last = val[-1]["iteration"] if val else None
    selected = (record.get("selected") or {}).get("iteration")
    return {"reason": "schedule", "iteration": record.get("iterations"), "cap": record.get("iterations"),
            "rule": "schedule", "rule_text": "a fixed schedule (recorded before runs named their stopping rule)",
            "converged": False, "last_evaluation": last,
            "selected_at_last_evaluation": last is not None and selected == last}


def status_words(record: dict) -> str:
    """How a record's run ended, in a few words for `bench runs` and the report."""
    stop = stop_of(record)
    words = {"plateau": "converged (val plateau)", "loss-converged": "converged (training loss)",
             "cap": "stopped at the cap", "schedule": "fixed schedule", "deadline": "stopped at the deadline"}
    text = f"{words.get(stop['reason'], stop['reason'])} at {stop['iteration']:,}" if stop.get("iteration") \
        else words.get(stop["reason"], stop["reason"])
    if stop.get("selected_at_last_evaluation") and not stop["converged"]:
        text += f", {STILL_IMPROVING}"
    return text


@dataclass
class Schedule:
    """When a run steps, evaluates and scores at its budgets, in iterations."""
    total: int
    iterations_per_epoch: int
    eval_points: list
    budgets: list

    @classmethod
    def of(cls, recipe: Recipe, n_train: int, where: str) -> "Schedule":
        total = recipe.total_iterations(n_train)
        every = recipe.eval_every(n_train)
        if total // every > MAX_EVALUATIONS:
            raise BenchError(f"{where}: {total:,} iterations with an evaluation every {every:,} make "
                             f"{total // every:,} evaluations (at most {MAX_EVALUATIONS:,}); "
                             "raise eval_every_iters or eval_every_epochs")
        return cls(total, recipe.iterations_per_epoch(n_train),
                   sorted(set(range(every, total + 1, every)) | {total}), recipe.budget_iterations(n_train))

    def evaluates_at(self, it: int) -> bool:
        return it in self._points

    def __post_init__(self):
        self._points = set(self.eval_points) | set(self.budgets)

