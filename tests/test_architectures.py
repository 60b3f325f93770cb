"""The model registry against the paper and the reference builds (architectures.md)."""

import pytest
import torch
import torch.nn.functional as F

from bench import architectures
from bench.architectures.common import bilinear_init_, max_pool_with_indices, max_unpool, upsample_filt
from bench.errors import BenchError
from bench.models import count_macs
from bench.published import number, read_rows

ALL = architectures.list_models()
PAPER = [n for n in ALL if architectures.model_meta(n)["family"] != "beyond-paper"]


from tests.conftest import vgg16_weights_file as weights_file  # noqa: E402


def test_registry_has_all_fifteen():
    assert len(ALL) == 15 and len(PAPER) == 13


@pytest.mark.parametrize("name", ALL)
def test_parameter_and_mac_counts_equal_the_reference(name):
    """The catalogue's counts (architectures/models.toml, what `bench models` prints without building) are those of
    a real build; for the paper's models they are architectures.md's."""
    meta = architectures.model_meta(name)
    with torch.device("meta"):
        model = architectures.create_model(name)
    assert sum(p.numel() for p in model.parameters()) == meta["params"]
    if "trainable_params" in meta:
        assert sum(p.numel() for p in model.parameters() if p.requires_grad) == meta["trainable_params"]
    macs, shape = count_macs(model)
    assert macs == meta["macs"] and shape == (11, 360, 480)


def test_every_table1_and_table3_row_maps_to_a_model():
    by_paper = {architectures.model_meta(n)["paper_name"]: n for n in ALL}
    for row in read_rows("table1"):
        assert row["variant"] in by_paper
    for row in read_rows("table3"):
        if row["network"] != "DeepLab-LargeFOV-denseCRF":  # a CRF post-process, not a network
            assert row["network"] in by_paper


@pytest.mark.parametrize("row", read_rows("table1"), ids=lambda r: r["variant"])
def test_table1_params_within_3_percent(row):
    by_paper = {architectures.model_meta(n)["paper_name"]: n for n in ALL}
    with torch.device("meta"):
        model = architectures.create_model(by_paper[row["variant"]])
    ours = sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6
    assert ours == pytest.approx(number(row["params_M"]), rel=0.03)


def test_table6_model_sizes_segnet_fcn_deeplab():
    """Table 6 "model size" in MB (10^6 B) of fp32 weights: SegNet 117, FCN 539 (K=37), DeepLab 83."""
    sizes = {r["network"]: number(r["model_size_MB"]) for r in read_rows("table6")}
    with torch.device("meta"):
        segnet = architectures.create_model("segnet")
        fcn37 = architectures.create_model("fcn-learnt-deconv", num_classes=37)
        deeplab = architectures.create_model("deeplab-largefov")
    mb = lambda m: sum(p.numel() for p in m.parameters()) * 4 / 1e6
    assert mb(segnet) == pytest.approx(sizes["SegNet"], rel=0.01)
    assert mb(fcn37) == pytest.approx(sizes["FCN (learnt deconv)"], rel=0.001)
    assert mb(deeplab) == pytest.approx(sizes["DeepLab-LargeFOV"], rel=0.015)
    # FCN's encoder (VGG16 convs + fc6 + fc7 with their biases, without BN): the paper's "134M"
    fcn = architectures.create_model("fcn")
    convs = [m for n, m in fcn.named_modules() if isinstance(m, torch.nn.Conv2d) and n.startswith(("enc", "fc"))]
    assert sum(m.weight.numel() + m.bias.numel() for m in convs) == 134_260_544


SIZES = {"deconvnet": (224, 224), "fcn": (40, 48), "fcn-learnt-deconv": (40, 48)}


@pytest.mark.parametrize("name", ALL)
def test_forward_backward_output_is_K_by_H_by_W(name):
    torch.manual_seed(0)
    model = architectures.create_model(name, num_classes=5)
    h, w = SIZES.get(name, (90, 122))  # odd pooled sizes exercise ceil-mode pooling and unpooling
    x = torch.randn(2, 3, h, w)
    y = model(x)
    assert y.shape == (2, 5, h, w)
    target = torch.randint(0, 5, (2, h, w))
    F.cross_entropy(y, target).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_segnet_decoder_places_values_at_encoder_argmax():
    torch.manual_seed(0)
    model = architectures.create_model("segnet-basic").eval()
    x = torch.randn(1, 3, 90, 122)
    pooled, indices, sizes = model.encoder(x)
    seen = {}
    model.decoders[3].register_forward_pre_hook(lambda m, inp: seen.setdefault("in", inp[0]))
    model(x)
    up = seen["in"]
    assert up.shape[-2:] == sizes[3]
    flat = up.flatten(2)
    idx = indices[3].flatten(2)
    torch.testing.assert_close(flat.gather(2, idx), pooled[3].flatten(2))
    mask = torch.zeros_like(flat, dtype=torch.bool).scatter_(2, idx, True)
    assert (flat[~mask] == 0).all()


