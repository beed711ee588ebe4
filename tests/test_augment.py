"""Batched augmentation: crops are shifts of the padded image, flips flip, seeds repeat,
buffers are reused, and validation/test batches are never augmented."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from datafiles import write_cifar10

from dstbench.contracts.data import TensorSplit
from dstbench.datasets.augment import RandomCropFlip, normalize_images, zero_fill
from dstbench.engine.data import TensorBatches
from dstbench.engine.setup import build_setup
from dstbench.engine.spec import build_spec, normalize_spec
from dstbench.plugins import get_plugins


def find_crop(padded, out, size):
    """(dy, dx, flipped) such that out == [flip](padded[:, dy:dy+H, dx:dx+W]), or None."""
    h, w = size
    for dy in range(padded.shape[-2] - h + 1):
        for dx in range(padded.shape[-1] - w + 1):
            crop = padded[:, dy : dy + h, dx : dx + w]
            if torch.equal(crop, out):
                return dy, dx, False
            if torch.equal(crop.flip(-1), out):
                return dy, dx, True
    return None


def distinct_images(n, c=3, h=8, w=8):
    """Images whose pixels all differ, so a crop position is identified by its content."""
    return (
        torch.randperm(n * c * h * w, generator=torch.Generator().manual_seed(1))
        .float()
        .view(n, c, h, w)
    )


def test_reflect_crop_is_a_shift_of_the_reflect_padded_image(generator):
    x = distinct_images(32)
    out = RandomCropFlip(4, "reflect")(x, generator)
    padded = F.pad(x, (4, 4, 4, 4), mode="reflect")
    found = [find_crop(padded[i], out[i], (8, 8)) for i in range(32)]
    assert None not in found
    assert len({(dy, dx) for dy, dx, _ in found}) > 10  # the offsets vary
    assert {f for _, _, f in found} == {True, False}


def test_constant_crop_pads_with_the_fill_value_per_channel(generator):
    x = distinct_images(32)
    fill = (-1.0, -2.0, -3.0)
    out = RandomCropFlip(4, "constant", fill=fill)(x, generator)
    padded = torch.tensor(fill).view(1, 3, 1, 1).expand(32, 3, 16, 16).clone()
    padded[:, :, 4:12, 4:12] = x
    assert all(find_crop(padded[i], out[i], (8, 8)) is not None for i in range(32))
    border = out[(out == -1.0).any(dim=(1, 2, 3))]
    assert border.numel() > 0  # some crops do reach into the padding


def test_flip_only_returns_the_image_or_its_mirror(generator):
    x = distinct_images(64)
    out = RandomCropFlip(padding=0)(x, generator)
    same = [torch.equal(out[i], x[i]) for i in range(64)]
    mirrored = [torch.equal(out[i], x[i].flip(-1)) for i in range(64)]
    assert all(s or m for s, m in zip(same, mirrored, strict=True))
    assert 16 < sum(mirrored) < 48


def test_no_flip_no_padding_is_the_identity(generator):
    x = distinct_images(4)
    assert torch.equal(RandomCropFlip(padding=0, flip=False)(x, generator), x)


def test_every_offset_and_flip_is_drawn_uniformly():
    # Constant padding: with reflection a flipped crop can equal an unflipped neighbour.
    x = distinct_images(1, c=1)
    aug = RandomCropFlip(4, "constant", fill=-1.0)
    g = torch.Generator().manual_seed(0)
    padded = F.pad(x, (4, 4, 4, 4), value=-1.0)[0]
    counts = torch.zeros(9, 9, 2)
    for _ in range(2000):
        dy, dx, flipped = find_crop(padded, aug(x, g)[0], (8, 8))
        counts[dy, dx, int(flipped)] += 1
    assert (counts > 0).all()  # all 162 outcomes occur
    assert counts.sum(dim=(0, 1))[1].item() == pytest.approx(1000, abs=120)


def test_same_seed_same_augmentation_different_seed_different():
    x = distinct_images(16)
    aug = RandomCropFlip(4, "reflect")
    a = aug(x, torch.Generator().manual_seed(5)).clone()
    b = aug(x, torch.Generator().manual_seed(5)).clone()
    c = RandomCropFlip(4, "reflect")(x, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_buffers_are_reused_and_smaller_or_larger_batches_work(generator):
    aug = RandomCropFlip(4, "constant", fill=0.5)
    x = distinct_images(16)
    first = aug(x, generator)
    second = aug(x, generator)
    assert first.data_ptr() == second.data_ptr()  # the output buffer is reused
    small = aug(x[:5], generator)
    assert small.shape == (5, 3, 8, 8) and small.data_ptr() == first.data_ptr()
    large = aug(distinct_images(20), generator)
    assert large.shape == (20, 3, 8, 8)


def test_uint8_images_and_non_square_images(generator):
    x = torch.randint(0, 255, (6, 1, 10, 7), dtype=torch.uint8, generator=generator)
    out = RandomCropFlip(3, "reflect")(x, generator)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    padded = F.pad(x.float(), (3, 3, 3, 3), mode="reflect")
    for i in range(6):
        assert find_crop(padded[i], out[i].float(), (10, 7)) is not None


def test_bad_arguments():
    with pytest.raises(ValueError, match="padding_mode"):
        RandomCropFlip(4, "edge")
    with pytest.raises(ValueError, match="reflect padding 4 needs images larger"):
        RandomCropFlip(4, "reflect")(torch.zeros(2, 1, 4, 4), torch.Generator())


def test_normalization_and_zero_fill():
    images = torch.tensor([[[[0, 255]], [[51, 102]]]], dtype=torch.uint8)
    out = normalize_images(images, (0.5, 0.2), (0.5, 0.1))
    torch.testing.assert_close(out, torch.tensor([[[[-1.0, 1.0]], [[0.0, 2.0]]]]))
    assert zero_fill((0.5, 0.2), (0.5, 0.1)) == pytest.approx((-1.0, -2.0))


def test_augmentation_inside_tensor_batches_is_deterministic():
    split = TensorSplit(distinct_images(10), torch.arange(10))

    def epoch(seed):
        g = torch.Generator().manual_seed(seed)
        batches = TensorBatches(split, 4, shuffle=True, generator=g, transform=RandomCropFlip())
        return [(x.clone(), y.clone()) for x, y in batches]

    first, again = epoch(0), epoch(0)
    assert all(
        torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        for a, b in zip(first, again, strict=True)
    )
    assert [x.shape[0] for x, _ in first] == [4, 4, 2]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_gives_the_same_augmentation_as_cpu():
    x = distinct_images(16)
    for mode in ("reflect", "constant"):
        cpu = RandomCropFlip(4, mode, fill=(1.0, 2.0, 3.0))(x, torch.Generator().manual_seed(0))
        gpu = RandomCropFlip(4, mode, fill=(1.0, 2.0, 3.0))(
            x.cuda(), torch.Generator().manual_seed(0)
        )
        assert torch.equal(cpu, gpu.cpu())


def test_validation_and_test_batches_are_never_augmented(tmp_path):
    write_cifar10(tmp_path, per_batch=4)
    plugins = get_plugins()
    for validation in ("split", "paper"):
        spec = normalize_spec(
            {"model": "mlp", "dataset": "cifar10", "validation": validation, "batch_size": 4},
            plugins.registry,
        )
        setup = build_setup(
            build_spec(spec, plugins.registry), torch.device("cpu"), tmp_path, download=False
        )
        assert isinstance(setup.train.transform, RandomCropFlip)
        assert setup.val.transform is None and setup.test.transform is None
        # what validation serves is exactly the stored (normalised, unaugmented) images
        served = torch.cat([x.clone() for x, _ in setup.val])
        assert torch.equal(served, setup.val.split.x)
