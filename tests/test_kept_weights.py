"""Issue 51: trained models people can watch and use. A run keeps its selected weights (safetensors, digest in
run.json, committed beside the record where small), `bench.load_model` gives them back and reproduces the record's
predictions, `bench eval --reinfer` re-tests a record from them (and refuses weights of another run), `bench
predict` runs them on images of any size, and each run writes TensorBoard curves that a resume continues without
duplicating a step. One tiny `bench run` of SegNet-Basic on a synthetic CamVid, shared by the tests."""
from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from bench.cli import main
from bench.errors import BenchError

TINY = ["--set", "image_size=[64,96]", "--set", "max_iters=4", "--set", "batch_size=2", "--set",
        "eval_every_iters=2", "--set", "deterministic=true"]


def run_args(root, base, seed=0):
    return ["run", "--suite", "camvid-decoder-variants", "--members", "segnet-basic", "--variants",
            "natural-frequency", "--profile", "smoke", "--seeds", str(seed), "--data-root", str(root),
            "--results", str(base / "results"), "--checkpoints", str(base / "ckpt"), "--tensorboard",
            str(base / "tb"), *TINY]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Two tiny runs (seeds 0 and 1) through the CLI, with the device's peak made known so MFU is written."""
    from bench.datasets.synthetic import make_synthetic_camvid
    base = tmp_path_factory.mktemp("kept")
    root = make_synthetic_camvid(base / "data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("bench.step.peak_flops", lambda device, precision: 1e12)
        results = [CliRunner().invoke(main, run_args(root, base, seed)) for seed in (0, 1)]
    for r in results:
        assert r.exit_code == 0, r.output
    folders = sorted((base / "results" / "camvid-decoder-variants" / "segnet-basic").iterdir())
    return {"base": base, "root": root, "folders": folders, "output": results[0].output}


def test_a_run_keeps_its_selected_weights_sealed_with_its_record(recorded):
    from bench.seal import verify_seals
    from bench.weights import COMMITTED_NAME, kept_weights_path, sha256_file
    folder = recorded["folders"][0]
    rec = json.loads((folder / "run.json").read_text())
    kept = kept_weights_path(recorded["base"] / "ckpt", rec["suite"], rec["member"], rec["run_id"])
    assert rec["weights"]["sha256"] == sha256_file(kept) == sha256_file(folder / COMMITTED_NAME)
    assert rec["weights"]["file"] == COMMITTED_NAME and rec["weights"]["iteration"] == rec["selected"]["iteration"]
    assert [o["status"] for o in verify_seals(recorded["base"] / "results", recorded["folders"])] == ["pass"] * 2
    from safetensors.torch import load_file  # loadable without this harness
    assert "decoders.0.0.weight" in load_file(str(kept)) or len(load_file(str(kept))) > 10


def test_load_model_reproduces_the_test_predictions_exactly(recorded):
    import bench
    from bench.reinfer import reinfer
    folder = recorded["folders"][0]
    model = bench.load_model(folder, checkpoints=recorded["base"] / "ckpt")
    assert not model.training and model.kept_weights["model"] == "segnet-basic"
    result = reinfer(folder, data_root=recorded["root"], log=lambda *_: None)
    assert result["agreement"] == 1.0 and result["within_tolerance"] and result["tolerance"] == "same"
    assert all(v == 0 for v in result["delta"].values()) and result["images"] == 2


def test_eval_reinfer_agrees_and_refuses_weights_of_another_run(recorded, tmp_path):
    folder, other = recorded["folders"]
    ok = CliRunner().invoke(main, ["eval", "--run", str(folder), "--reinfer", "--data-root", str(recorded["root"])])
    assert ok.exit_code == 0 and "100.0000% of pixels agree" in ok.output, ok.output
    copy = tmp_path / "r" / "camvid-decoder-variants" / "segnet-basic" / folder.name
    shutil.copytree(folder, copy)
    shutil.copy(other / "weights.safetensors", copy / "weights.safetensors")  # the other seed's weights
    bad = CliRunner().invoke(main, ["eval", "--run", str(copy), "--reinfer", "--data-root", str(recorded["root"])])
    assert bad.exit_code == 2 and "is not the" in bad.output and "weights of another run" in bad.output
    assert len(bad.output.strip().splitlines()) == 1


def test_load_model_refuses_a_changed_model(recorded, monkeypatch):
    import bench
    from bench import architectures
    monkeypatch.setattr(architectures, "model_revision", lambda name: 99)
    with pytest.raises(BenchError, match="this harness builds revision 99: a changed model does not take old weights"):
        bench.load_model(recorded["folders"][0])


def test_check_reinfer_retests_every_record_with_weights(recorded):
    from bench.reinfer import reinfer_outcomes
    outcomes = reinfer_outcomes(recorded["base"] / "results", data_root=recorded["root"], images=1)
    assert [o["status"] for o in outcomes] == ["pass", "pass"] and "1 images" in outcomes[0]["detail"]
    r = CliRunner().invoke(main, ["check", "--results", str(recorded["base"] / "results"), "--data-root",
                                  str(recorded["root"]), "--reinfer", "--reinfer-images", "1"])
    assert r.exit_code == 0 and "re-tested from their weights (--reinfer): 2 record(s), 2 within tolerance" in r.output


def test_predict_writes_labels_overlays_and_a_sheet_and_names_a_bad_file(recorded, tmp_path):
    rng = np.random.default_rng(0)
    images = tmp_path / "photos"
    images.mkdir()
    Image.fromarray(rng.integers(0, 255, (50, 70, 3), np.uint8)).save(images / "a.jpg")
    Image.fromarray(rng.integers(0, 255, (90, 40, 3), np.uint8)).save(images / "b.png")
    Image.fromarray(rng.integers(0, 255, (30, 30), np.uint8)).save(images / "grey.png")
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["predict", "--run", str(recorded["folders"][0]), str(images), "--out", str(out)])
    assert r.exit_code == 2
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and "broken.png: cannot be read as an image" in errors[0]
    assert "grey.png: has 1 channel (L); the model takes 3 (RGB)" in errors[1]
    from bench.labelmap import read_label_png
    for name, shape in (("a", (50, 70)), ("b", (90, 40))):
        label_map = read_label_png(out / "labels" / f"{name}.png", shape, max_label=10)  # at the image's own size
        assert label_map.shape == shape
        assert Image.open(out / "overlays" / f"{name}.png").size[1] >= shape[0]
    assert (out / "sheet.png").is_file() and not (out / "labels" / "broken.png").exists()
    again = CliRunner().invoke(main, ["predict", "--run", str(recorded["folders"][0]), str(images), "--out", str(out)])
    assert again.exit_code == 2 and "already holds files" in again.output


