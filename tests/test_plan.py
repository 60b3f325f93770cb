"""A short GPU lease spent well (issue 13): a plan under one deadline, checkpoints by the clock rather than the
recipe, no host synchronisation per training step, the fused optimiser."""
import json

import pytest
import torch
from click.testing import CliRunner

import bench.checkpoint as checkpoint
import bench.train as train
from bench.cli import main
from bench.errors import BenchError
from bench.plan import load_plan, run_plan

TINY_PLAN = """
name = "tiny"
[[step]]
kind = "profile"
models = ["segnet-basic"]
size = [64, 96]
runs = 1
warmup = 0
[[step]]
suite = "{suite}"
members = ["segnet-basic", "fcn-basic"]
variants = ["natural-frequency"]
profile = "smoke"
"""


def _suite(tmp_path):
    """camvid-decoder-variants with a smoke profile small enough for a test (64x96, 4 iterations)."""
    from bench.config import SUITES_DIR
    text = (SUITES_DIR / "camvid-decoder-variants.toml").read_text()
    text = text.replace("image_size = [240, 320]", "image_size = [64, 96]").replace("max_iters = 2", "max_iters = 4")
    text = text.replace("[profiles.smoke]", "[profiles.smoke]\ndeterministic = true")
    path = tmp_path / "camvid-decoder-variants.toml"
    path.write_text(text)
    return path


def test_the_shipped_paper_plan_loads_in_the_issues_order():
    plan = load_plan("paper")
    *runs, last = plan.steps  # issue 34: the Table 1 pair first (it converges in minutes), the GPU profile last
    assert last.kind == "profile"
    assert {"segnet", "deeplab-largefov", "fcn-learnt-deconv", "deconvnet"} <= set(last.models)
    assert [(s.suite, s.members[:1], s.seeds) for s in runs[:2]] == [
        ("camvid-decoder-variants", ("segnet-basic",), (0,)), ("camvid-controlled", ("segnet",), (0,))]
    assert runs[2].members == ("deeplab-largefov", "deeplab-largefov-densecrf", "fcn", "fcn-learnt-deconv", "deconvnet")
    assert runs[-1].members == ("segnet",) and runs[-1].seeds == (1, 2)


def test_a_plan_stops_at_the_deadline_and_the_same_call_finishes_it(fake_root, tmp_path, monkeypatch):
    suite = _suite(tmp_path)
    plan = tmp_path / "tiny.toml"
    plan.write_text(TINY_PLAN.format(suite=suite))
    args = dict(data_root=fake_root, results=tmp_path / "results", checkpoints=tmp_path / "ckpt",
                log=lambda m: None)  # the run step says profile = "smoke" itself
    # the deadline arrives in the middle of the second run (simulated clock: each step of training takes 1 s)
    clock = {"t": 1_000_000.0}
    monkeypatch.setattr(train.time, "time", lambda: clock["t"])
    import bench.plan as plan_mod
    monkeypatch.setattr(plan_mod.time, "time", lambda: clock["t"])
    real_step = train.make_train_step

    def slow_step(*a, **k):
        step = real_step(*a, **k)

        def timed(*x, **y):
            clock["t"] += 1.0
            return step(*x, **y)
        return timed
    monkeypatch.setattr(train, "make_train_step", slow_step)
    with pytest.raises(train.TimeBudgetReached, match="time budget reached at iteration 2 of 4 of fcn-basic"):
        run_plan(plan, max_minutes=5 / 60, **args)
    assert len(list((tmp_path / "results").rglob("run.json"))) == 1  # segnet-basic recorded
    assert len(list((tmp_path / "results" / "profile").rglob("profile.json"))) == 1
    assert [p.name for p in (tmp_path / "ckpt").rglob("*.pt")] == ["smoke-natural-frequency-seed0.pt"]
    note = json.loads(next((tmp_path / "ckpt").rglob("*.json")).read_text())
    assert note == {"iteration": 2, "total": 4}
    logs = []
    out = run_plan(plan, max_minutes=60, **{**args, "log": logs.append})
    assert out["done"] and out["skipped"] == 1  # the profile, already recorded
    assert any("already recorded" in line and "segnet-basic" in line for line in logs)
    assert any("resumed fcn-basic from iteration 2" in line for line in logs)
    recs = sorted((tmp_path / "results").rglob("run.json"))
    assert len(recs) == 2 and not list((tmp_path / "ckpt").rglob("*.pt"))
    # the resumed record equals an uninterrupted run's
    monkeypatch.undo()
    from bench.runner import train_suite
    (fresh,) = train_suite(str(suite), profile="smoke", members=["fcn-basic"], variants=["natural-frequency"],
                         data_root=fake_root, results=tmp_path / "r2", checkpoints=tmp_path / "c2", log=lambda m: None)
    resumed = next(p for p in recs if "fcn-basic" in str(p))
    a, b = json.loads(resumed.read_text()), json.loads((fresh / "run.json").read_text())
    assert a["curves"] == {**b["curves"]} and a["test"]["confusion_matrix"] == b["test"]["confusion_matrix"]


