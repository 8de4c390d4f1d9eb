"""The dataset registry, ``Split``, pre-flight checks and loading (real MNIST from ../shared)."""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.trainers.test_cifar import write_tiny_cifar
from tests.trainers.test_smallnorb import write_tiny_norb
from trainers.config import DATASETS
from trainers.data import (
    Split,
    check_dataset,
    dataset_info,
    default_data_dir,
    load_dataset,
)
from trainers.errors import ConfigError, DataError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets"
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_FILES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]

# The real MNIST must be there (CI has ../shared): a missing copy fails, never skips.
needs_mnist = pytest.mark.usefixtures("mnist_root")


# registry -------------------------------------------------------------------------------


def test_registry_covers_the_config_names() -> None:
    for name in DATASETS:
        info = dataset_info(name)
        assert info.name == name
        assert info.input_size <= info.stored_size


def test_smallnorb_is_stored_larger_than_fed() -> None:
    info = dataset_info("smallnorb")
    assert (info.num_classes, info.stored_size, info.input_size) == (5, 48, 32)


def test_unknown_dataset_lists_the_options() -> None:
    with pytest.raises(ConfigError, match="'fashion'.*mnist, cifar10, smallnorb, digits"):
        dataset_info("fashion")
    with pytest.raises(ConfigError, match="fashion"):
        load_dataset("fashion", None)


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LESSDATA_DATA_DIR", str(tmp_path))
    assert default_data_dir() == tmp_path
    monkeypatch.delenv("LESSDATA_DATA_DIR")
    assert default_data_dir() == Path.home() / ".cache" / "lessdata"


# Split ----------------------------------------------------------------------------------


def _split(n: int = 5) -> Split:
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).clone()
    return Split(images, torch.arange(n) % 3)


def test_split_subset_and_to() -> None:
    split = _split()
    assert len(split) == 5
    sub = split.subset(torch.tensor([4, 0, 4]))
    assert len(sub) == 3
    assert sub.labels.tolist() == [1, 0, 1]
    assert sub.images[:, 0, 0, 0].tolist() == [4, 0, 4]
    moved = split.to("meta")
    assert moved.images.device.type == "meta" and moved.labels.device.type == "meta"
    assert split.to(torch.device("cpu")).images.data_ptr() == split.images.data_ptr()


