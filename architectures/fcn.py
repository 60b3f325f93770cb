"""FCN-8s ("FCN" with fixed bilinear upsampling, "FCN (learnt deconv)") and the FCN-Basic decoder variants of
Table 1, with Bilinear-Interpolation.

Layer tables: `../shared/reference/architectures.md` §3 (FCN-8s, after `shelhamer/fcn.berkeleyvision.org`
`voc-fcn8s/net.py`: conv1_1 pad 100, ceil pooling, crops at offsets 5/9/31, deconvs without bias) and §6.4-6.8
(FCN-Basic family; no authors' prototxt exists, choices A10 and A12).
"""
from __future__ import annotations

from torch import nn

from bench.architectures.common import (BN_INIT, HE_INIT, BasicEncoder, ConvBNReLU, bilinear_init_, crop_like, he_init_,
                                  init_vgg_encoder, set_initialisation, upsample_filt, vgg16_fc_as_conv,
                                  vgg_encoder_convs, vgg_stage)
from bench.architectures.registry import register_model
from bench.errors import BenchError


class FCN8s(nn.Module):
    """FCN-8s with BN after every conv that feeds a ReLU (paper Sec. 4), fc6/fc7 as convs with FCN's own
    dropout (drop6/drop7), three skip scores and three bilinear-initialised deconvs (2x, 2x, 8x).

    learnt_upsampling=False freezes the deconvs at the bilinear kernel (the reference implementation's
    "FCN"); True trains them ("FCN (learnt deconv)"). Architectures.md A6.
    """

    def __init__(self, num_classes: int = 11, learnt_upsampling: bool = False, dropout: float = 0.5):
        super().__init__()
        k = num_classes
        self.enc1 = nn.Sequential(ConvBNReLU(3, 64, padding=100), ConvBNReLU(64, 64))
        self.enc2, self.enc3, self.enc4, self.enc5 = (vgg_stage(c) for c in (
            (64, 128, 128), (128, 256, 256, 256), (256, 512, 512, 512), (512, 512, 512, 512)))
        self.pool = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.fc6 = ConvBNReLU(512, 4096, 7, padding=0)
        self.fc7 = ConvBNReLU(4096, 4096, 1, padding=0)
        self.drop = nn.Dropout(dropout)
        self.score_fr = nn.Conv2d(4096, k, 1)
        self.score_pool4 = nn.Conv2d(512, k, 1)
        self.score_pool3 = nn.Conv2d(256, k, 1)
        self.upscore2 = nn.ConvTranspose2d(k, k, 4, 2, bias=False)
        self.upscore_pool4 = nn.ConvTranspose2d(k, k, 4, 2, bias=False)
        self.upscore8 = nn.ConvTranspose2d(k, k, 16, 8, bias=False)
        self.learnt_upsampling = learnt_upsampling

    def forward(self, x):
        size = x.shape[-2:]
        pool3 = self.pool(self.enc3(self.pool(self.enc2(self.pool(self.enc1(x))))))
        pool4 = self.pool(self.enc4(pool3))
        pool5 = self.pool(self.enc5(pool4))
        h = self.drop(self.fc7(self.drop(self.fc6(pool5))))
        h = self.upscore2(self.score_fr(h))
        h = h + crop_like(self.score_pool4(pool4), 5, h.shape[-2:])
        h = self.upscore_pool4(h)
        h = h + crop_like(self.score_pool3(pool3), 9, h.shape[-2:])
        return crop_like(self.upscore8(h), 31, size)

    def encoder_convs(self):
        return vgg_encoder_convs([self.enc1, self.enc2, self.enc3, self.enc4, self.enc5])

    def init_weights(self, encoder_weights):
        """He for convs, BN 1/0.001, score layers zero, deconvs bilinear (surgery.interp); VGG16 where given."""
        he_init_(self)
        for score in (self.score_fr, self.score_pool4, self.score_pool3):
            nn.init.zeros_(score.weight)
            nn.init.zeros_(score.bias)
        for up in (self.upscore2, self.upscore_pool4, self.upscore8):
            bilinear_init_(up)
            up.weight.requires_grad_(self.learnt_upsampling)
        upsampling = "bilinear (surgery.interp), " + ("learnt" if self.learnt_upsampling else "fixed")
        # torchvision's download has fc6/fc7; a conv-only local file does not (then He, and said so)
        return init_vgg_encoder(self, encoder_weights, {"score_fr, score_pool4, score_pool3": "zeros",
                                                         "upscore2, upscore_pool4, upscore8": upsampling, "bn": BN_INIT},
                                fc={"fc6": self.fc6, "fc7": self.fc7}, fc_convert=vgg16_fc_as_conv,
                                fc_rule="VGG16 classifier reshaped into a 7x7 conv (fc6) and a 1x1 conv (fc7)")


