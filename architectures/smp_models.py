"""Beyond the paper: U-Net and DeepLabV3+ from segmentation-models-pytorch with a VGG16-BN encoder, under the
same interface, so the controlled recipe can compare today's decoders with the paper's.

smp's VGG encoders cannot be dilated, so DeepLabV3+ uses the encoder to depth 4 (stride 16, conv1-conv4 of
VGG16) with smp's ASPP decoder (rates 12/24/36) and its x4 head upsampling; the fifth VGG stage is not used.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from bench.architectures.common import HE_INIT, he_init_, load_vgg16_convs, set_initialisation, vgg16_state_dict
from bench.architectures.registry import register_model


def _smp_encoder_weights(wrapper, net, encoder_weights):
    """None: He; "imagenet": smp's own vgg16_bn ImageNet weights; a path: VGG16 conv weights (BN untouched)."""
    decoder = {"decoder and head": "smp's own initialisation"}
    if encoder_weights is None:
        return set_initialisation(wrapper, source="he-init", from_weights=[],
                                  initialised={"encoder": HE_INIT, **decoder})
    if encoder_weights == "imagenet":
        return set_initialisation(wrapper, source="smp vgg16_bn imagenet", initialised=decoder,
                                  from_weights=[f"encoder.{k}" for k in net.encoder.state_dict()])
    convs = [m for m in net.encoder.modules() if isinstance(m, nn.Conv2d)]
    sd, source = vgg16_state_dict(encoder_weights)
    names = load_vgg16_convs(convs, sd, source, [f"encoder.conv{i}" for i in range(len(convs))])
    return set_initialisation(wrapper, source=source, from_weights=names,
                              initialised={"encoder batch norm": "smp's own (VGG16 conv weights without BN)", **decoder})


class _SMPWrapper(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        h, w = x.shape[-2:]
        ph, pw = (-h) % 32, (-w) % 32  # smp needs sizes divisible by 32: pad, then crop back
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect")
        return self.net(x)[..., :h, :w]


@register_model("unet-vgg16bn")
def unet_vgg16bn(num_classes=11, encoder_weights=None):
    import segmentation_models_pytorch as smp
    net = smp.Unet("vgg16_bn", encoder_weights="imagenet" if encoder_weights == "imagenet" else None,
                   classes=num_classes)
    if encoder_weights is None:
        he_init_(net)
    return _smp_encoder_weights(_SMPWrapper(net), net, encoder_weights)


class _DeepLabV3PlusVGG(nn.Module):
    def __init__(self, num_classes, weights):
        super().__init__()
        import segmentation_models_pytorch as smp
        from segmentation_models_pytorch.base import SegmentationHead
        from segmentation_models_pytorch.decoders.deeplabv3.decoder import DeepLabV3PlusDecoder
        self.encoder = smp.encoders.get_encoder("vgg16_bn", in_channels=3, depth=4, weights=weights)
        self.decoder = DeepLabV3PlusDecoder(self.encoder.out_channels, encoder_depth=4, out_channels=256,
                                            atrous_rates=(12, 24, 36), output_stride=16, aspp_separable=True,
                                            aspp_dropout=0.5)
        self.segmentation_head = SegmentationHead(256, num_classes, kernel_size=1, upsampling=4)

    def forward(self, x):
        return self.segmentation_head(self.decoder(self.encoder(x)))


@register_model("deeplabv3plus-vgg16bn")
def deeplabv3plus_vgg16bn(num_classes=11, encoder_weights=None):
    net = _DeepLabV3PlusVGG(num_classes, "imagenet" if encoder_weights == "imagenet" else None)
    if encoder_weights is None:
        he_init_(net)
    return _smp_encoder_weights(_SMPWrapper(net), net, encoder_weights)
