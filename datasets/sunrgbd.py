"""SUN RGB-D (Song, Lichtenberg and Xiao, CVPR 2015) for the paper's indoor benchmark (Tables 4 and 5), RGB only.

The official release is two archives from https://rgbd.cs.princeton.edu/data/:
- `SUNRGBD.zip`: 10,335 RGB-D frames, each in its own folder (`SUNRGBD/kv1/NYUdata/NYU0001/image/NYU0001.jpg`,
  depth, intrinsics, annotations);
- `SUNRGBDtoolbox.zip`: `Metadata/SUNRGBDMeta.mat` (one struct per frame; `rgbpath`, `rgbname`),
  `Metadata/SUNRGBD2Dseg.mat` (MATLAB v7.3, HDF5: `SUNRGBD2Dseg.seglabel`, the 37-class label map of each frame
  in SUNRGBDMeta's order, 0 = void, stored transposed as MATLAB does), `Metadata/seg37list.mat` (the 37 class
  names) and `traintestSUNRGBD/allsplit.mat` (`alltrain` 5,285 and `alltest` 5,050 frame folders: the paper's
  split; Table 4's caption says 5,250 training images, a typo for the text's 5,285).

`bench data download sunrgbd` fetches both archives into `<data root>/SUNRGBD-archives/` (the toolbox checked
against its published MD5; the image archive has no published checksum, so its SHA-256 is printed and recorded
by `prepare`, and every member read is checked against the zip's own CRC-32). `bench data prepare sunrgbd`
converts them once, without unpacking the image archive, into a layout like CamVid's under
`<data root>/SUNRGBD/`:
- `images/NNNNN.jpg`: the frame's RGB image, its bytes copied unchanged (NNNNN = its 1-based position in
  SUNRGBDMeta, which is also its index in SUNRGBD2Dseg);
- `labels/NNNNN.png`: 8-bit label PNG at the image's own size holding **class indices 0..36** (official label
  k = 1..37 is written k - 1) and **37 = void** (official 0), the harness's convention (void just after the
  classes, as CamVid's 11), so the loader and evaluator need nothing special;
- `train.txt`, `test.txt`: `images/NNNNN.jpg labels/NNNNN.png` lines of the official split, in allsplit's order;
- `sources.tsv`: each name's split and official frame folder; `prepared.json`: the archives (size, SHA-256),
  the counts and the conventions; `prepared.sha256`: every prepared file, checked by `bench data verify`.

Our splits: `test` is the official test list; the paper's text gives no validation set, so ours is carved from
the official train list: every 20th frame is `val` (264 frames), the other 5,021 are `train` (a choice, stated
in the suite's TOML and recorded with every run).

The class names are the toolbox's `seg37list`. We found no class colours in the toolbox: ours are the Pascal VOC
devkit's colour map of indices 1..37 (void black).

BF on this dataset: the authors' `computeBFmeasure.m` was written for SUN RGB-D's labels 1..37 with 0 void; it
loops over the 37 classes and never over void. Our indices are those labels minus one with void moved to 37, so
the evaluator's classes 0..36 are the script's 1..37 and its void is the script's 0 (tests/test_sunrgbd.py holds
the two conventions to the same scores).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from bench.errors import BenchError
from bench.datasets.camvid import (check_manifest, median_frequency_weights, read_label_png, read_manifest,
                             sha256_file)
from bench.datasets.registry import folder_not_found, register_dataset
from bench.datasets.voc import carve_val, voc_palette

# Metadata/seg37list.mat, in the toolbox's order and spelling (official labels 1..37 = our indices 0..36).
CLASS_NAMES = ("wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "picture",
               "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror", "floor_mat",
               "clothes", "ceiling", "books", "fridge", "tv", "paper", "towel", "shower_curtain", "box",
               "whiteboard", "person", "night_stand", "toilet", "sink", "lamp", "bathtub", "bag")
VOID_LABEL = len(CLASS_NAMES)  # 37; official 0
OFFICIAL_VOID = 0
VAL_EVERY = 20  # every 20th frame of the official train list is our val

DATA_URL = "https://rgbd.cs.princeton.edu/data/"
ARCHIVES = ("SUNRGBD.zip", "SUNRGBDtoolbox.zip")
ARCHIVES_FOLDER = "SUNRGBD-archives"
# The toolbox's MD5 as published with mmdetection3d's SUN RGB-D instructions (data/sunrgbd/README.md); no
# checksum of SUNRGBD.zip is published.
PUBLISHED_MD5 = {"SUNRGBDtoolbox.zip": "18d22e1761d36352f37232cba102f91f"}
TOOLBOX_FILES = {"meta": "Metadata/SUNRGBDMeta.mat", "labels": "Metadata/SUNRGBD2Dseg.mat",
                 "names": "Metadata/seg37list.mat", "split": "traintestSUNRGBD/allsplit.mat"}
CLASS_WEIGHTINGS = {
    "natural": "no class balancing: every class weight 1 (Table 4's rows)",
    "authors-prototxt": "the class_weighting of the authors' SUN RGB-D train prototxt (SegNet-Tutorial "
    "Example_Models/train_segnet_sun.prototxt, as published; bench/published/sunrgbd_class_weights.csv)",
    "median-frequency": "median-frequency balancing alpha_c = median(freq) / freq(c), freq(c) = pixels of c / "
    "pixels of the training images containing c, median over the 37 classes (computed from the labels)",
}


@dataclass(frozen=True)
class Sample:
    name: str  # the label's file name, e.g. "00001.png"; predictions use the same name
    image: Path
    label: Path


def authors_class_weights() -> tuple[float, ...]:
    """The prototxt `class_weighting` of official labels 1..37 (our classes 0..36); label 0 is ignored there."""
    from bench.published import read_rows
    rows = sorted(read_rows("sunrgbd_class_weights"), key=lambda r: int(r["official_label"]))
    return tuple(float(r["prototxt_weight"]) for r in rows if int(r["official_label"]) != OFFICIAL_VOID)


def _name_key(name: str) -> str:
    return name.lower().replace("_", "").replace(" ", "")


@register_dataset("sunrgbd")
class SUNRGBD:
    folder = "SUNRGBD"
    splits = ("train", "val", "test")
    num_classes = len(CLASS_NAMES)
    void_label = VOID_LABEL
    class_names = CLASS_NAMES
    palette = tuple(voc_palette(len(CLASS_NAMES) + 1)[1:])
    image_size = None  # images vary in size (sensors differ)
    class_weightings = CLASS_WEIGHTINGS
    split_rule = (f"test: allsplit.mat alltest; val: every {VAL_EVERY}th frame of alltrain (in its order); train: the "
                  "rest of alltrain")

    def __init__(self, data_root: Path):
        self.data_root = Path(data_root)
        self.root = self.data_root / self.folder
        self.archives = self.data_root / ARCHIVES_FOLDER

    # -- files ------------------------------------------------------------------------------------------------
    def list_file(self, split: str) -> Path:
        if split not in self.splits:
            raise BenchError(f"unknown split {split!r} of sunrgbd; known splits: {', '.join(self.splits)}")
        if not self.root.is_dir():
            raise folder_not_found("SUN RGB-D", self.root, self.data_root,
                                   "set --data-root or BENCH_DATA_ROOT, or run `bench data download sunrgbd` then "
                                   "`bench data prepare sunrgbd`")
        path = self.root / ("test.txt" if split == "test" else "train.txt")
        if not path.is_file():
            raise BenchError(f"{path}: list file of split {split!r} is missing")
        return path

    def samples(self, split: str, check_files: bool = True) -> list[Sample]:
        """The split's (image, label) pairs in list order (see the module docstring for our three splits)."""
        path = self.list_file(split)
        rows = [(n, line.split()) for n, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]
        rows = carve_val(rows, split, VAL_EVERY)
        samples = []
        for n, fields in rows:
            if len(fields) != 2 or any(".." in PurePosixPath(f).parts or f.startswith("/") for f in fields):
                raise BenchError(f"{path}:{n}: expected 'images/NNNNN.jpg labels/NNNNN.png', found "
                                 f"{' '.join(fields)[:80]!r}")
            s = Sample(PurePosixPath(fields[1]).name, self.root / fields[0], self.root / fields[1])
            if check_files:
                for p, what in ((s.image, "image"), (s.label, "label")):
                    if not p.is_file():
                        raise BenchError(f"{path}:{n}: names {what} {fields[0 if what == 'image' else 1]} but "
                                         f"{p} is missing")
            samples.append(s)
        if not samples:
            raise BenchError(f"{path}: split {split!r} is empty")
        return samples

    def read_image(self, sample: Sample) -> np.ndarray:
        try:
            with Image.open(sample.image) as im:
                return np.array(im.convert("RGB"))
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise BenchError(f"{sample.image}: image cannot be decoded ({exc.__class__.__name__}: {exc})") from None

    def read_label(self, sample: Sample) -> np.ndarray:
        """The label map as class indices 0..36, void 37 (uint8), at the image's own size."""
        return read_label_png(sample.label, None, self.void_label, what="ground-truth label map")

    def class_weights(self, weighting: str, labels=None) -> np.ndarray:
        if weighting not in self.class_weightings:
            raise BenchError(f"unknown class weighting {weighting!r} for sunrgbd; known: "
                             f"{', '.join(self.class_weightings)}")
        if weighting == "natural":
            return np.ones(self.num_classes)
        if weighting == "authors-prototxt":
            return np.array(authors_class_weights())
        if labels is None:
            labels = [self.read_label(s) for s in self.samples("train")]
        return median_frequency_weights(labels, self.num_classes, void_label=self.void_label)

    # -- verification -----------------------------------------------------------------------------------------
    def verify(self, checksums: bool = True, progress=None) -> dict:
        """Every split's files present and decoding, each label map the size of its image with indices 0..37,
        and (``checksums``) every prepared file matching `prepared.sha256`."""
        counts, everything = {}, []
        for split in self.splits:
            s = self.samples(split)
            counts[split] = len(s)
            everything += s
        for s in (progress(everything, desc="decoding") if progress else everything):
            image, label = self.read_image(s), self.read_label(s)
            if image.shape[:2] != label.shape:
                raise BenchError(f"{s.label}: label map is {label.shape[0]}x{label.shape[1]} but its image "
                                 f"{s.image} is {image.shape[0]}x{image.shape[1]}")
        summary = {"root": str(self.root), "images": counts, "sha256": "not checked"}
        if checksums:
            manifest_path = self.root / "prepared.sha256"
            if not manifest_path.is_file():
                raise BenchError(f"{manifest_path}: checksum list is missing (written by `bench data prepare "
                                 "sunrgbd`; pass --no-checksums to skip the comparison)")
            needed = {p.relative_to(self.root).as_posix() for s in everything for p in (s.image, s.label)}
            summary["sha256"] = check_manifest(self.root, manifest_path, read_manifest(manifest_path), needed,
                                               progress)
        return summary

    # -- download and prepare ---------------------------------------------------------------------------------
    def download(self, progress: bool = True) -> dict:
        """The two official archives into `<data root>/SUNRGBD-archives/` (each fetched to a temporary name and
        moved into place whole; the toolbox checked against its published MD5)."""
        from bench.datasets.download import _fetch
        self.archives.mkdir(parents=True, exist_ok=True)
        fetched = []
        for name in ARCHIVES:
            dest = self.archives / name
            if not dest.is_file():
                tmp = dest.with_name(f".{name}.part-{os.getpid()}")
                try:
                    _fetch(DATA_URL + name, tmp, progress)
                    _check_published_md5(tmp, name)
                    os.replace(tmp, dest)
                finally:
                    tmp.unlink(missing_ok=True)
                fetched.append(name)
            else:
                _check_published_md5(dest, name)
        return {"root": str(self.archives), "files_verified": len(ARCHIVES), "url": DATA_URL if fetched else None,
                "already_present": not fetched, "next": "bench data prepare sunrgbd"}

    def prepare(self, archives: Path | None = None, progress=None, log=print) -> dict:
        """Converts the official archives into `<data root>/SUNRGBD/` (module docstring); built in a hidden
        folder beside it and moved into place only when complete."""
        return prepare_sunrgbd(Path(archives) if archives else self.archives, self.data_root, progress, log)


