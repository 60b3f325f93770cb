"""The roofline of a training step (issue 50), held to hand-worked counts."""
import pytest
import torch

from bench.roofline import GPUS, model_step_costs, step_costs


def test_a_single_convolution_by_hand():
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)  # 3*4*9 + 4 = 112 parameters
    c = model_step_costs(conv, batch=2, size=(8, 8))
    macs = 4 * 3 * 9 * 64
    assert c["macs_per_image"] == macs and c["trained_parameters"] == 112
    assert c["flops"] == 6 * macs * 2 + 4 * 112
    # stored per image: the input (3x8x8) and the conv's output (4x8x8), 8 bytes each; weights 32 bytes each
    assert c["activation_bytes_per_image"] == (3 * 64 + 4 * 64) * 8
    assert c["bytes"] == 2 * (3 * 64 + 4 * 64) * 8 + 32 * 112
    h200 = GPUS["H200"]
    assert c["floor_ms"]["H200"] == pytest.approx(1e3 * max(c["flops"] / h200["peak_flops"],
                                                            c["bytes"] / h200["bandwidth"]))
    assert c["bound"]["H200"] == "memory"  # a tiny layer moves more than it computes


def test_batch_norm_and_relu_are_taken_as_fused_and_pooling_indices_counted():
    plain = model_step_costs(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1)), batch=1, size=(8, 8))
    fused = model_step_costs(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4),
                                                 torch.nn.ReLU()), batch=1, size=(8, 8))
    assert fused["activation_bytes_per_image"] == plain["activation_bytes_per_image"]
    pooled = model_step_costs(torch.nn.MaxPool2d(2, 2, return_indices=True), batch=1, size=(8, 8))
    assert pooled["activation_bytes_per_image"] == (3 * 64 + 3 * 16) * 8 + 3 * 16 * 2


def test_segnet_basic_at_its_table_1_batch():
    c = step_costs("segnet-basic")
    assert c["batch"] == 12 and c["macs_per_image"] == 59_188_838_400  # architectures.md §6.1
    assert c["flops"] == 6 * 59_188_838_400 * 12 + 4 * 1_416_075
    assert c["bound"]["H200"] == "compute" and 4.0 < c["floor_ms"]["H200"] < 4.5


def test_the_docs_roofline_table_is_what_bench_roofline_prints():
    from pathlib import Path
    from bench import architectures
    from bench.roofline import roofline_table
    text = (Path(__file__).resolve().parents[1] / "docs" / "costs.md").read_text()
    block = text.split("<!-- roofline table: python -m bench.roofline -->\n")[1].split("<!-- end roofline")[0]
    models = [m for m in architectures.list_models() if architectures.model_facts(m).get("tables")]
    assert block == "\n".join(roofline_table(models)) + "\n"  # regenerate: python tools/update-docs.py


def test_the_reports_speed_table_puts_each_gpu_run_beside_its_floor():
    from bench.report.speed import table_speed
    from bench.roofline import step_costs
    rec = {"member": "segnet-basic", "variant": "median-frequency", "seed": 0, "device": "cuda", "precision": "bf16",
           "config": {"batch_size": 12, "image_size": [360, 480]},
           "provenance": {"machine": {"gpu": "NVIDIA H200"}},
           "timing": {"train_images_per_second": 440.0, "mfu": 0.158}}
    cpu = {**rec, "device": "cpu"}
    t = table_speed("camvid-decoder-variants", {("camvid-decoder-variants", "segnet-basic", "median-frequency"):
                                                [rec, cpu]})
    floor = step_costs("segnet-basic", 12, (360, 480))["floor_images_per_second"]["H200"]
    assert t.rows == [["SegNet-Basic [median-frequency]", 0, "NVIDIA H200", "bf16", "eager (before selection)", "440",
                       "15.8", f"{floor:,.0f}", f"{floor / 440:.1f}"]]  # the CPU run is not a GPU's
    assert table_speed("camvid-decoder-variants", {("s", "m", None): [cpu]}) is None


def test_the_catalogue_holds_each_models_training_activation_bytes_and_its_floor_without_torch():
    from bench import architectures
    from bench.roofline import floor_from_catalogue
    for name in architectures.list_models():
        c = step_costs(name)
        assert architectures.model_facts(name)["train_activation_bytes"] == c["activation_bytes_per_image"], name
        for gpu in GPUS:
            assert floor_from_catalogue(name, c["batch"], gpu) == pytest.approx(c["floor_images_per_second"][gpu])
