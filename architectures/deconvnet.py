"""DeconvNet (Noh et al. 2015) as benchmarked in the SegNet paper: fc6/fc7 restricted to 1024 wide, BN throughout.

Layer table: `../shared/reference/architectures.md` §5 (after `HyeonwooNoh/DeconvNet` stage_2_train.prototxt).
The SegNet paper's changes: fc6 and fc7 are 1024 wide (so fc6-deconv takes 1024 inputs), and dropout 0.5 at
SegNet's six positions (after pool3/4/5 and after decoder blocks 5/4/3; A5). Model size does not reconcile
with Table 6's 877 MB (327.7 MB here); the text is followed and the mismatch reported (A7).
fc6 is a valid 7x7 convolution on pool5, so an input needs at least 224 px on each side (pool5 >= 7x7), and
more than 224 for batch norm to train at batch 1 (fc6 would be 1x1).
"""
from __future__ import annotations

from torch import nn

from bench.architectures.common import (BN_INIT, HE_INIT, ConvBNReLU, he_init_, init_vgg_encoder, max_unpool,
                                  pool_keeping_indices, vgg_encoder_convs, vgg_stage)
from bench.architectures.registry import register_model


def deconv_stage(channels) -> nn.Sequential:
    """3x3/pad 1 transposed conv -> BN -> ReLU for each consecutive pair of ``channels``."""
    return nn.Sequential(*[ConvBNReLU(a, b, transposed=True) for a, b in zip(channels[:-1], channels[1:])])


class DeconvNet(nn.Module):
    def __init__(self, num_classes: int = 11, fc_width: int = 1024, dropout: float = 0.5):
        super().__init__()
        self.enc1, self.enc2, self.enc3, self.enc4, self.enc5 = (vgg_stage(c) for c in (
            (3, 64, 64), (64, 128, 128), (128, 256, 256, 256), (256, 512, 512, 512), (512, 512, 512, 512)))
        self.fc6 = ConvBNReLU(512, fc_width, 7, padding=0)
        self.fc7 = ConvBNReLU(fc_width, fc_width, 1, padding=0)
        self.fc6_deconv = ConvBNReLU(fc_width, 512, 7, padding=0, transposed=True)
        self.dec5 = deconv_stage((512, 512, 512, 512))
        self.dec4 = deconv_stage((512, 512, 512, 256))
        self.dec3 = deconv_stage((256, 256, 256, 128))
        self.dec2 = deconv_stage((128, 128, 64))
        self.dec1 = deconv_stage((64, 64, 64))
        self.seg_score = nn.Conv2d(64, num_classes, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        x, idx1, size1 = pool_keeping_indices(self.enc1(x))
        x, idx2, size2 = pool_keeping_indices(self.enc2(x))
        x, idx3, size3 = pool_keeping_indices(self.enc3(x))
        x, idx4, size4 = pool_keeping_indices(self.enc4(self.drop(x)))
        x, idx5, size5 = pool_keeping_indices(self.enc5(self.drop(x)))
        x = self.drop(x)
        x = self.fc6_deconv(self.fc7(self.fc6(x)))
        x = self.drop(self.dec5(max_unpool(x, idx5, size5)))
        x = self.drop(self.dec4(max_unpool(x, idx4, size4)))
        x = self.drop(self.dec3(max_unpool(x, idx3, size3)))
        x = self.dec2(max_unpool(x, idx2, size2))
        x = self.dec1(max_unpool(x, idx1, size1))
        return self.seg_score(x)

    def encoder_convs(self):
        return vgg_encoder_convs([self.enc1, self.enc2, self.enc3, self.enc4, self.enc5])


@register_model("deconvnet")
def deconvnet(num_classes=11, encoder_weights=None, dropout=0.5, fc_width=1024):
    """Encoder from VGG16 where given; fc6/fc7/fc6-deconv He-initialised whatever the weights source (A7: the
    SegNet paper's 1024-wide layers have no published initialisation, so the same run online and offline);
    decoder Gaussian std 0.01 (A16)."""
    model = DeconvNet(num_classes, fc_width, dropout)
    he_init_(model)
    for stage in (model.dec5, model.dec4, model.dec3, model.dec2, model.dec1):
        for unit in stage:
            nn.init.normal_(unit[0].weight, 0.0, 0.01)
    return init_vgg_encoder(model, encoder_weights, {
        "fc6, fc7, fc6-deconv": f"{HE_INIT} (architectures.md A7; never from VGG16)",
        "deconvolution decoder": "Gaussian std 0.01, zero bias (A16)", "seg-score": HE_INIT, "bn": BN_INIT})