class FCNBasic(nn.Module):
    """FCN-Basic (Table 1): the SegNet-Basic encoder, 1x1 "dimensionality reduction" of the pooled encoder
    maps to K channels, and a linear decoder of 8x8 stride-2 deconvs (bilinear x2 initialisation) that adds
    the reduced P3/P2/P1 (architectures.md §6.4, A10). The last deconv brings the map to the input size.

    addition=False: FCN-Basic-NoAddition (only the reduced P4 is decoded).
    dim_reduction=False: FCN-Basic-NoDimReduction, 64-channel deconvs and skips, then a 1x1 classifier.
    learnt_upsampling=False: deconvs frozen at bilinear x2 (Bilinear-Interpolation, A12).
    revision (the registry's `revision` of the member; older ones are built for comparison only):
      1: the decoder linear, without batch norm (architectures.md A4/A10).
      2: the paper's "batch normalization is used after each convolutional layer in both the encoder and decoder
         network" (Sec. 3.1) applied to the decoder: batch norm (scale 1, shift 0.001, as the prototxts) after each
         1x1 dimensionality reduction; in the NoDimReduction variants, which have none, after each learnt
         deconvolution (cropped), before the skip is added. Without it the reductions read raw ReLU+pooled maps
         (non-negative, large mean) and SGD at the paper's lr 0.1 diverges (`bench.benchmarks.decoder_stability`).
      3: also after the learnt deconvolutions of decoders 4, 3 and 2 in the dimensionality-reduced variants
         (FCN-Basic, FCN-Basic-NoAddition), so that every learnt decoder convolution is batch-normalised except
         the one that produces the scores, as SegNet-Basic's classifier is not. In revision 2 those three
         deconvolutions were a product of linear maps with no normalisation between them, fed unit-variance skips;
         under natural-frequency balancing at lr 0.1 their gradients grew from update ~17 until the scores
         overflowed (`python -m bench.benchmarks.decoder_stability --first-non-finite`, issue 48).
    The decoder stays otherwise linear (no ReLU), and Bilinear-Interpolation's fixed upsamplers are not normalised
    (they stay an interpolation), so revision 3 changes nothing there.
    """

    def __init__(self, num_classes: int = 11, addition: bool = True, dim_reduction: bool = True,
                 learnt_upsampling: bool = True, revision: int = 3):
        super().__init__()
        self.encoder = BasicEncoder()
        ch = num_classes if dim_reduction else 64
        n_reduce = (4 if addition else 1) if dim_reduction else 0
        self.dim_reduction = nn.ModuleList(_maybe_bn(nn.Conv2d(64, num_classes, 1), num_classes, revision >= 2)
                                           for _ in range(n_reduce))
        self.deconvs = nn.ModuleList(nn.ConvTranspose2d(ch, ch, 8, 2, 3, bias=False) for _ in range(4))
        self.deconv_bns = nn.ModuleList(nn.BatchNorm2d(ch) if _deconv_bn(level, dim_reduction, learnt_upsampling,
                                                                         revision) else nn.Identity()
                                        for level in range(4))
        self.classifier = None if dim_reduction else nn.Conv2d(64, num_classes, 1)
        self.addition = addition
        self.learnt_upsampling = learnt_upsampling

    def _skip(self, pooled, level):
        """The encoder map of ``level`` (0 = P1), reduced to K channels where the variant reduces."""
        if not len(self.dim_reduction):
            return pooled[level]
        return self.dim_reduction[level if self.addition else 0](pooled[level])

    def _decode(self, x, level, size):
        """Decoder ``level + 1``: the deconvolution, cropped to ``size``, batch-normalised where the revision does."""
        x = crop_like(self.deconvs[level](x), 0, size)
        return self.deconv_bns[level](x)

    def forward(self, x):
        size = x.shape[-2:]
        pooled, _, _ = self.encoder(x)
        x = self._skip(pooled, 3)
        for level in (2, 1, 0):  # decoders 4, 3, 2
            x = self._decode(x, level + 1, pooled[level].shape[-2:])
            if self.addition:
                x = x + self._skip(pooled, level)
        x = self._decode(x, 0, size)  # decoder 1, to the input size
        if self.classifier is not None:
            x = self.classifier(x)
        return x

    def init_weights(self):
        he_init_(self)
        x2 = upsample_filt(4)  # exact bilinear x2 kernel centred in the 8x8 deconv (A10)
        for d in self.deconvs:
            bilinear_init_(d, x2)
            d.weight.requires_grad_(self.learnt_upsampling)
        return set_initialisation(self, source="he-init", from_weights=[], initialised={
            "encoder and 1x1 convs": HE_INIT, "deconvs": "bilinear x2 in the 8x8 kernel (A10), "
            + ("learnt" if self.learnt_upsampling else "fixed"), "bn": BN_INIT})


