"""Shared fixtures: a small synthetic CamVid made in the test, and the real one from the data root."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SPLITS = {"train": 3, "val": 2, "test": 3}


def make_fake_camvid(root: Path, seed: int = 0, size=(360, 480)) -> Path:
    """A CamVid-shaped folder (authors' layout and list files) with random content; returns the data root."""
    rng = np.random.default_rng(seed)
    cam = root / "CamVid"
    lines_manifest = []
    for split, n in SPLITS.items():
        (cam / split).mkdir(parents=True)
        (cam / f"{split}annot").mkdir()
        lines = []
        for i in range(n):
            name = f"seq{split}_{i:04d}.png"
            img = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
            lab = np.zeros(size, np.uint8)
            # blocks of every class so each is present somewhere
            for c in range(12):
                y, x = rng.integers(0, size[0] - 40), rng.integers(0, size[1] - 40)
                lab[y:y + 40, x:x + 40] = c
            Image.fromarray(img).save(cam / split / name)
            Image.fromarray(lab).save(cam / f"{split}annot" / name)
            lines.append(f"/SegNet/CamVid/{split}/{name} /SegNet/CamVid/{split}annot/{name}")
        (cam / f"{split}.txt").write_text("\n".join(lines) + "\n")
    for p in sorted(cam.rglob("*")):
        if p.is_file():
            digest = hashlib.sha256(p.read_bytes()).hexdigest()
            lines_manifest.append(f"{digest}  ./{p.relative_to(cam).as_posix()}")
    (root / "CamVid.sha256").write_text("\n".join(lines_manifest) + "\n")
    return root


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
    import datasets
    ds = datasets.get_dataset("camvid", camvid_root)
    samples, labels = ds.read_labels("test")
    return ds, samples, labels
