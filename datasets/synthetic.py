"""A synthetic CamVid: the authors' layout, list files and checksum list, with random content. For tests and
benchmarks that need the real data's shape but not its pixels (`make_synthetic_camvid(root)`)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

SPLITS = {"train": 3, "val": 2, "test": 3}


def make_synthetic_camvid(root: Path, seed: int = 0, size=(360, 480), splits=None) -> Path:
    """A CamVid-shaped folder (authors' layout and list files) with random content; returns the data root."""
    rng = np.random.default_rng(seed)
    cam = root / "CamVid"
    lines_manifest = []
    for split, n in (splits or SPLITS).items():
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