def _deconv_bn(level: int, dim_reduction: bool, learnt_upsampling: bool, revision: int) -> bool:
    """Whether decoder ``level + 1``'s deconvolution is followed by batch norm (`FCNBasic`'s revisions)."""
    if not learnt_upsampling or revision < 2:
        return False
    if not dim_reduction:
        return True  # revision 2: all four, a 1x1 classifier follows
    return revision >= 3 and level > 0  # revision 3: not the last, whose output is the scores


def _maybe_bn(conv: nn.Conv2d, channels: int, bn: bool) -> nn.Module:
    """``conv`` followed by batch norm where ``bn`` (FCN-Basic revision 2 on), else ``conv`` alone."""
    return nn.Sequential(conv, nn.BatchNorm2d(channels)) if bn else conv


@register_model("fcn")
def fcn(num_classes=11, encoder_weights=None, dropout=0.5):
    return FCN8s(num_classes, learnt_upsampling=False, dropout=dropout).init_weights(encoder_weights)


@register_model("fcn-learnt-deconv")
def fcn_learnt_deconv(num_classes=11, encoder_weights=None, dropout=0.5):
    return FCN8s(num_classes, learnt_upsampling=True, dropout=dropout).init_weights(encoder_weights)


def _fcn_basic(num_classes, encoder_weights, **kw):
    if encoder_weights is not None:
        raise BenchError("the Table 1 decoder variants are trained from He initialisation; encoder_weights must be None")
    return FCNBasic(num_classes, **kw).init_weights()


@register_model("bilinear-interpolation")
def bilinear_interpolation(num_classes=11, encoder_weights=None):
    return _fcn_basic(num_classes, encoder_weights, addition=False, learnt_upsampling=False)


@register_model("fcn-basic")
def fcn_basic(num_classes=11, encoder_weights=None):
    return _fcn_basic(num_classes, encoder_weights)


@register_model("fcn-basic-no-addition")
def fcn_basic_no_addition(num_classes=11, encoder_weights=None):
    return _fcn_basic(num_classes, encoder_weights, addition=False)


@register_model("fcn-basic-no-dim-reduction")
def fcn_basic_no_dim_reduction(num_classes=11, encoder_weights=None):
    return _fcn_basic(num_classes, encoder_weights, dim_reduction=False)


@register_model("fcn-basic-no-addition-no-dim-reduction")
def fcn_basic_no_addition_no_dim_reduction(num_classes=11, encoder_weights=None):
    return _fcn_basic(num_classes, encoder_weights, addition=False, dim_reduction=False)
