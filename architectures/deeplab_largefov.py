"""DeepLab-LargeFOV with BN after every conv and a 45x60 prediction (paper Sec. 4; Chen et al. 2015).

Layer table: `../shared/reference/architectures.md` §4. Choices: pool1-3 are 2x2/s2 so that a 360x480 input
gives exactly 45x60 (A1); pool4/pool5 3x3/s1 and conv5 dilation 2 keep stride 8; the released model's pool5a
average pool is kept (A3); fc6 is 3x3 with dilation 12 and 1024 channels. The logits at 1/8 resolution are
brought to the input size by bilinear interpolation with Caffe `Interp`'s align-corners mapping (A2);
`coarse_logits` gives the 45x60 map that the loss is computed on.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from architectures.common import ConvBNReLU, he_init_, load_vgg16_convs, vgg_encoder_convs, vgg_stage
from architectures.registry import register_model


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
        return F.interpolate(self.coarse_logits(x), size=x.shape[-2:], mode="bilinear", align_corners=True)

    def encoder_convs(self):
        return vgg_encoder_convs([self.enc1, self.enc2, self.enc3, self.enc4, self.enc5])


@register_model("deeplab-largefov", paper_name="DeepLab-LargeFOV", family="benchmark", tables=(3, 4, 6),
                params=20_507_723, macs=82_786_406_400, reference="architectures.md §4, A1-A3")
def deeplab_largefov(num_classes=11, encoder_weights=None, dropout=0.5):
    """fc6/fc7 are He-initialised (DeepLab subsampled VGG's fc6/fc7 to 1024 wide; not reproduced here);
    fc8 Gaussian std 0.01 as the released model (A16)."""
    model = DeepLabLargeFOV(num_classes, dropout)
    he_init_(model)
    nn.init.normal_(model.fc8.weight, 0.0, 0.01)
    model.pretrained_layers, model.weights_source = [], "he-init"
    if encoder_weights is not None:
        convs, names = model.encoder_convs()
        model.pretrained_layers, model.weights_source = load_vgg16_convs(convs, encoder_weights, names)
    return model
