"""The recipe details a review against the paper and the authors' prototxts found wrong (issue 11): DeepLab's
label alignment, the fc6/fc7 initialisation facts, weight decay on batch norm, full mini-batches, and the
`paper` profile's schedule."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from bench import architectures
from bench.architectures.deeplab_largefov import coarse_cell_positions, labels_at_coarse_cells, upsample_logits
from bench.cli import main
from bench.config import load_suite
from bench.build import param_groups
from bench.data import ShuffledStream, epoch_order
from bench.runner import train_suite
from bench.step import labels_for_logits

from tests.test_architectures import weights_file


# -- 1. DeepLab-LargeFOV: the labels the loss sees are where the upsampling draws them ------------------------
def test_coarse_cells_sit_where_the_upsampling_places_them():
    pos = coarse_cell_positions(45, 360)
    assert pos[0] == 0 and pos[-1] == 359 and len(pos) == 45
    assert pos[1] == 8 and pos[22] == 180  # 22 * 359 / 44 = 179.5 -> 180 (half up)
    # a coarse map holding its own row index, upsampled by the model's rule, reads back ~i at row pos[i]
    coarse = torch.arange(45.0).view(1, 1, 45, 1).expand(1, 1, 45, 60)
    up = upsample_logits(coarse, (360, 480))[0, 0, :, 0]
    assert (up[pos] - torch.arange(45.0)).abs().max() < 0.07  # within 0.5 px of 8.16 px per cell
    # the old rule (rows 8i) drifts to ~0.8 of a cell at the bottom: the test below fails with it
    assert (up[torch.arange(45) * 8] - torch.arange(45.0)).abs().max() > 0.8


def test_loss_labels_of_deeplab_and_full_resolution_models():
    deeplab = architectures.create_model("deeplab-largefov")
    labels = torch.randint(0, 12, (2, 96, 128))
    logits = torch.zeros(2, 11, 12, 16)
    got = labels_for_logits(deeplab, labels, logits)
    assert got.shape == (2, 12, 16)
    rows, cols = coarse_cell_positions(12, 96), coarse_cell_positions(16, 128)
    assert torch.equal(got, labels[:, rows][:, :, cols])
    segnet = architectures.create_model("segnet-basic")
    assert labels_for_logits(segnet, labels, torch.zeros(2, 11, 96, 128)) is labels
    with pytest.raises(Exception, match="no coarse_labels rule"):
        labels_for_logits(segnet, labels, logits)


@pytest.mark.camvid
def test_deeplab_label_rule_round_trips_the_test_ground_truth(camvid_test_labels):
    """The test ground truth, taken through the training label rule to 45x60 and back through the model's own
    upsampling (one-hot over the 11 classes: the network never predicts void), scores >= 95 G and >= 68 BF
    against itself. Sampling rows/columns 8i instead (the old rule) loses about 3 points of G and 15 of BF."""
    from bench.evaluate import score_label_maps
    ds, _, labels = camvid_test_labels
    lab = torch.from_numpy(np.stack(labels)).long()

    def back(coarse):
        one_hot = F.one_hot(coarse, 12)[..., :11].permute(0, 3, 1, 2).float()
        return upsample_logits(one_hot, lab.shape[-2:]).argmax(1).to(torch.uint8).numpy()

    ours = score_label_maps(list(back(labels_at_coarse_cells(lab, (45, 60)))), labels,
                            class_names=ds.class_names, void_label=ds.void_label)
    assert ours["G"] >= 95 and ours["BF"] >= 68, (ours["G"], ours["BF"])
    old = back(lab[:, ::8, ::8])
    valid = lab.numpy() != ds.void_label
    old_g = 100 * (old == lab.numpy())[valid].mean()
    assert old_g < ours["G"] - 2


# -- 2. fc6/fc7: converted from VGG16 where present, never silently different --------------------------------
def full_vgg16_state_dict():
    """torchvision-layout VGG16 weights with values that encode their position: fc6 (o, c, h, w) holds
    o*100 + h*10 + w + (c % 4)/4, fc7 (o, i) holds o*4096 + i (all exact in float32); conv layers from the file."""
    sd = dict(torch.load(weights_file(), weights_only=True))
    o = torch.arange(4096.0).view(4096, 1, 1, 1)
    c = (torch.arange(512) % 4).float().view(1, 512, 1, 1) / 4
    h = torch.arange(7.0).view(1, 1, 7, 1)
    w = torch.arange(7.0).view(1, 1, 1, 7)
    sd["classifier.0.weight"] = (o * 100 + h * 10 + w + c).reshape(4096, 25088)
    sd["classifier.0.bias"] = torch.arange(4096.0) + 0.5
    sd["classifier.3.weight"] = torch.arange(4096.0).view(4096, 1) * 4096 + torch.arange(4096.0).view(1, 4096)
    sd["classifier.3.bias"] = -torch.arange(4096.0)
    sd["classifier.6.weight"] = torch.zeros(1000, 4096)
    sd["classifier.6.bias"] = torch.zeros(1000)
    return sd


@pytest.fixture(scope="module")
def full_vgg16():
    return full_vgg16_state_dict()


def test_fcn_takes_vgg16_fc6_fc7_as_convolutions(full_vgg16):
    fcn = architectures.create_model("fcn", encoder_weights=full_vgg16)
    w6 = fcn.fc6[0].weight
    assert w6.shape == (4096, 512, 7, 7)
    for (o, ch, hh, ww) in [(0, 0, 0, 0), (4095, 511, 6, 6), (17, 5, 3, 1), (1000, 2, 6, 0)]:
        assert w6[o, ch, hh, ww].item() == o * 100 + hh * 10 + ww + (ch % 4) / 4
    assert fcn.fc6[0].bias[7].item() == 7.5
    w7 = fcn.fc7[0].weight
    assert w7.shape == (4096, 4096, 1, 1) and w7[3, 9, 0, 0].item() == 3 * 4096 + 9
    assert fcn.fc7[0].bias[5].item() == -5
    init = fcn.initialisation
    assert init["from_weights"][-2:] == ["fc6", "fc7"] and init["missing_from_weights"] == []
    assert "reshaped" in init["converted"]["fc6"]


def test_deeplab_subsamples_vgg16_fc6_fc7(full_vgg16):
    """DeepLab-LargeFOV: every 4th filter (4096 -> 1024), fc6's 7x7 kernel decimated to taps 0, 3, 6 (3x3 at
    dilation 12), fc7's inputs at the fc6 filters kept."""
    m = architectures.create_model("deeplab-largefov", encoder_weights=full_vgg16)
    w6 = m.fc6[0].weight
    assert w6.shape == (1024, 512, 3, 3)
    for (j, ch, a, b) in [(0, 0, 0, 0), (1, 3, 1, 2), (1023, 510, 2, 2), (100, 7, 2, 0)]:
        assert w6[j, ch, a, b].item() == (4 * j) * 100 + (3 * a) * 10 + 3 * b + (ch % 4) / 4
    assert m.fc6[0].bias[10].item() == 40.5
    w7 = m.fc7[0].weight
    assert w7.shape == (1024, 1024, 1, 1)
    for (j, k) in [(0, 0), (1, 2), (1023, 1023), (250, 7)]:
        assert w7[j, k, 0, 0].item() == (4 * j) * 4096 + 4 * k
    assert m.fc7[0].bias[3].item() == -12
    assert m.initialisation["missing_from_weights"] == [] and "fc6" in m.pretrained_layers