def _check_published_md5(path: Path, name: str) -> None:
    want = PUBLISHED_MD5.get(name)
    if want is None:
        return
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != want:
        raise BenchError(f"{path}: MD5 {h.hexdigest()} differs from the published {want} (corrupt or truncated "
                         "download; remove it and download again)")


# -- reading the official files ---------------------------------------------------------------------------------
def frame_folder(path: str) -> str:
    """An official frame path (`/n/fs/sun3d/data/SUNRGBD/kv1/NYUdata/NYU0001[/image/NYU0001.jpg]`) as the
    frame's folder relative to the release (`kv1/NYUdata/NYU0001`)."""
    parts = [p for p in str(path).replace("\\", "/").split("/") if p]
    if "SUNRGBD" in parts:
        parts = parts[len(parts) - parts[::-1].index("SUNRGBD"):]
    if len(parts) >= 2 and parts[-2] == "image":
        parts = parts[:-2]
    return "/".join(parts)


def _cell_strings(value) -> list[str]:
    """A MATLAB cell array of strings as loaded by scipy (nested object arrays) as a flat list of str."""
    out = []
    for v in np.asarray(value, dtype=object).ravel():
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, np.ndarray):
            out += _cell_strings(v) if v.dtype == object else ["".join(map(str, v.ravel()))]
        else:
            out.append(str(v))
    return out


