"""SUN RGB-D (datasets/sunrgbd.py) on a tiny fake release written the way the official files are: SUNRGBD.zip with
frame folders and JPEG images of different sizes; SUNRGBDtoolbox.zip with SUNRGBDMeta.mat and allsplit.mat
(MATLAB v5, as scipy writes and reads them), seg37list.mat, and SUNRGBD2Dseg.mat (MATLAB v7.3: HDF5 with a
512-byte user block, one object reference per frame under SUNRGBD2Dseg/seglabel, each map stored transposed)."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from bench import datasets
from bench.cli import main
from bench.errors import BenchError
from bench.datasets.sunrgbd import CLASS_NAMES, SUNRGBD
from bench.datasets.sunrgbd_prepare import prepare_sunrgbd

SENSORS = [("kv1/NYUdata", "NYU{:04d}", (427, 561)), ("kv2/kinect2data", "{:06d}_2014-06-22_rgbf000034-resize",
                                                        (530, 730)),
           ("realsense/lg", "2014_10_24-14_35_{:02d}-1311000073", (531, 681)),
           ("xtion/xtion_align_data", "2014_{:04d}", (441, 591))]
PREFIX = "/n/fs/sun3d/data/SUNRGBD/"


def fake_frames(n_train: int, n_test: int, scale: int = 10, seed: int = 0):
    """(folder, rgb name, official label map) of each frame; sizes the sensors' divided by ``scale``."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n_train + n_test):
        base, pattern, (h, w) = SENSORS[i % len(SENSORS)]
        stem = pattern.format(i + 1)
        h, w = h // scale, w // scale
        label = np.zeros((h, w), np.uint16)  # official: 0 void, 1..37 classes
        label[: h // 2] = 1 + (i % 37)  # a wall-like upper half
        label[h // 2:] = 2  # floor
        y, x = int(rng.integers(2, h // 2)), int(rng.integers(2, w // 2))
        label[y:y + h // 3, x:x + w // 3] = int(rng.integers(3, 38))
        label[:, :2] = 0  # a void strip
        frames.append((f"{base}/{stem}", f"{stem}.jpg", label))
    return frames[:n_train], frames[n_train:]


def write_seglabel_mat(path: Path, labels) -> None:
    """SUNRGBD2Dseg.mat as MATLAB v7.3 writes a 1 x N struct array with field seglabel."""
    import h5py
    with h5py.File(path, "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")
        group = f.create_group("SUNRGBD2Dseg")
        seglabel = group.create_dataset("seglabel", (len(labels), 1), dtype=h5py.ref_dtype)
        for i, label in enumerate(labels):
            seglabel[i, 0] = refs.create_dataset(f"l{i}", data=np.ascontiguousarray(label.T)).ref
    with open(path, "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Fri Sep  5 2014 HDF5 schema 1.00 .".ljust(116))


def make_fake_release(folder: Path, n_train: int = 24, n_test: int = 4, seed: int = 0, frames=None) -> Path:
    """<folder>/SUNRGBD.zip and <folder>/SUNRGBDtoolbox.zip as the official release lays them out."""
    import scipy.io
    folder.mkdir(parents=True, exist_ok=True)
    train, test = frames or fake_frames(n_train, n_test, seed=seed)
    everything = train + test
    order = np.random.default_rng(seed).permutation(len(everything))  # SUNRGBDMeta's order is not the split's
    meta_frames = [everything[i] for i in order]
    with zipfile.ZipFile(folder / "SUNRGBD.zip", "w") as zf:
        for j, (path, name, label) in enumerate(meta_frames):
            rgb = np.zeros((*label.shape, 3), np.uint8)
            rgb[...] = (np.asarray(label, np.int64)[..., None] * np.array([7, 13, 29])) % 256
            buf = __import__("io").BytesIO()
            Image.fromarray(rgb).save(buf, "JPEG", quality=90)
            zf.writestr(f"SUNRGBD/{path}/image/{name}", buf.getvalue())
            zf.writestr(f"SUNRGBD/{path}/depth/{name[:-4]}.png", b"depth")
            zf.writestr(f"SUNRGBD/{path}/scene.txt", "office")
    tmp = folder / "toolbox-build"
    (tmp / "Metadata").mkdir(parents=True, exist_ok=True)
    (tmp / "traintestSUNRGBD").mkdir(exist_ok=True)
    meta = np.zeros((1, len(meta_frames)), dtype=[("sequenceName", "O"), ("rgbpath", "O"), ("rgbname", "O"),
                                                  ("depthpath", "O")])
    for j, (path, name, _) in enumerate(meta_frames):
        meta[0, j] = (path, f"{PREFIX}{path}/image/{name}", name, f"{PREFIX}{path}/depth/{name[:-4]}.png")
    scipy.io.savemat(tmp / "Metadata/SUNRGBDMeta.mat", {"SUNRGBDMeta": meta})
    cell = lambda items: np.array([np.array(s) for s in items] + [None], dtype=object)[:-1].reshape(1, -1)
    scipy.io.savemat(tmp / "traintestSUNRGBD/allsplit.mat",
                     {"alltrain": cell([f"{PREFIX}{p}" for p, _, _ in train]),
                      "alltest": cell([f"{PREFIX}{p}" for p, _, _ in test])})
    scipy.io.savemat(tmp / "Metadata/seg37list.mat", {"seg37list": cell(CLASS_NAMES)})
    write_seglabel_mat(tmp / "Metadata/SUNRGBD2Dseg.mat", [label for _, _, label in meta_frames])
    with zipfile.ZipFile(folder / "SUNRGBDtoolbox.zip", "w") as zf:
        for p in sorted(tmp.rglob("*.mat")):
            zf.write(p, f"SUNRGBDtoolbox/{p.relative_to(tmp).as_posix()}")
    import shutil
    shutil.rmtree(tmp)
    return folder


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return make_fake_release(tmp_path_factory.mktemp("sunrgbd") / "archives")


@pytest.fixture(scope="module")
def sun_root(release, tmp_path_factory):
    root = tmp_path_factory.mktemp("sunrgbd-data")
    r = CliRunner().invoke(main, ["data", "prepare", "sunrgbd", "--data-root", str(root), "--archives", str(release)])
    assert r.exit_code == 0, r.output
    assert "sunrgbd: prepared 28 frames" in r.output and "train 24, test 4" in r.output, r.output
    return root


def test_prepare_writes_the_harness_layout_from_the_official_files(sun_root, release):
    ds = datasets.get_dataset("sunrgbd", sun_root)
    assert isinstance(ds, SUNRGBD) and ds.num_classes == 37 and ds.void_label == 37 and ds.image_size is None
    train, val, test = (ds.samples(s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (23, 1, 4)  # every 20th official train frame is our val
    assert not {s.name for s in val} & {s.name for s in train}
    frames_train, frames_test = fake_frames(24, 4)
    sources = {row.split("\t")[2]: row.split("\t")[0] for row in
               (sun_root / "SUNRGBD" / "sources.tsv").read_text().splitlines()[1:]}
    # the test split in allsplit's order; each name is the frame's position in SUNRGBDMeta (its 2Dseg index)
    assert [s.name for s in test] == [sources[p] + ".png" for p, _, _ in frames_test]
    for (path, name, official), s in zip(frames_test, test):
        label = ds.read_label(s)
        assert label.shape == official.shape == ds.read_image(s).shape[:2]
        assert (label[official == 0] == 37).all()  # official void 0 -> 37
        assert (label[official > 0] == official[official > 0] - 1).all()  # official 1..37 -> 0..36
        with zipfile.ZipFile(release / "SUNRGBD.zip") as zf:  # the JPEG's bytes are copied unchanged
            assert s.image.read_bytes() == zf.read(f"SUNRGBD/{path}/image/{name}")
    info = json.loads((sun_root / "SUNRGBD" / "prepared.json").read_text())
    assert info["frames"] == {"train": 24, "test": 4} and len(info["archives"]["SUNRGBD.zip"]["sha256"]) == 64
    r = CliRunner().invoke(main, ["data", "verify", "sunrgbd", "--data-root", str(sun_root)])
    assert r.exit_code == 0 and "train 23, val 1, test 4" in r.output and "files match" in r.output, r.output
    r = CliRunner().invoke(main, ["data", "prepare", "sunrgbd", "--data-root", str(sun_root), "--archives",
                                  str(release)])
    assert r.exit_code == 2 and "already prepared" in r.output and "Traceback" not in r.output


def test_class_weights(sun_root):
    ds = datasets.get_dataset("sunrgbd", sun_root)
    w = ds.class_weights("authors-prototxt")
    assert w.shape == (37,) and w[0] == 0.382592 and w[-1] == 4.017548  # wall ... bag of the prototxt's 1..37
    labels = [ds.read_label(s) for s in ds.samples("train")]
    mf = ds.class_weights("median-frequency", labels)
    assert mf.shape == (37,) and np.median(mf[mf > 0]) == pytest.approx(1.0, abs=0.5)
    # images of different sizes: freq(c) counts the pixels of the images holding c, each at its own size
    from bench.datasets.common import median_frequency_weights
    a, b = np.zeros((2, 4), np.uint8), np.ones((4, 4), np.uint8)
    w2 = median_frequency_weights([a, b], 2, void_label=2)
    assert w2.tolist() == [1.0, 1.0]  # each class fills every image it is in
    c = np.zeros((2, 4), np.uint8)
    c[0] = 1
    w3 = median_frequency_weights([c, b], 2, void_label=2)  # freq 0 = 4/8, freq 1 = 20/24; median 2/3
    assert w3 == pytest.approx([(0.5 + 20 / 24) / 2 / 0.5, (0.5 + 20 / 24) / 2 / (20 / 24)])


def test_bf_matches_the_authors_sun_convention(sun_root):
    """computeBFmeasure.m on SUN RGB-D loops over classes 1..37 of the official maps, one binary mask each, and
    never over void 0. Our maps hold those labels minus one with void at 37: the evaluator's BF equals that loop."""
    from bench.boundary import boundary_f1
    ds = datasets.get_dataset("sunrgbd", sun_root)
    rng = np.random.default_rng(1)
    official = lambda m: np.where(m == 37, 0, m.astype(np.int16) + 1)

    def script_bf(pred, gt):  # the script's loop, class by class on the official labels
        f1 = []
        for n in range(1, 38):
            s = boundary_f1((pred == n).astype(np.uint8), (gt == n).astype(np.uint8), num_classes=2)
            if s.counted[1]:
                f1.append(s.f1[1])
        return float(np.mean(f1)) if f1 else 0.0
    for s in ds.samples("test"):
        gt = ds.read_label(s)
        pred = np.roll(gt, 1, axis=1)
        noise = rng.random(gt.shape) < 0.05
        pred[noise] = rng.integers(0, 38, int(noise.sum()))  # 37 (void) predicted too: "not class n" to the script
        ours = boundary_f1(pred, gt, num_classes=37)
        assert ours.bf == pytest.approx(script_bf(official(pred), official(gt)), abs=1e-12)
        assert 0 < ours.bf < 1


@pytest.mark.parametrize("damage, message", [
    ("no-toolbox", "SUNRGBDtoolbox.zip: archive is missing (run `bench data download sunrgbd`"),
    ("label-shape", "the label map of frame"),
    ("split-names-missing", "names frame kv1/NYUdata/NYU9999, which SUNRGBDMeta.mat does not hold"),
    ("class-above-37", "has class id 38, outside 0..37 (0 = void, 1..37 the classes)"),
    ("missing-image", "archive lacks SUNRGBD/"),
])
def test_bad_release_is_one_line_and_writes_nothing(tmp_path, damage, message):
    train, test = fake_frames(24, 4, seed=3)
    if damage == "label-shape":
        path, name, label = train[5]
        train[5] = (path, name, label[:-3])
    elif damage == "class-above-37":
        train[2][2][0, 5] = 38
    folder = make_fake_release(tmp_path / "archives", frames=(train, test))
    if damage == "no-toolbox":
        (folder / "SUNRGBDtoolbox.zip").unlink()
    elif damage == "label-shape":
        # the image keeps its size, the label map loses rows: rebuild only the images from the intact maps
        intact = fake_frames(24, 4, seed=3)
        other = make_fake_release(tmp_path / "intact", frames=intact)
        (folder / "SUNRGBD.zip").write_bytes((other / "SUNRGBD.zip").read_bytes())
    elif damage == "split-names-missing":
        import scipy.io
        with zipfile.ZipFile(folder / "SUNRGBDtoolbox.zip") as zf:
            members = {n: zf.read(n) for n in zf.namelist()}
        split = tmp_path / "allsplit.mat"
        scipy.io.savemat(split, {"alltrain": np.array([f"{PREFIX}kv1/NYUdata/NYU9999"], dtype=object).reshape(1, 1),
                                 "alltest": np.array([f"{PREFIX}{test[0][0]}"], dtype=object).reshape(1, 1)})
        members["SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat"] = split.read_bytes()
        with zipfile.ZipFile(folder / "SUNRGBDtoolbox.zip", "w") as zf:
            for n, data in members.items():
                zf.writestr(n, data)
    elif damage == "missing-image":
        with zipfile.ZipFile(folder / "SUNRGBD.zip") as zf:
            members = {n: zf.read(n) for n in zf.namelist() if not n.endswith(f"/image/{train[7][1]}")}
        with zipfile.ZipFile(folder / "SUNRGBD.zip", "w") as zf:
            for n, data in members.items():
                zf.writestr(n, data)
    root = tmp_path / "data"
    r = CliRunner().invoke(main, ["data", "prepare", "sunrgbd", "--data-root", str(root), "--archives", str(folder)])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not (root / "SUNRGBD").exists() and not list(root.glob(".prepare-*"))  # nothing half-written


def test_a_damaged_prepared_file_is_named(sun_root, tmp_path):
    import shutil
    root = tmp_path / "copy"
    shutil.copytree(sun_root / "SUNRGBD", root / "SUNRGBD")
    ds = datasets.get_dataset("sunrgbd", root)
    s = ds.samples("test")[1]
    bad = ds.read_label(s).copy()
    bad[0, 0] = 40
    Image.fromarray(bad).save(s.label)
    r = CliRunner().invoke(main, ["data", "verify", "sunrgbd", "--data-root", str(root)])
    assert r.exit_code == 2 and f"{s.label}: ground-truth label map has label value 40, above 37" in r.output, r.output


@pytest.mark.slow
def test_the_sunrgbd_suite_smoke_run_eval_and_report(sun_root, tmp_path):
    """`bench run --suite sunrgbd-controlled --profile smoke` runs every member (and SegNet's median-frequency
    line) on the fake release; `bench eval` re-scores a run's predictions; `bench report` renders Tables 4
    and 5 beside the paper, "not run" where no record of the profile exists."""
    from tests.conftest import vgg16_weights_file
    results = tmp_path / "results"
    r = CliRunner().invoke(main, ["run", "--suite", "sunrgbd-controlled", "--profile", "smoke", "--data-root",
                                  str(sun_root), "--results", str(results), "--checkpoints", str(tmp_path / "ckpt"),
                                  "--encoder-weights", str(vgg16_weights_file())])
    assert r.exit_code == 0, r.output
    records = {(json.loads(p.read_text())["member"], json.loads(p.read_text())["variant"]): json.loads(p.read_text())
               for p in results.rglob("run.json")}
    assert set(records) == {(m, "natural-frequency") for m in ("segnet", "deeplab-largefov",
                                                               "deeplab-largefov-densecrf", "fcn-learnt-deconv",
                                                               "deconvnet")} | {("segnet", "median-frequency")}
    mf = records["segnet", "median-frequency"]
    assert mf["config"]["class_weighting"] == "authors-prototxt" and mf["config"]["fit"] == "stretch"
    assert mf["predictions"]["at_original_size"] is True and len(mf["test"]["per_class"]) == 37
    assert "every 20th frame of alltrain" in mf["splits"] and mf["train_images"] == 4  # the smoke profile's subset
    ds = datasets.get_dataset("sunrgbd", sun_root)
    folder = next(results.rglob("segnet/*median-frequency*")) / "predictions"
    for s in ds.samples("test")[:2]:  # written at each image's own size
        assert np.array(Image.open(folder / s.name)).shape == ds.read_label(s).shape
    from bench.check import run_check  # `bench check` re-scores each record's predictions with the evaluator
    rescored = [o for o in run_check(results, sun_root)["outcomes"] if o["rule"].startswith("rescore:")]
    assert len(rescored) == 6 and all(o["status"] == "pass" for o in rescored), rescored
    preds = tmp_path / "all-test"  # `bench eval` on a folder holding every test image
    preds.mkdir()
    for s in ds.samples("test"):
        Image.fromarray(np.roll(ds.read_label(s), 2, axis=0)).save(preds / s.name)
    out = tmp_path / "scores.json"
    r = CliRunner().invoke(main, ["eval", "--dataset", "sunrgbd", "--predictions", str(preds), "--data-root",
                                  str(sun_root), "--out", str(out)])
    assert r.exit_code == 0, r.output
    scores = json.loads(out.read_text())
    assert scores["num_images"] == 4 and 0 < scores["BF"] < 100 and len(scores["per_class"]) == 37
    out = tmp_path / "reports"
    r = CliRunner().invoke(main, ["report", "--results", str(results), "--out", str(out), "--data-root", str(sun_root)])
    assert r.exit_code == 0, r.output
    page = (out / "sunrgbd-controlled" / "README.md").read_text()
    assert "Table 4, 80K iterations column" in page and "Table 5: SegNet's per-class accuracy" in page
    assert "| SegNet (median-frequency balancing) | 1 |" in page and "| DeepLab-LargeFOV-denseCRF" in page
    for name in ("curves.png", "qualitative.png", "table5_sunrgbd_controlled.csv"):
        assert (out / "sunrgbd-controlled" / name).stat().st_size > 0, name


def test_variant_for_one_member_and_the_runs_it_makes(tmp_path):
    """Table 4's caption line is SegNet's alone: the median-frequency variant names its members, so `bench run`,
    dispatch and plans make six runs, not ten, and the CRF goes in DeepLab's job."""
    from bench.config import load_suite
    from bench.jobs import suite_specs
    suite = load_suite("sunrgbd-controlled")
    assert suite.runs() == [("natural-frequency", m) for m in suite.members] + [("median-frequency", "segnet")]
    specs = suite_specs("sunrgbd-controlled", "full")
    assert [(s.member, s.variant, s.then) for s in specs] == [
        ("segnet", "natural-frequency", ()), ("deeplab-largefov", "natural-frequency", ("deeplab-largefov-densecrf",)),
        ("fcn-learnt-deconv", "natural-frequency", ()), ("deconvnet", "natural-frequency", ()),
        ("segnet", "median-frequency", ())]
    bad = tmp_path / "bad.toml"
    text = (Path(suite.path).read_text()).replace('members = ["segnet"]', 'members = ["fcn"]')
    bad.write_text(text)
    with pytest.raises(BenchError, match=r"\[variant.median-frequency\] members must be a non-empty list of this "
                                         "suite's members"):
        load_suite(str(bad))


def test_stretched_inputs_come_back_to_each_images_own_size(sun_root):
    import torch
    from bench.data import load_split
    ds = datasets.get_dataset("sunrgbd", sun_root)
    data = load_split(ds, "test", (64, 96), None, torch.device("cpu"), fit="stretch")
    assert tuple(data.images.shape) == (4, 3, 64, 96) and tuple(data.labels.shape) == (4, 64, 96)
    originals = [ds.read_label(s) for s in ds.samples("test")]
    assert [f[:2] for f in data.frames] == [o.shape for o in originals]  # kept, so predictions go back
    back = data.full_size(data.labels.numpy())
    assert [b.shape for b in back] == [o.shape for o in originals]
    assert np.mean([(b == o).mean() for b, o in zip(back, originals)]) > 0.9  # nearest there and back
    boxed = load_split(ds, "test", (64, 96), None, torch.device("cpu"))  # letterbox: padded with void
    assert (boxed.labels == 37).sum() > (data.labels == 37).sum()


def test_download_checks_the_toolbox_against_its_published_md5(release, tmp_path):
    """Archives already in <data root>/SUNRGBD-archives are checked, not fetched again: the fake toolbox is not
    the published one, so its MD5 differs and the command says so in one line."""
    import shutil
    root = tmp_path / "data"
    shutil.copytree(release, root / "SUNRGBD-archives")
    r = CliRunner().invoke(main, ["data", "download", "sunrgbd", "--data-root", str(root)])
    assert r.exit_code == 2 and "SUNRGBDtoolbox.zip: MD5" in r.output and "differs from the published" in r.output
    assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output
