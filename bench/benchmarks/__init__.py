"""Benchmarks that print figures (and write a JSON record with --out): speed and memory targets live here, not in
timed tests. The plain loop's pieces, which `bench run` itself does not use, are below."""
from __future__ import annotations


def normalise(x_uint8, how: str):
    """uint8 images to the network's input, as `bench.data.Normaliser` does, built on each call (the plain loop)."""
    from bench.data import Normaliser
    return Normaliser(how, x_uint8.device)(x_uint8)


def seg_loss(logits, labels, class_weights, void_label: int):
    """Weighted cross-entropy over non-void pixels, summed, divided by the number of non-void pixels."""
    from bench.step import seg_loss_sum
    loss, valid = seg_loss_sum(logits, labels, class_weights, void_label)
    return loss / valid.clamp(min=1)