def _loadmat(path: Path, what: str, shown=None) -> dict:
    import scipy.io
    try:
        return scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as exc:  # scipy raises several kinds for a bad file
        raise BenchError(f"{shown or path}: {what} cannot be read as a MATLAB file ({exc.__class__.__name__}: "
                         f"{exc})") from None


def read_class_names(path: Path, shown=None) -> list[str]:
    data = _loadmat(path, "the class list", shown)
    if "seg37list" not in data:
        raise BenchError(f"{shown or path}: has no variable seg37list")
    names = _cell_strings(data["seg37list"])
    if [_name_key(n) for n in names] != [_name_key(n) for n in CLASS_NAMES]:
        raise BenchError(f"{shown or path}: seg37list holds {len(names)} names ({', '.join(names[:5])}, ...), not "
                         "the 37 classes this harness knows (wall, floor, cabinet, ...)")
    return names


def read_split(path: Path, shown=None) -> dict[str, list[str]]:
    """{"train": frame folders, "test": frame folders} of allsplit.mat's alltrain / alltest."""
    data = _loadmat(path, "the train/test split", shown)
    out = {}
    for split, key in (("train", "alltrain"), ("test", "alltest")):
        if key not in data:
            raise BenchError(f"{shown or path}: has no variable {key}")
        out[split] = [frame_folder(p) for p in _cell_strings(data[key])]
    overlap = set(out["train"]) & set(out["test"])
    if overlap:
        raise BenchError(f"{shown or path}: frame {sorted(overlap)[0]} is in both alltrain and alltest")
    return out


