"""The dense CRF member (bench/crf.py): sharper boundaries than the blurred softmax it starts from, parameters
chosen as the grid's best on validation images, and the post-processed record of a smoke DeepLab run."""
import json

import numpy as np
import pytest

from bench import crf
from bench.boundary import BoundaryScorer
from bench.errors import BenchError

pytest.importorskip("pydensecrf.densecrf", reason="pip install pydensecrf2 (CI installs it with the project)")


def blurred_scene(seed=0, h=60, w=80, k=3):
    """An RGB image of k flat-coloured regions with sharp edges, its labels, and a softmax blurred across the
    edges (as a network's coarse, upsampled output is) with a little noise."""
    from scipy import ndimage as ndi
    rng = np.random.default_rng(seed)
    labels = np.zeros((h, w), np.uint8)
    labels[:, w // 3:] = 1
    labels[h // 2:, 2 * w // 3:] = 2
    colours = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200]], np.uint8)
    image = np.clip(colours[labels].astype(int) + rng.integers(-8, 9, (h, w, 3)), 0, 255).astype(np.uint8)
    onehot = np.stack([(labels == c).astype(float) for c in range(k)])
    probs = np.stack([ndi.gaussian_filter(p, 6) for p in onehot]) + 0.05 * rng.random((k, h, w))
    probs = np.roll(probs, 4, axis=2)  # and shifted: the argmax misses every vertical edge
    return image, probs / probs.sum(0), labels


def test_crf_sharpens_blurred_probabilities_at_colour_edges():
    image, probs, labels = blurred_scene()
    scorer = BoundaryScorer(num_classes=3, tolerance=0.02)
    before = scorer.score(probs.argmax(0).astype(np.uint8), labels).bf
    after = scorer.score(crf.dense_crf(image, probs, crf.CRFParams(bilateral_xy_std=30, bilateral_rgb_std=10)),
                         labels).bf
    assert after > before + 0.1, (before, after)


def test_parameters_chosen_on_val_are_the_grids_best():
    scenes = [blurred_scene(seed) for seed in range(3)]
    images = np.stack([s[0] for s in scenes])
    probs = np.stack([s[1] for s in scenes]).astype(np.float32)
    labels = np.stack([s[2] for s in scenes])
    candidates = crf.grid({"bilateral_weight": (0.0, 5.0), "bilateral_rgb_std": (3.0, 10.0)})

    def accuracy(maps, truth):
        return float((maps == truth).mean())
    best, table = crf.choose_params(images, probs, labels, accuracy, candidates, workers=2)
    assert [t["bilateral_weight"] for t in table] == [0.0, 0.0, 5.0, 5.0] and len(table) == 4
    scores = [t["score"] for t in table]
    assert best == candidates[scores.index(max(scores))]
    alone = accuracy(crf.crf_label_maps(images, probs, best, workers=1), labels)
    assert alone == pytest.approx(max(scores))  # the same maps, one process or several
    assert max(scores) > scores[0]  # the bilateral kernel helps here; weight 0 is the Gaussian kernel alone


def test_missing_deeplab_record_names_what_to_run_first(fake_root, tmp_path):
    from bench.runner import train_suite
    with pytest.raises(BenchError, match=r"no recorded deeplab-largefov run .* run `bench run --suite camvid-controlled "
                                         r"--members deeplab-largefov --profile smoke --seeds 0` first"):
        train_suite("camvid-controlled", profile="smoke", members=["deeplab-largefov-densecrf"], data_root=fake_root,
                    results=tmp_path / "results", checkpoints=tmp_path / "ckpt", log=lambda m: None,
                    overrides={"image_size": [64, 96], "max_iters": 2, "batch_size": 2, "eval_every_iters": 1,
                               "budgets_iters": [1, 2], "encoder_weights": "none"})


def test_densecrf_member_records_a_postprocessed_smoke_deeplab_run(fake_root, tmp_path):
    from bench.weights import kept_weights_path
    from bench.runner import train_suite
    kw = dict(profile="smoke", data_root=fake_root, results=tmp_path / "results", checkpoints=tmp_path / "ckpt",
              log=lambda m: None, overrides={"image_size": [64, 96], "max_iters": 2, "batch_size": 2,
                                             "eval_every_iters": 1, "budgets_iters": [1, 2], "encoder_weights": "none"})
    (older,) = train_suite("camvid-controlled", members=["deeplab-largefov"], **kw)
    kept_weights_path(tmp_path / "ckpt", "camvid-controlled", "deeplab-largefov", older.name).unlink()
    base, post = train_suite("camvid-controlled", members=["deeplab-largefov", "deeplab-largefov-densecrf"], **kw)
    assert base != older  # the CRF takes the latest DeepLab record (the older one has no weights kept)
    assert kept_weights_path(tmp_path / "ckpt", "camvid-controlled", "deeplab-largefov", base.name).is_file()
    rec = json.loads((post / "run.json").read_text())
    assert rec["member"] == "deeplab-largefov-densecrf" and rec["postprocess"]["of"] == "deeplab-largefov"
    assert rec["postprocess"]["record"] == base.name and len(rec["postprocess"]["grid"]) == len(crf.grid())
    chosen = max(rec["postprocess"]["grid"], key=lambda t: t["score"])
    assert {k: chosen[k] for k in rec["postprocess"]["params"]} == rec["postprocess"]["params"]
    assert rec["postprocess"]["core_seconds_per_test_image"] > 0
    assert sorted(p.name for p in (post / "predictions").iterdir()) == sorted(
        p.name for p in (base / "predictions").iterdir())
    assert set(rec["test"]) >= {"G", "C", "mIoU", "BF"} and (post / "log.txt").read_text()
    again = train_suite("camvid-controlled", members=["deeplab-largefov-densecrf"], resume=True, **kw)
    assert again == [post]  # recorded: skipped on resume
