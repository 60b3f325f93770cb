"""BF: hand-worked boundary maps and matchings (see bench/boundary.py for the conventions)."""
import numpy as np
import pytest

from bench import matching, native
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
    if native.load() is None:
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


native_only = pytest.mark.skipif(native.load() is None, reason=f"no C compiler here: {matching.backend()}")


@pytest.fixture
def reference_scorer(monkeypatch):
    """The oracle: numpy boundaries and candidate table, matched by SciPy's max-flow."""
    monkeypatch.setattr("bench.boundary.max_matching", matching.flow_matching)
    return lambda **kw: BoundaryScorer(engine="numpy", **kw)


def assert_same_counts(fast, slow):
    for field in ("pred_pixels", "gt_pixels", "matched_pred", "matched_gt"):
        np.testing.assert_array_equal(getattr(fast, field), getattr(slow, field), err_msg=field)


def random_label_map(rng, h, w, k):
    """Rectangles and discs of random classes over a random background: long boundaries, corners, thin parts."""
    lab = np.full((h, w), rng.integers(0, k), np.uint8)
    yy, xx = np.mgrid[:h, :w]
    for _ in range(int(rng.integers(3, 25))):
        y, x = rng.integers(0, h), rng.integers(0, w)
        if rng.random() < 0.5:
            lab[y:y + rng.integers(1, h // 2 + 2), x:x + rng.integers(1, w // 2 + 2)] = rng.integers(0, k)
        else:
            lab[(yy - y) ** 2 + (xx - x) ** 2 < rng.integers(1, 20) ** 2] = rng.integers(0, k)
    return lab


def perturb(rng, lab, k):
    """A prediction from a label map: shifted a few pixels, then salt-and-pepper noise."""
    out = np.roll(lab, (int(rng.integers(-6, 7)), int(rng.integers(-6, 7))), axis=(0, 1))
    noisy = rng.random(lab.shape) < rng.choice([0.0, 0.01, 0.05])
    out[noisy] = rng.integers(0, k, int(noisy.sum()))
    return out


@native_only
@pytest.mark.parametrize("rule", ["one-to-one", "distance"])
def test_native_counter_equals_max_flow_on_random_label_maps(rule, reference_scorer):
    rng = np.random.default_rng(11)
    for trial in range(40):
        h, w = int(rng.integers(8, 90)), int(rng.integers(8, 120))
        k = int(rng.choice([2, 5, 11, 37, 64]))
        tol = float(rng.choice([0.0075, 0.02, 0.06]))
        gt = random_label_map(rng, h, w, k)
        pred = perturb(rng, gt, k)
        kw = dict(num_classes=k, tolerance=tol, matching=rule)
        assert_same_counts(BoundaryScorer(engine="native", **kw).score(pred, gt),
                           reference_scorer(**kw).score(pred, gt))


@native_only
@pytest.mark.camvid
def test_native_counter_equals_max_flow_on_camvid_annotations(camvid_test_labels, reference_scorer):
    """Real annotations, perturbed as weak models err: shifted, warped, speckled, blobs of wrong classes."""
    from bench.benchmarks.eval_speed import imperfect_prediction, salt_and_pepper
    ds, samples, labels = camvid_test_labels
    rng = np.random.default_rng(12)
    native, reference = BoundaryScorer(engine="native"), reference_scorer()
    for i in rng.choice(len(labels), 6, replace=False):
        gt = labels[i]
        pred = salt_and_pepper(imperfect_prediction(gt, rng), float(rng.choice([0.0, 0.02, 0.05])), rng)
        assert_same_counts(native.score(pred, gt), reference.score(pred, gt))
        assert_same_counts(native.score(np.roll(gt, 3, axis=1), gt), reference.score(np.roll(gt, 3, axis=1), gt))


@native_only
def test_native_scorer_reuses_its_work_planes_between_images():
    """The work planes persist between calls: a second image must not see the first one's boundaries."""
    rng = np.random.default_rng(13)
    a, b = random_label_map(rng, 60, 80, 11), random_label_map(rng, 60, 80, 11)
    pred_a, pred_b = perturb(rng, a, 11), perturb(rng, b, 11)
    alone = BoundaryScorer(engine="native").score(pred_b, b)
    scorer = BoundaryScorer(engine="native")
    scorer.score(pred_a, a)
    assert_same_counts(scorer.score(pred_b, b), alone)


@native_only
@pytest.mark.parametrize("rule, k, plane_classes", [("one-to-one", 11, 11), ("one-to-one", 40, 2), ("distance", 11, 11)])
def test_native_counter_leaves_its_boundary_planes_all_zero(rule, k, plane_classes):
    """The C counter writes only boundary pixels into its two boundary planes and clears just those after
    each image: on every path (bit planes; the implicit graph, where the work plane is too small for the
    bit planes; the distance rule) the planes are all zero again, and a sequence of images scored in one
    workspace gives the counts of fresh ones."""
    rng = np.random.default_rng(14)
    h, w, radius = 50, 70, 3.0
    offsets, pad = disk_offsets(radius), 3
    work = matching.bf_workspace((h, w), pad, plane_classes)
    for _ in range(6):
        gt = random_label_map(rng, h, w, k)
        pred = perturb(rng, gt, k)
        reused = matching.native_bf_counts(pred, gt, k, offsets, pad, rule, work)
        fresh = matching.native_bf_counts(pred, gt, k, offsets, pad, rule, matching.bf_workspace((h, w), pad, plane_classes))
        np.testing.assert_array_equal(reused, fresh)
        assert reused[1].sum() > 0
        assert not work[0].any() and not work[1].any()


def test_labels_beyond_the_native_range_fall_back_to_numpy():
    gt = np.zeros((30, 40), np.int64)
    gt[10:20, 10:30] = 70  # not a bit of a 64-bit word
    pred = np.roll(gt, 2, axis=1)
    assert matching.native_bf_counts(pred, gt, 71, disk_offsets(2.0), 2) is None
    s = BoundaryScorer(num_classes=71, tolerance=0.1).score(pred, gt)  # 5 px: every boundary pixel matched
    assert s.matched_pred[70] == s.pred_pixels[70] == s.gt_pixels[70] == 2 * 10 + 2 * 20


@native_only
def test_native_counter_rejects_offsets_that_are_not_a_disk():
    gt = np.zeros((20, 20), np.uint8)
    with pytest.raises(ValueError, match="not a disk"):
        matching.native_bf_counts(gt, gt, 11, np.array([[0, -2], [0, 2]]), 2)
    with pytest.raises(ValueError, match="engine"):
        BoundaryScorer(engine="fortran")


@native_only
@pytest.mark.camvid
def test_bit_plane_and_graph_matchers_give_the_same_counts(camvid_test_labels):
    """bf_counts matches on bit planes where they fit its work plane and on the implicit graph otherwise:
    scored with 11 classes (bit planes) and with 64 classes in a work plane too small for 64 bit planes
    (graph), the same maps give the same counts, and nothing for the labels that do not occur."""
    ds, samples, labels = camvid_test_labels
    from bench.benchmarks.eval_speed import imperfect_prediction, salt_and_pepper
    rng = np.random.default_rng(14)
    pad = 4
    offsets = disk_offsets(0.0075 * np.hypot(H, W))
    pb, gb, _, gbase = matching.bf_workspace((H, W), pad, 64)
    small = (pb, gb, np.zeros((H + 2 * pad, W + 2 * pad), np.uint64), gbase)  # room for 20 classes' planes
    for i in rng.choice(len(labels), 4, replace=False):
        gt = labels[i]
        pred = salt_and_pepper(imperfect_prediction(gt, rng), float(rng.choice([0.0, 0.02])), rng)
        planes = matching.native_bf_counts(pred, gt, 11, offsets, pad)
        graph = matching.native_bf_counts(pred, gt, 64, offsets, pad, workspace=small)
        np.testing.assert_array_equal(graph[:, :11], planes)
        assert not graph[:, 12:].any() and planes[2].sum() > 0  # 11 is void: scored as a class here
