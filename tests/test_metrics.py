"""G, C, mIoU: hand-worked cases, the script's conventions, and an independent cross-check."""
import numpy as np
import pytest
import torch

from bench.metrics import (class_average_accuracy, confusion_matrix, global_accuracy, mean_iou,
                           per_class_accuracy, per_class_iou, segmentation_scores)


def test_hand_worked_three_classes():
    # ground truth / prediction, K = 3, void = 3
    gt = np.array([[0, 0, 1, 1], [2, 2, 3, 3]])
    pr = np.array([[0, 1, 1, 1], [2, 0, 0, 3]])
    cm = confusion_matrix(pr, gt, num_classes=3, ignore_index=3)
    expected = np.zeros((3, 4), int)
    expected[0, 0], expected[0, 1] = 1, 1
    expected[1, 1] = 2
    expected[2, 2], expected[2, 0] = 1, 1
    np.testing.assert_array_equal(cm, expected)
    assert global_accuracy(cm) == pytest.approx(4 / 6)
    np.testing.assert_allclose(per_class_accuracy(cm), [0.5, 1.0, 0.5])
    # IoU: class 0: 1 / (2 + 2 - 1); class 1: 2 / (2 + 3 - 2); class 2: 1 / (2 + 1 - 1)
    np.testing.assert_allclose(per_class_iou(cm), [1 / 3, 2 / 3, 1 / 2])
    assert class_average_accuracy(cm) == pytest.approx(2 / 3)
    assert mean_iou(cm) == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)


def test_absent_class_counts_zero_like_the_script_or_is_skipped_by_name():
    gt = np.array([0, 0, 1, 1])
    pr = np.array([0, 0, 1, 1])
    cm = confusion_matrix(pr, gt, num_classes=4, ignore_index=11)
    assert class_average_accuracy(cm) == pytest.approx(0.5)  # 2 perfect classes / 4
    assert mean_iou(cm) == pytest.approx(0.5)
    assert class_average_accuracy(cm, absent="skip") == pytest.approx(1.0)
    assert mean_iou(cm, absent="skip") == pytest.approx(1.0)
    with pytest.raises(ValueError):
        mean_iou(cm, absent="nan")


def test_prediction_outside_classes_counts_in_G_denominator_only():
    gt = np.array([0, 0, 1, 1])
    pr = np.array([0, 11, 1, 1])  # a "void" prediction on a labelled pixel
    cm = confusion_matrix(pr, gt, num_classes=2, ignore_index=11)
    assert cm.shape == (2, 3) and cm[0, 2] == 1
    assert global_accuracy(cm) == pytest.approx(3 / 4)
    # the script's per-class accuracy divides by the row over class columns only
    np.testing.assert_allclose(per_class_accuracy(cm), [1.0, 1.0])


def test_void_ground_truth_is_ignored():
    gt = np.array([11, 11, 0, 1])
    pr = np.array([0, 1, 0, 1])
    cm = confusion_matrix(pr, gt, num_classes=2)
    assert cm.sum() == 2 and global_accuracy(cm) == 1.0


def test_torch_and_numpy_agree_and_batches_add_up():
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 12, size=(6, 20, 30))
    pr = rng.integers(0, 12, size=(6, 20, 30))
    whole = confusion_matrix(pr, gt)
    parts = sum(confusion_matrix(pr[i], gt[i]) for i in range(6))
    np.testing.assert_array_equal(whole, parts)
    t = confusion_matrix(torch.from_numpy(pr), torch.from_numpy(gt))
    assert isinstance(t, torch.Tensor)
    np.testing.assert_array_equal(t.numpy(), whole)


@pytest.mark.parametrize("k, void, pred_high", [(11, 11, 12), (11, 11, 256), (3, 255, 4), (2, None, 2), (20, 20, 21)])
def test_8bit_fast_path_equals_the_general_path(k, void, pred_high):
    """uint8 maps go through one joint histogram (C where built); int64 maps through the general path."""
    rng = np.random.default_rng(k + pred_high)
    gt = rng.integers(0, k, size=(37, 53)).astype(np.uint8)
    if void is not None:
        gt[rng.random(gt.shape) < 0.2] = void
    pr = rng.integers(0, pred_high, size=gt.shape).astype(np.uint8)
    fast = confusion_matrix(pr, gt, k, void)
    np.testing.assert_array_equal(fast, confusion_matrix(pr.astype(np.int64), gt.astype(np.int64), k, void))
    assert fast.sum() == (gt != void).sum() if void is not None else gt.size
    with pytest.raises(ValueError):
        confusion_matrix(pr, np.full_like(gt, k if void != k else k + 1), k, void)


