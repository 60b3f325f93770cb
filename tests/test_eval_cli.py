"""`bench eval` end to end, and every bad input named in issue 2: one line, non-zero exit, nothing written."""
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from bench import datasets
from bench.cli import main
from bench.datasets.synthetic import make_synthetic_camvid


def _predictions_from_gt(root, dest):
    ds = datasets.get_dataset("camvid", root)
    dest.mkdir()
    for s in ds.samples("test"):
        shutil.copy(s.label, dest / s.name)
    return ds.samples("test")


def _run(args):
    return CliRunner().invoke(main, args)


def test_eval_scores_and_writes_json(fake_root, tmp_path):
    preds = tmp_path / "pred"
    _predictions_from_gt(fake_root, preds)
    out = tmp_path / "scores.json"
    r = _run(["eval", "--data-root", str(fake_root), "--predictions", str(preds), "--out", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["G"] == res["C"] == res["mIoU"] == res["BF"] == 100.0
    assert set(res["per_class"]) == set(datasets.get_dataset("camvid", fake_root).class_names)
    assert len(res["confusion_matrix"]) == 11 and len(res["confusion_matrix"][0]) == 12
    assert res["conventions"]["bf_matching"] == "one-to-one" and res["conventions"]["absent"] == "zero"


def _bad_case(name, fake_root, preds, samples):
    first = preds / samples[0].name
    if name == "missing":
        first.unlink()
    elif name == "extra":
        shutil.copy(first, preds / "extra.png")
    elif name == "misnamed":
        first.rename(preds / ("x" + samples[0].name))
    elif name == "wrong-size":
        Image.fromarray(np.zeros((100, 100), np.uint8)).save(first)
    elif name == "label-above-11":
        a = np.zeros((360, 480), np.uint8)
        a[0, 0] = 12
        Image.fromarray(a).save(first)
    elif name == "not-png":
        first.write_text("this is not an image")
    elif name == "jpeg":
        Image.fromarray(np.zeros((360, 480), np.uint8)).save(first, format="JPEG")
    elif name == "truncated":
        data = first.read_bytes()
        first.write_bytes(data[: len(data) // 3])
    elif name == "rgb":
        Image.fromarray(np.zeros((360, 480, 3), np.uint8)).save(first)
    elif name == "missing-dataset-file":
        samples[1].label.unlink()
    return first


EXPECTED = {
    "missing": "1 missing", "extra": "1 unexpected", "misnamed": "1 missing .* 1 unexpected",
    "wrong-size": "is 100x100, expected 360x480", "label-above-11": "label value 12, above 11",
    "not-png": "cannot be decoded", "jpeg": "not a PNG", "truncated": "cannot be decoded",
    "rgb": "8-bit single-channel", "missing-dataset-file": "test.txt:2: names label",
}


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_bad_input_one_line_nonzero_nothing_written(case, fake_root, tmp_path):
    preds = tmp_path / "pred"
    samples = _predictions_from_gt(fake_root, preds)
    _bad_case(case, fake_root, preds, samples)
    out = tmp_path / "scores.json"
    r = _run(["eval", "--data-root", str(fake_root), "--predictions", str(preds), "--out", str(out)])
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    import re
    assert re.search(EXPECTED[case], lines[0]), lines[0]
    assert "Traceback" not in r.output
    assert not out.exists()


def test_a_bad_file_read_in_a_worker_process_is_named(tmp_path):
    """Files are decoded in the scoring workers; a bad one still stops the run with one line naming it."""
    from bench.errors import BenchError
    from bench.evaluate import evaluate_predictions
    root = make_synthetic_camvid(tmp_path / "data", splits={"train": 1, "val": 1, "test": 24})
    preds = tmp_path / "pred"
    samples = _predictions_from_gt(root, preds)
    ds = datasets.get_dataset("camvid", root)
    assert evaluate_predictions(ds, "test", preds, workers=2)["BF"] == 100.0
    last = preds / samples[-1].name
    last.write_bytes(last.read_bytes()[:40])
    with pytest.raises(BenchError, match=f"{last}: prediction cannot be decoded"):
        evaluate_predictions(ds, "test", preds, workers=2)


@pytest.mark.parametrize("args,message", [
    (["--dataset", "kitti"], "unknown dataset 'kitti'"),
    (["--split", "dev"], "unknown split 'dev'"),
])
def test_unknown_dataset_or_split(fake_root, tmp_path, args, message):
    preds = tmp_path / "pred"
    _predictions_from_gt(fake_root, preds)
    r = _run(["eval", "--data-root", str(fake_root), "--predictions", str(preds), *args])
    assert r.exit_code == 2 and message in r.output


def test_data_root_without_camvid(tmp_path):
    r = _run(["eval", "--data-root", str(tmp_path), "--predictions", str(tmp_path)])
    assert r.exit_code == 2 and "CamVid folder not found" in r.output


def test_existing_out_is_never_overwritten(fake_root, tmp_path):
    preds = tmp_path / "pred"
    _predictions_from_gt(fake_root, preds)
    out = tmp_path / "scores.json"
    out.write_text("keep me")
    r = _run(["eval", "--data-root", str(fake_root), "--predictions", str(preds), "--out", str(out)])
    assert r.exit_code == 2 and out.read_text() == "keep me"


def test_data_verify_cli(fake_root):
    r = _run(["data", "verify", "camvid", "--data-root", str(fake_root)])
    assert r.exit_code == 0 and "OK" in r.output


@pytest.mark.camvid
def test_real_ground_truth_against_itself_scores_100(camvid_test_labels):
    from bench.evaluate import score_label_maps
    ds, samples, labels = camvid_test_labels
    res = score_label_maps(list(labels), list(labels), class_names=ds.class_names)
    assert res["G"] == res["C"] == res["mIoU"] == res["BF"] == 100.0


@pytest.mark.camvid
def test_real_ground_truth_shifted(camvid_test_labels):
    """A copy shifted right by 1 px: G is the share of labelled pixels equal to their left neighbour;
    every boundary pixel keeps a partner 1 px away except along the left image edge, so BF stays
    above 99. Shifted by 6 px (beyond the 4.5 px tolerance) horizontal-transition boundaries lose their
    partners and BF falls far."""
    from bench.evaluate import score_label_maps
    ds, samples, labels = camvid_test_labels
    labels = labels[::4]  # a quarter of the test set keeps the test quick
    shifted = labels.copy()
    shifted[:, :, 1:] = labels[:, :, :-1]
    keep = labels != 11
    expected_g = 100 * (shifted == labels)[keep].mean()
    res = score_label_maps(list(shifted), list(labels), class_names=ds.class_names)
    assert res["G"] == pytest.approx(expected_g)
    assert 99.0 < res["BF"] < 100.0
    far = labels.copy()
    far[:, :, 6:] = labels[:, :, :-6]
    res6 = score_label_maps(list(far), list(labels), class_names=ds.class_names)
    assert res6["BF"] < res["BF"] - 20


def test_images_of_different_sizes_are_each_scored_at_their_own_size(fake_root, tmp_path):
    """A dataset whose images vary in size (image_size None, as Pascal VOC): each prediction is checked against
    its own ground truth's size, and the scores pool every image."""
    from PIL import Image

    from bench.errors import BenchError
    from bench.evaluate import evaluate_predictions, score_label_maps
    from bench.datasets.camvid import CamVid

    class AnySize(CamVid):
        image_size = None
    ds = AnySize(fake_root)
    rng = np.random.default_rng(3)
    folder = tmp_path / "preds"
    folder.mkdir()
    gts, preds = [], []
    for k, s in enumerate(ds.samples("test")):
        gt = rng.integers(0, 11, (30 + 10 * k, 40 + 7 * k)).astype(np.uint8)
        pred = np.where(rng.random(gt.shape) < 0.1, (gt + 1) % 11, gt).astype(np.uint8)
        Image.fromarray(gt).save(s.label)
        Image.fromarray(pred).save(folder / s.name)
        gts.append(gt)
        preds.append(pred)
    assert len({g.shape for g in gts}) == len(gts) > 1
    r = evaluate_predictions(ds, "test", folder, workers=1)
    direct = score_label_maps(preds, gts, class_names=ds.class_names, void_label=ds.void_label, workers=1)
    assert (r["G"], r["mIoU"], r["BF"]) == (direct["G"], direct["mIoU"], direct["BF"]) and 85 < r["G"] < 95
    name = ds.samples("test")[0].name
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(folder / name)
    with pytest.raises(BenchError, match=f"{name}: prediction is 5x5, expected 30x40"):
        evaluate_predictions(ds, "test", folder, workers=1)


def test_bench_eval_imports_no_torch():
    """`bench eval` (and its --out, written through bench.safety) starts without loading torch, which takes longer
    to import than scoring CamVid's test set takes."""
    import subprocess
    import sys
    code = ("import sys, bench.cli, bench.evaluate, bench.safety, bench.datasets; "
            "from bench.cli import main; sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_bench_eval_says_once_when_the_c_code_is_not_there(fake_root, tmp_path):
    """Without the C code (not built at install, or BENCH_NO_NATIVE), `bench eval` scores the same through its
    NumPy/SciPy paths and says so in one line, once."""
    import os
    import subprocess
    import sys
    preds = tmp_path / "pred"
    _predictions_from_gt(fake_root, preds)
    args = ["eval", "--data-root", str(fake_root), "--predictions", str(preds), "--workers", "1"]
    code = f"import sys; from bench.cli import main; sys.argv = ['bench'] + {args!r}; main()"
    without = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                             env={**os.environ, "BENCH_NO_NATIVE": "1"})
    assert without.returncode == 0, without.stderr
    assert without.stderr.count("the C code is not available (disabled by BENCH_NO_NATIVE)") == 1
    assert "100.00" in without.stdout
    with_c = _run(args)
    assert with_c.exit_code == 0 and "C code is not available" not in with_c.output
    assert [line for line in with_c.output.splitlines() if "100.00" in line] == \
        [line for line in without.stdout.splitlines() if "100.00" in line]


def test_scoring_workers_end_whatever_sigterm_handler_the_caller_installed():
    """A process whose SIGTERM handler does not exit (a notebook's, a job scheduler's) scores in worker
    processes and gets its answer, and a failing scoring ends too (its workers are killed). Run in a subprocess
    with a deadline: a worker that ignored a SIGTERM would hang it, and so did (CI, 1 in about 60 failing
    scorings) multiprocessing.Pool's terminate waiting on a queue lock that a worker it killed still held; and
    the executor that replaced it printed its thread's InvalidStateError when killed after a cancel (about 1
    in 100: caught here about every other time)."""
    import subprocess
    import sys
    import textwrap
    script = textwrap.dedent("""
        import signal
        import numpy as np
        from bench.evaluate import score_label_maps
        signal.signal(signal.SIGTERM, lambda *a: None)  # a handler that does not exit
        rng = np.random.default_rng(0)
        gts = [rng.integers(0, 11, size=(40, 60)).astype(np.uint8) for _ in range(64)]
        for _ in range(5):
            assert score_label_maps(gts, gts, workers=2)["G"] == 100.0
        bad = list(gts)
        bad[5] = np.zeros((3, 3), np.uint8)  # a prediction of the wrong shape, early: a worker raises, work is left
        for _ in range(100):
            try:
                score_label_maps(bad, gts, workers=2)
            except ValueError:
                pass
            else:
                raise SystemExit("no error")
        print("done")
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "done", r.stderr[-2000:]
    assert "Traceback" not in r.stderr, r.stderr[-2000:]  # the pool's own threads end cleanly too


def test_bench_run_gives_the_callers_sigterm_handler_back(tmp_path):
    """`bench run` turns SIGTERM into a checkpointing stop while it runs, and restores the caller's handler after,
    so a process that calls it in-process (a test, a notebook) is not left with it."""
    import signal

    def mine(signum, frame):
        pass
    previous = signal.signal(signal.SIGTERM, mine)
    try:
        r = _run(["run", "--suite", "camvid-controlled", "--seeds", "x", "--results", str(tmp_path / "r")])
        assert r.exit_code == 2 and "--seeds" in r.output
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)
