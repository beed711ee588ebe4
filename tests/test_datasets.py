"""The dataset loaders, on tiny files written in the exact on-disk formats."""

from __future__ import annotations

import gzip
import math
import tarfile
import zipfile

import numpy as np
import pytest
import torch
from datafiles import (
    idx_bytes,
    write_cifar10,
    write_cifar100,
    write_fashion_mnist,
    write_higgs_csv,
    write_image_folder,
    write_tiny_imagenet,
)

import dstbench
from dstbench.contracts.data import DatasetContext, TensorSplit
from dstbench.datasets.augment import RandomCropFlip
from dstbench.datasets.cifar import CIFAR10, CIFAR100, load_cifar10, load_cifar100
from dstbench.datasets.fashion_mnist import load_fashion_mnist, read_idx
from dstbench.datasets.higgs import load_higgs
from dstbench.datasets.imagenet import load_imagenet
from dstbench.datasets.tiny_imagenet import load_tiny_imagenet
from dstbench.engine.data import carve_validation
from dstbench.errors import DataError, ParameterError


def ctx(root, validation="split", download=False):
    return DatasetContext(root=root, download=download, validation=validation)


def normalized(raw, mean, std):
    x = torch.as_tensor(raw, dtype=torch.float32).reshape(-1, len(mean), *raw.shape[-2:]) / 255
    return (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)


# --- CIFAR ---------------------------------------------------------------------------------


def test_cifar10_reads_all_batches_in_order_and_normalizes_with_the_paper_constants(tmp_path):
    raw = write_cifar10(tmp_path, per_batch=4, n_test=6)
    parts = load_cifar10(ctx(tmp_path))
    assert parts.input_shape == (3, 32, 32) and parts.num_classes == 10
    assert parts.val is None  # split mode: the engine carves validation
    assert parts.train.x.shape == (20, 3, 32, 32) and parts.train.x.dtype == torch.float32
    expected = normalized(raw["train"][0].reshape(-1, 3, 32, 32), CIFAR10.mean, CIFAR10.std)
    torch.testing.assert_close(parts.train.x, expected)
    assert parts.train.y.tolist() == raw["train"][1].tolist()
    assert parts.train.y.dtype == torch.long
    assert parts.test.y.tolist() == raw["test"][1].tolist()
    # channel-major rows: the first 1024 bytes of a row are the red plane
    assert parts.train.x[3, 0, 0, 5] == pytest.approx(
        (raw["train"][0][3, 5] / 255 - CIFAR10.mean[0]) / CIFAR10.std[0], abs=1e-6
    )
    augment = parts.train_transform
    assert isinstance(augment, RandomCropFlip)
    assert (augment.padding, augment.padding_mode, augment.flip) == (4, "reflect", True)


def test_cifar10_paper_validation_is_the_last_tenth_unshuffled(tmp_path):
    raw = write_cifar10(tmp_path, per_batch=4)
    parts = load_cifar10(ctx(tmp_path, "paper"))
    assert len(parts.train) == 18 and len(parts.val) == 2  # floor(0.9 * 20)
    assert parts.train.y.tolist() == raw["train"][1][:18].tolist()
    assert parts.val.y.tolist() == raw["train"][1][18:].tolist()
    assert "last 10%" in parts.notes["validation"]


def test_cifar100_zero_pads_in_normalized_space_and_paper_validation_is_the_test_set(tmp_path):
    raw = write_cifar100(tmp_path, n_train=10, n_test=4)
    split = load_cifar100(ctx(tmp_path))
    assert split.num_classes == 100 and split.val is None and len(split.train) == 10
    assert split.train.y.tolist() == raw["train"][1].tolist()  # fine labels, not coarse
    augment = split.train_transform
    assert augment.padding_mode == "constant"
    black = normalized(np.zeros((1, 3, 32, 32), np.uint8), CIFAR100.mean, CIFAR100.std)
    assert augment.fill == pytest.approx(black[0, :, 0, 0].tolist())
    paper = load_cifar100(ctx(tmp_path, "paper"))
    assert paper.val is paper.test and len(paper.train) == 10
    assert "test set" in paper.notes["validation"]


def test_cifar_augmentation_can_be_switched_off_or_changed(tmp_path):
    write_cifar10(tmp_path)
    assert load_cifar10(ctx(tmp_path), augment=False).train_transform is None
    assert load_cifar10(ctx(tmp_path), padding_mode="constant").train_transform.fill != (0.0,)
    with pytest.raises(ParameterError, match="padding_mode"):
        load_cifar10(ctx(tmp_path), padding_mode="edge")


