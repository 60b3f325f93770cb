"""Building blocks shared by the paper's models: conv-BN-ReLU, max-unpooling with pool indices, bilinear
kernels, the SegNet-Basic encoder of Table 1, initialisation, and loading ImageNet VGG16 weights.

Conventions (`../shared/reference/architectures.md` §1): 2x2/s2 max-pools round up (Caffe, `ceil_mode`);
BN after every conv that feeds a ReLU, initialised scale 1 and shift 0.001 as in the authors' prototxts;
unpooling writes each value back at its stored argmax position (caffe-segnet `Upsample`).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.errors import BenchError

BN_SHIFT_INIT = 0.001  # bn_param shift_filler in every SegNet-Tutorial prototxt
# Indices of the 13 conv layers in torchvision's `vgg16().features`.
VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
VGG16_CONV_SHAPES = ((64, 3), (64, 64), (128, 64), (128, 128), (256, 128), (256, 256), (256, 256),
                     (512, 256), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512))
VGG16_STAGES = ((3, 64, 64), (64, 128, 128), (128, 256, 256, 256), (256, 512, 512, 512), (512, 512, 512, 512))


class ConvBNReLU(nn.Sequential):
    """conv -> BN -> ReLU, the unit every benchmark model is built from (paper Sec. 4: BN after each conv)."""

    def __init__(self, cin, cout, kernel_size=3, padding=1, dilation=1, bias=True, transposed=False, relu=True):
        conv_cls = nn.ConvTranspose2d if transposed else nn.Conv2d
        layers = [conv_cls(cin, cout, kernel_size, padding=padding, dilation=dilation, bias=bias), nn.BatchNorm2d(cout)]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


def vgg_stage(channels) -> nn.Sequential:
    """A VGG stage: 3x3 conv-BN-ReLU for each consecutive pair of ``channels``."""
    return nn.Sequential(*[ConvBNReLU(a, b) for a, b in zip(channels[:-1], channels[1:])])


def max_pool_with_indices(x):
    """2x2/s2 max-pool, rounding up (Caffe), keeping the argmax indices for the decoder."""
    return F.max_pool2d(x, 2, 2, ceil_mode=True, return_indices=True)


def max_unpool(x, pool_indices, size):
    """Upsampling with max-pooling indices (SegNet): values return to their argmax positions, zeros elsewhere."""
    return F.max_unpool2d(x, pool_indices, 2, 2, output_size=tuple(size))


def crop_like(x, offset: int, size):
    """Caffe `Crop`: the window of spatial ``size`` starting at ``offset`` in both axes."""
    h, w = size
    return x[..., offset:offset + h, offset:offset + w]


def upsample_filt(size: int) -> np.ndarray:
    """The 2-D bilinear kernel of `fcn.berkeleyvision.org/surgery.py` (`upsample_filt`)."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = np.ogrid[:size, :size]
    return (1 - abs(og[0] - center) / factor) * (1 - abs(og[1] - center) / factor)


def bilinear_init_(deconv: nn.ConvTranspose2d, kernel: np.ndarray | None = None) -> None:
    """Channel-diagonal bilinear initialisation of a K -> K transposed conv (surgery.interp).

    ``kernel`` smaller than the layer's kernel is placed in its centre (architectures.md A10: the exact
    x2 kernel `upsample_filt(4)` inside an 8x8 deconv of stride 2, pad 3).
    """
    w = deconv.weight
    k = w.shape[-1]
    kern = upsample_filt(k) if kernel is None else kernel
    full = np.zeros((k, k))
    o = (k - kern.shape[0]) // 2
    full[o:o + kern.shape[0], o:o + kern.shape[1]] = kern
    with torch.no_grad():
        w.zero_()
        for c in range(min(w.shape[0], w.shape[1])):
            w[c, c] = torch.from_numpy(full)
        if deconv.bias is not None:
            deconv.bias.zero_()


