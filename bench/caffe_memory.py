"""The memory Caffe would hold for a model: every layer's output kept, counted rather than measured.

The paper's Table 6 memory is nvidia-smi's reading of Caffe, which allocates every top blob of the net for its
whole life and frees nothing during a pass. PyTorch frees each activation once nothing needs it, so its allocator
peak is no stand-in for Caffe's. This counts Caffe's blobs from one forward pass traced on the meta device (no
compute, the same on any machine), every blob in fp32 as Caffe stores it:

- the output of every operator that makes a new tensor (convolutions, pooling, unpooling, sums, interpolation);
  views (PyTorch's crops are slices) and in-place operators are not new blobs; batch norm, ReLU and dropout
  run in place in the authors' prototxts, so their outputs are not counted either;
- the max-pooling indices that a later layer reads (SegNet's and DeconvNet's unpooling: Caffe's "mask" top,
  a float blob), not those nothing reads;
- the input blob and a softmax output of the network's output size (the deploy prototxts' "prob");
- for training: every blob twice (data and diff), the weights three times (data, diff, SGD momentum history).

Inference is counted at batch 1, training at the profile's training batch (the paper's Table 6: 1 and 4).
"""
from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

IN_PLACE_IN_CAFFE = ("native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training",
                     "relu", "dropout", "native_dropout")
FP32 = 4
MIB = 2 ** 20


class _BlobCounter(TorchDispatchMode):
    """Counts, in fp32 elements, the new tensors each operator makes, and the pooling indices a later one reads."""

    def __init__(self):
        super().__init__()
        self.elements, self._indices, self._counted = 0, {}, set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        for t in tree_flatten((args, kwargs or {}))[0]:
            if isinstance(t, torch.Tensor) and id(t) in self._indices and id(t) not in self._counted:
                self._counted.add(id(t))
                self.elements += t.numel()  # indices read by a later layer: Caffe's mask blob
        out = func(*args, **(kwargs or {}))
        name = func._schema.name.split("::")[-1]
        if any(r.alias_info is not None for r in func._schema.returns) or name in IN_PLACE_IN_CAFFE:
            return out
        tensors = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if name == "max_pool2d_with_indices":
            values, indices = tensors
            self.elements += values.numel()
            self._indices[id(indices)] = indices  # held, so that its id is not reused by a later tensor
        else:
            self.elements += sum(t.numel() for t in tensors)
        return out


def caffe_style_memory(model: torch.nn.Module, size, train_batch: int = 4, infer_batch: int = 1) -> dict:
    """Caffe-style static memory of ``model`` (built on any device; traced on the meta device) at ``size``, in
    bytes and MiB: the blobs of one inference pass plus the weights, and of one training pass."""
    model = model.to("meta").eval()
    weights = sum(t.numel() for t in model.state_dict().values()) * FP32

    def blobs(batch):
        counter = _BlobCounter()
        x = torch.zeros(batch, 3, *size, device="meta")
        with torch.no_grad(), counter:
            y = model(x)
        return (counter.elements + x.numel() + y.numel()) * FP32  # + the input and the softmax ("prob") blobs
    infer, train = blobs(infer_batch), blobs(train_batch)
    return {"inference_bytes": infer + weights, "inference_MiB": (infer + weights) / MIB,
            "inference_blobs_bytes": infer, "train_bytes": 2 * train + 3 * weights,
            "train_MiB": (2 * train + 3 * weights) / MIB, "weights_bytes": weights,
            "infer_batch": infer_batch, "train_batch": train_batch,
            "method": "Caffe-style static count (bench/caffe_memory.py): every layer output kept in fp32, batch "
                      "norm, ReLU and dropout in place, pooling indices kept where unpooling reads them, input and "
                      "softmax blobs; inference: blobs + weights; training: blobs x2 (data, diff) + weights x3 "
                      "(data, diff, momentum)"}