def test_conv_only_weights_say_which_layers_were_initialised(full_vgg16):
    conv_only = str(weights_file())
    for name in ("fcn", "fcn-learnt-deconv", "deeplab-largefov"):
        m = architectures.create_model(name, encoder_weights=conv_only)
        assert m.initialisation["missing_from_weights"] == ["fc6", "fc7"], name
        assert "He" in m.initialisation["initialised"]["fc6"]
        assert len(m.initialisation["from_weights"]) == 13
    for name in ("deconvnet", "segnet"):  # DeconvNet's 1024-wide fc layers are He by choice (A7), online too
        m = architectures.create_model(name, encoder_weights=conv_only)
        assert m.initialisation["missing_from_weights"] == [], name
    d = architectures.create_model("deconvnet", encoder_weights=full_vgg16)
    assert "fc6" not in d.pretrained_layers and "A7" in d.initialisation["initialised"]["fc6, fc7, fc6-deconv"]
    bad = dict(full_vgg16)
    bad["classifier.3.weight"] = torch.zeros(4096, 100)
    with pytest.raises(Exception, match="classifier.3.weight has shape"):
        architectures.create_model("fcn", encoder_weights=bad)


def test_a_run_with_conv_only_weights_warns_and_records_it(fake_root, tmp_path):
    logs = []
    (folder,) = train_suite("camvid-controlled", profile="smoke", members=["deeplab-largefov"], data_root=fake_root,
                          results=tmp_path / "res", checkpoints=tmp_path / "ck", encoder_weights=str(weights_file()),
                          overrides={"image_size": [64, 96], "max_iters": 1, "eval_every_iters": 1,
                                     "budgets_iters": [1]}, log=logs.append)
    warnings = [line for line in logs if line.startswith("warning:")]
    assert len(warnings) == 1 and "fc6, fc7" in warnings[0] and "differs from the online recipe" in warnings[0]
    rec = json.loads((folder / "run.json").read_text())
    assert rec["model"]["initialisation"]["missing_from_weights"] == ["fc6", "fc7"]
    r = CliRunner().invoke(main, ["runs", "--results", str(tmp_path / "res")])
    assert r.exit_code == 0 and "fc6,fc7 NOT pretrained" in r.output
    from bench.report import render_reports
    render_reports(tmp_path / "res", tmp_path / "rep")
    md = (tmp_path / "rep" / "camvid-controlled" / "README.md").read_text()
    assert "DeepLab-LargeFOV †" in md and "fc6, fc7 not pretrained" in md


