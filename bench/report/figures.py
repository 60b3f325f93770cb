"""The report's figures (matplotlib, PNG bytes): validation curves and losses, per-class accuracy, confusion
matrices, accuracy against inference memory beside the paper's, and test images with ground truth and predictions
in the dataset's colours.
"""
from __future__ import annotations

import io
from collections import defaultdict

import numpy as np

from bench.architectures import paper_names
from bench.errors import BenchError
from bench.published import number, read_rows
from bench.records import latest_profile_rows
from bench.report.costs import memory_key

MARKERS = "osD^vP*Xhp<>"
VARIANT_LINES = {None: "-", "median-frequency": "-", "natural-frequency": "--"}


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return buf.getvalue()


def model_style(member: str) -> dict:
    """One colour and marker per registered model, the same in every figure of every report."""
    from bench import architectures
    import matplotlib
    names = architectures.list_models()
    i = names.index(member) if member in names else len(names) + sum(map(ord, member)) % 7
    return {"color": matplotlib.colormaps["tab20"](i % 20), "marker": MARKERS[i % len(MARKERS)]}


def _label(key) -> str:
    return key[1] + (f" [{key[2]}]" if key[2] else "")


def _panels(n: int, width: float = 3.4, height: float = 2.6, ncols: int = 4):
    """Small multiples: n panels in rows of ``ncols``; the unused ones hidden."""
    import matplotlib.pyplot as plt
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _by_member(recs_by_key) -> dict:
    out = defaultdict(list)
    for key in sorted(recs_by_key, key=lambda k: (k[1], k[2] or "")):
        out[key[1]].append(key)
    return out


