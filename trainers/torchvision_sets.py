"""torchvision's FashionMNIST, KMNIST, CIFAR-100 and SVHN, read from their standard files.

Each lives under the root ``data_dir`` exactly as torchvision lays it out (so a root that
torchvision downloaded into works as is, and ``download_*`` calls torchvision's own
downloaders, which check md5s):

- FashionMNIST / KMNIST: ``FashionMNIST/raw/`` / ``KMNIST/raw/`` with MNIST's four IDX file
  names, plain or ``.gz`` (read with ``trainers.mnist``'s IDX reader).
- CIFAR-100: ``cifar-100-python/{train,test,meta}``, python pickles like CIFAR-10's with
  ``fine_labels`` (0..99; the 20 coarse labels are not used) and ``meta`` naming the 100
  fine classes; read with CIFAR-10's restricted unpickler.
- SVHN: ``train_32x32.mat`` and ``test_32x32.mat`` (MATLAB 5, read with scipy): ``X`` uint8
  [32, 32, 3, N], ``y`` [N, 1] in 1..10 where 10 is the digit 0 (mapped to 0, as torchvision
  does). The ``extra`` split is not used.

Every failure is a one-line ``DataError`` naming the file and what was expected.
"""

from __future__ import annotations

import logging
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trainers import cifar, mnist
from trainers.datafiles import find_file, missing_error
from trainers.errors import DataError

if TYPE_CHECKING:  # torch is imported where tensors are made: the driver only checks files
    import torch

__all__ = ["CIFAR100", "FASHION_MNIST", "KMNIST", "SVHN", "IdxSet", "cifar100_dir"]

log = logging.getLogger(__name__)

Arrays = tuple["torch.Tensor", "torch.Tensor"]


# -- FashionMNIST, KMNIST: MNIST's IDX files in another folder -------------------------------


@dataclass(frozen=True)
class IdxSet:
    """An MNIST-format set: 28x28 uint8 IDX images and labels in ``data_dir/folder/raw``."""

    folder: str
    """torchvision's class name, also its folder under the root."""
    num_classes: int = 10

    @property
    def what(self) -> str:
        return f"{self.folder} (IDX)"

    def raw_dir(self, data_dir: Path) -> Path:
        return Path(data_dir) / self.folder / "raw"

    def _files(self, data_dir: Path, split: str) -> tuple[Path, Path]:
        images, labels = mnist.FILES[split]
        raw = self.raw_dir(data_dir)
        return find_file(raw / images, self.what), find_file(raw / labels, self.what)

    def _check_split(self, data_dir: Path, split: str) -> tuple[Path, Path]:
        images, labels = self._files(data_dir, split)
        n, h, w = mnist.idx_shape(images, mnist.IMAGES_MAGIC)
        if (h, w) != (28, 28):
            raise DataError(f"{images}: expected 28x28 images, header says {h}x{w}")
        (m,) = mnist.idx_shape(labels, mnist.LABELS_MAGIC)
        if m != n:
            raise DataError(f"{labels}: {m} labels for the {n} images in {images.name}")
        return images, labels

    def present(self, data_dir: Path) -> bool:
        try:
            for split in mnist.FILES:
                self._files(data_dir, split)
        except DataError:
            return False
        return True

    def check(self, data_dir: Path) -> None:
        """Cheap pre-flight: all four files present, magic, dims and size right."""
        for split in mnist.FILES:
            self._check_split(data_dir, split)

    def download(self, data_dir: Path) -> None:
        """torchvision's downloader for this set (both splits, md5 checked)."""
        import torchvision.datasets

        log.info("downloading %s to %s", self.folder, self.raw_dir(data_dir))
        getattr(torchvision.datasets, self.folder)(str(data_dir), train=True, download=True)

    def _load_split(self, data_dir: Path, split: str) -> Arrays:
        import torch

        images_path, labels_path = self._check_split(data_dir, split)
        images = mnist.read_idx(images_path, mnist.IMAGES_MAGIC)  # [N, 28, 28]
        labels = mnist.read_idx(labels_path, mnist.LABELS_MAGIC)  # [N]
        _check_labels(labels_path, labels, self.num_classes)
        return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels).long()

    def load(self, data_dir: Path) -> tuple[Arrays, Arrays]:
        """((train images [N,1,28,28] uint8, labels [N] int64), (test ...))."""
        return self._load_split(data_dir, "train"), self._load_split(data_dir, "test")


FASHION_MNIST = IdxSet("FashionMNIST")
KMNIST = IdxSet("KMNIST")