def test_a_run_that_will_not_finish_is_announced_and_started(fake_root, tmp_path, monkeypatch):
    import bench.plan as plan_mod
    suite = _suite(tmp_path)
    plan = tmp_path / "p.toml"
    plan.write_text(f'[[step]]\nsuite = "{suite}"\nmembers = ["segnet-basic"]\nvariants = ["natural-frequency"]\n')
    monkeypatch.setattr(plan_mod, "achieved_flop_rate", lambda results, dev: 1.0)  # 1 FLOP/s: hopeless
    logs = []
    run_plan(plan, profile="smoke", max_minutes=30, data_root=fake_root, results=tmp_path / "r",
             checkpoints=tmp_path / "c", log=logs.append)
    assert any("will not finish in this call; starting it anyway" in line for line in logs)
    assert len(list((tmp_path / "r").rglob("run.json"))) == 1


def test_profile_steps_are_skipped_under_smoke_on_the_cpu(tmp_path):
    plan = tmp_path / "p.toml"
    plan.write_text('[[step]]\nkind = "profile"\nmodels = ["segnet"]\n')
    logs = []
    out = run_plan(plan, profile="smoke", device="cpu", results=tmp_path / "r", log=logs.append)
    assert out["skipped"] == 1 and any("skipped under --profile smoke on the CPU" in line for line in logs)
    assert not (tmp_path / "r" / "profile").exists()


@pytest.mark.parametrize("body,message", [
    ("", "one or more [[step]]"),
    ('[[step]]\nsuite = "camvid-controlled"\nmembers = ["unet"]\n', "'unet' is not a member"),
    ('[[step]]\nsuite = "camvid-controlled"\nseeds = ["a"]\n', "seeds must be a list"),
    ('[[step]]\nkind = "profile"\nmodels = ["nope"]\n', "unknown model 'nope'"),
    ('[[step]]\nkind = "dance"\n', "kind must be"),
    ('[[step]]\nsuite = "camvid-controlled"\nepochs = 3\n', "unknown key(s) epochs"),
])
def test_bad_plans_are_one_line(tmp_path, body, message):
    plan = tmp_path / "bad.toml"
    plan.write_text(body)
    r = CliRunner().invoke(main, ["run", "--plan", str(plan), "--profile", "smoke"])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, r.output


def test_plan_and_suite_are_exclusive(tmp_path):
    r = CliRunner().invoke(main, ["run", "--plan", "paper", "--suite", "camvid-controlled"])
    assert r.exit_code == 2 and "either --suite or --plan" in r.output
    r = CliRunner().invoke(main, ["run", "--plan", "paper", "--members", "segnet"])
    assert r.exit_code == 2 and "--plan takes its members" in r.output