# -- 3. weight decay on batch norm as the prototxts -----------------------------------------------------------
def _groups(suite, member, variant=None, **over):
    recipe = load_suite(suite).resolve("full", variant, over or None)
    model = architectures.create_model(member)
    return model, {g["name"]: g for g in param_groups(model, recipe)}, recipe


def test_segnet_decays_bn_scale_not_shift():
    model, g, recipe = _groups("camvid-controlled", "segnet")
    assert recipe.bn_weight_decay == "scale"
    bn = model.enc1[0][1]
    assert any(p is bn.weight for p in g["bn-decayed"]["params"])
    assert any(p is bn.bias for p in g["bn-not-decayed"]["params"])
    assert g["bn-decayed"]["weight_decay"] == 5e-4 and g["bn-not-decayed"]["weight_decay"] == 0
    assert g["bn-decayed"]["lr"] == g["bn-not-decayed"]["lr"] == 1e-3  # BN lr_mult 1
    conv = model.enc1[0][0]
    assert any(p is conv.bias for p in g["biases"]["params"]) and g["biases"]["lr"] == 2e-3
    assert g["biases"]["weight_decay"] == 0 and any(p is conv.weight for p in g["weights"]["params"])
    n_bn = sum(1 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert len(g["bn-decayed"]["params"]) == len(g["bn-not-decayed"]["params"]) == n_bn


def test_segnet_basic_decays_both_bn_parameters_and_a_step_shows_it():
    model, g, recipe = _groups("camvid-decoder-variants", "segnet-basic", "median-frequency")
    assert recipe.bn_weight_decay == "scale-and-shift" and "bn-not-decayed" not in g
    bn = model.encoder.stages[0][1]
    assert any(p is bn.bias for p in g["bn-decayed"]["params"])
    for mode, shift_moves in (("scale-and-shift", True), ("scale", False), ("none", False)):
        model, groups, recipe = _groups("camvid-decoder-variants", "segnet-basic", "median-frequency",
                                        bn_weight_decay=mode)
        opt = torch.optim.SGD(list(groups.values()), lr=recipe.lr, momentum=0.0)
        bn = model.encoder.stages[0][1]
        before_w, before_b = bn.weight.detach().clone(), bn.bias.detach().clone()
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        opt.step()  # zero gradient: only weight decay moves a parameter
        assert torch.equal(bn.weight, before_w) == (mode == "none"), mode
        assert (not torch.equal(bn.bias, before_b)) == shift_moves, mode


# -- 4. full mini-batches, as Caffe's data layer --------------------------------------------------------------
def test_every_mini_batch_is_full_and_epochs_continue():
    n, b = 367, 5
    stream = ShuffledStream(seed=3, n=n)
    batches = [stream.batch(it, b) for it in range(3 * 74)]
    assert all(len(x) == b for x in batches)
    flat = torch.cat(batches)
    expected = torch.cat([epoch_order(3, e, n) for e in range(4)])[:len(flat)]
    assert torch.equal(flat, expected)  # epoch after epoch, each a shuffle, the remainder carried over
    assert torch.equal(ShuffledStream(3, n).batch(73, b), batches[73])  # a function of (seed, it): resumable
    assert sorted(batches[73].tolist()) != sorted(epoch_order(3, 0, n)[365:].tolist())  # not a short batch of 2


def test_runs_train_on_full_batches(fake_root, tmp_path):
    (folder,) = train_suite("camvid-decoder-variants", profile="smoke", members=["segnet-basic"],
                          variants=["natural-frequency"], data_root=fake_root, results=tmp_path / "r",
                          checkpoints=tmp_path / "c", log=lambda m: None,
                          overrides={"image_size": [64, 96], "max_iters": 3, "batch_size": 2, "train_subset": 3,
                                     "eval_every_iters": 3})
    rec = json.loads((folder / "run.json").read_text())
    assert rec["train_images"] == 3 and rec["iterations"] == 3 and rec["iterations_per_epoch"] == 2
    assert rec["timing"]["images_trained"] == 6  # 3 full batches of 2 (not 2 + 1 + 2)
    assert rec["config"]["bn_weight_decay"] == "scale-and-shift"
    assert [g["name"] for g in rec["optimiser"]["param_groups"]] == ["weights", "biases", "bn-decayed"]


# -- 5. the paper's schedule as a profile ---------------------------------------------------------------------
def test_paper_profile_has_the_papers_iteration_counts():
    suite = load_suite("camvid-controlled")
    expected_max = {"segnet": 140_000, "deeplab-largefov": 140_000, "fcn": 200_000, "fcn-learnt-deconv": 160_000,
                    "deconvnet": 260_000}
    for member, max_it in expected_max.items():
        r = suite.resolve("paper", member=member)
        assert r.total_iterations(367) == max_it and r.batch_size == 5
        assert r.budget_iterations(367) == [40_000, 80_000, max_it]
    for member, max_it in expected_max.items():  # full: the paper's test points and caps, and its stopping rule
        full = suite.resolve("full", member=member)
        assert full.total_iterations(367) == max_it and full.budget_iterations(367) == [40_000, 80_000]
        assert full.stopping == "val-plateau" and full.eval_every(367) == 1000 and full.max_epochs is None
    assert suite.resolve("paper", member="segnet").stopping == "schedule"
    assert load_suite("camvid-controlled-mfb").resolve("paper", member="fcn").total_iterations(367) == 200_000
    variants = load_suite("camvid-decoder-variants")
    assert variants.resolve("paper", "natural-frequency") == variants.resolve("full", "natural-frequency")


def test_profile_member_tables_are_checked(tmp_path):
    from bench.errors import BenchError
    bad = tmp_path / "s.toml"
    bad.write_text('name = "x"\ndataset = "camvid"\nmembers = ["segnet"]\n[recipe]\nmax_iters = 2\n'
                   'eval_every_iters = 1\n[profiles.paper.member.fcn]\nmax_iters = 3\n')
    with pytest.raises(BenchError, match="'fcn' is not a member"):
        load_suite(str(bad))
    bad.write_text('name = "x"\ndataset = "camvid"\nmembers = ["segnet"]\n[recipe]\nmax_iters = 2\n'
                   'eval_every_iters = 1\n[profiles.huge]\nmax_iters = 3\n')
    with pytest.raises(BenchError, match="unknown profile"):
        load_suite(str(bad))


@pytest.mark.parametrize("bn", ["frozen", "recomputed"])
def test_frozen_encoder_takes_no_gradient_no_weight_decay_and_keeps_its_statistics_as_the_recipe_says(bn):
    from bench.config import Recipe
    from bench.build import freeze_encoder_, make_optimizer, train_mode
    from bench.step import make_train_step
    torch.manual_seed(0)
    recipe = Recipe(freeze_encoder=True, frozen_encoder_bn=bn, batch_size=2, image_size=(64, 96), dropout=0.0,
                    deterministic=True)
    model = architectures.create_model("segnet", num_classes=11)
    info = freeze_encoder_(model, recipe)
    convs, _ = model.encoder_convs()
    encoder = {id(p) for c in convs for p in c.parameters()}
    assert info["frozen_encoder"][0] == "conv1_1" and len(info["frozen_encoder"]) == 13
    assert info["trained_parameters"] + info["frozen_parameters"] == sum(p.numel() for p in model.parameters())
    optimizer = make_optimizer(model, recipe, torch.device("cpu"))
    assert not encoder & {id(p) for g in optimizer.param_groups for p in g["params"]}  # no update, no decay
    enc_bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)][0]  # conv1_1's batch norm
    before = {k: v.clone() for k, v in model.state_dict().items()}
    step = make_train_step(model, model, optimizer, torch.ones(11), recipe, torch.device("cpu"), 11, 1)
    train_mode(model, recipe)
    x = torch.randint(0, 256, (2, 3, 64, 96), dtype=torch.uint8)
    y = torch.randint(0, 11, (2, 64, 96))
    for it in range(2):
        step(x, y, it)
    after = model.state_dict()
    for name, conv in zip(model.encoder_convs()[1], convs):
        assert torch.equal(conv.weight, before[_key(model, conv) + ".weight"]), name
    assert torch.equal(enc_bn.weight, torch.ones_like(enc_bn.weight))  # affine frozen either way
    stats_kept = torch.equal(enc_bn.running_mean, torch.zeros_like(enc_bn.running_mean))
    assert stats_kept == (bn == "frozen")
    assert any(not torch.equal(after[k], before[k]) for k in before if "decoder" in k or k.startswith("dec"))