def read_meta(path: Path, shown=None) -> list[tuple[str, str]]:
    """(frame folder, rgb file name) of each SUNRGBDMeta entry, in order."""
    data = _loadmat(path, "the frame metadata", shown)
    if "SUNRGBDMeta" not in data:
        raise BenchError(f"{shown or path}: has no variable SUNRGBDMeta")
    out = []
    for i, m in enumerate(np.atleast_1d(data["SUNRGBDMeta"]), 1):
        try:
            rgbpath, rgbname = str(m.rgbpath), str(m.rgbname)
        except AttributeError:
            raise BenchError(f"{shown or path}: SUNRGBDMeta entry {i} has no rgbpath / rgbname") from None
        out.append((frame_folder(rgbpath), rgbname))
    return out


class SegLabels:
    """SUNRGBD2Dseg.mat (MATLAB v7.3): `SUNRGBD2Dseg.seglabel`, one reference per frame to its label map, read
    one at a time (the whole file needs tens of GB in MATLAB)."""

    def __init__(self, path: Path, shown=None):
        import h5py
        self.path = shown or path
        try:
            self.file = h5py.File(path, "r")
            self.refs = self.file["SUNRGBD2Dseg"]["seglabel"]
        except (OSError, KeyError) as exc:
            raise BenchError(f"{self.path}: not the toolbox's SUNRGBD2Dseg.mat (an HDF5 file with "
                             f"SUNRGBD2Dseg/seglabel: {exc})") from None

    def __len__(self):
        return int(np.prod(self.refs.shape))

    def label(self, index: int, where: str) -> np.ndarray:
        """Frame ``index``'s (0-based) map in the harness's indices: official 1..37 -> 0..36, official 0 -> 37."""
        raw = np.asarray(self.file[self.refs[index][0] if self.refs.ndim == 2 else self.refs[index]]).T
        if raw.ndim != 2:
            raise BenchError(f"{self.path}: the label map of {where} has {raw.ndim} dimensions, not 2")
        if raw.dtype.kind == "f" and not np.array_equal(raw, np.round(raw)):
            raise BenchError(f"{self.path}: the label map of {where} holds non-integer values")
        if raw.size and (raw.min() < 0 or raw.max() > VOID_LABEL):
            bad = raw.max() if raw.max() > VOID_LABEL else raw.min()
            raise BenchError(f"{self.path}: the label map of {where} has class id {bad:g}, outside 0..{VOID_LABEL} "
                             f"(0 = void, 1..{VOID_LABEL} the classes)")
        raw = raw.astype(np.int16)
        return np.where(raw == OFFICIAL_VOID, VOID_LABEL, raw - 1).astype(np.uint8)

    def close(self):
        self.file.close()


