"""`bench data prepare sunrgbd`: the official SUN RGB-D archives (`bench.datasets.sunrgbd`'s docstring) converted
once, without unpacking the image archive, into the CamVid-like layout the loader reads: the toolbox's MATLAB
files read (class names, split, frame list, the v7.3 label maps), every image copied and every label map written
as an 8-bit PNG of our indices, the lists and checksums beside them.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from bench.datasets.common import sha256_file
from bench.errors import BenchError

# Metadata/seg37list.mat, in the toolbox's order and spelling (official labels 1..37 = our indices 0..36).
CLASS_NAMES = ("wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "picture",
               "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror", "floor_mat",
               "clothes", "ceiling", "books", "fridge", "tv", "paper", "towel", "shower_curtain", "box",
               "whiteboard", "person", "night_stand", "toilet", "sink", "lamp", "bathtub", "bag")
VOID_LABEL = len(CLASS_NAMES)  # 37; official 0
OFFICIAL_VOID = 0
VAL_EVERY = 20  # every 20th frame of the official train list is our val (the loader carves it)
ARCHIVES = ("SUNRGBD.zip", "SUNRGBDtoolbox.zip")
TOOLBOX_FILES = {"meta": "Metadata/SUNRGBDMeta.mat", "labels": "Metadata/SUNRGBD2Dseg.mat",
                 "names": "Metadata/seg37list.mat", "split": "traintestSUNRGBD/allsplit.mat"}


def class_name_key(name: str) -> str:
    return name.lower().replace("_", "").replace(" ", "")


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
    if [class_name_key(n) for n in names] != [class_name_key(n) for n in CLASS_NAMES]:
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


def prepare_sunrgbd(archives: Path, data_root: Path, progress=None, log=print, dataset_folder: str = "SUNRGBD") -> dict:
    """The conversion of `SUNRGBD.prepare` (see the module docstring)."""
    target = Path(data_root) / dataset_folder
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
            out = tmp / dataset_folder
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
