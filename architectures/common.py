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


def pool_keeping_indices(x):
    """A 2x2/s2 max-pool of ``x`` (`max_pool_with_indices`), its argmax indices, and the size of ``x``: what
    `max_unpool` needs to put the values back."""
    pooled, indices = max_pool_with_indices(x)
    return pooled, indices, x.shape[-2:]


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


def msra_fan(layer: nn.Conv2d | nn.ConvTranspose2d) -> int:
    """The fan Caffe's "msra" filler divides by (variance_norm FAN_IN): the weight blob's count over its first
    axis. A convolution's blob is C_out x C_in/g x k x k, so C_in/g x k x k; a deconvolution's is
    C_in x C_out/g x k x k, so C_out/g x k x k (not divided by the stride). PyTorch stores both weights in the
    same axis order as Caffe, so it is ``weight[0].numel()`` for either."""
    return layer.weight[0].numel()


def he_init_(model: nn.Module) -> None:
    """He ("msra" as Caffe's filler: `msra_fan`) for every conv and deconv, zero biases; BN scale 1, shift 0.001."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, float(np.sqrt(2.0 / msra_fan(m))))
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
HE_INIT = "He normal (msra, fan-in), zero bias"
BN_INIT = "batch norm: scale 1, shift 0.001 (prototxts)"
VGG16_FC_KEYS = {"classifier.0.weight": (4096, 25088), "classifier.0.bias": (4096,),
                 "classifier.3.weight": (4096, 4096), "classifier.3.bias": (4096,)}


def vgg16_state_dict(encoder_weights) -> tuple[dict, str]:
    """torchvision-layout VGG16 weights and a description of their source.

    "imagenet": torchvision's weights API (`VGG16_Weights.IMAGENET1K_V1`, downloaded and cached by
    torchvision; it holds the conv layers and the classifier fc6/fc7/fc8); a path: a local `torch.save`d dict
    in the same layout (conv layers at least); a dict: such a state dict already in memory.
    """
    if isinstance(encoder_weights, dict):
        return encoder_weights, "state dict given in memory"
    if encoder_weights == "imagenet":
        from torchvision.models import VGG16_Weights
        try:
            sd = VGG16_Weights.IMAGENET1K_V1.get_state_dict(progress=True)
        except Exception as exc:  # no network: say how to work offline
            raise BenchError(f"could not fetch torchvision's VGG16 ImageNet weights ({exc}); offline, pass a local "
                             "file (torchvision layout) with --encoder-weights PATH or set BENCH_WEIGHTS=PATH") from None
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
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise BenchError(f"{path}: expected a dict of tensors (torchvision VGG16 layout); not tensors: "
                         + ", ".join(map(str, bad[:5])) + (" ..." if len(bad) > 5 else ""))
    return sd, str(path)


def load_vgg16_convs(convs: list[nn.Conv2d], sd: dict, source: str, names: list[str]) -> list[str]:
    """Copies VGG16's 13 conv layers from the state dict ``sd`` into ``convs`` (in VGG order); returns the names.

    A missing or misshapen key is an error naming every such key.
    """
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
    return list(names)


def vgg16_has_classifier(sd: dict, source: str) -> bool:
    """Whether ``sd`` holds VGG16's fc6/fc7 (torchvision's `classifier.0` / `classifier.3`); misshapen ones are an
    error, absent ones (a conv-only file) are not."""
    present = [k for k in VGG16_FC_KEYS if k in sd]
    if not present:
        return False
    problems = [f"{k} missing" for k in VGG16_FC_KEYS if k not in sd]
    problems += [f"{k} has shape {tuple(sd[k].shape)}, expected {shape}" for k, shape in VGG16_FC_KEYS.items()
                 if k in sd and tuple(sd[k].shape) != shape]
    if problems:
        raise BenchError(f"{source}: VGG16 classifier weights in an unexpected layout: " + "; ".join(problems))
    return True


def vgg16_fc_as_conv(sd: dict) -> dict:
    """fc6/fc7 of VGG16 as convolutions (FCN's "convolutionalisation"): fc6 a 7x7 conv on pool5 (torchvision
    flattens 512x7x7 as channel, row, column), fc7 a 1x1 conv."""
    return {
        "fc6.weight": sd["classifier.0.weight"].reshape(4096, 512, 7, 7), "fc6.bias": sd["classifier.0.bias"],
        "fc7.weight": sd["classifier.3.weight"].reshape(4096, 4096, 1, 1), "fc7.bias": sd["classifier.3.bias"],
    }


DEEPLAB_FC_TAPS = (0, 3, 6)  # 7x7 -> 3x3 by decimation: every third row and column of fc6's kernel


def vgg16_fc_subsampled(sd: dict, width: int = 1024) -> dict:
    """DeepLab-LargeFOV's initialisation of its 1024-wide fc6 (3x3, dilation 12) and fc7 from VGG16's fc6/fc7
    (Chen et al. 2015, Sec. 4.1 and 4.3: "subsampled (by decimation)", 4096 -> 1024 filters, 7x7 -> 3x3).

    Decimation: every (4096 / width)-th filter of fc6 and fc7 (filters 0, 4, 8, ...), fc7's inputs at the same
    positions (the fc6 filters kept), and fc6's kernel taps at rows and columns 0, 3, 6. The released
    init model's exact indices are not published; this is the regular decimation the paper describes.
    """
    step = 4096 // width
    conv = vgg16_fc_as_conv(sd)
    taps = list(DEEPLAB_FC_TAPS)
    fc6 = conv["fc6.weight"][::step][:, :, taps][:, :, :, taps]
    return {"fc6.weight": fc6.contiguous(), "fc6.bias": conv["fc6.bias"][::step].contiguous(),
            "fc7.weight": conv["fc7.weight"][::step, ::step].contiguous(),
            "fc7.bias": conv["fc7.bias"][::step].contiguous()}


def copy_fc_(layers: dict, weights: dict) -> None:
    """Copies ``weights`` ({"fc6.weight": ..., ...}) into the conv of each unit in ``layers`` ({"fc6": unit})."""
    with torch.no_grad():
        for name, unit in layers.items():
            conv = unit[0] if isinstance(unit, nn.Sequential) else unit
            conv.weight.copy_(weights[f"{name}.weight"])
            conv.bias.copy_(weights[f"{name}.bias"])


def set_initialisation(model: nn.Module, *, source: str, from_weights: list[str], initialised: dict,
                       missing_from_weights: list[str] = (), converted: dict | None = None) -> nn.Module:
    """Records how every layer group was initialised, for the run record and `bench runs`.

    from_weights: layers copied from the VGG16 weights; initialised: {layer group: how}; missing_from_weights:
    layers this model takes from complete VGG16 weights (torchvision's download) that ``source`` lacked, so they
    were initialised instead and the run differs from one with the download; converted: {layer: how the VGG16
    layer was converted} for the fc layers taken from VGG16's classifier.
    """
    model.pretrained_layers = list(from_weights)
    model.weights_source = source
    model.initialisation = {"weights_source": source, "from_weights": list(from_weights),
                            "converted": dict(converted or {}), "initialised": dict(initialised),
                            "missing_from_weights": list(missing_from_weights)}
    return model


def init_vgg_encoder(model: nn.Module, encoder_weights, initialised: dict, fc: dict | None = None,
                     fc_rule: str = "", fc_convert=None) -> nn.Module:
    """The benchmark models' common initialisation step after He init: VGG16's 13 convs into the encoder where
    weights are given, and its fc6/fc7 into ``fc`` ({"fc6": unit, "fc7": unit}) through ``fc_convert`` when the
    weights hold them. ``initialised`` describes every other layer group."""
    convs, names = model.encoder_convs()
    if encoder_weights is None:
        initialised = {"encoder conv1_1 ... conv5_3": HE_INIT, **({n: HE_INIT for n in fc} if fc else {}),
                       **initialised}
        return set_initialisation(model, source="he-init", from_weights=[], initialised=initialised)
    sd, source = vgg16_state_dict(encoder_weights)
    loaded = load_vgg16_convs(convs, sd, source, names)
    missing, converted = [], {}
    if fc:
        if vgg16_has_classifier(sd, source):
            copy_fc_(fc, fc_convert(sd))
            loaded += list(fc)
            converted = {n: fc_rule for n in fc}
        else:
            missing = list(fc)
            initialised = {**{n: f"{HE_INIT} (the weights have no VGG16 fc6/fc7)" for n in fc}, **initialised}
    return set_initialisation(model, source=source, from_weights=loaded, initialised=initialised,
                              missing_from_weights=missing, converted=converted)


def vgg_encoder_convs(stages) -> tuple[list[nn.Conv2d], list[str]]:
    """The 13 conv layers of VGG-style stages, and their names in the paper's notation (conv1_1 ... conv5_3)."""
    convs, names = [], []
    for s, stage in enumerate(stages, 1):
        for c, unit in enumerate(stage, 1):
            convs.append(unit[0])
            names.append(f"conv{s}_{c}")
    return convs, names
