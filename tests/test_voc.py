"""Pascal VOC 2012 (datasets/voc.py) on a tiny tree written the way the devkit's files are: JPEG images of
different sizes, palette PNG labels with 255 borders, the ImageSets/Segmentation lists."""
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from bench import datasets
from bench.cli import main
from bench.errors import BenchError
from bench.datasets.voc import VOC2012, voc_palette


def make_fake_voc(root, n_train=20, n_val=4, seed=0):
    """<root>/VOCdevkit/VOC2012 with n_train + n_val images of random sizes: a background, a box of a class
    with a 255 border, as the devkit draws object outlines."""
    rng = np.random.default_rng(seed)
    base = root / "VOCdevkit" / "VOC2012"
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (base / d).mkdir(parents=True, exist_ok=True)
    palette = [v for rgb in voc_palette() for v in rgb]
    names = [f"2007_{i:06d}" for i in range(n_train + n_val)]
    for name in names:
        h, w = int(rng.integers(40, 90)), int(rng.integers(40, 90))
        label = np.zeros((h, w), np.uint8)
        y, x, c = int(rng.integers(5, h // 2)), int(rng.integers(5, w // 2)), int(rng.integers(1, 21))
        label[y - 2:y + 22, x - 2:x + 22] = 255
        label[y:y + 20, x:x + 20] = c
        png = Image.fromarray(label, mode="P")
        png.putpalette(palette)
        png.save(base / "SegmentationClass" / f"{name}.png")
        image = np.asarray(voc_palette(), np.uint8)[label] // 2 + rng.integers(0, 60, (h, w, 3)).astype(np.uint8)
        Image.fromarray(image).save(base / "JPEGImages" / f"{name}.jpg", quality=90)
    (base / "ImageSets/Segmentation/train.txt").write_text("\n".join(names[:n_train]) + "\n")
    (base / "ImageSets/Segmentation/val.txt").write_text("\n".join(names[n_train:]) + "\n")
    return root


@pytest.fixture
def voc_root(tmp_path):
    return make_fake_voc(tmp_path / "data")


def test_splits_labels_and_void(voc_root):
    ds = datasets.get_dataset("voc2012", voc_root)
    assert isinstance(ds, VOC2012) and ds.image_size is None and ds.num_classes == 21 and ds.void_label == 21
    train, val, test = (ds.samples(s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (18, 2, 4)  # every 10th train image is our val
    assert not {s.name for s in val} & {s.name for s in train}
    assert val[0].name == "2007_000009.png" and test[0].name == "2007_000020.png"
    label, image = ds.read_label(test[0]), ds.read_image(test[0])
    assert image.shape[:2] == label.shape and image.dtype == np.uint8
    raw = np.array(Image.open(test[0].label))
    assert (label[raw == 255] == 21).all() and (label[raw != 255] == raw[raw != 255]).all()
    assert len({ds.read_label(s).shape for s in train}) > 1  # sizes vary
    assert ds.palette[1] == (128, 0, 0) and ds.palette[15] == (192, 128, 128)  # aeroplane, person


def test_bad_input_is_one_line(voc_root):
    ds = datasets.get_dataset("voc2012", voc_root)
    s = ds.samples("test")[0]
    bad = np.array(Image.open(s.label))
    bad[0, 0] = 22
    png = Image.fromarray(bad, mode="P")
    png.putpalette([v for rgb in voc_palette() for v in rgb])
    png.save(s.label)
    with pytest.raises(BenchError, match=f"{s.label}: label map has index 22 \\(classes 0..20, 255 = void\\)"):
        ds.read_label(s)
    lst = ds.list_file("test")
    lst.write_text(lst.read_text() + "2099_000001\n")
    with pytest.raises(BenchError, match=r"val.txt:5: names 2099_000001 but its image .* is missing"):
        ds.samples("test")
    r = CliRunner().invoke(main, ["data", "verify", "voc2012", "--data-root", str(voc_root / "nowhere")])
    assert r.exit_code == 2 and "VOC 2012 folder not found" in r.output and "Traceback" not in r.output


def test_verify_and_scoring_at_each_images_own_size(voc_root, tmp_path):
    r = CliRunner().invoke(main, ["data", "verify", "voc2012", "--data-root", str(voc_root)])
    assert r.exit_code == 0 and "voc2012: OK" in r.output and "train 18, val 2, test 4" in r.output, r.output
    ds = datasets.get_dataset("voc2012", voc_root)
    preds = tmp_path / "preds"
    preds.mkdir()
    for s in ds.samples("test"):
        label = ds.read_label(s)
        Image.fromarray(np.where(label == 21, 0, label).astype(np.uint8)).save(preds / s.name)  # void: anything
    out = tmp_path / "scores.json"
    r = CliRunner().invoke(main, ["eval", "--dataset", "voc2012", "--split", "test", "--predictions", str(preds),
                                  "--data-root", str(voc_root), "--out", str(out)])
    assert r.exit_code == 0, r.output
    import json
    scores = json.loads(out.read_text())
    assert scores["G"] == 100.0 and scores["num_images"] == 4  # void is not scored by G
    from bench.evaluate import score_label_maps
    direct = score_label_maps([np.array(Image.open(preds / s.name)) for s in ds.samples("test")],
                              [ds.read_label(s) for s in ds.samples("test")], class_names=ds.class_names,
                              void_label=21, workers=1)
    assert scores["BF"] == direct["BF"] < 100  # BF does not mask void (the authors' convention)


@pytest.mark.slow
def test_the_voc_suite_runs_both_variants_on_the_fixture(voc_root, tmp_path):
    """`bench run --suite voc2012-transfer --profile smoke`: SegNet and FCN, encoder frozen and fine-tuned, on
    the tiny tree; test predictions written and scored at each image's own size."""
    import json

    from tests.conftest import vgg16_weights_file
    results = tmp_path / "results"
    r = CliRunner().invoke(main, ["run", "--suite", "voc2012-transfer", "--profile", "smoke", "--data-root",
                                  str(voc_root), "--results", str(results), "--checkpoints", str(tmp_path / "ckpt"),
                                  "--encoder-weights", str(vgg16_weights_file())])
    assert r.exit_code == 0, r.output
    records = {(p.parent.parent.name, json.loads(p.read_text())["variant"]): json.loads(p.read_text())
               for p in results.rglob("run.json")}
    assert set(records) == {(m, v) for m in ("segnet", "fcn") for v in ("frozen-encoder", "fine-tuned")}
    frozen, tuned = records["segnet", "frozen-encoder"], records["segnet", "fine-tuned"]
    assert frozen["model"]["frozen_parameters"] > 0 and tuned["model"]["frozen_parameters"] == 0
    assert frozen["model"]["trained_parameters"] < tuned["model"]["trained_parameters"]
    assert frozen["config"]["hflip"] and frozen["config"]["rotation_degrees"] == 10.0
    ds = datasets.get_dataset("voc2012", voc_root)
    folder = next(results.rglob("segnet/*frozen-encoder*")) / "predictions"
    for s in ds.samples("test")[:2]:  # the smoke profile scores 2 test images, each at its own size
        assert np.array(Image.open(folder / s.name)).shape == ds.read_label(s).shape
    assert frozen["predictions"]["at_original_size"] is True
    from bench.check import run_check
    rescored = [o for o in run_check(results, voc_root)["outcomes"] if o["rule"].startswith("rescore:")]
    assert len(rescored) == 4 and all(o["status"] == "pass" for o in rescored), rescored
    out = tmp_path / "reports"
    r = CliRunner().invoke(main, ["report", "--results", str(results), "--out", str(out), "--data-root", str(voc_root)])
    assert r.exit_code == 0, r.output
    page = (out / "voc2012-transfer" / "README.md").read_text()
    assert "Ours at the iteration validation selected (voc2012-transfer, smoke profile)" in page
    assert "| SegNet | frozen-encoder | 1 |" in page and "| FCN | fine-tuned | 1 |" in page
    assert "The study states for SegNet fine-tuned on val: mIoU about 48" in page
    for name in ("curves.png", "qualitative.png", "voc2012_transfer_selected.csv"):
        assert (out / "voc2012-transfer" / name).stat().st_size > 0, name
