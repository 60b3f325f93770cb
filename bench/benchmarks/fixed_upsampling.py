"""Benchmark: how well can a fixed bilinear decoder draw CamVid's boundaries, by kernel? Not a test (issue 48).

Bilinear-Interpolation (Table 1) upsamples the K-channel score map of the last encoder (23x30) to 360x480 with four
fixed stride-2 "inverse convolutions" whose 8x8 kernels are "initialised using bilinear interpolation weights"
(paper Sec. 3.1). Two readings of that kernel, channel-diagonal as FCN's `surgery.interp` makes them:
- exact-x2 (ours, architectures.md A10/A12): `upsample_filt(4)`, the exact x2 bilinear kernel, in the centre of
  the 8x8;
- caffe-8x8: the 8x8 kernel Caffe's "bilinear" filler and FCN's `upsample_filt(8)` give, which is the x4 kernel
  (DC gain 4 at stride 2: here divided by 4, which changes no argmax) and blurs each stage twice as wide.
For every test image this takes the best score map such a decoder could be fed, the ground truth's class fractions
in each 16x16 cell (what a perfect encoder and 1x1 reduction would give at 23x30), decodes it with each kernel,
crops as the model does, takes the argmax, and scores it with the authors' G, C, mIoU and BF (`bench eval`'s
conventions). The gap between the kernels is what the kernel alone costs a decoder whose input is perfect.

    python -m bench.benchmarks.fixed_upsampling [--data-root ROOT] [--split test] [--out results/benchmarks/...]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

KERNELS = ("exact-x2", "caffe-8x8")


def upsampling_kernel(name: str) -> torch.Tensor:
    """The 8x8 kernel of a fixed stride-2 upsampler (see the module's docstring), DC gain 1 per stage."""
    from bench.architectures.common import upsample_filt
    k = np.zeros((8, 8))
    if name == "exact-x2":
        k[2:6, 2:6] = upsample_filt(4)
    elif name == "caffe-8x8":
        k = upsample_filt(8) / 4
    else:
        raise ValueError(f"unknown kernel {name!r}; known: {', '.join(KERNELS)}")
    return torch.tensor(k, dtype=torch.float32)


def coarse_scores(label: np.ndarray, num_classes: int, void_label: int, cell: int = 16) -> torch.Tensor:
    """(1, K, ceil(H/16), ceil(W/16)): each class's share of the non-void pixels of each 16x16 cell (the last
    row and column of cells partial, as the encoder's ceil pooling leaves them)."""
    h, w = label.shape
    lab = torch.from_numpy(label.astype(np.int64))
    onehot = F.one_hot(lab.clamp(max=num_classes), num_classes + 1)[..., :num_classes]  # void: all zero
    onehot = onehot.permute(2, 0, 1).float()[None]
    ph, pw = -h % cell, -w % cell
    return F.avg_pool2d(F.pad(onehot, (0, pw, 0, ph)), cell)


def decode(scores: torch.Tensor, kernel: torch.Tensor, sizes: list[tuple[int, int]]) -> torch.Tensor:
    """Four channel-diagonal 8x8 stride-2 pad-3 transposed convolutions, each cropped to the next size."""
    k = scores.shape[1]
    weight = kernel.expand(k, 1, 8, 8).contiguous()
    x = scores
    for size in sizes:
        x = F.conv_transpose2d(x, weight, stride=2, padding=3, groups=k)[..., :size[0], :size[1]]
    return x


def main(argv=None):
    from bench import datasets
    from bench.evaluate import score_label_maps
    from bench.records import provenance
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--split", default="test")
    ap.add_argument("--out", default=None, help="write the scores and provenance as JSON here")
    args = ap.parse_args(argv)
    ds = datasets.get_dataset("camvid", args.data_root)
    samples, labels = ds.read_labels(args.split)
    h, w = labels.shape[1:]
    sizes = [(-(-h // 2 ** i), -(-w // 2 ** i)) for i in (3, 2, 1, 0)]  # 45x60, 90x120, 180x240, 360x480
    t0 = time.perf_counter()
    rows = {}
    for name in KERNELS:
        kernel = upsampling_kernel(name)
        preds = [decode(coarse_scores(lab, ds.num_classes, ds.void_label), kernel, sizes)[0].argmax(0).numpy()
                 .astype(np.uint8) for lab in labels]
        s = score_label_maps(preds, list(labels), ds.class_names, ds.void_label)
        rows[name] = {m: round(s[m], 2) for m in ("G", "C", "mIoU", "BF")}
        print(f"{name:10s} G {s['G']:.2f}  C {s['C']:.2f}  mIoU {s['mIoU']:.2f}  BF {s['BF']:.2f}", flush=True)
    gap = {m: round(rows["exact-x2"][m] - rows["caffe-8x8"][m], 2) for m in ("G", "C", "mIoU", "BF")}
    print("exact-x2 minus caffe-8x8: " + "  ".join(f"{m} {v:+.2f}" for m, v in gap.items()))
    if args.out:
        with open(args.out, "x") as f:
            json.dump({"benchmark": "fixed_upsampling", "split": args.split, "images": len(labels),
                       "input": "ground truth class fractions per 16x16 cell (23x30)", "kernels": rows,
                       "exact_x2_minus_caffe_8x8": gap, "seconds": time.perf_counter() - t0,
                       "provenance": provenance()}, f, indent=1)
        print(f"written {args.out}")


if __name__ == "__main__":
    main()