# -- checkpoints by the clock ------------------------------------------------------------------------------------
def test_checkpoint_cadence_is_a_run_option_not_the_recipe(fake_root, tmp_path, monkeypatch):
    from bench.config import Recipe
    assert "checkpoint_every" not in Recipe.__dataclass_fields__
    saves = []
    real = checkpoint.save_atomic
    monkeypatch.setattr(checkpoint, "save_atomic", lambda obj, path, *a: (saves.append(obj["state"]["iteration"]),
                                                                      real(obj, path, *a)))
    common = dict(profile="smoke", members=["segnet-basic"], variants=["natural-frequency"], data_root=fake_root,
                  log=lambda m: None, overrides={"image_size": [64, 96], "max_iters": 4, "eval_every_iters": 4})
    from bench.runner import train_suite
    from bench.train import RunOptions
    (a,) = train_suite("camvid-decoder-variants", results=tmp_path / "a", checkpoints=tmp_path / "ca", **common)
    assert saves == []  # a 4-step run under the default 10 minutes: no checkpoint at all
    (b,) = train_suite("camvid-decoder-variants", results=tmp_path / "b", checkpoints=tmp_path / "cb",
                     options=RunOptions(checkpoint_minutes=0, sync_every=1), **common)
    assert saves == [1, 2, 3]  # every sync point before the end
    ra, rb = (json.loads((f / "run.json").read_text()) for f in (a, b))
    assert ra["config"] == rb["config"]  # the cadence is not part of the recorded recipe


# -- no host synchronisation per step ------------------------------------------------------------------------------
READS = ("item", "__float__", "__int__", "__bool__", "tolist", "numpy", "cpu", "nonzero")


def test_training_steps_do_not_read_from_the_device(fake_root, tmp_path, monkeypatch):
    """Every way a tensor's value reaches the host is counted inside the training steps: none may happen (on CUDA
    each would stall the GPU queue). The loss is read every `sync_every` steps, outside the steps."""
    from bench.runner import train_suite
    from bench.train import RunOptions
    from bench.safety import StopRequests
    counts = {"in_step": 0, "steps": 0}
    inside = {"on": False}
    for name in READS:
        real = getattr(torch.Tensor, name)

        def counting(self, *a, _real=real, **k):
            if inside["on"]:
                counts["in_step"] += 1
            return _real(self, *a, **k)
        monkeypatch.setattr(torch.Tensor, name, counting)
    real_step = StopRequests.step
    import contextlib

    @contextlib.contextmanager
    def watched(self):
        inside["on"] = True
        counts["steps"] += 1
        try:
            with real_step(self):
                yield
        finally:
            inside["on"] = False
    monkeypatch.setattr(StopRequests, "step", watched)
    for member, suite, variants in (("segnet-basic", "camvid-decoder-variants", ["natural-frequency"]),
                                    ("deeplab-largefov", "camvid-controlled", None)):
        train_suite(suite, profile="smoke", members=[member], variants=variants, data_root=fake_root,
                  results=tmp_path / member, checkpoints=tmp_path / "c", log=lambda m: None,
                  options=RunOptions(sync_every=10),
                  overrides={"image_size": [64, 96], "max_iters": 12, "eval_every_iters": 12, "batch_size": 2,
                             "hflip": True, "encoder_weights": "none", "budgets_iters": []})
    assert counts["steps"] == 24 and counts["in_step"] == 0, counts