def test_cifar_reads_pickles_with_str_keys_too(tmp_path):
    """torchvision re-pickled copies (latin1-decoded) have str keys."""
    raw = write_cifar100(tmp_path, n_train=3, n_test=2)
    for name in ("train", "test"):
        path = tmp_path / "cifar-100-python" / name
        import pickle

        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="bytes")
        with open(path, "wb") as f:
            pickle.dump({k.decode(): v for k, v in entry.items()}, f)
    assert load_cifar100(ctx(tmp_path)).train.y.tolist() == raw["train"][1].tolist()


def test_cifar_official_archive_in_the_root_is_unpacked_once(tmp_path):
    staging = tmp_path / "staging"
    raw = write_cifar10(staging)
    root = tmp_path / "root"
    root.mkdir()
    with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tf:
        tf.add(staging / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    parts = load_cifar10(ctx(root))
    assert parts.train.y.tolist() == raw["train"][1].tolist()
    assert (root / "cifar-10-batches-py" / "test_batch").is_file()
    assert not [p for p in root.iterdir() if "extracting" in p.name]


def test_missing_cifar_names_dataset_path_and_how_to_get_it(tmp_path):
    with pytest.raises(DataError) as info:
        load_cifar10(ctx(tmp_path))
    message = str(info.value)
    assert "'cifar10'" in message and str(tmp_path / "cifar-10-batches-py") in message
    assert "--download" in message and "cifar-10-python.tar.gz" in message
    assert "\n" not in message


def test_incomplete_or_corrupt_cifar_names_the_file(tmp_path):
    write_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    (folder / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="data_batch_3: not a CIFAR pickle"):
        load_cifar10(ctx(tmp_path))
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError, match="data_batch_3"):
        load_cifar10(ctx(tmp_path))