def _archive(folder: Path, name: str) -> zipfile.ZipFile:
    path = folder / name
    if not path.is_file():
        raise BenchError(f"{path}: archive is missing (run `bench data download sunrgbd`, or pass --archives with the "
                         f"folder holding {' and '.join(ARCHIVES)})")
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BenchError(f"{path}: not a readable zip archive ({exc}); truncated or corrupt") from None


def _member(zf: zipfile.ZipFile, suffix: str) -> zipfile.ZipInfo:
    hits = [i for i in zf.infolist() if i.filename.rstrip("/").endswith("/" + suffix) or i.filename == suffix]
    if not hits:
        raise BenchError(f"{zf.filename}: archive lacks {suffix}")
    return min(hits, key=lambda i: len(i.filename))


def _extract(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path) -> Path:
    try:
        with zf.open(info) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise BenchError(f"{zf.filename}: member {info.filename} cannot be read ({exc}); corrupt archive") from None
    return dest


def _read_member(zf: zipfile.ZipFile, name: str) -> bytes:
    try:
        return zf.read(name)
    except KeyError:
        raise BenchError(f"{zf.filename}: archive lacks {name}, the image of a frame the split lists") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise BenchError(f"{zf.filename}: member {name} cannot be read ({exc}); corrupt archive") from None


