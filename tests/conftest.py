"""Shared fixtures: a small synthetic CamVid made in the test, and the real one from the data root."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.datasets.synthetic import make_synthetic_camvid

make_fake_camvid = make_synthetic_camvid


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """A test that sets torch's thread count (a DDP test does) leaves it as it found it: a later in-process run
    compared bit for bit with a job's must sum in the same order."""
    import torch
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def fake_root(tmp_path) -> Path:
    return make_fake_camvid(tmp_path / "data")


def real_data_root() -> Path | None:
    root = os.environ.get("BENCH_DATA_ROOT")
    candidates = [Path(root)] if root else []
    candidates.append(Path(__file__).resolve().parents[1].parent / "shared" / "datasets")
    for c in candidates:
        if (c / "CamVid" / "test.txt").is_file():
            return c
    return None


@pytest.fixture(scope="session")
def camvid_root() -> Path:
    """The real CamVid; skipped where absent, but under CI (CI=true) its absence fails the run."""
    root = real_data_root()
    if root is None:
        if os.environ.get("CI"):
            pytest.fail("CI: the real CamVid was not found under BENCH_DATA_ROOT (expected ../shared/datasets)")
        pytest.skip("real CamVid not found: set BENCH_DATA_ROOT to a folder holding CamVid/")
    return root


@pytest.fixture(scope="session")
def camvid_test_labels(camvid_root):
    from bench import datasets
    ds = datasets.get_dataset("camvid", camvid_root)
    samples, labels = ds.read_labels("test")
    return ds, samples, labels


def vgg16_weights_file() -> Path:
    """The local ImageNet VGG16 weights (`$BENCH_WEIGHTS`, else `../shared/weights` beside the checkout), as CI
    finds them; elsewhere a test that needs them is skipped with the reason (no download in tests), and
    under CI their absence fails the run."""
    env = os.environ.get("BENCH_WEIGHTS")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "weights" / "vgg16-features-imagenet.pth"
    if not path.is_file():
        if os.environ.get("CI"):
            pytest.fail("CI: VGG16 weights not found (BENCH_WEIGHTS or ../shared/weights)")
        pytest.skip(f"local VGG16 weights not found at {path}: set BENCH_WEIGHTS (tests never download)")
    return path