def _check_labels(path: Path, labels: np.ndarray, num_classes: int, low: int = 0) -> None:
    if labels.size and (int(labels.min()) < low or int(labels.max()) >= low + num_classes):
        bad = int(labels.min()) if int(labels.min()) < low else int(labels.max())
        raise DataError(f"{path}: label {bad} out of range {low}..{low + num_classes - 1}")


# -- CIFAR-100 --------------------------------------------------------------------------------

_CIFAR100_FOLDER = "cifar-100-python"
_CIFAR100_WHAT = "CIFAR-100 (python version)"
_CIFAR100_FILES = ("train", "test", "meta")
_CIFAR100_CLASSES = 100


def cifar100_dir(data_dir: Path) -> Path:
    return Path(data_dir) / _CIFAR100_FOLDER


def _read_pickle(path: Path) -> Any:
    """Unpickle with CIFAR-10's restricted unpickler (NumPy array globals only)."""
    try:
        with path.open("rb") as f:
            return cifar._RestrictedUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise missing_error(path, _CIFAR100_WHAT) from None
    except OSError as e:
        raise DataError(f"{path}: unreadable ({type(e).__name__}: {e})") from e
    except Exception as e:  # garbage bytes can make the unpickler raise almost anything
        raise DataError(f"{path}: not a valid CIFAR-100 pickle ({type(e).__name__}: {e})") from e


def _entry(record: Any, path: Path, key: str) -> Any:
    if not isinstance(record, dict):
        raise DataError(f"{path}: expected a pickled dict, found {type(record).__name__}")
    for k in (key.encode(), key):  # official files: bytes keys
        if k in record:
            return record[k]
    raise DataError(f"{path}: no {key!r} entry in the pickled dict")


class _Cifar100:
    """CIFAR-100's three pickles under ``data_dir/cifar-100-python``."""

    def present(self, data_dir: Path) -> bool:
        return all((cifar100_dir(data_dir) / n).is_file() for n in _CIFAR100_FILES)

    def check(self, data_dir: Path) -> None:
        """Cheap pre-flight: every file present, framed like a pickle (PROTO first, STOP last)."""
        for name in _CIFAR100_FILES:
            path = cifar100_dir(data_dir) / name
            if not path.is_file():
                raise missing_error(path, _CIFAR100_WHAT)
            with path.open("rb") as f:
                head = f.read(1)
                f.seek(max(path.stat().st_size - 1, 0))
                tail = f.read(1)
            if head != pickle.PROTO:
                raise DataError(f"{path}: not a CIFAR-100 pickle: starts with {head!r}, "
                                "expected b'\\x80'")
            if tail != pickle.STOP:
                raise DataError(f"{path}: truncated: a pickle ends with b'.', found {tail!r}")

    def download(self, data_dir: Path) -> None:
        """torchvision's downloader: the official archive, md5 checked, extracted in place."""
        from torchvision.datasets import CIFAR100

        log.info("downloading CIFAR-100 to %s", data_dir)
        CIFAR100(str(data_dir), train=True, download=True)

    def _load_split(self, path: Path) -> Arrays:
        import torch

        record = _read_pickle(path)
        data, labels = _entry(record, path, "data"), _entry(record, path, "fine_labels")
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
                or data.shape[1] != cifar.ROW_BYTES:
            found = (f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray)
                     else type(data).__name__)
            raise DataError(f"{path}: expected data as a uint8 array [rows, {cifar.ROW_BYTES}], "
                            f"found {found}")
        try:
            label_array = np.asarray(labels, dtype=np.int64).reshape(-1)
        except (TypeError, ValueError) as e:
            raise DataError(f"{path}: fine_labels are not a list of ints ({e})") from None
        if len(label_array) != len(data):
            raise DataError(f"{path}: {len(label_array)} fine_labels for {len(data)} images")
        _check_labels(path, label_array, _CIFAR100_CLASSES)
        images = np.ascontiguousarray(data).reshape(-1, 3, 32, 32)  # row-major CHW
        return torch.from_numpy(images.copy()), torch.from_numpy(label_array)

    def load(self, data_dir: Path) -> tuple[Arrays, Arrays]:
        """((train images [N,3,32,32] uint8, fine labels [N] int64), (test ...))."""
        self.check(data_dir)
        root = cifar100_dir(data_dir)
        names = _entry(_read_pickle(root / "meta"), root / "meta", "fine_label_names")
        if len(names) != _CIFAR100_CLASSES:
            raise DataError(f"{root / 'meta'}: expected {_CIFAR100_CLASSES} fine_label_names, "
                            f"found {len(names)}")
        return self._load_split(root / "train"), self._load_split(root / "test")


