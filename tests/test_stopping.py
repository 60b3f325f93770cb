"""When runs stop: the paper's stopping rules (bench/stopping.py) on hand-worked cases, and in `bench run`."""
import json

import numpy as np
import pytest

from bench import stopping
from bench.config import Recipe, load_suite
from bench.errors import BenchError
from bench.runner import train_suite
from bench.train import RunOptions, TimeBudgetReached


def _points(*gs, every=1000):
    return [{"iteration": every * (i + 1), "G": g} for i, g in enumerate(gs)]


# -- the rules, hand-worked ----------------------------------------------------------------------------------------
def test_plateau_is_no_new_best_within_the_patience():
    pts = _points(70, 80, 85, 84, 85)  # best 85 first at 3000; 4000 and 5000 do not beat it
    assert not stopping.plateau_reached(pts, "G", 4000, 2000)  # 3000 is inside the last 2,000 updates
    assert stopping.plateau_reached(pts, "G", 5000, 2000)      # (3000, 5000]: 84, 85, not above 85
    assert not stopping.plateau_reached(pts + _points(70, 80, 85, 84, 85, 86)[5:], "G", 6000, 2000)  # 86 at 6000
    assert not stopping.plateau_reached(pts[:1], "G", 1000, 2000)  # nothing before the window yet


def test_loss_converges_when_the_recent_windows_do_not_go_far_enough_below_the_best():
    losses = np.repeat([1.0, 0.5, 0.3, 0.29, 0.295], 10)  # window means of 10 updates
    assert list(stopping.window_means(losses, 10)) == pytest.approx([1.0, 0.5, 0.3, 0.29, 0.295])
    # the last 20 updates (0.29, 0.295) against the lowest before (0.3): 0.29 >= 0.95 * 0.3
    assert stopping.loss_converged(losses, 10, 20, 0.05)
    assert not stopping.loss_converged(losses, 10, 20, 0.01)  # 0.29 < 0.99 * 0.3: still improving by 1 %
    assert not stopping.loss_converged(losses[:30], 10, 20, 0.05)  # (0.5, 0.3) against 1.0
    assert not stopping.loss_converged(losses[:20], 10, 20, 0.05)  # no window before the last 20 updates
    assert not stopping.loss_converged(losses[:49], 10, 20, 0.05)  # a partial window is not counted: (0.3, 0.29)
    assert stopping.loss_converged(losses[:50], 10, 20, 0.05)      # against (1.0, 0.5) until the fifth is complete


def test_stop_reason_uses_the_recipes_rule():
    plateau = Recipe(stopping="val-plateau", patience_iters=2000, eval_every_iters=1000)
    assert stopping.stop_reason(plateau, _points(70, 80, 85, 84, 85), np.zeros(5000), 5000) == "plateau"
    assert stopping.stop_reason(plateau, _points(70, 80, 85, 84, 86), np.zeros(5000), 5000) is None
    loss = Recipe(stopping="loss-converged", patience_iters=20, eval_every_iters=10, loss_min_improvement=0.05)
    assert stopping.stop_reason(loss, [], np.repeat([1.0, 0.5, 0.3, 0.29, 0.295], 10), 50) == "loss-converged"
    assert stopping.stop_reason(Recipe(), _points(1, 1, 1), np.zeros(3000), 3000) is None  # a fixed schedule
    assert stopping.end_reason(plateau) == "cap" and stopping.end_reason(Recipe()) == "schedule"


def test_records_made_before_stop_reasons_read_as_a_fixed_schedule():
    old = {"iterations": 11100, "selected": {"iteration": 11100},
           "curves": {"val": [{"iteration": 740}, {"iteration": 11100}]}}
    stop = stopping.stop_of(old)
    assert stop["reason"] == "schedule" and not stop["converged"] and stop["selected_at_last_evaluation"]
    assert stopping.status_words(old) == f"fixed schedule at 11,100, {stopping.STILL_IMPROVING}"
    new = {"stop": stopping.stop_record(Recipe(stopping="val-plateau", patience_iters=2000, eval_every_iters=1000),
                                        "plateau", 5000, 140000, _points(70, 80, 85, 84, 85), 3000)}
    assert stopping.stop_of(new)["converged"] and stopping.status_words(new) == "converged (val plateau) at 5,000"


@pytest.mark.parametrize("values,message", [
    ({"stopping": "val-plateau", "patience_iters": 10, "selection": "last"}, "needs selection"),
    ({"stopping": "loss-converged", "patience_iters": 10, "loss_window_iters": 3}, "must divide eval_every_iters"),
    ({"stopping": "sometimes"}, "stopping must be one of"),
    ({"loss_min_improvement": 1.5}, "loss_min_improvement must be in"),
])
def test_bad_stopping_settings_fail_before_training(values, message):
    suite = load_suite("camvid-decoder-variants")
    with pytest.raises(BenchError, match=message):
        suite.resolve("smoke", "natural-frequency", {"eval_every_iters": 2, **values}, member="segnet-basic")


def test_a_rule_without_its_patience_or_cadence_is_refused():
    from bench.config import _check_stopping
    with pytest.raises(BenchError, match="x.toml: stopping = 'val-plateau' needs patience_iters"):
        _check_stopping(Recipe(stopping="val-plateau", eval_every_iters=10), "x.toml")
    with pytest.raises(BenchError, match="give eval_every_iters"):
        _check_stopping(Recipe(stopping="val-plateau", patience_iters=10, eval_every_epochs=1), "x.toml")


