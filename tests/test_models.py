"""The built-in models: forward/backward, the paper's sparse-weight counts, shape errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import dstbench
from dstbench.models.shapes import InputShapeError
from dstbench.sparse.masker import sparse_parameters

#: A small input each model can take: (input_shape, num_classes).
TINY_INPUTS = {
    "mlp": ((1, 8, 8), 10),
    "mlp_cifar": ((3, 32, 32), 10),
    "small_conv": ((3, 32, 32), 10),
    "resnet20": ((3, 16, 16), 10),
    "resnet32": ((3, 16, 16), 10),
    "resnet56": ((3, 16, 16), 100),
    "vgg16": ((3, 32, 32), 100),
    "lenet5": ((1, 28, 28), 10),
    "mlp_higgs": ((24,), 2),
    "efficientnet_b0": ((3, 32, 32), 5),
    "resnet50": ((3, 32, 32), 5),
}


def build(name, input_shape, num_classes, **params):
    return dstbench.registry().models[name].fn(input_shape, num_classes, **params)


def sparse_count(model):
    return sum(w.numel() for _, w in sparse_parameters(model))


def test_every_registered_model_has_a_tiny_input():
    assert set(dstbench.registry().models) == set(TINY_INPUTS)


@pytest.mark.parametrize("name", sorted(TINY_INPUTS))
def test_forward_backward_on_a_tiny_batch(name):
    shape, classes = TINY_INPUTS[name]
    torch.manual_seed(0)
    model = build(name, shape, classes)
    x = torch.randn(2, *shape)
    out = model(x)
    expected = 1 if name == "mlp_higgs" else classes
    assert out.shape == (2, expected)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None, f"{name}: {pname} got no gradient"
        assert torch.isfinite(param.grad).all()


@pytest.mark.parametrize(
    ("name", "shape", "classes", "count"),
    [
        ("mlp_cifar", (3, 32, 32), 10, 3_675_136),
        ("small_conv", (3, 32, 32), 10, 94_304),
        ("resnet56", (3, 32, 32), 10, 851_504),
        ("resnet56", (3, 32, 32), 100, 857_264),
        ("lenet5", (1, 28, 28), 10, 430_500),
        ("mlp_higgs", (24,), 2, 71_936),
    ],
)
def test_sparsifiable_weight_counts_equal_the_papers(name, shape, classes, count):
    assert sparse_count(build(name, shape, classes)) == count


def test_resnet56_layout_matches_the_papers():
    model = build("resnet56", (3, 32, 32), 10)
    layers = sparse_parameters(model)
    assert len(layers) == 58  # stem + 54 block convs + 2 shortcut 1x1 convs + fc
    shortcuts = [n for n, w in layers if w.shape[-1] == 1 and w.dim() == 4]
    assert len(shortcuts) == 2
    widths = sorted({w.shape[0] for _, w in layers if w.dim() == 4})
    assert widths == [16, 32, 64]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 1 + 54 + 2
    features = {}
    model.blocks[-1].register_forward_hook(lambda m, i, o: features.setdefault("last", o))
    model(torch.randn(2, 3, 32, 32))
    assert features["last"].shape == (2, 64, 8, 8)


@pytest.mark.parametrize(("name", "blocks"), [("resnet20", 9), ("resnet32", 15)])
def test_resnet_depths(name, blocks):
    model = build(name, (3, 32, 32), 10)
    assert len(model.blocks) == blocks
    wide = build(name, (3, 32, 32), 10, width=32)
    assert wide.fc.in_features == 128


def test_cifar_resnet_init_is_kaiming_normal_fan_in():
    torch.manual_seed(0)
    model = build("resnet56", (3, 32, 32), 10)
    weight = model.blocks[-1].conv2.weight  # 64 x 64 x 3 x 3
    fan_in = 64 * 9
    assert weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.05)
    assert model.fc.weight.std().item() == pytest.approx(math.sqrt(2 / 64), rel=0.1)


def test_vgg16_init_and_single_classifier():
    torch.manual_seed(0)
    model = build("vgg16", (3, 32, 32), 100)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 1 and linears[0].in_features == 512
    assert linears[0].weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert torch.count_nonzero(linears[0].bias) == 0
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 13 and all(c.bias is None for c in convs)
    last = convs[-1].weight  # fan_out = 512 * 9
    assert last.std().item() == pytest.approx(math.sqrt(2 / (512 * 9)), rel=0.05)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 13


def test_vgg16_pools_the_remaining_map_on_64px_images():
    model = build("vgg16", (3, 64, 64), 200)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 200)


def test_lenet5_is_the_caffe_variant():
    model = build("lenet5", (1, 28, 28), 10)
    shapes = [tuple(w.shape) for _, w in sparse_parameters(model)]
    assert shapes == [(20, 1, 5, 5), (50, 20, 5, 5), (500, 800), (10, 500)]


def test_small_conv_layout():
    shapes = [tuple(w.shape) for _, w in sparse_parameters(build("small_conv", (3, 32, 32), 10))]
    assert shapes == [(32, 3, 3, 3), (64, 32, 3, 3), (128, 64, 3, 3), (10, 128)]


def test_mlp_higgs_has_one_logit_for_two_classes_and_k_otherwise():
    assert build("mlp_higgs", (24,), 2)(torch.randn(3, 24)).shape == (3, 1)
    assert build("mlp_higgs", (24,), 5)(torch.randn(3, 24)).shape == (3, 5)


def test_torchvision_models_take_any_class_count_and_are_randomly_initialised():
    torch.manual_seed(0)
    a = build("resnet50", (3, 32, 32), 7)
    torch.manual_seed(1)
    b = build("resnet50", (3, 32, 32), 7)
    assert a.fc.out_features == 7
    assert not torch.equal(a.conv1.weight, b.conv1.weight)
    effnet = build("efficientnet_b0", (3, 64, 64), 200)
    assert effnet.classifier[-1].out_features == 200


def test_same_seed_same_initialisation():
    for name in ("resnet20", "vgg16", "small_conv"):
        shape, classes = TINY_INPUTS[name]
        torch.manual_seed(3)
        first = build(name, shape, classes).state_dict()
        torch.manual_seed(3)
        second = build(name, shape, classes).state_dict()
        assert all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.parametrize(
    ("name", "shape", "needs"),
    [
        ("small_conv", (24,), "(C, H, W) images with H, W >= 18"),
        ("small_conv", (1, 8, 8), "H, W >= 18"),
        ("lenet5", (1, 8, 8), "H, W >= 16"),
        ("vgg16", (3, 8, 8), "H, W >= 16"),
        ("resnet56", (24,), "(C, H, W) images"),
        ("efficientnet_b0", (1, 28, 28), "(3, H, W) images"),
        ("resnet50", (24,), "(3, H, W) images"),
    ],
)
def test_models_reject_shapes_they_cannot_take_with_a_clear_message(name, shape, needs):
    with pytest.raises(InputShapeError) as info:
        build(name, shape, 10)
    message = str(info.value)
    assert f"model {name!r}" in message and needs in message and str(shape) in message


def test_bad_class_count_and_depth():
    with pytest.raises(InputShapeError, match="at least 2 classes"):
        build("mlp_cifar", (3, 32, 32), 1)
    from dstbench.models.resnet_cifar import cifar_resnet

    with pytest.raises(InputShapeError, match="6n \\+ 2"):
        cifar_resnet((3, 32, 32), 10, depth=21)


def test_a_shape_mismatch_fails_the_run_as_a_user_error():
    record = dstbench.execute(
        {"model": "small_conv", "dataset": "digits", "epochs": 1, "density": 0.5}
    )
    assert record["status"] == "failed" and record["error"]["user_error"]
    assert "small_conv" in record["error"]["message"]
    assert "(1, 8, 8)" in record["error"]["message"]