def figure_curves(recs_by_key) -> bytes:
    """Validation G and mIoU against iterations: one panel per model, its variants as line styles."""
    from matplotlib.ticker import MaxNLocator
    members = _by_member(recs_by_key)
    fig, axes = _panels(len(members))
    for ax, (member, keys) in zip(axes, members.items()):
        style = model_style(member)
        for key in keys:
            val = recs_by_key[key][0]["curves"]["val"]
            its = [p["iteration"] for p in val]
            ls = VARIANT_LINES.get(key[2], ":")
            ax.plot(its, [p["mIoU"] for p in val], ls=ls, marker=style["marker"], ms=3, color=style["color"],
                    label=f"mIoU {key[2] or ''}".strip())
            ax.plot(its, [p["G"] for p in val], ls=ls, color=style["color"], alpha=0.45, label=f"G {key[2] or ''}".strip())
        ax.set_title(member, fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
        ax.set_xlabel("iteration", fontsize=8)
        ax.set_ylabel("validation (%)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="lower right")
    fig.suptitle("Validation G (light) and mIoU against iterations (first seed of each run)")
    fig.tight_layout()
    return _png(fig)


def figure_losses(recs_by_key, paths_by_key) -> bytes | None:
    """Training loss against iterations (each run's loss.npy, a running mean over 1 % of the run)."""
    from matplotlib.ticker import MaxNLocator
    curves = {}
    for key in recs_by_key:
        f = paths_by_key[key][0].parent / "loss.npy"
        try:
            loss = np.load(f)
        except (OSError, ValueError):
            continue
        if loss.ndim == 1 and loss.size:
            w = max(1, loss.size // 100)
            curves[key] = np.convolve(loss, np.ones(w) / w, mode="valid")
    if not curves:
        return None
    members = _by_member(curves)  # only runs whose loss could be read
    fig, axes = _panels(len(members))
    for ax, (member, keys) in zip(axes, members.items()):
        style = model_style(member)
        for key in keys:
            y = curves[key]
            ax.plot(np.arange(1, y.size + 1), y, ls=VARIANT_LINES.get(key[2], ":"), color=style["color"],
                    label=key[2] or member)
        ax.set_title(member, fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
        ax.set_xlabel("iteration", fontsize=8)
        ax.set_ylabel("training loss", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.suptitle("Training loss (running mean; first seed of each run)")
    fig.tight_layout()
    return _png(fig)


def figure_confusion(recs_by_key, class_names) -> bytes:
    """Test confusion matrices, rows normalised to the ground truth (recall per class), one panel per run."""
    keys = sorted(recs_by_key, key=lambda k: (k[1], k[2] or ""))
    fig, axes = _panels(len(keys), width=3.6, height=3.5)
    k = len(class_names)
    for ax, key in zip(axes, keys):
        cm = np.sum([np.asarray(r["test"]["confusion_matrix"], float)[:, :k] for r in recs_by_key[key]], axis=0)
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(100 * norm, vmin=0, vmax=100, cmap="viridis")
        ax.set_title(_label(key), fontsize=8)
        ax.set_xticks(range(k))
        ax.set_yticks(range(k))
        ax.set_xticklabels(class_names, rotation=90, fontsize=5)
        ax.set_yticklabels(class_names, fontsize=5)
        ax.set_xlabel("prediction", fontsize=7)
        ax.set_ylabel("ground truth", fontsize=7)
    fig.suptitle("Test confusion matrices, % of each ground-truth class (void ignored)")
    fig.tight_layout()
    return _png(fig)


def figure_per_class(recs_by_key, class_names) -> bytes:
    import matplotlib.pyplot as plt
    keys = sorted(recs_by_key, key=lambda k: (k[1], k[2] or ""))
    fig, ax = plt.subplots(figsize=(12, 4))
    width = 0.8 / max(1, len(keys))
    x = np.arange(len(class_names))
    for i, key in enumerate(keys):
        vals = [np.mean([r["test"]["per_class"][c]["accuracy"] or 0 for r in recs_by_key[key]]) for c in class_names]
        style = model_style(key[1])
        ax.bar(x + i * width, vals, width, label=_label(key), color=style["color"],
               hatch="//" if key[2] == "natural-frequency" else None, edgecolor="white", linewidth=0.3)
    ax.set_xticks(x + 0.4 - width / 2)
    ax.set_xticklabels(class_names, rotation=30)
    ax.set_ylabel("test class accuracy (%)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def paper_tradeoff_points() -> dict:
    """{paper network name: (GPU inference memory in MB from Table 6, mIoU at the most iterations from Table 3)}
    for the networks both tables report."""
    miou = {r["network"]: number(r["itmax_mIoU"]) for r in read_rows("table3")}
    return {r["network"]: (number(r["gpu_infer_mem_MB"]), miou[r["network"]]) for r in read_rows("table6")
            if miou.get(r["network"]) is not None and number(r["gpu_infer_mem_MB"]) is not None}


def figure_tradeoff(recs_by_key, profiles, with_paper: bool = False) -> tuple[bytes | None, list[str]]:
    """Test mIoU against inference memory: ours (one point per model and variant, from the latest profile
    records of one device) and, with ``with_paper``, the paper's (Table 3 mIoU against Table 6 memory) in a
    panel beside it, in the same colour and marker per model. Returns the PNG (None when there is nothing to
    draw) and notes naming the models left out for want of a profile record."""
    latest = latest_profile_rows(profiles)
    gpu = any(s["device"].startswith("cuda") for _, s, _ in latest.values())
    mem = {m: row["inference_memory"].get(memory_key(st)) for m, (row, st, _) in latest.items()}
    pts = [(k, np.mean([r["test"]["mIoU"] for r in v]), mem.get(k[1])) for k, v in sorted(recs_by_key.items(),
           key=lambda kv: (kv[0][1], kv[0][2] or "")) if mem.get(k[1]) is not None]
    no_profile = sorted({k[1] for k in recs_by_key if mem.get(k[1]) is None})
    notes = [f"Not in the trade-off figure (no profile record; run `bench profile --model NAME`): "
             f"{', '.join(no_profile)}."] if no_profile else []
    paper = {}
    if with_paper:
        members = {paper_name: member for member, paper_name in paper_names().items()}
        paper = {name: (m, miou, members.get(name)) for name, (m, miou) in paper_tradeoff_points().items()}
    if not pts and not paper:
        return None, notes
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2 if paper else 1, figsize=(11 if paper else 6, 4), squeeze=False, sharey=False)
    ax = axes[0][0]
    for k, miou, m in pts:
        style = model_style(k[1])
        ax.scatter(m, miou, color=style["color"], marker=style["marker"], s=45, label=_label(k))
    if pts:
        ax.legend(fontsize=7, loc="best")
    else:
        ax.text(0.5, 0.5, "no profile record of these models:\nrun `bench profile`", ha="center", va="center",
                transform=ax.transAxes, fontsize=9)
    ax.set_xlabel(f"inference memory, MB ({'GPU' if gpu else 'CPU process RSS growth'}, ours)")
    ax.set_ylabel("test mIoU (%)")
    ax.set_title("Ours", fontsize=10)
    ax.grid(alpha=0.3)
    if paper:
        ax = axes[0][1]
        for name, (m, miou, member) in sorted(paper.items()):
            style = model_style(member) if member else {"color": "grey", "marker": "o"}
            ax.scatter(m, miou, facecolors="none", edgecolors=[style["color"]], marker=style["marker"], s=55,
                       linewidths=1.5, label=name)
        ax.legend(fontsize=7, loc="best")
        ax.set_xlabel("GPU inference memory, MB (Table 6)")
        ax.set_ylabel("test mIoU (%), Table 3 (3,433 training images)")
        ax.set_title("Paper", fontsize=10)
        ax.grid(alpha=0.3)
    fig.suptitle("Accuracy against inference memory", fontsize=11)
    return _png(fig), notes


def spread_over_sequences(names, n: int) -> list[str]:
    """``n`` image names from as many sequences as possible (a name's part before its last "_", as in CamVid's
    0001TP_008550.png), evenly spaced within each sequence, the sequences taken in turn."""
    seqs = defaultdict(list)
    for name in sorted(names):
        seqs[name.rsplit("_", 1)[0]].append(name)
    quota = dict.fromkeys(seqs, 0)
    while sum(quota.values()) < min(n, len(names)):
        for seq in seqs:
            if quota[seq] < len(seqs[seq]) and sum(quota.values()) < n:
                quota[seq] += 1
    picks = {seq: [seqs[seq][(2 * j + 1) * len(seqs[seq]) // (2 * q)] for j in range(q)] for seq, q in quota.items()}
    return [picks[seq][j] for j in range(max(quota.values(), default=0)) for seq in seqs if j < quota[seq]]


def figure_qualitative(recs_by_key, records_paths, dataset, n_images=4, problems: list | None = None,
                       ncols: int = 6) -> bytes | None:
    """Test images, ground truth and each member's prediction in the dataset's colours (like the paper's
    Fig. 4): images from different sequences, each image's panels wrapped in rows of ``ncols``, and a legend
    of the class colours. An unreadable prediction PNG is drawn blank and named in ``problems``."""
    from matplotlib.patches import Patch

    from bench.datasets.common import resize_image
    from bench.labelmap import read_label_png, resize_label
    import matplotlib.pyplot as plt
    keys = sorted(recs_by_key, key=lambda k: (k[1], k[2] or ""))
    first = records_paths[keys[0]][0]
    folder = first.parent / "predictions"
    names = spread_over_sequences([p.name for p in folder.iterdir()], n_images) if folder.is_dir() else []
    if not names:
        return None
    size = tuple(recs_by_key[keys[0]][0]["predictions"]["resolution"])

    at_original = recs_by_key[keys[0]][0]["predictions"].get("at_original_size")

    def read_pred(path):
        try:
            if at_original:  # each at its image's own size: brought to the figure's
                return resize_label(read_label_png(path, None, dataset.void_label, what="prediction"), size)
            return read_label_png(path, size, dataset.void_label, what="prediction")
        except BenchError as exc:
            if problems is not None:
                problems.append(f"{exc} (drawn blank in the qualitative figure)")
            return np.zeros(size, np.uint8)
    try:
        samples = {s.name: s for s in dataset.samples("test")}
    except Exception:
        return None
    palette = np.array(list(dataset.palette) + [(0, 0, 0)] * (256 - len(dataset.palette)), dtype=np.uint8)
    n_panels = 2 + len(keys)
    ncols = min(ncols, n_panels)
    rows_per_image = -(-n_panels // ncols)
    nrows = rows_per_image * len(names)
    aspect = size[0] / size[1]
    handles = [Patch(facecolor=palette[c] / 255, edgecolor="grey", label=name)
               for c, name in enumerate(dataset.class_names)]
    handles.append(Patch(facecolor=palette[dataset.void_label] / 255, edgecolor="grey", label="void (not scored)"))
    legend_cols = min(len(handles), 2 * ncols)
    legend_h = 0.25 * -(-len(handles) // legend_cols) + 0.1
    fig_h = (2.3 * aspect + 0.45) * nrows + legend_h
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.3 * ncols, fig_h), squeeze=False)
    for i, name in enumerate(names):
        s = samples.get(name)
        img = resize_image(dataset.read_image(s), size) if s else np.zeros((*size, 3), np.uint8)
        gt = resize_label(dataset.read_label(s), size) if s else np.zeros(size, np.uint8)
        panels = [(name, img), ("ground truth", palette[gt])]
        for k in keys:
            p = records_paths[k][0].parent / "predictions" / name
            pred = read_pred(p) if p.is_file() else np.zeros(size, np.uint8)
            panels.append((k[1] + (f"\n[{k[2]}]" if k[2] else ""), palette[pred]))
        for j in range(rows_per_image * ncols):
            ax = axes[i * rows_per_image + j // ncols][j % ncols]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(panels):
                ax.set_visible(False)
                continue
            title, im = panels[j]
            ax.imshow(im)
            ax.set_title(title, fontsize=7)
    fig.legend(handles=handles, loc="lower center", ncol=legend_cols, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, legend_h / fig_h, 1, 1), h_pad=0.4, w_pad=0.3)
    return _png(fig)
