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
from bench.published import number, read_rows, row_by
from bench.records import latest_profile_rows
from bench.report.costs import memory_key

MARKERS = "osD^vP*Xhp<>"
VARIANT_LINES = {None: "-", "median-frequency": "-", "natural-frequency": "--"}
# strong colours, legible on white, in the order of `bench.architectures.list_models()`: within each suite the
# models differ in hue (Table 3: blue, orange, brown, green, red; Table 1: the rest)
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
           "#393b79", "#7f7f7f", "#31a354", "#cb181d", "#636363", "#000000", "#3182bd", "#e6550d", "#756bb1")
CURVE_METRICS = ("G", "C", "mIoU")


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return buf.getvalue()


def model_style(member: str) -> dict:
    """One colour and marker per registered model, the same in every figure of every report."""
    from bench import architectures
    names = architectures.list_models()
    base = next((n for n in sorted(names, key=len, reverse=True) if member.startswith(n + "-")), None)
    if member not in names and base:  # a post-processed member (deeplab-largefov-densecrf): its model's colour
        return {"color": COLOURS[names.index(base) % len(COLOURS)], "marker": "*"}
    i = names.index(member) if member in names else len(names) + sum(map(ord, member)) % 7
    return {"color": COLOURS[i % len(COLOURS)], "marker": MARKERS[i % len(MARKERS)]}


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


def _keys(recs_by_key) -> list:
    return sorted(recs_by_key, key=lambda k: (k[1], k[2] or ""))


def _iterations(text: str) -> int | None:
    """"140K" -> 140000; None where not a count."""
    text = (text or "").strip().upper()
    try:
        return int(float(text[:-1]) * 1000) if text.endswith("K") else int(text)
    except ValueError:
        return None


def paper_points(tables: tuple, recs_by_key) -> dict:
    """{run key: {metric: [(iteration or None, the paper's test score)]}}: Table 3's and 4's scores at their
    iterations; Table 1's (at convergence, no iteration: drawn at the end of our curve)."""
    from bench.report.tables import BUDGET_TABLES, VARIANT_PREFIX, _budget_row_name
    names = paper_names()
    out = {}
    for key in recs_by_key:
        member, variant = key[1], key[2]
        points = {}
        if "table1" in tables and VARIANT_PREFIX.get(variant or ""):
            row = row_by("table1", "variant", names.get(member, member)) or {}
            for m in CURVE_METRICS:
                v = number(row.get(f"{VARIANT_PREFIX[variant]}_test_{m}", ""))
                if v is not None:
                    points[m] = [(None, v)]
        for table in ("table3", "table4"):
            if table not in tables:
                continue
            row = row_by(table, "network", _budget_row_name(member, variant, names)) or {}
            for m in CURVE_METRICS:
                pts = []
                for col, lab in BUDGET_TABLES[table]["columns"]:
                    its = _iterations(row.get("max_iter", "")) if col == "itmax" else _iterations(lab)
                    v = number(row.get(f"{col}_{m}", ""))
                    if v is not None and its is not None:
                        pts.append((its, v))
                if pts:
                    points[m] = pts
        if points:
            out[key] = points
    return out


