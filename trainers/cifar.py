"""CIFAR-10 in the official python-pickle format, read with a restricted unpickler.

``data_dir/cifar-10-batches-py/`` holds ``data_batch_1..5``, ``test_batch`` and ``batches.meta``:
pickled dicts (protocol 2, written by Python 2) with ``b'data'`` a uint8 array [rows, 3072] in
row-major CHW order and ``b'labels'`` a list of ints in 0..9. Unpickling runs code named in the
file, so only the globals NumPy needs to rebuild an array are allowed; anything else is a
``DataError``. Any number of rows per batch is accepted (the official files have 10,000).
"""

from __future__ import annotations

import codecs
import logging
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trainers.datafiles import missing_error
from trainers.errors import DataError

if TYPE_CHECKING:  # torch is imported where tensors are made: the driver only checks files
    import torch

__all__ = [
    "MD5",
    "URL",
    "batches_dir",
    "check_cifar10",
    "download_cifar10",
    "has_cifar10",
    "load_cifar10",
    "read_batch",
    "read_pickle",
]

log = logging.getLogger(__name__)

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
META = "batches.meta"
NUM_CLASSES = 10
ROW_BYTES = 3 * 32 * 32
_WHAT = "CIFAR-10 (python version)"

Arrays = tuple["torch.Tensor", "torch.Tensor"]


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as Python 3 protocol-2 pickles use it for bytes, and nothing more."""
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError(f"_codecs.encode only allowed for latin1, got {encoding!r}")
    return codecs.encode(text, "latin1")


# numpy 2 moved numpy.core to numpy._core; pickles may name either. The reconstructor is
# taken from ndarray's own reduce so no private module is imported by name.
_RECONSTRUCT = np.zeros(0, np.uint8).__reduce__()[0]
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals needed to rebuild NumPy arrays (and latin1 bytes)."""

    def find_class(self, module: str, name: str) -> Any:
        """The allowed object for ``module.name``, else ``UnpicklingError``."""
        found = _ALLOWED.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"forbidden global {module}.{name}")
        return found


def read_pickle(path: Path, what: str = _WHAT, name: str = "CIFAR-10") -> Any:
    """Unpickle ``path`` allowing only NumPy array globals; any failure is a one-line DataError.

    Python 2 ``str`` values (the official files) come back as ``bytes``. ``what`` and
    ``name`` word the errors (CIFAR-100's files share this format).
    """
    try:
        with path.open("rb") as f:
            return _RestrictedUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise missing_error(path, what) from None
    except OSError as e:
        raise DataError(f"{path}: unreadable ({type(e).__name__}: {e})") from e
    except Exception as e:  # garbage bytes can make the unpickler raise almost anything
        raise DataError(f"{path}: not a valid {name} pickle ({type(e).__name__}: {e})") from e


def _field(batch: dict[Any, Any], key: str) -> Any:
    # Official files have bytes keys; a batch re-pickled by Python 3 may have str keys.
    for k in (key.encode(), key):
        if k in batch:
            return batch[k]
    raise KeyError(key)


def read_batch(path: Path) -> Arrays:
    """One batch file -> (images [n, 3, 32, 32] uint8, labels [n] int64), validated."""
    import torch

    batch = read_pickle(path)
    if not isinstance(batch, dict):
        raise DataError(f"{path}: expected a pickled dict, found {type(batch).__name__}")
    try:
        data, labels = _field(batch, "data"), _field(batch, "labels")
    except KeyError as e:
        raise DataError(f"{path}: no {e.args[0]!r} entry in the batch dict") from None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        found = (
            f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        )
        raise DataError(
            f"{path}: expected data as a uint8 array [rows, {ROW_BYTES}], found {found}"
        )
    if data.shape[1] != ROW_BYTES:
        raise DataError(f"{path}: expected {ROW_BYTES} bytes per row, found {data.shape[1]}")
    try:
        label_array = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError) as e:
        raise DataError(f"{path}: labels are not a list of ints ({e})") from None
    if len(label_array) != len(data):
        raise DataError(f"{path}: {len(label_array)} labels for {len(data)} images")
    bad = (label_array < 0) | (label_array >= NUM_CLASSES)
    if bad.any():
        raise DataError(f"{path}: label {int(label_array[bad][0])} out of range 0..9")
    images = np.ascontiguousarray(data).reshape(-1, 3, 32, 32)  # row-major CHW
    return torch.from_numpy(images.copy()), torch.from_numpy(label_array)


def batches_dir(data_dir: Path) -> Path:
    """Where the extracted archive puts the batch files under ``data_dir``."""
    return Path(data_dir) / FOLDER


def _paths(data_dir: Path) -> list[Path]:
    return [batches_dir(data_dir) / n for n in (*TRAIN_BATCHES, *TEST_BATCHES, META)]


def has_cifar10(data_dir: Path) -> bool:
    """Whether every batch file and ``batches.meta`` is present."""
    return all(p.is_file() for p in _paths(data_dir))


def check_cifar10(data_dir: Path) -> None:
    """Cheap pre-flight: every file present and framed like a pickle (PROTO first, STOP last)."""
    for path in _paths(data_dir):
        if not path.is_file():
            raise missing_error(path, _WHAT)
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(1)
            f.seek(max(size - 1, 0))
            tail = f.read(1)
        if head != pickle.PROTO:
            raise DataError(
                f"{path}: not a CIFAR-10 pickle: starts with {head!r}, expected b'\\x80'"
            )
        if tail != pickle.STOP:
            raise DataError(f"{path}: truncated: a pickle ends with b'.', found {tail!r}")


def download_cifar10(data_dir: Path) -> None:
    """Download and extract the official archive into ``data_dir`` (md5 checked)."""
    from torchvision.datasets.utils import download_and_extract_archive

    log.info("downloading CIFAR-10 to %s", data_dir)
    download_and_extract_archive(URL, download_root=str(data_dir), md5=MD5)


def _load_split(data_dir: Path, names: tuple[str, ...]) -> Arrays:
    import torch

    parts = [read_batch(batches_dir(data_dir) / name) for name in names]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def load_cifar10(data_dir: Path) -> tuple[Arrays, Arrays]:
    """((train images [N,3,32,32] uint8, labels [N] int64), (test ...)) from the batch files."""
    check_cifar10(data_dir)
    meta = read_pickle(batches_dir(data_dir) / META)
    try:
        names = _field(meta, "label_names") if isinstance(meta, dict) else None
    except KeyError:
        names = None
    if names is None or len(names) != NUM_CLASSES:
        raise DataError(f"{batches_dir(data_dir) / META}: expected {NUM_CLASSES} label_names")
    return _load_split(data_dir, TRAIN_BATCHES), _load_split(data_dir, TEST_BATCHES)