def _key(model, module) -> str:
    return next(n for n, m in model.named_modules() if m is module)


def test_freezing_a_model_without_a_vgg16_encoder_is_one_clear_error():
    from bench.config import Recipe
    from bench.errors import BenchError
    from bench.build import freeze_encoder_
    with pytest.raises(BenchError, match="freeze_encoder: .* has no VGG16 encoder"):
        freeze_encoder_(architectures.create_model("segnet-basic"), Recipe(freeze_encoder=True))


def test_records_made_before_a_recipe_key_existed_still_match_its_default():
    from dataclasses import asdict

    from bench.config import Recipe
    from bench.config import same_recipe
    old = {k: v for k, v in json.loads(json.dumps(asdict(Recipe()))).items() if k not in ("freeze_encoder",
                                                                                        "frozen_encoder_bn")}
    assert same_recipe(old, Recipe()) and not same_recipe(old, Recipe(freeze_encoder=True))
    assert not same_recipe({**old, "lr": 0.5}, Recipe()) and not same_recipe(None, Recipe())


def test_a_run_with_a_frozen_encoder_records_which_parameters_it_trained(fake_root, tmp_path):
    (folder,) = train_suite("camvid-controlled", profile="smoke", members=["segnet"], data_root=fake_root,
                            results=tmp_path / "results", checkpoints=tmp_path / "ckpt", log=lambda m: None,
                            overrides={"image_size": [64, 96], "max_iters": 2, "batch_size": 2, "eval_every_iters": 2,
                                       "budgets_iters": [2], "encoder_weights": "none", "freeze_encoder": True})
    rec = json.loads((folder / "run.json").read_text())
    assert rec["config"]["freeze_encoder"] is True and rec["model"]["frozen_encoder_bn"] == "frozen"
    assert rec["model"]["frozen_parameters"] > 0 and len(rec["model"]["frozen_encoder"]) == 13
    assert rec["model"]["trained_parameters"] + rec["model"]["frozen_parameters"] == rec["model"]["params"]
    assert all(g["parameters"] for g in rec["optimiser"]["param_groups"])
    assert sum(g["parameters"] for g in rec["optimiser"]["param_groups"]) == rec["model"]["trained_parameters"]


