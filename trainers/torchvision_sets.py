"""torchvision's FashionMNIST, KMNIST and CIFAR-100, read from their standard files.

Each lives under the root ``data_dir`` exactly as torchvision lays it out (so a root that
torchvision downloaded into works as is, and ``download_*`` calls torchvision's own
downloaders, which check md5s):

- FashionMNIST / KMNIST: ``FashionMNIST/raw/`` / ``KMNIST/raw/`` with MNIST's four IDX file
  names, plain or ``.gz`` (read with ``trainers.mnist``'s IDX reader).
- CIFAR-100: ``cifar-100-python/{train,test,meta}``, python pickles like CIFAR-10's with
  ``fine_labels`` (0..99; the 20 coarse labels are not used) and ``meta`` naming the 100
  fine classes; read with CIFAR-10's restricted unpickler.

SVHN, the fourth torchvision set, is in ``trainers.svhn``.

Every failure is a one-line ``DataError`` naming the file and what was expected.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trainers import cifar
from trainers.datafiles import check_labels, missing_error
from trainers.errors import DataError
from trainers.mnist import IdxSet

if TYPE_CHECKING:  # torch is imported where tensors are made: the driver only checks files
    import torch

__all__ = ["CIFAR100", "FASHION_MNIST", "KMNIST", "cifar100_dir"]

log = logging.getLogger(__name__)

Arrays = tuple["torch.Tensor", "torch.Tensor"]


# -- FashionMNIST, KMNIST: MNIST's IDX files in another folder -------------------------------


FASHION_MNIST = IdxSet("FashionMNIST")
KMNIST = IdxSet("KMNIST")


# -- CIFAR-100 --------------------------------------------------------------------------------

_CIFAR100_FOLDER = "cifar-100-python"
_CIFAR100_WHAT = "CIFAR-100 (python version)"
_CIFAR100_FILES = ("train", "test", "meta")
_CIFAR100_CLASSES = 100


def cifar100_dir(data_dir: Path) -> Path:
    return Path(data_dir) / _CIFAR100_FOLDER


def _read_pickle(path: Path) -> Any:
    """Unpickle with CIFAR-10's restricted unpickler (NumPy array globals only)."""
    return cifar.read_pickle(path, _CIFAR100_WHAT, "CIFAR-100")


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
        check_labels(path, label_array, _CIFAR100_CLASSES)
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