def he_init_(model: nn.Module) -> None:
    """He ("msra", fan-in) for every conv and deconv, zero biases; BN scale 1 and shift 0.001."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            fan_in = m.weight.shape[1] * m.weight.shape[2] * m.weight.shape[3]
            if isinstance(m, nn.ConvTranspose2d):
                fan_in = m.weight.shape[0] * m.weight.shape[2] * m.weight.shape[3] // max(1, m.stride[0] * m.stride[1])
            nn.init.normal_(m.weight, 0.0, float(np.sqrt(2.0 / fan_in)))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.constant_(m.bias, BN_SHIFT_INIT)


class BasicEncoder(nn.Module):
    """The Table 1 encoder (SegNet-Basic, Sec. 3.1): input LRN, then 4 x [7x7 conv, 64 channels, no bias ->
    BN -> ReLU -> 2x2 max-pool keeping indices]. LRN as the tutorial's Caffe layer (architectures.md A9)."""

    def __init__(self, in_channels=3, width=64, kernel_size=7, depth=4):
        super().__init__()
        self.norm = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
        chans = [in_channels] + [width] * depth
        self.stages = nn.ModuleList(
            ConvBNReLU(a, b, kernel_size, padding=kernel_size // 2, bias=False) for a, b in zip(chans[:-1], chans[1:])
        )

    def forward(self, x):
        """Returns the pooled maps P1..P4, their pool indices and the pre-pool sizes."""
        x = self.norm(x)
        pooled, indices, sizes = [], [], []
        for stage in self.stages:
            x = stage(x)
            sizes.append(x.shape[-2:])
            x, idx = max_pool_with_indices(x)
            pooled.append(x)
            indices.append(idx)
        return pooled, indices, sizes


# -- ImageNet VGG16 weights -------------------------------------------------------------------------------
def vgg16_state_dict(encoder_weights) -> tuple[dict, str]:
    """torchvision-layout VGG16 weights and a description of their source.

    "imagenet": torchvision's weights API (`VGG16_Weights.IMAGENET1K_V1`, downloaded and cached by
    torchvision); a path: a local `torch.save`d dict in the same layout (conv layers at least).
    """
    if encoder_weights == "imagenet":
        from torchvision.models import VGG16_Weights
        try:
            sd = VGG16_Weights.IMAGENET1K_V1.get_state_dict(progress=True)
        except Exception as exc:  # no network: say how to work offline
            raise BenchError(f"could not fetch torchvision's VGG16 ImageNet weights ({exc}); pass a local file "
                             "with --encoder-weights PATH (torchvision layout)") from None
        return sd, "torchvision VGG16_Weights.IMAGENET1K_V1"
    path = Path(os.fspath(encoder_weights)).expanduser()
    if not path.is_file():
        raise BenchError(f"{path}: encoder weights file not found")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BenchError(f"{path}: cannot be read as a torch state dict ({exc.__class__.__name__})") from None
    if not isinstance(sd, dict):
        raise BenchError(f"{path}: expected a dict of tensors (torchvision VGG16 layout), found {type(sd).__name__}")
    return sd, str(path)


def load_vgg16_convs(convs: list[nn.Conv2d], encoder_weights, names: list[str]) -> tuple[list[str], str]:
    """Copies VGG16's 13 conv layers into ``convs`` (in VGG order); returns the layer names loaded and the source.

    A missing or misshapen key is an error naming every such key.
    """
    sd, source = vgg16_state_dict(encoder_weights)
    problems = []
    for (idx, (cout, cin)) in zip(VGG16_CONV_INDICES, VGG16_CONV_SHAPES):
        for key, shape in ((f"features.{idx}.weight", (cout, cin, 3, 3)), (f"features.{idx}.bias", (cout,))):
            if key not in sd:
                problems.append(f"{key} missing")
            elif tuple(sd[key].shape) != shape:
                problems.append(f"{key} has shape {tuple(sd[key].shape)}, expected {shape}")
    if problems:
        raise BenchError(f"{source}: not VGG16 conv weights in torchvision's layout: " + "; ".join(problems))
    with torch.no_grad():
        for conv, idx in zip(convs, VGG16_CONV_INDICES):
            conv.weight.copy_(sd[f"features.{idx}.weight"])
            if conv.bias is not None:
                conv.bias.copy_(sd[f"features.{idx}.bias"])
    return list(names), source


def vgg16_classifier(encoder_weights) -> dict | None:
    """fc6/fc7 of VGG16 as conv weights (7x7 and 1x1) where the source has them (the torchvision download does)."""
    sd, _ = vgg16_state_dict(encoder_weights)
    if "classifier.0.weight" not in sd or "classifier.3.weight" not in sd:
        return None
    return {
        "fc6.weight": sd["classifier.0.weight"].reshape(4096, 512, 7, 7), "fc6.bias": sd["classifier.0.bias"],
        "fc7.weight": sd["classifier.3.weight"].reshape(4096, 4096, 1, 1), "fc7.bias": sd["classifier.3.bias"],
    }


def vgg_encoder_convs(stages) -> tuple[list[nn.Conv2d], list[str]]:
    """The 13 conv layers of VGG-style stages, and their names in the paper's notation (conv1_1 ... conv5_3)."""
    convs, names = [], []
    for s, stage in enumerate(stages, 1):
        for c, unit in enumerate(stage, 1):
            convs.append(unit[0])
            names.append(f"conv{s}_{c}")
    return convs, names
