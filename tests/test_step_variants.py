"""Step variants that keep the numbers (issue 50): each gives the eager step's losses over 50 updates with the same
recipe and seed; the selection times and checks them and `bench run` takes the fastest that matched on that GPU."""
import json
from types import SimpleNamespace

import pytest
import torch

from bench.benchmarks import select_step
from bench.step_variants import VARIANTS, chosen_variant, default_variant, losses_match, selection_key

CPU = torch.device("cpu")
SMALL = dict(batch=2, size=(64, 96))


def _losses(variant_name, steps=50, model="fcn-basic"):
    run, _ = select_step.build_step(model, VARIANTS[variant_name], CPU, SMALL["batch"], SMALL["size"])
    return [float(run(i)) for i in range(steps)]


@pytest.fixture(scope="module")
def eager_losses():
    return _losses("eager-nchw")


@pytest.mark.parametrize("name", ["eager"])
def test_a_layout_variant_gives_the_eager_steps_losses(name, eager_losses):
    ok, why = losses_match(eager_losses, _losses(name))
    assert ok, why


@pytest.mark.slow
@pytest.mark.parametrize("name", ["compile", "compile-nchw", "compile-max-autotune"])
def test_a_compiled_variant_gives_the_eager_steps_losses(name, eager_losses):
    ok, why = losses_match(eager_losses, _losses(name))
    assert ok, why


@pytest.mark.skipif(not torch.cuda.is_available(), reason="a CUDA graph needs a CUDA device")
def test_the_cuda_graph_variant_gives_the_eager_steps_losses():
    cuda = torch.device("cuda")
    losses = {}
    for name in ("eager", "cuda-graph"):
        run, _ = select_step.build_step("fcn-basic", VARIANTS[name], cuda, 2, (64, 96))
        losses[name] = [float(run(i)) for i in range(50)]
    ok, why = losses_match(losses["eager"], losses["cuda-graph"])
    assert ok, why


def test_the_cuda_graph_variant_says_in_one_line_why_it_does_not_run_on_a_cpu():
    assert VARIANTS["cuda-graph"].unavailable(CPU) == "a CUDA graph needs a CUDA device"
    row = select_step.time_variant("fcn-basic", VARIANTS["cuda-graph"], CPU, 2, (64, 96), 4, 2)
    assert row == {"variant": "cuda-graph", "built": False, "reason": "a CUDA graph needs a CUDA device"}
    assert default_variant(CPU).name == "eager-nchw" and default_variant(SimpleNamespace(type="cuda")).name == "eager"


def test_losses_match_within_bf16_tolerance_and_says_where_they_part():
    ref = [2.4, 1.8, 1.2]
    assert losses_match(ref, [2.41, 1.79, 1.21]) == (True, "")
    ok, why = losses_match(ref, [2.4, 1.8, 1.5])
    assert not ok and why == ("loss 1.5000 against the eager step's 1.2000 at update 3, beyond the tolerance "
                              "(0.02 + 5%)")
    assert losses_match(ref, [2.4, float("nan"), 1.2]) == (False, "loss non-finite at update 2")


def test_select_runs_end_to_end_on_the_cpu_and_never_chooses_a_variant_that_fails(tmp_path, monkeypatch, capsys):
    from bench.benchmarks import train_speed
    plan = tmp_path / "plan.toml"
    plan.write_text('name = "tiny"\n[[step]]\nsuite = "camvid-decoder-variants"\nmembers = ["fcn-basic"]\n'
                    'variants = ["median-frequency"]\n')
    real = select_step.build_step

    def broken_nchw_is_fine_eager_breaks(name, variant, device, batch, size, precision="auto"):
        if variant.name == "eager":
            raise RuntimeError("no kernel for this layout\nsecond line")
        return real(name, variant, device, batch, size, precision)
    monkeypatch.setattr(select_step, "build_step", broken_nchw_is_fine_eager_breaks)
    out = tmp_path / "select.json"
    train_speed.main(["--select", "--plan", str(plan), "--profile", "smoke", "--steps", "6", "--timed", "3",
                      "--variants", "eager,cuda-graph", "--device", "cpu", "--out", str(out)])
    record = json.loads(out.read_text())
    rows = {r["variant"]: r for r in record["rows"]}
    assert rows["eager-nchw"]["built"] and rows["eager-nchw"]["matched"]
    assert rows["eager"] == {**rows["eager"], "built": False,
                             "reason": "RuntimeError: no kernel for this layout"}  # one line
    assert rows["cuda-graph"]["reason"] == "a CUDA graph needs a CUDA device"
    key = selection_key("cpu", torch.__version__, "fcn-basic", 2, (240, 320))  # the smoke recipe's batch and size
    assert record["chosen"] == {key: "eager-nchw"}
    assert set(record["profiles"]["fcn-basic"]["groups"]) >= {"convolution", "batch norm"}
    assert "chosen: fcn-basic eager-nchw" in capsys.readouterr().out


def test_bench_run_takes_the_newest_selection_of_this_gpu_torch_model_batch_and_size(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    gpu = SimpleNamespace(type="cuda")
    key = selection_key("NVIDIA H200", torch.__version__, "segnet", 5, (360, 480))
    (tmp_path / "train_speed-select-20261201T000000Z.json").write_text(json.dumps({"chosen": {key: "compile"}}))
    (tmp_path / "train_speed-select-20261202T000000Z.json").write_text(json.dumps({"chosen": {key: "cuda-graph"}}))
    variant, source = chosen_variant(gpu, "segnet", 5, (360, 480), [tmp_path])
    assert variant.name == "cuda-graph" and source.endswith("20261202T000000Z.json")
    for other in [("segnet", 4, (360, 480)), ("segnet", 5, (180, 240)), ("fcn", 5, (360, 480))]:
        assert chosen_variant(gpu, *other, [tmp_path])[0].name == "eager"  # nothing selected for it: the default
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    assert chosen_variant(gpu, "segnet", 5, (360, 480), [tmp_path])[1].startswith("default")