def test_max_unpool_inverts_pooling_at_argmax():
    x = torch.tensor([[[[1., 5, 2], [3, 4, 9], [0, 7, 8]]]])
    p, i = max_pool_with_indices(x)  # ceil mode: 2x2 output from 3x3
    assert p.flatten().tolist() == [5, 9, 7, 8]
    u = max_unpool(p, i, x.shape[-2:])
    assert u.tolist() == [[[[0, 5, 0], [0, 0, 9], [0, 7, 8]]]]


def test_fcn_basic_x2_kernel_is_bilinear_interpolation():
    deconv = torch.nn.ConvTranspose2d(3, 3, 8, 2, 3, bias=False)
    bilinear_init_(deconv, upsample_filt(4))
    x = torch.randn(1, 3, 10, 12)
    ours = deconv(x)
    ref = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1])


def test_fixed_and_learnt_fcn_upsampling():
    fixed = architectures.create_model("fcn")
    learnt = architectures.create_model("fcn-learnt-deconv")
    assert not fixed.upscore8.weight.requires_grad and learnt.upscore8.weight.requires_grad
    torch.testing.assert_close(fixed.upscore8.weight, learnt.upscore8.weight)
    w = fixed.upscore8.weight
    assert w[0, 0].sum().item() == pytest.approx(64.0)  # unit DC gain at stride 8
    assert w[0, 1].abs().sum() == 0  # channel diagonal


def test_local_vgg16_weights_load_and_equal_the_file():
    path = weights_file()
    sd = torch.load(path, weights_only=True)
    model = architectures.create_model("segnet", encoder_weights=str(path))
    convs, names = model.encoder_convs()
    for conv, idx in zip(convs, (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)):
        torch.testing.assert_close(conv.weight, sd[f"features.{idx}.weight"], rtol=0, atol=0)
        torch.testing.assert_close(conv.bias, sd[f"features.{idx}.bias"], rtol=0, atol=0)
    assert model.pretrained_layers == names and len(names) == 13
    fcn = architectures.create_model("fcn", encoder_weights=str(path))
    assert "fc6" not in fcn.pretrained_layers  # the conv-only file has no fc layers
    he = architectures.create_model("segnet")
    assert he.pretrained_layers == []


def test_bad_weights_file_names_the_keys(tmp_path):
    sd = {f"features.{i}.weight": torch.zeros(64, 3, 3, 3) for i in (0,)}
    sd["features.0.bias"] = torch.zeros(64)
    sd["features.2.weight"] = torch.zeros(64, 64, 5, 5)
    bad = tmp_path / "bad.pth"
    torch.save(sd, bad)
    with pytest.raises(BenchError) as e:
        architectures.create_model("segnet", encoder_weights=str(bad))
    msg = str(e.value)
    assert "features.2.weight has shape (64, 64, 5, 5), expected (64, 64, 3, 3)" in msg
    assert "features.28.bias missing" in msg and str(bad) in msg
    with pytest.raises(BenchError, match="not found"):
        architectures.create_model("segnet", encoder_weights=str(tmp_path / "absent.pth"))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(BenchError, match="cannot be read"):
        architectures.create_model("segnet", encoder_weights=str(garbage))


def test_unknown_model_and_bad_num_classes():
    with pytest.raises(BenchError, match="unknown model 'segnett'.*segnet-basic"):
        architectures.create_model("segnett")
    for bad in (0, 1, 2.5, "11", True):
        with pytest.raises(BenchError, match="num_classes"):
            architectures.create_model("segnet-basic", num_classes=bad)
    with pytest.raises(BenchError, match="He initialisation"):
        architectures.create_model("segnet-basic", encoder_weights="imagenet")


def test_bench_models_cli_lists_fifteen():
    import json
    from click.testing import CliRunner
    from bench.cli import main
    r = CliRunner().invoke(main, ["models", "--format", "json"])
    rows = json.loads(r.output)
    assert r.exit_code == 0 and len(rows) == 15
    seg = next(x for x in rows if x["name"] == "segnet-basic")
    assert seg["table1_storage_multiplier"] == "1" and seg["params"] == 1_416_075


