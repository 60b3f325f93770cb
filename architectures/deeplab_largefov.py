"""DeepLab-LargeFOV with BN after every conv and a 45x60 prediction (paper Sec. 4; Chen et al. 2015).

Layer table: `../shared/reference/architectures.md` §4. Choices: pool1-3 are 2x2/s2 so that a 360x480 input
gives exactly 45x60 (A1); pool4/pool5 3x3/s1 and conv5 dilation 2 keep stride 8; the released model's pool5a
average pool is kept (A3); fc6 is 3x3 with dilation 12 and 1024 channels. The logits at 1/8 resolution are
brought to the input size by bilinear interpolation with Caffe `Interp`'s align-corners mapping (A2);
`coarse_logits` gives the 45x60 map that the loss is computed on, against the labels taken at the very pixels
where that upsampling places each coarse cell (`coarse_labels`): cell i of 45 sits at row i * 359 / 44 of 360,
so the network learns each label where it later draws it (a stride-8 loss, as DeepLab's, without the up to
7-pixel shift that sampling rows 8i would leave at the bottom and right).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.architectures.common import (BN_INIT, DEEPLAB_FC_TAPS, ConvBNReLU, he_init_, init_vgg_encoder,
                                  vgg16_fc_subsampled, vgg_encoder_convs, vgg_stage)
from bench.architectures.registry import register_model


class DeepLabLargeFOV(nn.Module):
    def __init__(self, num_classes: int = 11, dropout: float = 0.5):
        super().__init__()
        self.enc1, self.enc2, self.enc3, self.enc4 = (vgg_stage(c) for c in (
            (3, 64, 64), (64, 128, 128), (128, 256, 256, 256), (256, 512, 512, 512)))
        self.enc5 = nn.Sequential(*[ConvBNReLU(512, 512, padding=2, dilation=2) for _ in range(3)])
        self.pool = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.pool4 = nn.MaxPool2d(3, 1, 1)
        self.pool5 = nn.MaxPool2d(3, 1, 1)
        self.pool5a = nn.AvgPool2d(3, 1, 1)
        self.fc6 = ConvBNReLU(512, 1024, 3, padding=12, dilation=12)
        self.fc7 = ConvBNReLU(1024, 1024, 1, padding=0)
        self.drop = nn.Dropout(dropout)
        self.fc8 = nn.Conv2d(1024, num_classes, 1)

    def coarse_logits(self, x):
        """Logits at 1/8 of the input size (45x60 for 360x480), where DeepLab computes its loss."""
        x = self.pool(self.enc3(self.pool(self.enc2(self.pool(self.enc1(x))))))
        x = self.pool5a(self.pool5(self.enc5(self.pool4(self.enc4(x)))))
        x = self.drop(self.fc7(self.drop(self.fc6(x))))
        return self.fc8(x)

    def forward(self, x):
        return upsample_logits(self.coarse_logits(x), x.shape[-2:])

    @staticmethod
    def coarse_labels(labels, coarse_size):
        """The training labels of the coarse logits (N x H x W -> N x h x w): see `labels_at_coarse_cells`."""
        return labels_at_coarse_cells(labels, coarse_size)

    def encoder_convs(self):
        return vgg_encoder_convs([self.enc1, self.enc2, self.enc3, self.enc4, self.enc5])


def upsample_logits(coarse, size):
    """Coarse logits to ``size`` by bilinear interpolation with corners aligned (Caffe `Interp`, A2)."""
    return F.interpolate(coarse, size=tuple(size), mode="bilinear", align_corners=True)


def coarse_cell_positions(coarse: int, full: int) -> torch.Tensor:
    """The full-resolution row (or column) on which `upsample_logits` places each of ``coarse`` cells:
    i * (full - 1) / (coarse - 1), rounded half up (integer arithmetic: no float ties)."""
    if coarse == 1:
        return torch.zeros(1, dtype=torch.long)
    i = torch.arange(coarse)
    return (2 * i * (full - 1) + (coarse - 1)) // (2 * (coarse - 1))


_POSITIONS: dict = {}  # (coarse, full, device) -> positions, so a training step copies nothing to the device


def _positions_on(coarse: int, full: int, device) -> torch.Tensor:
    key = (coarse, full, str(device))
    if key not in _POSITIONS:
        _POSITIONS[key] = coarse_cell_positions(coarse, full).to(device)
    return _POSITIONS[key]


def labels_at_coarse_cells(labels: torch.Tensor, coarse_size) -> torch.Tensor:
    """Label maps N x H x W sampled at the pixels where `upsample_logits` places the cells of an h x w map."""
    rows = _positions_on(coarse_size[0], labels.shape[-2], labels.device)
    cols = _positions_on(coarse_size[1], labels.shape[-1], labels.device)
    return labels.index_select(-2, rows).index_select(-1, cols)


@register_model("deeplab-largefov")
def deeplab_largefov(num_classes=11, encoder_weights=None, dropout=0.5):
    """Encoder from VGG16 where given; fc6/fc7 from VGG16's fc6/fc7 subsampled as DeepLab did (every 4th filter,
    7x7 -> 3x3 by decimation) where the weights hold them (torchvision's download does), else He-initialised
    and said so; fc8 Gaussian std 0.01 as the released model (A16)."""
    model = DeepLabLargeFOV(num_classes, dropout)
    he_init_(model)
    nn.init.normal_(model.fc8.weight, 0.0, 0.01)
    return init_vgg_encoder(model, encoder_weights, {"fc8": "Gaussian std 0.01, zero bias (A16)", "bn": BN_INIT},
                            fc={"fc6": model.fc6, "fc7": model.fc7}, fc_convert=vgg16_fc_subsampled,
                            fc_rule=f"VGG16 fc6/fc7 decimated: every 4th filter (4096 -> 1024), fc6 kernel taps "
                                    f"{DEEPLAB_FC_TAPS} of 7x7 (-> 3x3, dilation 12)")
