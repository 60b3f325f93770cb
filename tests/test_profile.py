"""`bench profile`: the CPU path end to end, and the decoder-storage accounting of known tensor layouts."""
import json

import pytest
import torch
from click.testing import CliRunner

import architectures
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
