"""SegNet (paper Fig. 2, Sec. 3) and the SegNet-Basic decoder variants of Table 1 (Sec. 3.1).

Layer tables: `../shared/reference/architectures.md` §2 (SegNet) and §6.1-6.3 (SegNet-Basic, -EncoderAddition,
-SingleChannelDecoder). Source prototxts: `alexgkendall/SegNet-Tutorial` `Models/segnet_train.prototxt`,
`bayesian_segnet_train.prototxt` (dropout positions), `segnet_basic_train.prototxt`.
"""
from __future__ import annotations

from torch import nn

from bench.architectures.common import (BN_INIT, HE_INIT, BasicEncoder, he_init_, init_vgg_encoder,
                                  max_unpool, pool_keeping_indices, set_initialisation, vgg_encoder_convs, vgg_stage)
from bench.architectures.registry import register_model


class SegNet(nn.Module):
    """SegNet: the 13 VGG16 conv layers as encoder, a mirrored decoder that upsamples with the encoder's
    max-pooling indices, and a 3x3 classifier (`conv1_1_D`, the tutorial prototxt: architectures.md A8).

    Dropout 0.5 after pool3/4/5 and after decoder blocks 5/4/3, the positions of the authors' example
    prototxt (paper Sec. 4; architectures.md §2, A5). Every conv keeps its bias, as in the prototxt.
    """

    def __init__(self, num_classes: int = 11, dropout: float = 0.5):
        super().__init__()
        self.enc1, self.enc2, self.enc3, self.enc4, self.enc5 = (vgg_stage(c) for c in (
            (3, 64, 64), (64, 128, 128), (128, 256, 256, 256), (256, 512, 512, 512), (512, 512, 512, 512)))
        self.dec5 = vgg_stage((512, 512, 512, 512))
        self.dec4 = vgg_stage((512, 512, 512, 256))
        self.dec3 = vgg_stage((256, 256, 256, 128))
        self.dec2 = vgg_stage((128, 128, 64))
        self.dec1 = vgg_stage((64, 64))
        self.classifier = nn.Conv2d(64, num_classes, 3, padding=1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        x, idx1, size1 = pool_keeping_indices(self.enc1(x))
        x, idx2, size2 = pool_keeping_indices(self.enc2(x))
        x, idx3, size3 = pool_keeping_indices(self.enc3(x))
        x, idx4, size4 = pool_keeping_indices(self.enc4(self.drop(x)))
        x, idx5, size5 = pool_keeping_indices(self.enc5(self.drop(x)))
        x = self.drop(x)
        x = self.drop(self.dec5(max_unpool(x, idx5, size5)))
        x = self.drop(self.dec4(max_unpool(x, idx4, size4)))
        x = self.drop(self.dec3(max_unpool(x, idx3, size3)))
        x = self.dec2(max_unpool(x, idx2, size2))
        x = self.dec1(max_unpool(x, idx1, size1))
        return self.classifier(x)

    def encoder_convs(self):
        return vgg_encoder_convs([self.enc1, self.enc2, self.enc3, self.enc4, self.enc5])


class SegNetBasic(nn.Module):
    """SegNet-Basic (Table 1): 4 encoders and 4 decoders of 64 7x7 filters, BN, no ReLU in the decoder, no
    biases, upsampling with pool indices, a 1x1 classifier; no dropout (architectures.md §6.1).

    encoder_addition: SegNet-Basic-EncoderAddition, the pooled encoder maps P3/P2/P1 added after BN to the
        outputs of decoders 4/3/2 (architectures.md A11).
    single_channel_decoder: SegNet-Basic-SingleChannelDecoder, each decoder filter convolves only its own
        upsampled map (a depthwise 7x7 conv; §6.3).
    """

    def __init__(self, num_classes: int = 11, encoder_addition: bool = False, single_channel_decoder: bool = False):
        super().__init__()
        self.encoder = BasicEncoder()
        groups = 64 if single_channel_decoder else 1
        self.decoders = nn.ModuleList(
            nn.Sequential(nn.Conv2d(64, 64, 7, padding=3, bias=False, groups=groups), nn.BatchNorm2d(64))
            for _ in range(4))  # decoders[3] is "decoder 4", the first applied
        self.classifier = nn.Conv2d(64, num_classes, 1)
        self.encoder_addition = encoder_addition

    def forward(self, x):
        pooled, pool_indices, sizes = self.encoder(x)
        x = pooled[3]
        for level in (3, 2, 1, 0):
            x = self.decoders[level](max_unpool(x, pool_indices[level], sizes[level]))
            if self.encoder_addition and level > 0:
                x = x + pooled[level - 1]
        return self.classifier(x)


def _init_segnet(model: SegNet, encoder_weights):
    he_init_(model)
    return init_vgg_encoder(model, encoder_weights, {"decoder convs and classifier": HE_INIT, "bn": BN_INIT})


@register_model("segnet")
def segnet(num_classes=11, encoder_weights=None, dropout=0.5):
    return _init_segnet(SegNet(num_classes, dropout), encoder_weights)


def _basic(num_classes, encoder_weights, **kw):
    if encoder_weights is not None:
        from bench.errors import BenchError
        raise BenchError("the Table 1 decoder variants are trained from He initialisation; encoder_weights must be None")
    model = SegNetBasic(num_classes, **kw)
    he_init_(model)
    return set_initialisation(model, source="he-init", from_weights=[],
                              initialised={"every conv": HE_INIT, "bn": BN_INIT})


@register_model("segnet-basic")
def segnet_basic(num_classes=11, encoder_weights=None):
    return _basic(num_classes, encoder_weights)


@register_model("segnet-basic-encoder-addition")
def segnet_basic_encoder_addition(num_classes=11, encoder_weights=None):
    return _basic(num_classes, encoder_weights, encoder_addition=True)


@register_model("segnet-basic-single-channel-decoder")
def segnet_basic_single_channel_decoder(num_classes=11, encoder_weights=None):
    return _basic(num_classes, encoder_weights, single_channel_decoder=True)
