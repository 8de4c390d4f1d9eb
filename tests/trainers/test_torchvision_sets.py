"""FashionMNIST, KMNIST, CIFAR-100, SVHN: tiny files in the real formats, through the registry."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from trainers.config import DATASETS
from trainers.data import check_dataset, dataset_info, load_dataset
from trainers.errors import DataError
from trainers.mnist import FILES, write_idx

NEW = ("fashionmnist", "kmnist", "cifar100", "svhn")
FOLDERS = {"fashionmnist": "FashionMNIST", "kmnist": "KMNIST"}


# writers: the real formats --------------------------------------------------------------


def write_idx_set(root: Path, folder: str, gz: bool = False, n: int = 12, m: int = 5) -> Path:
    """MNIST-format IDX files in ``root/folder/raw``: image i has every pixel i, label i % 10."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for split, count in (("train", n), ("test", m)):
        images, labels = FILES[split]
        index = np.arange(count, dtype=np.uint8)
        write_idx(raw / f"{images}{suffix}", np.repeat(index, 28 * 28).reshape(count, 28, 28))
        write_idx(raw / f"{labels}{suffix}", index % 10)
    return raw


def _dump(path: Path, obj: object) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))


def write_cifar100(root: Path, n: int = 8, m: int = 3) -> Path:
    """``cifar-100-python/{train,test,meta}``: row i has every byte i, fine label 13 * i % 100."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for name, count in (("train", n), ("test", m)):
        index = np.arange(count)
        _dump(folder / name, {
            b"filenames": [f"img_{i}.png".encode() for i in index],
            b"batch_label": f"{name}ing batch 1 of 1".encode(),
            b"fine_labels": [int(13 * i % 100) for i in index],
            b"coarse_labels": [int(i % 20) for i in index],
            b"data": np.repeat(index.astype(np.uint8)[:, None], 3072, axis=1),
        })
    _dump(folder / "meta", {b"fine_label_names": [f"c{i}".encode() for i in range(100)],
                            b"coarse_label_names": [f"s{i}".encode() for i in range(20)]})
    return folder


def write_svhn(root: Path, n: int = 6, m: int = 4) -> None:
    """``{train,test}_32x32.mat``: X [32, 32, 3, N] uint8, y [N, 1] in 1..10 (10 = digit 0).

    The train file compressed (as the official files are), the test file plain.
    """
    root.mkdir(parents=True, exist_ok=True)
    for name, count in (("train", n), ("test", m)):
        x = np.zeros((32, 32, 3, count), np.uint8)
        x[5, 7, 2, :] = 100 + np.arange(count)  # row 5, column 7, blue, per image
        y = (np.arange(count) % 10 + 1).astype(np.float64)[:, None]  # MATLAB doubles
        scipy.io.savemat(root / f"{name}_32x32.mat", {"X": x, "y": y},
                         do_compression=name == "train")


WRITERS = {
    "fashionmnist": lambda root: write_idx_set(root, "FashionMNIST"),
    "kmnist": lambda root: write_idx_set(root, "KMNIST", gz=True),
    "cifar100": write_cifar100,
    "svhn": write_svhn,
}


# the registry -----------------------------------------------------------------------------


def test_registered_next_to_the_built_ins() -> None:
    assert set(NEW) < set(DATASETS)
    assert {"mnist", "cifar10", "smallnorb", "digits"} < set(DATASETS)
    infos = {name: dataset_info(name) for name in NEW}
    assert [(i.num_classes, i.channels, i.stored_size, i.input_size) for i in infos.values()] \
        == [(10, 1, 28, 28), (10, 1, 28, 28), (100, 3, 32, 32), (10, 3, 32, 32)]
    assert (infos["svhn"].train_size, infos["svhn"].test_size) == (73_257, 26_032)
    assert (infos["cifar100"].train_size, infos["fashionmnist"].train_size) == (50_000, 60_000)


@pytest.mark.parametrize("name", ["fashionmnist", "kmnist"])
def test_idx_sets_equal_torchvisions_reading(tmp_path: Path, name: str) -> None:
    import torchvision.datasets

    write_idx_set(tmp_path, FOLDERS[name])
    check_dataset(name, tmp_path)
    train, test = load_dataset(name, tmp_path, download=True)  # present: no download
    assert train.images.shape == (12, 1, 28, 28) and len(test) == 5
    reference = getattr(torchvision.datasets, FOLDERS[name])
    ours_vs_theirs = [(train, reference(str(tmp_path), train=True)),
                      (test, reference(str(tmp_path), train=False))]
    for split, theirs in ours_vs_theirs:
        assert torch.equal(split.images[:, 0], theirs.data)
        assert torch.equal(split.labels, theirs.targets)


def test_idx_gz_files(tmp_path: Path) -> None:
    write_idx_set(tmp_path, "KMNIST", gz=True)
    train, _ = load_dataset("kmnist", tmp_path)
    assert train.labels.tolist() == [i % 10 for i in range(12)]
    assert train.images[:, 0, 27, 27].tolist() == list(range(12))


def test_cifar100_fine_labels(tmp_path: Path) -> None:
    write_cifar100(tmp_path)
    check_dataset("cifar100", tmp_path)
    train, test = load_dataset("cifar100", tmp_path)
    assert train.images.shape == (8, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.labels.tolist() == [13 * i % 100 for i in range(8)]
    assert test.labels.dtype == torch.int64 and len(test) == 3
    assert train.images[:, 2, 31, 31].tolist() == list(range(8))


def test_svhn_orientation_and_zero_label(tmp_path: Path) -> None:
    write_svhn(tmp_path)
    check_dataset("svhn", tmp_path)
    train, test = load_dataset("svhn", tmp_path)
    assert train.images.shape == (6, 3, 32, 32) and len(test) == 4
    # X[row 5, column 7, blue, i] is images[i, blue, row 5, column 7], as torchvision reads it.
    assert train.images[:, 2, 5, 7].tolist() == [100 + i for i in range(6)]
    assert int(train.images.sum()) == sum(100 + i for i in range(6))
    assert train.labels.tolist() == [1, 2, 3, 4, 5, 6]
    write_svhn(tmp_path, n=10)
    assert load_dataset("svhn", tmp_path)[0].labels.tolist()[-1] == 0  # 10 is the digit 0


# bad files: one line each -----------------------------------------------------------------


def _rejects(name: str, root: Path, pattern: str, *, check_too: bool = True) -> None:
    runs = [lambda: load_dataset(name, root)]
    if check_too:
        runs.append(lambda: check_dataset(name, root))
    for run in runs:
        with pytest.raises(DataError, match=pattern) as info:
            run()
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", NEW)
def test_empty_dir_is_missing(tmp_path: Path, name: str) -> None:
    _rejects(name, tmp_path, f"missing.*fetch it with: lessdata download {name} --data-dir")


@pytest.mark.parametrize("name", NEW)
def test_one_file_missing(tmp_path: Path, name: str) -> None:
    WRITERS[name](tmp_path)
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    files[-1].unlink()
    _rejects(name, tmp_path, f"{files[-1].name.removesuffix('.gz')}: missing")


def test_idx_truncated(tmp_path: Path) -> None:
    raw = write_idx_set(tmp_path, "FashionMNIST")
    path = raw / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    _rejects("fashionmnist", tmp_path,
             f"t10k-images-idx3-ubyte: truncated: expected {16 + 5 * 784} bytes")


def test_idx_label_out_of_range(tmp_path: Path) -> None:
    raw = write_idx_set(tmp_path, "KMNIST")
    write_idx(raw / "train-labels-idx1-ubyte", np.full(12, 10, np.uint8))
    _rejects("kmnist", tmp_path, "label 10 out of range 0..9", check_too=False)


def test_idx_wrong_magic_gz(tmp_path: Path) -> None:
    raw = write_idx_set(tmp_path, "KMNIST", gz=True)
    path = raw / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + gzip.decompress(path.read_bytes())[4:]))
    _rejects("kmnist", tmp_path, "not an IDX file: magic 0x00000803, expected 0x00000801")


def test_cifar100_truncated(tmp_path: Path) -> None:
    path = write_cifar100(tmp_path) / "train"
    path.write_bytes(path.read_bytes()[:-50])
    _rejects("cifar100", tmp_path, "train: truncated: a pickle ends with b'.'")


def test_cifar100_label_out_of_range_and_no_fine_labels(tmp_path: Path) -> None:
    folder = write_cifar100(tmp_path)
    record = {b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [0, 100]}
    _dump(folder / "test", record)
    _rejects("cifar100", tmp_path, "test: label 100 out of range 0..99", check_too=False)
    _dump(folder / "test", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]})
    _rejects("cifar100", tmp_path, "test: no 'fine_labels' entry", check_too=False)


def test_cifar100_forbidden_global(tmp_path: Path) -> None:
    folder = write_cifar100(tmp_path)
    _dump(folder / "train", {b"data": Path("x")})  # a pickle that would build a Path
    _rejects("cifar100", tmp_path, "train: not a valid CIFAR-100 pickle.*forbidden global",
             check_too=False)


def test_svhn_not_a_mat_file(tmp_path: Path) -> None:
    write_svhn(tmp_path)
    (tmp_path / "test_32x32.mat").write_bytes(b"<html>404 Not Found</html>" + bytes(200))
    _rejects("svhn", tmp_path, "test_32x32.mat: not a MATLAB 5 .mat file")


@pytest.mark.parametrize("name", ["train", "test"])  # compressed, plain
def test_svhn_truncated(tmp_path: Path, name: str) -> None:
    write_svhn(tmp_path, n=50, m=50)
    path = tmp_path / f"{name}_32x32.mat"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    _rejects("svhn", tmp_path, f"{name}_32x32.mat: truncated: variable 1 ends at byte")


def test_svhn_wrong_shapes_and_labels(tmp_path: Path) -> None:
    write_svhn(tmp_path)
    path = tmp_path / "train_32x32.mat"
    scipy.io.savemat(path, {"X": np.zeros((28, 28, 1, 3), np.uint8), "y": np.ones((3, 1))})
    _rejects("svhn", tmp_path, r"expected X as \[32, 32, 3, N\], found \[28, 28, 1, 3\]")
    scipy.io.savemat(path, {"X": np.zeros((32, 32, 3, 3), np.uint8), "y": np.ones((2, 1))})
    _rejects("svhn", tmp_path, r"expected y as \[3, 1\] for the 3 images, found \[2, 1\]")
    scipy.io.savemat(path, {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": [[1.0], [11.0]]})
    _rejects("svhn", tmp_path, "label 11 out of range 1..10", check_too=False)
    scipy.io.savemat(path, {"images": np.zeros((32, 32, 3, 2), np.uint8)})
    _rejects("svhn", tmp_path, r"expected variables X and y, found \['images'\]")
