"""`bench predict`: a recorded run's model (`bench.weights.load_model`) over images of any size, on the CPU or a
GPU, fed as the suite fed its test split (brought to the recipe's size by its fit, normalised as it was), each
prediction brought back to its image's own size. Writes, under the output folder:

- `labels/<name>.png`: 8-bit label maps (class indices; the dataset's void label never predicted);
- `overlays/<name>.png`: the image with the classes in the dataset's palette over it, and a legend of the classes
  present;
- `sheet.png`: one contact sheet of the first images and their overlays, with the whole legend.

An image that cannot be read, or has a channel count other than RGB's, is reported in one line and the others are
still done.

    result = bench.predict("results/camvid-decoder-variants/fcn-basic/<run>", ["photos/"], "out/")
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.errors import BenchError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")
OVERLAY_ALPHA = 0.55  # the palette's share of an overlay's pixel
SHEET_IMAGES = 12  # images on the contact sheet
RGB_MODES = ("RGB", "P", "YCbCr", "CMYK")  # Pillow modes that are three colour channels (P: a palette of RGB)


def image_files(paths) -> tuple[list[Path], list[str]]:
    """The images named: files as given, folders' image files (sorted); and a line for each path not there."""
    files, problems = [], []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                problems.append(f"{p}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            problems.append(f"{p}: no such file or folder")
    return files, problems


def read_rgb(path: Path) -> np.ndarray:
    """An image file as H x W x 3 uint8; BenchError naming the file where it cannot be read or is not three
    colour channels (grey, grey + alpha and RGBA are refused rather than guessed at)."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            mode, bands = im.mode, len(im.getbands())
            if mode == "P" and "transparency" in im.info:
                mode, bands = "PA", 4
            if mode not in RGB_MODES:
                raise BenchError(f"{path}: has {bands} channel{'s' * (bands != 1)} ({mode}); the model takes 3 (RGB)")
            return np.array(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BenchError(f"{path}: cannot be read as an image ({exc.__class__.__name__}: {str(exc)[:100]})") from None


def fit_image(image: np.ndarray, size, fit: str, varying: bool) -> tuple[np.ndarray, tuple]:
    """An image brought to ``size`` as the suite's split was (`bench.data.load_split`): resized where the dataset
    is of one size or the fit is "stretch", else letterboxed (scaled whole, padded bottom and right); with
    (H, W, h, w) to bring the prediction back."""
    from bench.datasets.common import resize_image
    H, W = image.shape[:2]
    if not varying or fit == "stretch":
        return resize_image(image, size), (H, W, *size)
    scale = min(size[0] / H, size[1] / W)
    h, w = max(1, min(size[0], round(H * scale))), max(1, min(size[1], round(W * scale)))
    out = np.zeros((*size, 3), np.uint8)
    out[:h, :w] = resize_image(image, (h, w))
    return out, (H, W, h, w)


def back_to_image(pred: np.ndarray, frame: tuple) -> np.ndarray:
    """A prediction at the recipe's size brought back to its image's own size (nearest neighbour)."""
    from bench.labelmap import resize_label
    H, W, h, w = frame
    return resize_label(np.ascontiguousarray(pred[:h, :w]), (H, W))


def palette_of(dataset) -> np.ndarray:
    """The dataset's palette as a 256 x 3 table (black past its classes)."""
    pal = np.zeros((256, 3), np.uint8)
    pal[:len(dataset.palette)] = np.asarray(dataset.palette, np.uint8)
    return pal


def overlay(image: np.ndarray, label_map: np.ndarray, dataset, legend: bool = True) -> np.ndarray:
    """The image with each pixel's class colour over it, and (``legend``) a strip to the right naming the classes
    present with their colours."""
    from PIL import Image, ImageDraw, ImageFont
    mixed = (image * (1 - OVERLAY_ALPHA) + palette_of(dataset)[label_map] * OVERLAY_ALPHA).astype(np.uint8)
    if not legend:
        return mixed
    present = [int(c) for c in np.unique(label_map) if c < len(dataset.class_names)]
    font = ImageFont.load_default()
    row = 16
    strip = Image.new("RGB", (150, max(mixed.shape[0], row * len(present) + 8)), "white")
    draw = ImageDraw.Draw(strip)
    for i, c in enumerate(present):
        y = 4 + i * row
        draw.rectangle([6, y, 18, y + 11], fill=tuple(int(v) for v in dataset.palette[c]), outline="grey")
        draw.text((24, y), dataset.class_names[c], fill="black", font=font)
    out = Image.new("RGB", (mixed.shape[1] + strip.width, max(mixed.shape[0], strip.height)), "white")
    out.paste(Image.fromarray(mixed), (0, 0))
    out.paste(strip, (mixed.shape[1], 0))
    return np.asarray(out)


def contact_sheet(path: Path, items: list[tuple[str, np.ndarray, np.ndarray]], dataset, title: str) -> None:
    """One figure: each image beside its overlay (the first `SHEET_IMAGES`), and the dataset's legend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    items = items[:SHEET_IMAGES]
    fig, axes = plt.subplots(len(items), 2, figsize=(7, 2.4 * len(items) + 0.8), squeeze=False)
    for (name, image, label_map), (a, b) in zip(items, axes):
        a.imshow(image)
        b.imshow(overlay(image, label_map, dataset, legend=False))
        a.set_title(name, fontsize=8)
        for ax in (a, b):
            ax.axis("off")
    handles = [Patch(facecolor=np.asarray(c) / 255, edgecolor="grey", label=n)
               for n, c in zip(dataset.class_names, dataset.palette)]
    fig.legend(handles=handles, loc="lower center", ncol=6, fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def predict(run, images, out, *, device="cpu", checkpoints="checkpoints", sheet: bool = True, progress=None,
            log=print) -> dict:
    """A record's model (a record folder, its run.json, or a weights file) over ``images`` (files and folders);
    writes label maps, overlays and a contact sheet under ``out``. Returns {"written": [names], "problems":
    [lines], "out": folder}. Refuses an ``out`` that already holds files (nothing written over)."""
    import torch
    from PIL import Image
    from bench.config import Recipe
    from bench.data import Normaliser
    from bench.datasets import get_dataset
    from bench.labelmap import write_label_map
    from bench.step import autocast
    from bench.weights import load_model
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise BenchError(f"{out}: already holds files; nothing was written (choose another --out)")
    device = torch.device(device)
    model = load_model(run, checkpoints=checkpoints, device=device)
    meta = model.kept_weights
    dataset = get_dataset(meta["dataset"])
    size, fit = tuple(meta["image_size"]), meta["fit"]
    recipe = Recipe(image_size=size, fit=fit, input_normalisation=meta["input_normalisation"])
    norm, (autocast_ctx, precision) = Normaliser(recipe.input_normalisation, device), autocast(device, recipe)
    files, problems = image_files(images)
    log(f"{meta['model']} (revision {meta['revision']}, {meta.get('run_id', '')}) on {device} in {precision}: "
        f"{len(files)} image(s) at {size[0]}x{size[1]} ({'letterboxed' if fit == 'letterbox' and dataset.image_size is None else 'resized'})")
    written, sheet_items, names = [], [], set()
    for path in (progress(files, total=len(files), desc="predict") if progress and len(files) > 1 else files):
        try:
            image = read_rgb(path)
        except BenchError as exc:
            problems.append(str(exc))
            continue
        x, frame = fit_image(image, size, fit, dataset.image_size is None)
        with torch.no_grad(), autocast_ctx:
            logits = model(norm(torch.from_numpy(x).permute(2, 0, 1)[None].to(device)))
        label_map = back_to_image(logits.argmax(1)[0].to(torch.uint8).cpu().numpy(), frame)
        name = _unique(path.stem, names)
        for sub in ("labels", "overlays"):
            (out / sub).mkdir(parents=True, exist_ok=True)
        write_label_map(out / "labels" / f"{name}.png", label_map)
        Image.fromarray(overlay(image, label_map, dataset)).save(out / "overlays" / f"{name}.png")
        written.append(name)
        if len(sheet_items) < SHEET_IMAGES:
            sheet_items.append((path.name, image, label_map))
    if sheet and sheet_items:
        contact_sheet(out / "sheet.png", sheet_items, dataset,
                      f"{meta['model']} r{meta['revision']} ({meta.get('run_id', '')})")
    return {"written": written, "problems": problems, "out": str(out), "model": meta["model"],
            "revision": meta["revision"], "device": str(device), "precision": precision}


def _unique(stem: str, taken: set) -> str:
    name, i = stem, 1
    while name in taken:
        i += 1
        name = f"{stem}-{i}"
    taken.add(name)
    return name