def test_tensorboard_holds_the_curves_and_a_resume_writes_no_step_twice(recorded, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    assert recorded["output"].count("live curves: tensorboard --logdir") == 1
    rec = json.loads((recorded["folders"][0] / "run.json").read_text())
    acc = EventAccumulator(rec["tensorboard"], size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"train/loss", "train/lr", "train/images_per_second", "train/mfu", "val/G", "val/C",
            "val/mIoU", "val/BF"} <= set(tags["scalars"])
    assert [e.step for e in acc.Scalars("val/BF")] == [2, 4]  # scored in the background, at its evaluation's step
    assert [e.step for e in acc.Scalars("val/G")] == [2, 4] and any(t.startswith("val_iou/") for t in tags["scalars"])
    assert len(tags["images"]) == 2 and len(acc.Images(tags["images"][0])) == 2  # the synthetic val split has two

    # a run interrupted at 2, a process that wrote past its checkpoint and died, then --resume
    from bench.runner import train_suite
    from bench.train import RunOptions
    kw = dict(profile="smoke", members=["segnet-basic"], variants=["natural-frequency"], data_root=recorded["root"],
              results=tmp_path / "results", checkpoints=tmp_path / "ckpt", log=lambda m: None,
              overrides={"image_size": [64, 96], "max_iters": 4, "batch_size": 2, "eval_every_iters": 2},
              options=RunOptions(tensorboard=str(tmp_path / "tb"), sync_every=1))
    with pytest.raises(BenchError, match="interrupted at iteration 2"):
        train_suite("camvid-decoder-variants", stop_after=2, **kw)
    (folder,) = list((tmp_path / "tb").rglob("events.out.tfevents.*"))[0].parent,
    from torch.utils.tensorboard import SummaryWriter
    time.sleep(1.1)
    with SummaryWriter(str(folder)) as ghost:
        for step in (3, 4):
            ghost.add_scalar("train/loss", 123.0, step)
    time.sleep(1.1)
    (done,) = train_suite("camvid-decoder-variants", resume=True, **kw)
    assert json.loads((done / "run.json").read_text())["tensorboard"] == str(folder)
    acc = EventAccumulator(str(folder))
    acc.Reload()
    steps = [e.step for e in acc.Scalars("train/loss")]
    assert steps == [1, 2, 3, 4] and 123.0 not in [e.value for e in acc.Scalars("train/loss")]
    assert [e.step for e in acc.Scalars("val/G")] == [2, 4]
