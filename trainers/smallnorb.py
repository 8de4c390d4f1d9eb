"""smallNORB: our own reader and writer of NYU's binary matrix format, plus Byerly's preprocessing.

The files (``*.mat``, plain or ``.gz``) are not MATLAB files. Each holds one matrix: a
little-endian int32 magic (0x1E3D4C55 uint8, 0x1E3D4C54 int32), an int32 ``ndim``, then
``max(3, ndim)`` int32 sizes (the unused ones are 1), then the data in C order. A split is
three files: ``dat`` (N, 2, 96, 96) uint8 stereo pairs, ``cat`` (N,) int32 classes 0..4 and
``info`` (N, 4) int32 (instance, elevation, azimuth, lighting). torchvision has no loader.
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

from trainers.datafiles import check_size, find_file, open_data, read_body, read_header
from trainers.errors import DataError

if TYPE_CHECKING:  # torch is imported where tensors are made: the driver only checks files
    import torch

__all__ = [
    "INT32_MAGIC",
    "UINT8_MAGIC",
    "NorbHeader",
    "check_smallnorb",
    "download_smallnorb",
    "file_name",
    "has_smallnorb",
    "load_smallnorb",
    "norb_dir",
    "norb_header",
    "preprocess",
    "read_norb",
    "write_norb",
]

log = logging.getLogger(__name__)

UINT8_MAGIC = 0x1E3D4C55
INT32_MAGIC = 0x1E3D4C54
_DTYPES: dict[int, np.dtype] = {UINT8_MAGIC: np.dtype("<u1"), INT32_MAGIC: np.dtype("<i4")}
_MAGICS: dict[np.dtype, int] = {np.dtype("u1"): UINT8_MAGIC, np.dtype("i4"): INT32_MAGIC}

URL = "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/"
PREFIXES = {
    "train": "smallnorb-5x46789x9x18x6x2x96x96-training",
    "test": "smallnorb-5x01235x9x18x6x2x96x96-testing",
}
KINDS = ("dat", "cat", "info")
# md5 of the official .gz files (as published in several public loaders; torchvision checks them).
GZ_MD5 = {
    ("train", "dat"): "66054832f9accfe74a0f4c36a75bc0a2",
    ("train", "cat"): "23c8b86101fbf0904a000b43d3ed2fd9",
    ("train", "info"): "51dee1210a742582ff607dfd94e332e3",
    ("test", "dat"): "e4ad715691ed5a3a5f138751a4ceb071",
    ("test", "cat"): "5aa791cd7e6016cf957ce9bdb93b8603",
    ("test", "info"): "a9454f3864d7fd4bb3ea7fc3eb84924e",
}
NUM_CLASSES = 5
IMAGE_SIZE = 96
STORED_SIZE = 48  # Byerly: resized to 48x48 at load time, then 32x32 crops in training
_WHAT = "smallNORB (NYU norb-v1.0-small)"

Arrays = tuple["torch.Tensor", "torch.Tensor"]


@dataclass(frozen=True)
class NorbHeader:
    """The header of one NORB matrix file."""

    magic: int
    shape: tuple[int, ...]

    @property
    def dtype(self) -> np.dtype:
        """NumPy dtype of the elements (little-endian)."""
        return _DTYPES[self.magic]

    @property
    def header_bytes(self) -> int:
        """Magic, ndim and at least three sizes."""
        return 8 + 4 * max(3, len(self.shape))

    @property
    def body_bytes(self) -> int:
        """Bytes of data after the header."""
        return math.prod(self.shape) * self.dtype.itemsize


def norb_dir(data_dir: Path) -> Path:
    """Where the smallNORB files live under ``data_dir``."""
    return Path(data_dir) / "smallnorb"


def file_name(split: str, kind: str) -> str:
    """Official (uncompressed) file name, e.g. ``smallnorb-5x46789x...-training-dat.mat``."""
    return f"{PREFIXES[split]}-{kind}.mat"


def _parse_header(f: BufferedIOBase, path: Path) -> NorbHeader:
    magic, ndim = struct.unpack("<ii", read_header(f, path, 8))
    if magic not in _DTYPES:
        raise DataError(
            f"{path}: not a NORB file: magic 0x{magic & 0xFFFFFFFF:08x}, "
            f"expected 0x{UINT8_MAGIC:08x} (uint8) or 0x{INT32_MAGIC:08x} (int32)"
        )
    if not 1 <= ndim <= 16:
        raise DataError(f"{path}: not a NORB file: ndim {ndim} in its header, expected 1..16")
    sizes = struct.unpack(f"<{max(3, ndim)}i", read_header(f, path, 4 * max(3, ndim)))
    if any(s < 0 for s in sizes):
        raise DataError(f"{path}: not a NORB file: negative size in its header {sizes}")
    return NorbHeader(magic, tuple(sizes[:ndim]))


def norb_header(path: Path) -> NorbHeader:
    """The header of ``path``, after checking that the file size matches it (cheap)."""
    with open_data(path) as f:
        header = _parse_header(f, path)
    check_size(path, header.header_bytes + header.body_bytes)
    return header


def read_norb(path: Path) -> np.ndarray:
    """The matrix stored in the NORB file ``path`` (uint8 or int32, native byte order)."""
    with open_data(path) as f:
        header = _parse_header(f, path)
        body = read_body(f, path, header.header_bytes, header.body_bytes)
    array = np.frombuffer(body, dtype=header.dtype).reshape(header.shape)
    return array.astype(array.dtype.newbyteorder("="), copy=False)


def write_norb(path: Path, array: np.ndarray) -> None:
    """Write a uint8 or int32 ``array`` as a NORB file (gzipped if ``path`` ends in ``.gz``)."""
    if array.dtype not in _MAGICS or array.ndim < 1:
        raise ValueError(
            f"NORB writer takes uint8 or int32 arrays, got {array.dtype=} {array.ndim=}"
        )
    sizes = list(array.shape) + [1] * (3 - array.ndim)
    head = struct.pack(f"<ii{len(sizes)}i", _MAGICS[array.dtype], array.ndim, *sizes)
    data = head + np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    if Path(path).suffix == ".gz":
        with gzip.open(path, "wb") as g:
            g.write(data)
    else:
        Path(path).write_bytes(data)


def _split_files(data_dir: Path, split: str) -> dict[str, Path]:
    root = norb_dir(data_dir)
    return {kind: find_file(root / file_name(split, kind), _WHAT) for kind in KINDS}


def _expect(path: Path, header: NorbHeader, magic: int, shape: str, ok: bool) -> None:
    if header.magic != magic:
        raise DataError(
            f"{path}: not a NORB {_DTYPES[magic]} matrix: magic 0x{header.magic:08x}, "
            f"expected 0x{magic:08x}"
        )
    if not ok:
        raise DataError(f"{path}: expected shape {shape}, header says {header.shape}")


def _check_split(data_dir: Path, split: str) -> dict[str, Path]:
    paths = _split_files(data_dir, split)
    dat, cat, info = (norb_header(paths[kind]) for kind in KINDS)
    s = IMAGE_SIZE
    _expect(paths["dat"], dat, UINT8_MAGIC, f"(N, 2, {s}, {s})", dat.shape[1:] == (2, s, s))
    n = dat.shape[0]
    _expect(paths["cat"], cat, INT32_MAGIC, f"({n},)", cat.shape == (n,))
    _expect(paths["info"], info, INT32_MAGIC, f"({n}, 4)", info.shape == (n, 4))
    return paths


def has_smallnorb(data_dir: Path) -> bool:
    """Whether all six files are present (plain or gz); says nothing about their content."""
    try:
        for split in PREFIXES:
            _split_files(data_dir, split)
    except DataError:
        return False
    return True


def check_smallnorb(data_dir: Path) -> None:
    """Cheap pre-flight: all six files present, magics, shapes and sizes consistent."""
    for split in PREFIXES:
        _check_split(data_dir, split)


def download_smallnorb(data_dir: Path) -> None:
    """Download the six official ``.gz`` files from NYU into ``data_dir/smallnorb`` (kept gz)."""
    from torchvision.datasets.utils import download_url

    root = norb_dir(data_dir)
    for (split, kind), md5 in GZ_MD5.items():
        name = file_name(split, kind)
        if (root / name).is_file() or (root / f"{name}.gz").is_file():
            continue
        log.info("downloading %s.gz to %s", name, root)
        download_url(URL + name + ".gz", str(root), filename=f"{name}.gz", md5=md5)


def preprocess(pairs: np.ndarray, size: int = STORED_SIZE, chunk: int = 2048) -> torch.Tensor:
    """Byerly's smallNORB preprocessing: first image of each pair, inverted, area-resized.

    ``pairs`` [N, 2, H, W] uint8 -> [N, 1, size, size] uint8. Done in chunks to bound memory.
    """
    import torch
    import torch.nn.functional as F

    first = torch.from_numpy(pairs[:, :1])  # [N, 1, H, W], a view
    out = torch.empty((len(first), 1, size, size), dtype=torch.uint8)
    for start in range(0, len(first), chunk):
        x = 255.0 - first[start : start + chunk].float()  # inverted, [n, 1, H, W]
        x = F.interpolate(x, size=(size, size), mode="area")  # [n, 1, size, size]
        out[start : start + chunk] = x.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _load_split(data_dir: Path, split: str) -> Arrays:
    import torch

    paths = _check_split(data_dir, split)
    cat = read_norb(paths["cat"])
    bad = (cat < 0) | (cat >= NUM_CLASSES)
    if bad.any():
        value = int(cat[bad][0])
        raise DataError(f"{paths['cat']}: category {value} out of range 0..{NUM_CLASSES - 1}")
    images = preprocess(read_norb(paths["dat"]))
    return images, torch.from_numpy(cat.astype(np.int64))


def load_smallnorb(data_dir: Path) -> tuple[Arrays, Arrays]:
    """((train images [N,1,48,48] uint8, labels [N] int64), (test ...)), preprocessed."""
    return _load_split(data_dir, "train"), _load_split(data_dir, "test")
