"""BF: hand-worked boundary maps and matchings (see bench/boundary.py for the conventions)."""
import numpy as np
import pytest

from bench import matching
from bench.boundary import (BoundaryScorer, boundary_f1, class_boundary_bits, dataset_bf, disk_offsets,
                            seg2bmap)

H, W = 360, 480  # diagonal 600 px, so the tolerance is 0.0075 * 600 = 4.5 px


def split_map(col=240, left=0, right=1):
    m = np.full((H, W), right, np.uint8)
    m[:, :col] = left
    return m


def test_seg2bmap_corner_blocks_and_border():
    a = np.zeros((40, 50), int)
    a[:10, :10] = 1
    assert seg2bmap(a).sum() == 19  # bottom and right edges of the block, inside it
    b = np.zeros((40, 50), int)
    b[-10:, -10:] = 1
    assert seg2bmap(b).sum() == 21  # the row above and column left of the block, outside it
    c = np.zeros((40, 50), int)
    c[10:30, 10:30] = 1
    assert seg2bmap(c).sum() == 80  # 2 * (20 + 20) for an interior block


def test_class_bits_equal_per_class_seg2bmap():
    rng = np.random.default_rng(0)
    lab = rng.integers(0, 12, size=(30, 40))
    bits = class_boundary_bits(lab)
    for n in range(12):
        np.testing.assert_array_equal((bits >> n) & 1 == 1, seg2bmap(lab == n))


def test_disk_offsets_radius_inclusive():
    off = disk_offsets(4.5)
    d2 = (off ** 2).sum(axis=1)
    assert d2.max() == 20 and len(off) == 69 and d2[0] == 0


@pytest.mark.parametrize("shift,expected", [(1, 1.0), (4, 1.0), (5, 0.0)])
def test_vertical_edge_shift(shift, expected):
    gt = split_map(240)
    pred = split_map(240 + shift)
    s = boundary_f1(pred, gt)
    np.testing.assert_array_equal(s.gt_pixels[:2], [360, 360])
    assert s.bf == pytest.approx(expected)


def test_one_to_one_matching_differs_from_distance_rule():
    gt = split_map(240)
    pred = gt.copy()
    pred[:, 242:244] = 0  # a thin stripe of class 0 two pixels to the right of the edge
    one = boundary_f1(pred, gt)
    # class 0 and 1: predicted edges at columns 239, 241, 243 (3 x 360), ground truth 360 at 239
    np.testing.assert_array_equal(one.pred_pixels[:2], [1080, 1080])
    np.testing.assert_array_equal(one.matched_pred[:2], [360, 360])
    assert one.bf == pytest.approx(0.5)  # P = 1/3, R = 1
    dist = boundary_f1(pred, gt, matching="distance")
    assert dist.bf == pytest.approx(1.0)  # every predicted pixel is within 4.5 px of the edge


def test_class_only_in_prediction_and_class_rules():
    gt = split_map(240)
    pred = gt.copy()
    pred[100:120, 350:370] = 2  # 20x20 block of a class absent from the ground truth
    script = boundary_f1(pred, gt)
    assert script.counted[:3].tolist() == [True, True, True]
    # class 1: 360 + 80 predicted, all 360 ground-truth matched: P = 9/11, R = 1, F1 = 0.9; class 2: 0
    assert script.f1[1] == pytest.approx(0.9) and script.f1[2] == 0
    assert script.bf == pytest.approx((1 + 0.9 + 0) / 3)
    paper = boundary_f1(pred, gt, class_rule="gt")
    assert paper.bf == pytest.approx((1 + 0.9) / 2)


def test_void_is_not_masked():
    gt = split_map(240)
    gt[100:120, 350:370] = 11  # void block inside class 1
    pred = split_map(240)  # perfect on every labelled pixel, class 1 in the void
    s = boundary_f1(pred, gt)
    # class 1 ground truth also has the void block outline (80 px) that the prediction lacks
    assert s.gt_pixels[1] == 440 and s.recall[1] == pytest.approx(360 / 440)
    assert s.bf == pytest.approx((1 + 2 * (360 / 440) / (1 + 360 / 440)) / 2)


def test_all_void_image_counts_in_the_dataset_mean():
    gt_void = np.full((H, W), 11, np.uint8)
    pred = np.zeros((H, W), np.uint8)
    perfect = split_map(240)
    scorer = BoundaryScorer()
    s_void = scorer.score(pred, gt_void)
    assert not s_void.counted.any() and s_void.bf == 0.0
    assert dataset_bf([scorer.score(perfect, perfect), s_void]) == pytest.approx(0.5)


def test_objects_touching_the_border():
    gt = np.zeros((H, W), np.uint8)
    gt[:10, :10] = 1
    gt[-10:, -10:] = 2
    s = boundary_f1(gt, gt)
    assert s.gt_pixels[1] == 19 and s.gt_pixels[2] == 21 and s.bf == 1.0


def test_prediction_without_any_boundary():
    gt = split_map(240)
    s = boundary_f1(np.zeros((H, W), np.uint8), gt)
    # classes 0 and 1 counted (ground-truth boundary), precision and recall 0
    assert s.counted[:2].all() and s.bf == 0.0


def _random_hits(rng, n_p, n_g, n_off, density):
    hits = np.where(rng.random((n_p, n_off)) < density, rng.integers(0, n_g, (n_p, n_off)), -1).astype(np.int32)
    for row in hits:  # a node appears once per row at most, as in real tolerance disks
        seen = set()
        for j, v in enumerate(row):
            if v in seen:
                row[j] = -1
            seen.add(v)
    return hits


def test_native_matcher_equals_max_flow_on_random_graphs():
    if matching._load_native() is None:
        pytest.skip(f"no C compiler here: {matching.backend()}")
    rng = np.random.default_rng(3)
    for trial in range(60):
        n_p, n_g = rng.integers(1, 60), rng.integers(1, 60)
        hits = _random_hits(rng, n_p, n_g, int(rng.integers(1, 10)), rng.uniform(0.05, 0.6))
        a_p, a_g = matching.augmenting_path_matching(hits, n_g)
        b_p, b_g = matching.flow_matching(hits, n_g)
        assert a_p.sum() == b_p.sum() == a_g.sum() == b_g.sum()
        # a valid matching: each covered predicted node has an edge (sizes equal => maximum)
        assert all((hits[i] >= 0).any() for i in np.flatnonzero(a_p))


def test_native_and_flow_agree_on_label_maps(monkeypatch):
    rng = np.random.default_rng(5)
    gt = np.zeros((120, 160), np.uint8)
    for _ in range(30):
        y, x = rng.integers(0, 110), rng.integers(0, 150)
        gt[y:y + rng.integers(3, 30), x:x + rng.integers(3, 30)] = rng.integers(0, 12)
    pred = np.roll(gt, (2, -3), axis=(0, 1))
    pred[rng.random(gt.shape) < 0.02] = 4
    fast = boundary_f1(pred, gt)
    monkeypatch.setattr("bench.boundary.max_matching", matching.flow_matching)
    slow = boundary_f1(pred, gt)
    np.testing.assert_array_equal(fast.matched_pred, slow.matched_pred)
    np.testing.assert_array_equal(fast.matched_gt, slow.matched_gt)
    assert (fast.matched_pred == fast.matched_gt).all()
