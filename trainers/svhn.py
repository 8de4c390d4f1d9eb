"""SVHN (format 2, cropped digits) as torchvision lays it out, read with scipy.

``data_dir/train_32x32.mat`` and ``data_dir/test_32x32.mat`` (MATLAB 5; the official files are
compressed): ``X`` uint8 [32, 32, 3, N], ``y`` [N, 1] in 1..10 where 10 is the digit 0 (mapped
to 0, as torchvision does). The ``extra`` split is not used. ``download`` calls torchvision's
downloader (md5 checked). Every failure is a one-line ``DataError`` naming the file.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trainers.datafiles import check_labels, missing_error
from trainers.errors import DataError

if TYPE_CHECKING:  # torch is imported where tensors are made: the driver only checks files
    import torch

__all__ = ["SVHN"]

log = logging.getLogger(__name__)

Arrays = tuple["torch.Tensor", "torch.Tensor"]

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
        check_labels(path, y, 10, low=1)
        labels = y.astype(np.int64) % 10  # 10 is the digit 0
        images = np.ascontiguousarray(np.transpose(x, (3, 2, 0, 1)))  # [N, 3, 32, 32]
        return torch.from_numpy(images), torch.from_numpy(labels)

    def load(self, data_dir: Path) -> tuple[Arrays, Arrays]:
        """((train images [N,3,32,32] uint8, labels [N] int64 in 0..9), (test ...))."""
        root = Path(data_dir)
        return (self._load_split(root / _SVHN_FILES["train"]),
                self._load_split(root / _SVHN_FILES["test"]))


SVHN = _Svhn()
