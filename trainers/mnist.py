"""MNIST in the official IDX format, validated and read with NumPy.

``data_dir`` is a torchvision root: the files live in ``data_dir/MNIST/raw/`` (plain or ``.gz``).
IDX: big-endian int32 magic (2051 = 0x803 uint8 3-d images, 2049 = 0x801 uint8 1-d labels), one
big-endian uint32 per dimension, then the data in C order. Downloading goes through torchvision.
"""

from __future__ import annotations

import gzip
import logging
import math
import struct
from dataclasses import dataclass
from io import BufferedIOBase
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trainers.datafiles import (
    check_labels,
    check_size,
    find_file,
    open_data,
    read_body,
    read_header,
)
from trainers.errors import DataError

if TYPE_CHECKING:  # torch is imported where tensors are made: the driver only checks files
    import torch

__all__ = [
    "MNIST",
    "IdxSet",
    "IMAGES_MAGIC",
    "LABELS_MAGIC",
    "check_mnist",
    "download_mnist",
    "has_mnist",
    "idx_shape",
    "load_mnist",
    "raw_dir",
    "read_idx",
    "write_idx",
]

log = logging.getLogger(__name__)

IMAGES_MAGIC = 2051  # 0x00000803: uint8, 3 dims
LABELS_MAGIC = 2049  # 0x00000801: uint8, 1 dim
_UINT8_CODE = 0x08
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

Arrays = tuple["torch.Tensor", "torch.Tensor"]


def raw_dir(data_dir: Path) -> Path:
    """Where torchvision keeps the IDX files under the root ``data_dir``."""
    return MNIST.raw_dir(data_dir)


def _parse_header(f: BufferedIOBase, path: Path, magic: int) -> tuple[int, ...]:
    (found,) = struct.unpack(">i", read_header(f, path, 4))
    if found != magic:
        raise DataError(f"{path}: not an IDX file: magic 0x{found:08x}, expected 0x{magic:08x}")
    ndim = magic & 0xFF
    return tuple(struct.unpack(f">{ndim}I", read_header(f, path, 4 * ndim)))


def idx_shape(path: Path, magic: int) -> tuple[int, ...]:
    """The shape in the header of ``path``, after checking its magic and its size (cheap)."""
    with open_data(path) as f:
        shape = _parse_header(f, path, magic)
    check_size(path, 4 + 4 * len(shape) + math.prod(shape))
    return shape


def read_idx(path: Path, magic: int) -> np.ndarray:
    """The uint8 array stored in the IDX file ``path`` (expected magic ``magic``)."""
    with open_data(path) as f:
        shape = _parse_header(f, path, magic)
        body = read_body(f, path, 4 + 4 * len(shape), math.prod(shape))
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 ``array`` as an IDX file (gzipped if ``path`` ends in ``.gz``)."""
    if array.dtype != np.uint8:
        raise ValueError(f"IDX writer takes uint8 arrays, got {array.dtype=}")
    magic = (_UINT8_CODE << 8) | array.ndim
    head = struct.pack(f">i{array.ndim}I", magic, *array.shape)
    data = head + np.ascontiguousarray(array).tobytes()
    if Path(path).suffix == ".gz":
        with gzip.open(path, "wb") as g:
            g.write(data)
    else:
        Path(path).write_bytes(data)


@dataclass(frozen=True)
class IdxSet:
    """An MNIST-format set: 28x28 uint8 IDX images and labels in ``data_dir/folder/raw``.

    MNIST itself and torchvision's FashionMNIST and KMNIST (``trainers.torchvision_sets``).
    """

    folder: str
    """torchvision's class name, also its folder under the root."""
    num_classes: int = 10

    @property
    def what(self) -> str:
        return f"{self.folder} (IDX)"

    def raw_dir(self, data_dir: Path) -> Path:
        return Path(data_dir) / self.folder / "raw"

    def _files(self, data_dir: Path, split: str) -> tuple[Path, Path]:
        images, labels = FILES[split]
        raw = self.raw_dir(data_dir)
        return find_file(raw / images, self.what), find_file(raw / labels, self.what)

    def _check_split(self, data_dir: Path, split: str) -> tuple[Path, Path]:
        images, labels = self._files(data_dir, split)
        n, h, w = idx_shape(images, IMAGES_MAGIC)
        if (h, w) != (28, 28):
            raise DataError(f"{images}: expected 28x28 images, header says {h}x{w}")
        (m,) = idx_shape(labels, LABELS_MAGIC)
        if m != n:
            raise DataError(f"{labels}: {m} labels for the {n} images in {images.name}")
        return images, labels

    def present(self, data_dir: Path) -> bool:
        """Whether every file is present (plain or gz); says nothing about its content."""
        try:
            for split in FILES:
                self._files(data_dir, split)
        except DataError:
            return False
        return True

    def check(self, data_dir: Path) -> None:
        """Cheap pre-flight: all four files present, magic, dims and size right."""
        for split in FILES:
            self._check_split(data_dir, split)

    def download(self, data_dir: Path) -> None:
        """torchvision's downloader for this set (both splits, md5 checked)."""
        import torchvision.datasets

        log.info("downloading %s to %s", self.folder, self.raw_dir(data_dir))
        getattr(torchvision.datasets, self.folder)(str(data_dir), train=True, download=True)

    def _load_split(self, data_dir: Path, split: str) -> Arrays:
        import torch

        images_path, labels_path = self._check_split(data_dir, split)
        images = read_idx(images_path, IMAGES_MAGIC)  # [N, 28, 28]
        labels = read_idx(labels_path, LABELS_MAGIC)  # [N]
        check_labels(labels_path, labels, self.num_classes)
        return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels).long()

    def load(self, data_dir: Path) -> tuple[Arrays, Arrays]:
        """((train images [N,1,28,28] uint8, labels [N] int64), (test ...))."""
        return self._load_split(data_dir, "train"), self._load_split(data_dir, "test")


MNIST = IdxSet("MNIST")
has_mnist = MNIST.present
check_mnist = MNIST.check
download_mnist = MNIST.download
load_mnist = MNIST.load