def test_imagenet_goes_through_torchvision_weights_api(monkeypatch):
    """"imagenet" asks torchvision's weights API (stood in for here: no network), fc6/fc7 included for FCN."""
    from torchvision.models import VGG16_Weights
    sd = torch.load(weights_file(), weights_only=True)
    sd["classifier.0.weight"] = torch.full((4096, 25088), 0.5)
    sd["classifier.0.bias"] = torch.zeros(4096)
    sd["classifier.3.weight"] = torch.full((4096, 4096), 0.25)
    sd["classifier.3.bias"] = torch.zeros(4096)
    calls = []

    def fake_get_state_dict(self, progress=True, **kw):
        calls.append(self.name)
        return sd
    monkeypatch.setattr(VGG16_Weights, "get_state_dict", fake_get_state_dict)
    fcn = architectures.create_model("fcn", encoder_weights="imagenet")
    assert calls and calls[0] == "IMAGENET1K_V1"
    assert fcn.pretrained_layers[-2:] == ["fc6", "fc7"] and fcn.weights_source.startswith("torchvision")
    assert (fcn.fc6[0].weight == 0.5).all() and fcn.fc6[0].weight.shape == (4096, 512, 7, 7)
    assert (fcn.fc7[0].weight == 0.25).all()
    torch.testing.assert_close(fcn.enc1[0][0].weight, sd["features.0.weight"])


# -- revisions 2 and 3 of the FCN-Basic family and Caffe's msra filler (issues 34, 48) ------------------------------
FCN_BASIC_FAMILY = ["bilinear-interpolation", "fcn-basic", "fcn-basic-no-addition", "fcn-basic-no-dim-reduction",
                    "fcn-basic-no-addition-no-dim-reduction"]


@pytest.mark.parametrize("name", FCN_BASIC_FAMILY)
def test_fcn_basic_revisions_add_exactly_their_decoder_batch_norms_to_the_reference_build(name):
    from bench.architectures.fcn import FCNBasic
    meta = architectures.model_meta(name)
    model = architectures.create_model(name)
    learnt_reduced = model.learnt_upsampling and model.classifier is None  # FCN-Basic, FCN-Basic-NoAddition
    assert meta["revision"] == (3 if learnt_reduced else 2) and "batch norm" in meta["revisions"][meta["revision"]]
    decoder_bn = [m for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)
                  and not n.startswith("encoder.")]
    assert sum(p.numel() for m in decoder_bn for p in m.parameters()) == meta["params"] - meta["reference_params"]
    for bn in decoder_bn:  # the prototxts' batch-norm initialisation
        assert torch.all(bn.weight == 1) and torch.allclose(bn.bias, torch.full_like(bn.bias, 0.001))
    if model.classifier is None:  # reductions: each 1x1 conv followed by its batch norm
        assert all(isinstance(r[1], torch.nn.BatchNorm2d) for r in model.dim_reduction)
        # revision 3: the learnt deconvolutions of decoders 4, 3, 2 too; the last one (the scores) never
        expected = [torch.nn.Identity] + [torch.nn.BatchNorm2d if learnt_reduced else torch.nn.Identity] * 3
        assert [type(b) for b in model.deconv_bns] == expected
    else:  # NoDimReduction: a batch norm after each of the four learnt deconvolutions
        assert [type(b) for b in model.deconv_bns] == [torch.nn.BatchNorm2d] * 4
    kw = dict(addition=model.addition, dim_reduction=model.classifier is None, learnt_upsampling=model.learnt_upsampling)
    revision_1 = FCNBasic(revision=1, **kw)
    assert sum(p.numel() for p in revision_1.parameters()) == meta["reference_params"]
    revision_2 = FCNBasic(revision=2, **kw)
    assert (sum(p.numel() for p in revision_2.parameters()) < meta["params"]) == learnt_reduced
    x = torch.randn(2, 3, 64, 96)
    assert model.eval()(x).shape == revision_1.eval()(x).shape == revision_2.eval()(x).shape == (2, 11, 64, 96)


def test_bilinear_interpolation_keeps_its_upsampling_a_fixed_interpolation():
    model = architectures.create_model("bilinear-interpolation")
    assert all(isinstance(b, torch.nn.Identity) for b in model.deconv_bns)
    assert not any(d.weight.requires_grad for d in model.deconvs)


def test_he_init_uses_caffes_msra_fan_for_deconvolutions():
    from bench.architectures.common import he_init_, msra_fan
    deconv = torch.nn.ConvTranspose2d(1024, 512, 7)  # DeconvNet's fc6-deconv
    conv = torch.nn.Conv2d(64, 128, 3)
    assert msra_fan(deconv) == 512 * 7 * 7 and msra_fan(conv) == 64 * 3 * 3  # Caffe: count / num (blob axis 0)
    torch.manual_seed(0)
    he_init_(deconv)
    assert deconv.weight.std().item() == pytest.approx((2 / (512 * 49)) ** 0.5, rel=0.01)
    assert architectures.model_meta("deconvnet")["revision"] == 2
    torch.manual_seed(0)
    fc6_deconv = architectures.create_model("deconvnet").fc6_deconv[0].weight
    assert fc6_deconv.std().item() == pytest.approx((2 / (512 * 49)) ** 0.5, rel=0.01)


def test_every_other_model_is_at_its_first_revision():
    changed = set(FCN_BASIC_FAMILY) | {"deconvnet"}
    assert {n: architectures.model_revision(n) for n in ALL if n not in changed} == {n: 1 for n in ALL
                                                                                     if n not in changed}