def prepare_sunrgbd(archives: Path, data_root: Path, progress=None, log=print) -> dict:
    """The conversion of `SUNRGBD.prepare` (see the module docstring)."""
    target = Path(data_root) / SUNRGBD.folder
    if target.exists():
        raise BenchError(f"{target}: already prepared (check it with `bench data verify sunrgbd`; remove the folder "
                         "to prepare again)")
    toolbox, images = _archive(archives, "SUNRGBDtoolbox.zip"), _archive(archives, "SUNRGBD.zip")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".prepare-SUNRGBD-") as tmp:
        tmp = Path(tmp)
        members = {k: _member(toolbox, v) for k, v in TOOLBOX_FILES.items()}
        files = {k: _extract(toolbox, m, tmp / PurePosixPath(m.filename).name) for k, m in members.items()}
        shown = {k: f"{toolbox.filename}:{m.filename}" for k, m in members.items()}  # errors name the archive member
        read_class_names(files["names"], shown["names"])
        split = read_split(files["split"], shown["split"])
        meta = read_meta(files["meta"], shown["meta"])
        index_of = {}
        for i, (folder, _) in enumerate(meta):
            index_of.setdefault(folder, i)
        for s in ("train", "test"):
            missing = [f for f in split[s] if f not in index_of]
            if missing:
                raise BenchError(f"{shown['split']}: all{s} names frame {missing[0]}, which SUNRGBDMeta.mat does "
                                 f"not hold ({len(missing)} such frame(s))")
        labels = SegLabels(files["labels"], shown["labels"])
        try:
            if len(labels) != len(meta):
                raise BenchError(f"{shown['labels']}: holds {len(labels)} label maps, SUNRGBDMeta.mat {len(meta)} "
                                 "frames (the two must come from the same toolbox)")
            image_prefix = _image_prefix(images)
            out = tmp / SUNRGBD.folder
            (out / "images").mkdir(parents=True)
            (out / "labels").mkdir()
            rows = [(s, f) for s in ("train", "test") for f in split[s]]
            digests, lists, sources = {}, {"train": [], "test": []}, []
            for s, folder in (progress(rows, desc="prepare") if progress else rows):
                i = index_of[folder]
                name = f"{i + 1:05d}"
                member = f"{image_prefix}{folder}/image/{meta[i][1]}"
                data = _read_member(images, member)
                try:
                    with Image.open(io.BytesIO(data)) as im:
                        im.load()
                        w, h = im.size
                except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
                    raise BenchError(f"{images.filename}: {member} cannot be decoded ({exc})") from None
                label = labels.label(i, f"frame {i + 1} ({folder})")
                if label.shape != (h, w):
                    raise BenchError(f"{shown['labels']}: the label map of frame {i + 1} ({folder}) is "
                                     f"{label.shape[0]}x{label.shape[1]}, its image {member} {h}x{w}")
                (out / "images" / f"{name}.jpg").write_bytes(data)
                Image.fromarray(label).save(out / "labels" / f"{name}.png")
                lists[s].append(f"images/{name}.jpg labels/{name}.png")
                sources.append((name, s, folder))
        finally:
            labels.close()
        for s, lines in lists.items():
            (out / f"{s}.txt").write_text("\n".join(lines) + "\n")
        with open(out / "sources.tsv", "w", newline="") as f:
            writer = csv.writer(f, delimiter="\t", lineterminator="\n")
            writer.writerow(["name", "split", "official_folder"])
            writer.writerows(sources)
        info = {"dataset": "sunrgbd", "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "archives": {n: {"bytes": (archives / n).stat().st_size, "sha256": sha256_file(archives / n)}
                             for n in ARCHIVES},
                "frames": {s: len(v) for s, v in lists.items()},
                "labels": f"class indices 0..{VOID_LABEL - 1} = official labels 1..{VOID_LABEL}; {VOID_LABEL} = void "
                          "(official 0)", "class_names": list(CLASS_NAMES),
                "val": f"every {VAL_EVERY}th frame of train.txt (the loader's split)"}
        (out / "prepared.json").write_text(json.dumps(info, indent=1) + "\n")
        for p in sorted(out.rglob("*")):
            if p.is_file():
                digests[p.relative_to(out).as_posix()] = sha256_file(p)
        (out / "prepared.sha256").write_text("".join(f"{d}  ./{r}\n" for r, d in digests.items()))
        os.rename(out, target)
    log(f"sunrgbd: prepared {sum(info['frames'].values())} frames at {target} (train {info['frames']['train']}, test "
        f"{info['frames']['test']}); SUNRGBD.zip SHA-256 {info['archives']['SUNRGBD.zip']['sha256']}")
    return {"root": str(target), **info}


def _image_prefix(zf: zipfile.ZipFile) -> str:
    """The folder the release's frames sit under inside SUNRGBD.zip (`SUNRGBD/`)."""
    for info in zf.infolist():
        parts = info.filename.split("/")
        if "SUNRGBD" in parts:
            return "/".join(parts[:parts.index("SUNRGBD") + 1]) + "/"
    return ""