def test_fused_sgd_equals_the_unfused_one():
    torch.manual_seed(0)
    from bench import architectures
    from bench.config import load_suite
    from bench.build import param_groups
    recipe = load_suite("camvid-decoder-variants").resolve("full", "median-frequency")
    models = [architectures.create_model("fcn-basic") for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    try:
        opts = [torch.optim.SGD(param_groups(models[0], recipe), lr=0.1, momentum=0.9),
                torch.optim.SGD(param_groups(models[1], recipe), lr=0.1, momentum=0.9, fused=True)]
    except (RuntimeError, TypeError) as exc:
        pytest.skip(f"fused SGD not available on this device: {exc}")
    x = torch.randn(2, 3, 64, 64)
    for _ in range(3):
        for m, o in zip(models, opts):
            o.zero_grad()
            m(x).square().mean().backward()
            o.step()
    for p, q in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_a_diverged_run_does_not_stop_the_plan(fake_root, tmp_path, monkeypatch):
    """Lease 2 lost its remaining minutes when FCN-Basic diverged: the plan now goes on, then names it."""
    suite = _suite(tmp_path)
    plan = tmp_path / "p.toml"
    plan.write_text(f'[[step]]\nsuite = "{suite}"\nmembers = ["fcn-basic", "segnet-basic"]\n'
                    'variants = ["natural-frequency"]\nprofile = "smoke"\n')
    real_build = train.build_model

    def fcn_basic_diverges(member, *a, **k):
        model, sha = real_build(member, *a, **k)
        if member == "fcn-basic":
            model.register_forward_hook(lambda mod, inp, out: out * float("nan"))
        return model, sha
    monkeypatch.setattr(train, "build_model", fcn_basic_diverges)
    logs = []
    with pytest.raises(BenchError, match=r"1 run\(s\) diverged or could not run and were not recorded: "
                                         r".*fcn-basic .*became nan"):
        run_plan(plan, data_root=fake_root, results=tmp_path / "r", checkpoints=tmp_path / "c", log=logs.append)
    recorded = [p.parent.parent.name for p in (tmp_path / "r").rglob("run.json")]
    assert recorded == ["segnet-basic"]
    assert any(line.startswith("error:") and "the plan goes on" in line for line in logs)


def test_a_postprocessed_member_that_cannot_run_does_not_stop_the_plan(fake_root, tmp_path):
    """The dense CRF over a DeepLab run recorded without its weights: one error line, and the plan goes on."""
    plan = tmp_path / "p.toml"
    plan.write_text('[[step]]\nsuite = "camvid-controlled"\nmembers = ["deeplab-largefov-densecrf"]\nprofile = "smoke"\n'
                    '[[step]]\nsuite = "camvid-decoder-variants"\nmembers = ["segnet-basic"]\n'
                    'variants = ["natural-frequency"]\nprofile = "smoke"\n')
    logs = []
    with pytest.raises(BenchError, match=r"1 run\(s\) diverged or could not run .*deeplab-largefov-densecrf .*"
                                         r"no recorded deeplab-largefov run"):
        run_plan(plan, data_root=fake_root, results=tmp_path / "r", checkpoints=tmp_path / "c", log=logs.append)
    assert [p.parent.parent.name for p in (tmp_path / "r").rglob("run.json")] == ["segnet-basic"]


def test_the_docs_budget_table_is_the_plans_costs_at_the_rate_recorded_on_an_h100():
    from pathlib import Path
    from bench.plan import PLANS_DIR, costs_markdown, plan_costs
    repo = Path(__file__).resolve().parents[1]
    text = (repo / "docs" / "training.md").read_text()
    block = text.split("<!-- budget table: python -m bench.plan paper H100 -->\n")[1].split("<!-- end budget")[0]
    rows = plan_costs(PLANS_DIR / "paper.toml", results=repo / "results", gpu="H100")
    assert block == costs_markdown(rows, "H100")  # regenerate: python tools/update-docs.py
    segnet = next(r for r in rows if r["member"] == "segnet")
    assert segnet["first_test_point"] == 40000 and segnet["cap"] == 140000 and 5 < segnet["minutes_to_first_test_point"]


def test_a_run_another_process_trains_is_skipped_so_two_processes_share_a_plan(fake_root, tmp_path):
    """gpu-lease.sh runs the plan in two processes on one GPU where the step selection measured that two train
    more together: a run the other holds (its run lock) is skipped, not failed, and the plan goes on."""
    from bench.safety import RunLock
    suite = _suite(tmp_path)
    plan = tmp_path / "p.toml"
    plan.write_text(f'[[step]]\nsuite = "{suite}"\nmembers = ["fcn-basic", "segnet-basic"]\n'
                    'variants = ["natural-frequency"]\nprofile = "smoke"\n')
    held = RunLock(tmp_path / "r" / "camvid-decoder-variants" / "fcn-basic", "smoke-natural-frequency-seed0")
    with held:
        logs = []
        out = run_plan(plan, data_root=fake_root, results=tmp_path / "r", checkpoints=tmp_path / "c",
                       log=logs.append)
    assert out["done"] and out["skipped"] == 1
    assert [p.parent.parent.name for p in (tmp_path / "r").rglob("run.json")] == ["segnet-basic"]
    assert any(line.endswith("fcn-basic / natural-frequency / seed 0 / smoke: trained by another process now; "
                             "skipped") for line in logs)