def figure_curves(recs_by_key, paper: dict | None = None) -> bytes:
    """Validation G, C and mIoU against iterations: one panel per metric, every run on the same axes (one colour
    per model, its balancing as line style), the paper's test scores as hollow markers in the run's colour."""
    import matplotlib.pyplot as plt
    paper = paper or {}
    fig, axes = plt.subplots(1, len(CURVE_METRICS), figsize=(5.2 * len(CURVE_METRICS), 4.2), sharex=True)
    for ax, metric in zip(axes, CURVE_METRICS):
        for key in _keys(recs_by_key):
            style = model_style(key[1])
            val = recs_by_key[key][0]["curves"]["val"]
            its = [p["iteration"] for p in val]
            ax.plot(its, [p.get(metric) for p in val], ls=VARIANT_LINES.get(key[2], ":"), marker=style["marker"],
                    ms=3, color=style["color"], lw=1.4, label=_label(key))
            for it, v in paper.get(key, {}).get(metric, []):
                ax.scatter(it if it is not None else (its[-1] if its else 0), v, s=60, facecolors="none",
                           edgecolors=[style["color"]], marker=style["marker"], linewidths=1.6, zorder=3)
        ax.set_title(f"validation {metric}", fontsize=10)
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"{metric} (%)")
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    if paper:
        from matplotlib.lines import Line2D
        handles.append(Line2D([], [], ls="none", marker="o", mfc="none", mec="black", label="paper (test, hollow)"))
        labels.append("paper's test score (hollow)")
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8, frameon=False)
    rows = -(-len(labels) // 4)
    fig.suptitle("Validation scores against iterations (first seed of each run); hollow: the paper's test scores")
    fig.tight_layout(rect=(0, 0.05 * rows + 0.02, 1, 1))
    return _png(fig)


def figure_losses(recs_by_key, paths_by_key) -> bytes | None:
    """Training loss against iterations, every run on one axes (each run's loss.npy, a running mean over 1 % of
    the run)."""
    import matplotlib.pyplot as plt
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
    fig, ax = plt.subplots(figsize=(10, 4.2))
    for key in _keys(curves):  # only runs whose loss could be read
        style = model_style(key[1])
        y = curves[key]
        ax.plot(np.arange(1, y.size + 1), y, ls=VARIANT_LINES.get(key[2], ":"), color=style["color"], lw=1.3,
                label=_label(key))
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss (running mean)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="upper right")
    ax.set_title("Training loss, first seed of each run", fontsize=10)
    return _png(fig)


def figure_confusion(recs_by_key, class_names) -> bytes:
    """Test confusion matrices, rows normalised to the ground truth (recall per class), one panel per run, with
    one shared colour bar."""
    keys = _keys(recs_by_key)
    k = len(class_names)
    side = 4.2 if k <= 12 else 6.5
    fig, axes = _panels(len(keys), width=side, height=side, ncols=3 if k <= 12 else 2)
    image = None
    for ax, key in zip(axes, keys):
        cm = np.sum([np.asarray(r["test"]["confusion_matrix"], float)[:, :k] for r in recs_by_key[key]], axis=0)
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        image = ax.imshow(100 * norm, vmin=0, vmax=100, cmap="viridis")
        ax.set_title(_label(key), fontsize=9)
        ax.set_xticks(range(k))
        ax.set_yticks(range(k))
        size = 8 if k <= 12 else 6
        ax.set_xticklabels(class_names, rotation=90, fontsize=size)
        ax.set_yticklabels(class_names, fontsize=size)
        ax.set_xlabel("prediction", fontsize=8)
        ax.set_ylabel("ground truth", fontsize=8)
    fig.suptitle("Test confusion matrices, % of each ground-truth class (void ignored)")
    fig.tight_layout(rect=(0, 0, 0.93, 1))
    if image is not None:
        bar = fig.add_axes((0.945, 0.15, 0.012, 0.7))
        fig.colorbar(image, cax=bar, label="% of the ground-truth class")
    return _png(fig)


def paper_per_class(dataset: str, class_names) -> tuple[list, dict, str]:
    """The paper's class order, its SegNet per-class test accuracy {our class name: value} and where from: CamVid's
    Table 2 (SegNet, 3.5K images), SUN RGB-D's Table 5; our order and {} for other datasets."""
    from bench.report.tables import TABLE2_COLUMNS, class_key
    ours = {class_key(c): c for c in class_names}
    if dataset == "camvid":
        row = row_by("table2", "method", "SegNet (3.5K dataset training - 140K)") or {}
        paper = {ours_name: number(row.get(column, "")) for column, ours_name in TABLE2_COLUMNS.items()
                 if ours_name in class_names}
        return list(paper) + [c for c in class_names if c not in paper], paper, "Table 2: SegNet, 3.5K training images"
    if dataset == "sunrgbd":
        rows = [(ours.get(class_key(r["class"])), number(r["accuracy"])) for r in read_rows("table5")]
        order = [c for c, _ in rows if c]
        return order + [c for c in class_names if c not in order], {c: v for c, v in rows if c}, "Table 5: SegNet"
    return list(class_names), {}, ""