def piecewise_constant_map(rng, shape, k, noise):
    """Regions of one class (as label maps are: most 8-pixel blocks uniform), plus salt-and-pepper noise."""
    h, w = shape
    coarse = rng.integers(0, k, size=(-(-h // 9), -(-w // 13)))
    out = np.repeat(np.repeat(coarse, 9, axis=0), 13, axis=1)[:h, :w].astype(np.uint8)
    hit = rng.random(shape) < noise
    out[hit] = rng.integers(0, k, size=int(hit.sum()))
    return out


@pytest.mark.parametrize("noise", [0.0, 0.002, 0.05, 0.5])
@pytest.mark.parametrize("shape", [(45, 64), (37, 53), (1, 7)])
def test_8bit_fast_path_counts_uniform_blocks_and_runs_exactly(noise, shape):
    """The C histogram counts eight equal pairs at once and runs of such blocks in a register: on maps made
    of regions, with and without noise and with sizes not a multiple of 8, it equals numpy's bincount."""
    from bench.matching import native_pair_counts
    rng = np.random.default_rng(int(noise * 1000) + shape[1])
    gt = piecewise_constant_map(rng, shape, 12, noise)
    pr = np.where(rng.random(shape) < 0.9, gt, piecewise_constant_map(rng, shape, 12, noise)).astype(np.uint8)
    joint = native_pair_counts(gt, pr)
    if joint is None:
        pytest.skip("no C compiler here")
    ref = np.bincount(gt.astype(np.int64).ravel() * 256 + pr.ravel(), minlength=1 << 16).reshape(256, 256)
    np.testing.assert_array_equal(joint, ref[: joint.shape[0], : joint.shape[1]])
    np.testing.assert_array_equal(confusion_matrix(pr, gt, 11, 11),
                                  confusion_matrix(pr.astype(np.int64), gt.astype(np.int64), 11, 11))


def test_target_out_of_range_is_an_error():
    with pytest.raises(ValueError):
        confusion_matrix(np.array([0]), np.array([12]))


def test_cross_check_against_scikit_learn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(7)
    gt = rng.integers(0, 12, size=5000)
    pr = np.where(rng.random(5000) < 0.6, gt, rng.integers(0, 11, size=5000))
    keep = gt != 11
    s = segmentation_scores(confusion_matrix(pr, gt))
    labels = list(range(11))
    assert s["G"] == pytest.approx(sklearn_metrics.accuracy_score(gt[keep], pr[keep]))
    recall = sklearn_metrics.recall_score(gt[keep], pr[keep], labels=labels, average=None, zero_division=0)
    np.testing.assert_allclose(s["per_class_accuracy"], recall)
    jac = sklearn_metrics.jaccard_score(gt[keep], pr[keep], labels=labels, average=None, zero_division=0)
    np.testing.assert_allclose(s["per_class_iou"], jac)
    assert s["mIoU"] == pytest.approx(jac.mean())
    assert s["C"] == pytest.approx(recall.mean())


def test_eight_bit_label_maps_take_the_joint_histogram_and_agree_with_the_general_path():
    rng = np.random.default_rng(4)
    target = rng.integers(0, 12, size=(2, 50, 60)).astype(np.uint8)  # 11 = void
    pred = rng.integers(0, 16, size=(2, 50, 60)).astype(np.uint8)  # 11..15: outside the classes
    fast = confusion_matrix(pred, target)
    general = confusion_matrix(pred.astype(np.int64), target.astype(np.int64))
    np.testing.assert_array_equal(fast, general)
    assert fast.sum() == (target != 11).sum() and fast[:, 11].sum() == ((pred >= 11) & (target != 11)).sum()
    target[0, 0, 0] = 12
    with pytest.raises(ValueError, match="target values"):
        confusion_matrix(pred, target)


def test_train_miou_convention_hand_worked_and_bounded_below_by_c_over_2_minus_c():
    from bench.metrics import miou_false_positives_equal_false_negatives as miou_fp_fn
    # accuracies 1, 0.5, 0: IoUs 1, 1/3, 0 (were false positives as many as false negatives); mean 4/9
    assert miou_fp_fn([1.0, 0.5, 0.0]) == pytest.approx(4 / 9)
    assert miou_fp_fn([1.0, np.nan]) == pytest.approx(0.5) and miou_fp_fn([1.0, np.nan], absent="skip") == 1.0
    rng = np.random.default_rng(0)
    for _ in range(100):  # acc / (2 - acc) is convex: the mean is never below C / (2 - C) (Jensen)
        acc = rng.uniform(0, 1, 11)
        c = acc.mean()
        assert miou_fp_fn(acc) >= c / (2 - c) - 1e-12


def test_the_papers_table1_train_miou_follows_that_convention():
    """Every train mIoU of Table 1 lies at or above C/(2-C) of the same row's train C (the convention's lower bound),
    within the rounding of the published figures, and at most about a point above it; the dataset-level mIoU of
    the test columns has no such bound."""
    from bench.published import number, read_rows
    gaps = []
    for row in read_rows("table1"):
        for half in ("mf", "nf"):
            c = number(row[f"{half}_train_C"]) / 100
            gaps.append(number(row[f"{half}_train_mIoU"]) - 100 * c / (2 - c))
    assert len(gaps) == 16 and min(gaps) > -0.1 and max(gaps) < 1.1  # C to 0.1 moves C/(2-C) by up to ~0.1