@pytest.mark.parametrize(
    ("images", "labels", "message"),
    [
        (torch.zeros(2, 1, 2, 2, dtype=torch.float64), torch.zeros(2, dtype=torch.int64),
         "uint8 or float32"),
        (torch.zeros(2, 2, 2, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64), "uint8"),
        (torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.zeros(2, dtype=torch.int32), "int64"),
        (torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64), "len"),
    ],
)
def test_split_validates(images: torch.Tensor, labels: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Split(images, labels)


# digits ---------------------------------------------------------------------------------


def test_digits_shapes_and_determinism(tmp_path: Path) -> None:
    check_dataset("digits", tmp_path / "nowhere")
    train, test = load_dataset("digits", tmp_path / "nowhere", download=True)
    info = dataset_info("digits")
    assert train.images.shape == (info.train_size, 1, 28, 28)
    assert test.images.shape == (info.test_size, 1, 28, 28)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert int(train.images.max()) == 255 and int(train.images.min()) == 0
    assert sorted(set(train.labels.tolist())) == list(range(10))
    train2, test2 = load_dataset("digits", None)
    assert torch.equal(train.images, train2.images) and torch.equal(test.labels, test2.labels)


# MNIST ----------------------------------------------------------------------------------


@needs_mnist
def test_mnist_real() -> None:
    check_dataset("mnist", SHARED)
    train, test = load_dataset("mnist", SHARED)
    assert train.images.shape == (60_000, 1, 28, 28) and train.images.dtype == torch.uint8
    assert test.images.shape == (10_000, 1, 28, 28)
    assert torch.bincount(train.labels).tolist() == MNIST_TRAIN_COUNTS
    assert torch.bincount(test.labels).tolist() == MNIST_TEST_COUNTS


@pytest.fixture
def mnist_copy(tmp_path: Path) -> Path:
    """A torchvision root whose raw files are links to ../shared (the label files copied)."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_FILES:
        source = SHARED / "MNIST" / "raw" / name
        if "labels" in name:
            shutil.copyfile(source, raw / name)
        else:
            (raw / name).symlink_to(source)
    return tmp_path


def _both_reject(root: Path, pattern: str) -> None:
    for run in (lambda: check_dataset("mnist", root), lambda: load_dataset("mnist", root)):
        with pytest.raises(DataError, match=pattern) as info:
            run()
        assert "\n" not in str(info.value)


@needs_mnist
def test_mnist_truncated_labels(mnist_copy: Path) -> None:
    path = mnist_copy / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    _both_reject(
        mnist_copy,
        "train-labels-idx1-ubyte: truncated: expected 60008 bytes from its header, found 59998",
    )


@needs_mnist
def test_mnist_truncated_images(mnist_copy: Path) -> None:
    path = mnist_copy / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    head = (SHARED / "MNIST" / "raw" / "t10k-images-idx3-ubyte").open("rb").read(16 + 784 * 3)
    path.unlink()
    path.write_bytes(head)
    _both_reject(
        mnist_copy,
        "t10k-images-idx3-ubyte: truncated: expected 7840016 bytes from its header, "
        f"found {16 + 784 * 3}",
    )


@needs_mnist
def test_mnist_wrong_magic(mnist_copy: Path) -> None:
    path = mnist_copy / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    path.write_bytes(struct.pack(">i", 2051) + path.read_bytes()[4:])
    _both_reject(
        mnist_copy, "t10k-labels-idx1-ubyte: not an IDX file: magic 0x00000803, expected 0x00000801"
    )


@needs_mnist
def test_mnist_missing(mnist_copy: Path) -> None:
    (mnist_copy / "MNIST" / "raw" / "train-images-idx3-ubyte").unlink()
    _both_reject(mnist_copy, r"train-images-idx3-ubyte: missing \(expected the official MNIST")


@needs_mnist
def test_mnist_label_count_mismatch(mnist_copy: Path) -> None:
    raw = mnist_copy / "MNIST" / "raw"
    shutil.copyfile(raw / "t10k-labels-idx1-ubyte", raw / "train-labels-idx1-ubyte")
    _both_reject(mnist_copy, "10000 labels for the 60000 images")


@needs_mnist
def test_mnist_gz_accepted(mnist_copy: Path) -> None:
    raw = mnist_copy / "MNIST" / "raw"
    for name in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / f"{name}.gz").write_bytes(gzip.compress((raw / name).read_bytes(), compresslevel=1))
        (raw / name).unlink()
    check_dataset("mnist", mnist_copy)
    train, _ = load_dataset("mnist", mnist_copy)
    assert torch.bincount(train.labels).tolist() == MNIST_TRAIN_COUNTS


# CIFAR-10 and smallNORB through the registry ---------------------------------------------


def test_cifar10_through_the_registry(tmp_path: Path) -> None:
    write_tiny_cifar(tmp_path)
    check_dataset("cifar10", tmp_path)
    train, test = load_dataset("cifar10", tmp_path, download=True)  # present: no download
    assert train.images.shape == (20, 3, 32, 32) and len(test) == 3


def test_smallnorb_through_the_registry(tmp_path: Path) -> None:
    write_tiny_norb(tmp_path, gz=True)
    check_dataset("smallnorb", tmp_path)
    train, test = load_dataset("smallnorb", tmp_path)
    info = dataset_info("smallnorb")
    assert train.images.shape == (6, info.channels, info.stored_size, info.stored_size)
    assert test.labels.dtype == torch.int64 and len(test) == 4


@pytest.mark.parametrize("name", ["mnist", "cifar10", "smallnorb"])
def test_empty_dir_is_missing(tmp_path: Path, name: str) -> None:
    fetch = f"missing.*fetch it with: lessdata download {name} --data-dir"
    with pytest.raises(DataError, match=fetch):
        check_dataset(name, tmp_path)
    with pytest.raises(DataError, match="missing"):
        load_dataset(name, tmp_path)


def test_digits_read_from_the_csv_equal_scikit_learns() -> None:
    from sklearn.datasets import load_digits

    from trainers.data import _digits_arrays

    images, labels = _digits_arrays()
    digits = load_digits()
    assert images.shape == (1_797, 8, 8)
    assert np.array_equal(images, digits.images)
    assert np.array_equal(labels, digits.target)