def test_rotation_and_zoom_are_seeded_per_image_and_keep_labels_and_void_straight():
    from bench.data import RotateScale
    x = torch.zeros(4, 3, 40, 60, dtype=torch.uint8)
    x[:, 0, :, :30] = 200  # left half red
    y = torch.zeros(4, 40, 60, dtype=torch.long)
    y[:, :, 30:] = 3
    warp = RotateScale(seed=5, batch_size=4, degrees=30.0, scale_min=0.8, scale_max=1.2, void_label=11)
    a = warp(7, x, y)
    assert all(torch.equal(u, v) for u, v in zip(a, warp(7, x, y)))  # a function of (seed, iteration)
    assert not torch.equal(a[1], warp(8, x, y)[1])
    share = warp(7, x[1::2], y[1::2], rank=1, world=2)  # a rank's share: its images' draws in the whole batch
    assert torch.equal(share[1], a[1][1::2]) and torch.equal(share[0], a[0][1::2])
    img, lab = a
    assert set(lab.unique().tolist()) <= {0, 3, 11}  # nearest: no label mixed up; 11 only from outside
    assert (lab == 11).any()  # a rotation or a zoom out brings in pixels from outside: void, black
    assert (img[:, :, :, :][(lab == 11).unsqueeze(1).expand_as(img)] == 0).float().mean() > 0.9
    same = RotateScale(seed=5, batch_size=4, degrees=0.0, scale_min=1.0, scale_max=1.0, void_label=11)(7, x, y)
    assert torch.equal(same[0], x) and torch.equal(same[1], y)  # no rotation, no zoom: the identity


def test_augmentation_bounds_are_checked(tmp_path):
    from bench.errors import BenchError
    suite = load_suite("camvid-decoder-variants")
    with pytest.raises(BenchError, match="scale_min 1.5 is above scale_max 1.2"):
        suite.resolve("smoke", "natural-frequency", {"scale_min": 1.5, "scale_max": 1.2})
    with pytest.raises(BenchError, match="rotation_degrees"):
        suite.resolve("smoke", "natural-frequency", {"rotation_degrees": 270.0})