def test_cifar_with_wrong_array_shape_is_rejected(tmp_path):
    write_cifar10(tmp_path)
    import pickle

    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    with open(path, "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(DataError, match=r"test_batch: 'data' must be uint8 of shape \(N, 3072\)"):
        load_cifar10(ctx(tmp_path))


# --- Fashion-MNIST ---------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_reads_idx_files_and_normalizes_to_minus_one_one(tmp_path, gz):
    raw = write_fashion_mnist(tmp_path, n_train=20, n_test=5, gz=gz)
    parts = load_fashion_mnist(ctx(tmp_path))
    assert parts.input_shape == (1, 28, 28) and parts.num_classes == 10
    assert parts.train_transform is None  # the paper does not augment Fashion-MNIST
    images, labels = raw["train"]
    torch.testing.assert_close(
        parts.train.x, torch.as_tensor(images, dtype=torch.float32).unsqueeze(1) / 127.5 - 1
    )
    assert parts.train.y.tolist() == labels.tolist()
    assert parts.test.y.tolist() == raw["t10k"][1].tolist()
    assert parts.train.x.min() >= -1 and parts.train.x.max() <= 1


def test_fashion_mnist_paper_validation_is_the_last_tenth(tmp_path):
    raw = write_fashion_mnist(tmp_path, n_train=20)
    parts = load_fashion_mnist(ctx(tmp_path, "paper"))
    assert len(parts.train) == 18 and parts.val.y.tolist() == raw["train"][1][18:].tolist()


def test_idx_reader_checks_magic_dimensions_and_length(tmp_path):
    good = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "x.gz"
    with gzip.open(path, "wb") as f:
        f.write(idx_bytes(good))
    np.testing.assert_array_equal(read_idx(path, 3), good)
    with pytest.raises(DataError, match="expected an IDX file of 1 dimensions, got 3"):
        read_idx(path, 1)
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x1f\x8b\x08\x03" + idx_bytes(good)[4:])
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(bad, 3)
    short = tmp_path / "short"
    short.write_bytes(idx_bytes(good)[:-1])
    with pytest.raises(DataError, match="header says"):
        read_idx(short, 3)


def test_missing_fashion_mnist_lists_the_missing_files(tmp_path):
    write_fashion_mnist(tmp_path)
    (tmp_path / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as info:
        load_fashion_mnist(ctx(tmp_path))
    assert "'fashion_mnist'" in str(info.value)
    assert "t10k-labels-idx1-ubyte.gz" in str(info.value) and "--download" in str(info.value)


# --- Tiny-ImageNet ---------------------------------------------------------------------------


def test_tiny_imagenet_reads_the_official_layout_without_moving_files(tmp_path):
    written = write_tiny_imagenet(tmp_path, wnids=("n02", "n01"), per_class=3, n_val=4)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    parts = load_tiny_imagenet(ctx(tmp_path), workers=0)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert parts.input_shape == (3, 64, 64) and parts.num_classes == 2
    assert parts.num_workers == 0 and parts.val is None
    # labels follow the sorted wnids (ImageFolder's order), not wnids.txt's order
    train = parts.train
    assert len(train) == 6
    assert [int(label) for label in train.labels] == [0, 0, 0, 1, 1, 1]
    assert all("/n01/images/" in str(p) for p in train.paths[:3])
    # the test set is val/, labelled from val_annotations.txt
    expected = [{"n01": 0, "n02": 1}[wnid] for _, wnid in written["val"]]
    assert [int(label) for label in parts.test.labels] == expected
    image, label = parts.test[0]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32 and label == expected[0]
    grey, _ = train[0]  # a greyscale JPEG comes out as 3 channels
    assert grey.shape == (3, 64, 64)


def test_tiny_imagenet_augments_only_training_samples(tmp_path):
    write_tiny_imagenet(tmp_path)
    parts = load_tiny_imagenet(ctx(tmp_path), workers=0)
    plain = parts.train.unaugmented()
    torch.manual_seed(0)
    flips = {torch.equal(parts.train[3][0], plain[3][0]) for _ in range(40)}
    assert flips == {True, False}  # the training view flips at random ...
    assert all(torch.equal(plain[3][0], plain[3][0]) for _ in range(5))  # ... the plain one never
    assert all(torch.equal(parts.test[1][0], parts.test[1][0]) for _ in range(5))
    _, val = carve_validation(parts.train, 0.5)
    assert val.dataset.transform is parts.train.eval_transform


def test_tiny_imagenet_paper_validation_is_the_val_folder(tmp_path):
    write_tiny_imagenet(tmp_path)
    parts = load_tiny_imagenet(ctx(tmp_path, "paper"), workers=0)
    assert parts.val is parts.test


def test_tiny_imagenet_official_zip_in_the_root_is_unpacked(tmp_path):
    staging = tmp_path / "staging"
    write_tiny_imagenet(staging)
    root = tmp_path / "root"
    root.mkdir()
    with zipfile.ZipFile(root / "tiny-imagenet-200.zip", "w") as zf:
        for path in sorted((staging / "tiny-imagenet-200").rglob("*")):
            zf.write(path, path.relative_to(staging))
    parts = load_tiny_imagenet(ctx(root), workers=0)
    assert len(parts.train) == 6 and len(parts.test) == 4


def test_tiny_imagenet_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match=r"tiny-imagenet-200\.zip") as info:
        load_tiny_imagenet(ctx(tmp_path))
    assert "'tiny_imagenet'" in str(info.value) and "--download" in str(info.value)
    write_tiny_imagenet(tmp_path)
    annotations = tmp_path / "tiny-imagenet-200" / "val" / "val_annotations.txt"
    annotations.write_text("val_0.JPEG\tn77\t0\t0\t1\t1\n")
    with pytest.raises(DataError, match=r"val_annotations\.txt: line 1"):
        load_tiny_imagenet(ctx(tmp_path))
    annotations.write_text("val_9.JPEG\tn01\t0\t0\t1\t1\n")
    with pytest.raises(DataError, match=r"no file val/images/val_9\.JPEG"):
        load_tiny_imagenet(ctx(tmp_path))
    annotations.unlink()
    with pytest.raises(DataError, match=r"val_annotations\.txt"):
        load_tiny_imagenet(ctx(tmp_path))
    with pytest.raises(ParameterError, match="workers"):
        load_tiny_imagenet(ctx(tmp_path), workers=-1)


# --- ImageNet --------------------------------------------------------------------------------


def test_imagenet_reads_an_image_folder_tree(tmp_path):
    base = tmp_path / "imagenet"
    write_image_folder(base / "train", ("n2", "n1"), per_class=2, size=48)
    write_image_folder(base / "val", ("n2", "n1"), per_class=1, size=48)
    parts = load_imagenet(ctx(tmp_path), image_size=32, workers=0)
    assert parts.input_shape == (3, 32, 32) and parts.num_classes == 2
    assert [int(v) for v in parts.train.labels] == [0, 0, 1, 1]
    assert parts.test[0][0].shape == (3, 32, 32) and parts.train[0][0].shape == (3, 32, 32)
    assert load_imagenet(ctx(tmp_path, "paper"), image_size=32, workers=0).val is not None


def test_imagenet_errors(tmp_path):
    with pytest.raises(DataError, match="ImageFolder layout") as info:
        load_imagenet(ctx(tmp_path))
    assert str(tmp_path / "imagenet" / "train") in str(info.value)
    base = tmp_path / "imagenet"
    write_image_folder(base / "train", ("n2", "n1"), per_class=1, size=40)
    write_image_folder(base / "val", ("n1", "n3"), per_class=1, size=40)
    with pytest.raises(DataError, match=r"same class folders as train/ \(extra: \['n3'\]"):
        load_imagenet(ctx(tmp_path))


# --- Higgs -----------------------------------------------------------------------------------


def test_higgs_csv_split_is_the_papers_stratified_70_15_15(tmp_path):
    from sklearn.model_selection import train_test_split

    values = write_higgs_csv(tmp_path / "higgs" / "higgs.csv", n=200)
    x, y = values[:, :-1].astype(np.float32), values[:, -1].astype(np.int64)
    paper = load_higgs(ctx(tmp_path, "paper"))
    assert paper.input_shape == (24,) and paper.num_classes == 2
    # the paper's code, verbatim in effect
    x_train, x_test, _, y_test = train_test_split(x, y, test_size=0.3, random_state=42, stratify=y)
    x_test, x_val, y_test, _ = train_test_split(
        x_test, y_test, test_size=0.5, random_state=42, stratify=y_test
    )
    torch.testing.assert_close(paper.train.x, torch.from_numpy(x_train))
    torch.testing.assert_close(paper.val.x, torch.from_numpy(x_val))
    torch.testing.assert_close(paper.test.x, torch.from_numpy(x_test))
    assert paper.test.y.tolist() == y_test.tolist()
    assert (len(paper.train), len(paper.val), len(paper.test)) == (140, 30, 30)
    split = load_higgs(ctx(tmp_path))
    assert split.val is None and len(split.train) == 170
    torch.testing.assert_close(split.test.x, paper.test.x)


def test_higgs_file_parameter_gz_and_standardize(tmp_path):
    values = write_higgs_csv(tmp_path / "plain.csv", n=100, features=5)
    with open(tmp_path / "plain.csv", "rb") as src, gzip.open(tmp_path / "h.csv.gz", "wb") as dst:
        dst.write(src.read())
    parts = load_higgs(ctx(tmp_path), file="h.csv.gz", standardize=True)
    assert parts.input_shape == (5,)
    assert parts.train.x.mean(0).abs().max() < 1e-5
    assert parts.train.x.std(0).sub(1).abs().max() < 1e-4
    raw = load_higgs(ctx(tmp_path), file=str(tmp_path / "plain.csv"))
    assert sorted(raw.train.x[:, 0].tolist() + raw.test.x[:, 0].tolist()) == pytest.approx(
        sorted(values[:, 0].tolist())
    )


def test_higgs_errors(tmp_path):
    with pytest.raises(DataError) as info:
        load_higgs(ctx(tmp_path))
    assert "'higgs'" in str(info.value) and "361069" in str(info.value)
    assert "higgs.csv" in str(info.value)
    write_higgs_csv(tmp_path / "higgs" / "higgs.csv", n=50)
    with pytest.raises(DataError, match="no label column 'label'; columns are f0, f1"):
        load_higgs(ctx(tmp_path), target="label")
    values = np.column_stack([np.zeros(9), np.arange(9) % 3])
    three = tmp_path / "three.csv"
    np.savetxt(three, values, delimiter=",", header="a,target", comments="")
    with pytest.raises(DataError, match="must hold 2 distinct values, found 3"):
        load_higgs(ctx(tmp_path), file=str(three))
    (tmp_path / "text.csv").write_text("a,target\n1,yes\n")
    with pytest.raises(DataError, match=r"text\.csv: expected a numeric CSV"):
        load_higgs(ctx(tmp_path), file="text.csv")


def test_higgs_parquet_needs_pyarrow(tmp_path):
    (tmp_path / "higgs").mkdir()
    (tmp_path / "higgs" / "higgs.parquet").write_bytes(b"PAR1")
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(DataError, match="needs pyarrow"):
            load_higgs(ctx(tmp_path))
    else:
        with pytest.raises(DataError, match=r"higgs\.parquet"):
            load_higgs(ctx(tmp_path))


# --- through the engine ---------------------------------------------------------------------


def short(**spec):
    base = {
        "criterion": "magnitude",
        "growth": "gradient",
        "density": 0.5,
        "epochs": 1,
        "batch_size": 8,
        "update_period": 2,
        "seed": 0,
    }
    return {**base, **spec}


def test_cifar10_run_by_name_and_paper_validation_ignores_val_fraction(tmp_path):
    write_cifar10(tmp_path, per_batch=8)  # 40 training images
    split = dstbench.execute(
        short(model="small_conv", dataset="cifar10", val_fraction=0.2), data_root=tmp_path
    )
    assert split["status"] == "ok", split.get("error")
    assert split["timings"]["steps"] == math.ceil(32 / 8)
    paper = dstbench.execute(
        short(model="small_conv", dataset="cifar10", val_fraction=0.2, validation="paper"),
        data_root=tmp_path,
    )
    assert paper["status"] == "ok", paper.get("error")
    assert paper["timings"]["steps"] == math.ceil(36 / 8)
    assert "last 10%" in paper["data_notes"]["validation"]


def test_missing_dataset_fails_the_run_as_a_user_error(tmp_path):
    record = dstbench.execute(short(model="mlp_cifar", dataset="cifar100"), data_root=tmp_path)
    assert record["status"] == "failed"
    assert record["error"]["user_error"] and record["error"]["type"] == "DataError"
    assert str(tmp_path / "cifar-100-python") in record["error"]["message"]


def test_data_root_falls_back_to_the_environment(tmp_path, monkeypatch):
    write_fashion_mnist(tmp_path, n_train=16, n_test=4)
    monkeypatch.setenv("DSTBENCH_DATA", str(tmp_path))
    record = dstbench.execute(short(model="lenet5", dataset="fashion_mnist"))
    assert record["status"] == "ok", record.get("error")
    assert record["density"]["achieved"] == pytest.approx(0.5, abs=1e-3)


def test_higgs_run_trains_one_logit_with_binary_cross_entropy(tmp_path):
    write_higgs_csv(tmp_path / "higgs" / "higgs.csv", n=120)
    record = dstbench.execute(short(model="mlp_higgs", dataset="higgs"), data_root=tmp_path)
    assert record["status"] == "ok", record.get("error")
    assert 0 <= record["metrics"]["test_accuracy"] <= 1
    assert record["density"]["layers"]["3.weight"]["numel"] == 256 * 256


@pytest.mark.slow
def test_tiny_imagenet_run_through_dataloader_workers(tmp_path):
    write_tiny_imagenet(tmp_path, per_class=4, n_val=4)
    record = dstbench.execute(
        short(model="mlp[hidden=[32]]", dataset="tiny_imagenet[workers=1]", batch_size=4),
        data_root=tmp_path,
    )
    assert record["status"] == "ok", record.get("error")
    assert record["timings"]["steps"] == 2  # 8 images, 1 held out -> 7 -> 2 batches


def test_tensor_splits_stay_tensor_splits(tmp_path):
    write_cifar10(tmp_path)
    parts = load_cifar10(ctx(tmp_path))
    assert isinstance(parts.train, TensorSplit) and isinstance(parts.test, TensorSplit)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("dataset", "writer"),
    [
        ("cifar10", lambda root: write_cifar10(root, per_batch=8)),
        ("tiny_imagenet[workers=1]", lambda root: write_tiny_imagenet(root, per_class=4)),
    ],
)
def test_same_spec_same_seed_same_result_with_augmentation(tmp_path, dataset, writer):
    writer(tmp_path)
    spec = short(model="mlp[hidden=[32]]", dataset=dataset, batch_size=4, epochs=2)
    first = dstbench.execute(spec, data_root=tmp_path)
    second = dstbench.execute(spec, data_root=tmp_path)
    assert first["status"] == second["status"] == "ok", first.get("error")
    assert (
        first["metrics"]["curve"][-1]["train_loss"] == second["metrics"]["curve"][-1]["train_loss"]
    )
    assert first["metrics"]["test_accuracy"] == second["metrics"]["test_accuracy"]
    other = dstbench.execute({**spec, "seed": 1}, data_root=tmp_path)
    assert (
        other["metrics"]["curve"][-1]["train_loss"] != first["metrics"]["curve"][-1]["train_loss"]
    )
