"""`bench profile`: the CPU path end to end, and the decoder-storage accounting of known tensor layouts."""
import json

import pytest
import torch
from click.testing import CliRunner

from bench import architectures
from bench.cli import main
from bench.profile import decoder_kept_from_first_encoder, summarise


@pytest.mark.parametrize("name,expected_bytes,what", [
    ("fcn-basic-no-dim-reduction", 64 * 180 * 240 * 4, "feature maps (64, 180, 240) torch.float32"),  # 11.06 MB
    ("fcn-basic", 11 * 180 * 240 * 4, "feature maps (11, 180, 240) torch.float32"),  # Table 1's "about 1.9 MB"
    ("segnet-basic", 64 * 180 * 240 * 8, "pool indices (64, 180, 240) torch.int64"),
    ("fcn-basic-no-addition", 0, None),
    ("bilinear-interpolation", 0, None),
])
def test_decoder_storage_of_known_layouts(name, expected_bytes, what):
    model = architectures.create_model(name).eval()
    kept = decoder_kept_from_first_encoder(model, torch.zeros(1, 3, 360, 480))
    assert kept["bytes"] == expected_bytes
    assert kept["what"] == ([what] if what else [])


def test_storage_multiplier_paper_convention_matches_table1_where_defined():
    from bench.published import read_rows
    by_paper = {architectures.model_meta(n)["paper_name"]: n for n in architectures.list_models()}
    for row in read_rows("table1"):
        if row["storage_mult"] in ("n/a", "") or row["variant"] == "SegNet-Basic-EncoderAddition":
            continue  # EncoderAddition keeps indices and maps: 65 in this convention, 64 in the paper
        model = architectures.create_model(by_paper[row["variant"]]).eval()
        kept = decoder_kept_from_first_encoder(model, torch.zeros(1, 3, 64, 96))
        assert kept["multiplier_paper_convention"] == int(row["storage_mult"]), row["variant"]


def test_summary_statistics():
    s = summarise([3.0, 1.0, 2.0, 10.0])
    assert s["median_ms"] == 2.5 and s["min_ms"] == 1.0 and s["max_ms"] == 10.0 and s["runs"] == 4


def test_profile_cpu_end_to_end(tmp_path):
    r = CliRunner().invoke(main, ["profile", "--models", "segnet-basic,fcn-basic", "--device", "cpu", "--size",
                                  "64x96", "--runs", "2", "--warmup", "1", "--results", str(tmp_path)])
    assert r.exit_code == 0, r.output
    (path,) = (tmp_path / "profile").glob("*/profile.json")
    rec = json.loads(path.read_text())
    assert rec["kind"] == "profile" and rec["settings"]["device"] == "cpu" and "cpu" in rec["labels"]
    assert [m["model"] for m in rec["models"]] == ["segnet-basic", "fcn-basic"]
    for m in rec["models"]:
        assert m["forward"]["median_ms"] > 0 and m["forward"]["runs"] == 2
        assert m["train_memory"]["batch"] == 4 and "process_peak_rss_growth_MB" in m["train_memory"]
        assert m["model_size_MB"] > m["params"] * 4 / 1e6 * 0.99
    assert rec["provenance"]["libraries"]["torch"]


def test_profile_bad_input(tmp_path):
    r = CliRunner().invoke(main, ["profile", "--models", "segnet,nope", "--results", str(tmp_path)])
    assert r.exit_code == 2 and "unknown model 'nope'" in r.output
    r = CliRunner().invoke(main, ["profile", "--models", "segnet", "--size", "big", "--results", str(tmp_path)])
    assert r.exit_code == 2 and "expected HxW" in r.output
    assert not (tmp_path / "profile").exists()


# -- the Caffe-style memory count (bench/caffe_memory.py) ------------------------------------------------------------
class _PoolUnpool(torch.nn.Module):
    """conv 3->4 (3x3) -> BN -> ReLU -> 2x2 max-pool; unpooled with its indices when ``unpool``; conv 4->2 (1x1)."""

    def __init__(self, unpool: bool):
        super().__init__()
        self.conv1, self.bn, self.conv2, self.unpool = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), \
            torch.nn.Conv2d(4, 2, 1), unpool

    def forward(self, x):
        x = torch.relu_(self.bn(self.conv1(x)))
        y, idx = torch.nn.functional.max_pool2d(x, 2, 2, return_indices=True)
        if self.unpool:
            y = torch.nn.functional.max_unpool2d(y, idx, 2, 2, output_size=x.shape[-2:])
        return self.conv2(y)


def test_caffe_style_count_keeps_every_layer_output_and_only_the_indices_a_layer_reads():
    from bench.caffe_memory import caffe_style_memory
    # at 8x8, batch 1: conv1 4x8x8 = 256 (BN and ReLU in place), pool 4x4x4 = 64, its indices 64 (read by the
    # unpooling), unpool 4x8x8 = 256, conv2 2x8x8 = 128, input 3x8x8 = 192, softmax 2x8x8 = 128: 1,088 floats;
    # weights: conv1 108 + 4, BN 4 + 4 + running mean, var 4 + 4 + 1 step count, conv2 8 + 2: 139 floats
    with_unpool = caffe_style_memory(_PoolUnpool(True), (8, 8), train_batch=2)
    assert with_unpool["weights_bytes"] == 139 * 4 and with_unpool["inference_bytes"] == (1088 + 139) * 4
    # training at batch 2: every blob twice (data, diff), the weights three times (data, diff, momentum)
    assert with_unpool["train_bytes"] == 2 * 2 * 1088 * 4 + 3 * 139 * 4
    # without unpooling nothing reads the indices and nothing is unpooled; conv2 runs at 4x4 (32 floats)
    plain = caffe_style_memory(_PoolUnpool(False), (8, 8))
    assert plain["inference_bytes"] == (256 + 64 + 32 + 192 + 32 + 139) * 4


def test_caffe_style_count_of_segnet_and_deeplab_and_is_the_same_wherever_the_model_was_built():
    from bench import architectures
    from bench.caffe_memory import caffe_style_memory
    with torch.device("meta"):
        segnet = caffe_style_memory(architectures.create_model("segnet"), (360, 480))
        deeplab = caffe_style_memory(architectures.create_model("deeplab-largefov"), (360, 480))
    # issue 34's count of Caffe's blobs and weights, fp32, batch 1: SegNet 572 MB, DeepLab-LargeFOV 357 MB
    assert round(segnet["inference_bytes"] / 1e6) == 572 and round(deeplab["inference_bytes"] / 1e6) == 357
    again = caffe_style_memory(architectures.create_model("deeplab-largefov"), (360, 480))  # built on the CPU
    assert again["inference_bytes"] == deeplab["inference_bytes"] and again["train_bytes"] == deeplab["train_bytes"]