def figure_per_class(recs_by_key, class_names, dataset: str = "") -> bytes:
    """Per-class test accuracy, classes in the paper's order, one bar per run, the paper's SegNet as black ticks."""
    import matplotlib.pyplot as plt
    keys = _keys(recs_by_key)
    order, paper, source = paper_per_class(dataset, class_names)
    fig, ax = plt.subplots(figsize=(max(12, 0.45 * len(order) * max(1, len(keys) / 3)), 4.2))
    width = 0.8 / max(1, len(keys))
    x = np.arange(len(order))
    for i, key in enumerate(keys):
        vals = [np.mean([r["test"]["per_class"][c]["accuracy"] or 0 for r in recs_by_key[key]]) for c in order]
        style = model_style(key[1])
        ax.bar(x + i * width, vals, width, label=_label(key), color=style["color"],
               hatch="//" if key[2] == "natural-frequency" else None, edgecolor="white", linewidth=0.3)
    if paper:
        ys = [paper.get(c) for c in order]
        ax.scatter([xi + 0.4 - width / 2 for xi, y in zip(x, ys) if y is not None], [y for y in ys if y is not None],
                   marker="_", s=500, color="black", linewidths=2.2, zorder=3, label=f"paper ({source})")
    ax.set_xticks(x + 0.4 - width / 2)
    ax.set_xticklabels(order, rotation=30 if len(order) <= 12 else 90, ha="right" if len(order) <= 12 else "center")
    ax.set_ylabel("test class accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, ncol=3, loc="upper left", bbox_to_anchor=(0, -0.25 if len(order) <= 12 else -0.45))
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("Per-class test accuracy, classes in the paper's order", fontsize=10)
    return _png(fig)


def paper_tradeoff_points() -> dict:
    """{paper network name: (GPU inference memory in MB from Table 6, mIoU at the most iterations from Table 3)}
    for the networks both tables report."""
    miou = {r["network"]: number(r["itmax_mIoU"]) for r in read_rows("table3")}
    return {r["network"]: (number(r["gpu_infer_mem_MB"]), miou[r["network"]]) for r in read_rows("table6")
            if miou.get(r["network"]) is not None and number(r["gpu_infer_mem_MB"]) is not None}


def figure_tradeoff(recs_by_key, profiles, with_paper: bool = False) -> tuple[bytes | None, list[str]]:
    """Test mIoU against inference memory on one axes: ours (filled, one point per model and variant, from the
    latest profile records of one device) and, with ``with_paper``, the paper's (hollow: Table 3 mIoU against
    Table 6 memory) in the same colour and marker per model, a thin line from the paper's point to ours. Returns the
    PNG (None when there is nothing to draw) and notes naming the models left out for want of a profile record."""
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
    fig, ax = plt.subplots(figsize=(8, 5))
    for k, miou, m in pts:
        style = model_style(k[1])
        ax.scatter(m, miou, color=style["color"], marker=style["marker"], s=60, zorder=3, label=f"{_label(k)} (ours)")
    ours_of = {k[1]: (m, miou) for k, miou, m in pts}
    for name, (m, miou, member) in sorted(paper.items()):
        style = model_style(member) if member else {"color": "grey", "marker": "o"}
        ax.scatter(m, miou, facecolors="none", edgecolors=[style["color"]], marker=style["marker"], s=70,
                   linewidths=1.6, zorder=3, label=f"{name} (paper)")
        if member in ours_of:
            ax.plot([m, ours_of[member][0]], [miou, ours_of[member][1]], color=style["color"], lw=0.8, alpha=0.6)
    if not pts:
        ax.text(0.5, 0.05, "ours: no profile record of these models (run `bench profile`)", ha="center",
                transform=ax.transAxes, fontsize=9)
    ax.set_xlabel(f"inference memory, MB (ours: {'GPU' if gpu else 'CPU process RSS growth'}"
                  + ("; paper: GPU, Table 6)" if paper else ")"))
    ax.set_ylabel("test mIoU (%)" + (" (paper: Table 3, 3,433 training images)" if paper else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.set_title("Accuracy against inference memory: ours filled, the paper's hollow", fontsize=10)
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