CIFAR100 = _Cifar100()


# -- SVHN ---------------------------------------------------------------------------------------

_SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
_SVHN_WHAT = "SVHN (format 2, cropped digits)"
_MAT_HEADER = b"MATLAB 5.0 MAT-file"


def _check_mat_framing(path: Path) -> None:
    """MATLAB 5 header, and every top-level element inside the file (a cut file fails here).

    After the 128-byte header, each element is an 8-byte tag (type, byte count) and its data;
    uncompressed elements are padded to 8 bytes, compressed ones (type 15) are not.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(128)
        if not head.startswith(_MAT_HEADER) or len(head) < 128:
            raise DataError(f"{path}: not a MATLAB 5 .mat file: starts with {head[:20]!r}")
        order = "<" if head[126:128] == b"IM" else ">"
        position, number = 128, 0
        while position < size:
            f.seek(position)
            tag = f.read(8)
            number += 1
            if len(tag) < 8:
                raise DataError(f"{path}: truncated: variable {number} has no full tag")
            kind, nbytes = struct.unpack(f"{order}II", tag)
            position += 8 + (nbytes if kind == 15 else -(-nbytes // 8) * 8)
            if position > size:
                raise DataError(f"{path}: truncated: variable {number} ends at byte "
                                f"{position}, the file has {size}")


def _svhn_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """The variables' shapes from the .mat headers, without reading the arrays."""
    import scipy.io

    _check_mat_framing(path)
    try:
        return {name: tuple(shape) for name, shape, _ in scipy.io.whosmat(str(path))}
    except Exception as e:  # scipy raises several kinds for a damaged file
        raise DataError(f"{path}: unreadable .mat ({type(e).__name__}: {e})") from e


class _Svhn:
    """SVHN's cropped digits: ``train_32x32.mat`` and ``test_32x32.mat`` in ``data_dir``."""

    def present(self, data_dir: Path) -> bool:
        return all((Path(data_dir) / n).is_file() for n in _SVHN_FILES.values())

    def _check_file(self, path: Path) -> int:
        if not path.is_file():
            raise missing_error(path, _SVHN_WHAT)
        shapes = _svhn_shapes(path)
        x, y = shapes.get("X"), shapes.get("y")
        if x is None or y is None:
            raise DataError(f"{path}: expected variables X and y, found {sorted(shapes)}")
        if len(x) != 4 or x[:3] != (32, 32, 3):
            raise DataError(f"{path}: expected X as [32, 32, 3, N], found {list(x)}")
        if y not in ((x[3], 1), (x[3],)):
            raise DataError(f"{path}: expected y as [{x[3]}, 1] for the {x[3]} images, "
                            f"found {list(y)}")
        return x[3]

    def check(self, data_dir: Path) -> None:
        """Pre-flight: both files present, MATLAB 5 headers, X and y of matching shapes."""
        for name in _SVHN_FILES.values():
            self._check_file(Path(data_dir) / name)

    def download(self, data_dir: Path) -> None:
        """torchvision's downloader for both splits (md5 checked)."""
        from torchvision.datasets import SVHN

        log.info("downloading SVHN to %s", data_dir)
        for split in _SVHN_FILES:
            SVHN(str(data_dir), split=split, download=True)

    def _load_split(self, path: Path) -> Arrays:
        import scipy.io
        import torch

        n = self._check_file(path)
        try:
            mat = scipy.io.loadmat(str(path), variable_names=("X", "y"))
        except Exception as e:  # a truncated body surfaces only here
            raise DataError(f"{path}: unreadable .mat ({type(e).__name__}: {e})") from e
        x, y = mat["X"], np.asarray(mat["y"]).reshape(-1)
        if x.dtype != np.uint8:
            raise DataError(f"{path}: expected X as uint8, found {x.dtype}")
        if len(y) != n:
            raise DataError(f"{path}: {len(y)} labels for {n} images")
        _check_labels(path, y, 10, low=1)
        labels = y.astype(np.int64) % 10  # 10 is the digit 0
        images = np.ascontiguousarray(np.transpose(x, (3, 2, 0, 1)))  # [N, 3, 32, 32]
        return torch.from_numpy(images), torch.from_numpy(labels)

    def load(self, data_dir: Path) -> tuple[Arrays, Arrays]:
        """((train images [N,3,32,32] uint8, labels [N] int64 in 0..9), (test ...))."""
        root = Path(data_dir)
        return (self._load_split(root / _SVHN_FILES["train"]),
                self._load_split(root / _SVHN_FILES["test"]))


SVHN = _Svhn()