def test_suites_state_the_papers_units_and_rules():
    controlled = load_suite("camvid-controlled").resolve("full", member="segnet")
    assert (controlled.stopping, controlled.patience_iters, controlled.max_iters) == ("val-plateau", 10000, 140000)
    assert controlled.budget_iterations(367) == [40000, 80000] and controlled.max_epochs is None
    variants = load_suite("camvid-decoder-variants").resolve("full", "median-frequency", member="fcn-basic")
    assert (variants.stopping, variants.eval_every_iters, variants.loss_window_iters) == ("loss-converged", 1000, 1000)
    assert variants.max_iters == 40000 and variants.loss_min_improvement == 0.05
    sun = load_suite("sunrgbd-controlled").resolve("full", "natural-frequency", member="deconvnet")
    assert sun.stopping == "val-plateau" and sun.max_iters == 380000 and sun.budget_iterations(5021) == [80000, 140000]


# -- in `bench run` ------------------------------------------------------------------------------------------------
TINY = {"image_size": [64, 96], "max_iters": 40, "batch_size": 2, "eval_every_iters": 1, "deterministic": True}


def _run(fake_root, tmp_path, overrides, **kw):
    args = dict(profile="smoke", members=["segnet-basic"], variants=["natural-frequency"], data_root=fake_root,
                results=tmp_path / "results", checkpoints=tmp_path / "ckpt", log=lambda m: None,
                overrides={**TINY, **overrides})
    args.update(kw)
    return train_suite("camvid-decoder-variants", **args)


def test_a_run_stops_at_a_validation_plateau_and_says_so(fake_root, tmp_path):
    # a learning rate too small to change anything: validation G is the same at every point, so with a patience of
    # two updates the rule stops the run at its third evaluation, long before the cap of 40
    (folder,) = _run(fake_root, tmp_path, {"lr": 1e-30, "stopping": "val-plateau", "patience_iters": 2})
    rec = json.loads((folder / "run.json").read_text())
    assert rec["iterations"] == 3 and [p["iteration"] for p in rec["curves"]["val"]] == [1, 2, 3]
    assert rec["stop"]["reason"] == "plateau" and rec["stop"]["converged"] and rec["stop"]["cap"] == 40
    assert rec["selected"]["iteration"] == 1 and not rec["stop"]["selected_at_last_evaluation"]
    assert "stopped at iteration 3: plateau" in (folder / "log.txt").read_text()
    assert rec["overrides"]["patience_iters"] == 2  # the command line's values, beside the resolved recipe


def test_a_run_that_converges_by_its_loss_rule_stops_there_and_one_without_runs_to_its_cap(fake_root, tmp_path):
    (folder,) = _run(fake_root, tmp_path / "a", {"stopping": "loss-converged", "patience_iters": 1,
                                                 "loss_window_iters": 1, "loss_min_improvement": 0.99})
    rec = json.loads((folder / "run.json").read_text())
    assert rec["stop"]["reason"] == "loss-converged" and rec["iterations"] == 2  # the first point with a window before
    (folder,) = _run(fake_root, tmp_path / "b", {"max_iters": 3})
    rec = json.loads((folder / "run.json").read_text())
    assert rec["stop"]["reason"] == "cap" and rec["iterations"] == 3 and not rec["stop"]["converged"]


def test_a_run_interrupted_at_its_stopping_point_stops_there_on_resume(fake_root, tmp_path):
    plateau = {"lr": 1e-30, "stopping": "val-plateau", "patience_iters": 2}
    (a,) = _run(fake_root, tmp_path / "a", plateau)
    with pytest.raises(BenchError, match="interrupted at iteration 3"):
        _run(fake_root, tmp_path / "b", plateau, stop_after=3)
    (b,) = _run(fake_root, tmp_path / "b", plateau, resume=True)
    ra, rb = (json.loads((f / "run.json").read_text()) for f in (a, b))
    assert ra["stop"] == rb["stop"] and ra["curves"]["val"] == rb["curves"]["val"] and ra["test"] == rb["test"]


def test_a_run_recorded_at_the_deadline_says_so_and_resume_continues_it(fake_root, tmp_path):
    fixed = {"stopping": "schedule", "max_iters": 6}
    with pytest.raises(TimeBudgetReached):  # without the option: a checkpoint, nothing recorded
        _run(fake_root, tmp_path / "a", fixed, deadline=0.0)
    (folder,) = _run(fake_root, tmp_path / "b", fixed, deadline=0.0, options=RunOptions(record_at_deadline=True))
    rec = json.loads((folder / "run.json").read_text())
    assert rec["stop"]["reason"] == "deadline" and rec["iterations"] == 1 and not rec["stop"]["converged"]
    assert list((tmp_path / "b" / "ckpt").rglob("*.pt"))  # kept: the run is not finished
    (cont,) = _run(fake_root, tmp_path / "b", fixed, resume=True)  # not skipped as recorded: continued
    rec = json.loads((cont / "run.json").read_text())
    assert cont != folder and rec["stop"]["reason"] == "schedule" and rec["iterations"] == 6
    assert "resumed segnet-basic from iteration 1" in (cont / "log.txt").read_text()
