"""Shared helpers for the binary dataset files (IDX, NORB): find, size-check and read.

Every file may be stored plain or gzipped (``name`` or ``name.gz``). Each failure becomes a
one-line ``DataError`` naming the file and what was expected.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from io import BufferedIOBase
from pathlib import Path
from typing import TYPE_CHECKING

from trainers.errors import DataError, MissingDataError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "check_labels",
    "check_size",
    "find_file",
    "missing_error",
    "open_data",
    "read_body",
    "read_header",
    "size_error",
    "stored_size",
]

_GZIP_MAGIC = b"\x1f\x8b"


def missing_error(path: Path, what: str) -> DataError:
    """The one error for a dataset file that is not there."""
    return MissingDataError(f"{path}: missing (expected the official {what} file; "
                            "see docs/data.md)")


def find_file(path: Path, what: str) -> Path:
    """``path`` if it exists, else ``path.gz`` if that exists, else a 'missing' DataError."""
    if path.is_file():
        return path
    gz = path.with_name(path.name + ".gz")
    if gz.is_file():
        return gz
    raise missing_error(path, what)


def _is_gzip(path: Path) -> bool:
    return path.suffix == ".gz"


def open_data(path: Path) -> BufferedIOBase:
    """Open ``path`` for binary reading, decompressing if its name ends in ``.gz``."""
    if _is_gzip(path):
        return gzip.GzipFile(path, "rb")
    return path.open("rb")


def stored_size(path: Path) -> int:
    """Uncompressed size in bytes, without decompressing (gzip: its ISIZE trailer)."""
    if not _is_gzip(path):
        return path.stat().st_size
    with path.open("rb") as f:
        if f.read(2) != _GZIP_MAGIC:
            raise DataError(f"{path}: not a gzip file (name ends in .gz)")
        f.seek(-4, 2)
        # ISIZE is the uncompressed size mod 2**32: exact for every official file (< 4 GiB).
        return int(struct.unpack("<I", f.read(4))[0])


def read_header(f: BufferedIOBase, path: Path, nbytes: int) -> bytes:
    """Exactly ``nbytes`` header bytes from an open file, or a 'truncated' DataError."""
    try:
        head = f.read(nbytes)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: unreadable ({type(e).__name__}: {e})") from e
    if len(head) < nbytes:
        raise DataError(f"{path}: truncated: header needs {nbytes} bytes, found {len(head)}")
    return head


def check_size(path: Path, expected: int) -> None:
    """DataError unless the (uncompressed) size of ``path`` is ``expected`` bytes."""
    found = stored_size(path)
    if found != expected and _is_gzip(path):
        found = _count_gzip(path, expected)  # the trailer of a cut stream is garbage: count
    if found != expected:
        raise size_error(path, expected, found)


def _count_gzip(path: Path, expected: int) -> int:
    """Uncompressed size by decompressing (only on the error path, so checks stay cheap)."""
    count = 0
    try:
        with gzip.open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                count += len(chunk)
    except EOFError:
        raise DataError(
            f"{path}: truncated: gzip stream cut short, expected {expected} bytes from its header"
        ) from None
    except (OSError, zlib.error) as e:
        raise DataError(f"{path}: unreadable ({type(e).__name__}: {e})") from e
    return count


def size_error(path: Path, expected: int, found: int) -> DataError:
    """'truncated' when shorter than the header says, 'trailing data' when longer."""
    kind = "truncated" if found < expected else "has trailing data"
    return DataError(f"{path}: {kind}: expected {expected} bytes from its header, found {found}")


def read_body(f: BufferedIOBase, path: Path, header_bytes: int, body_bytes: int) -> bytearray:
    """Read exactly ``body_bytes`` after the header and make sure nothing follows.

    Returns a writable buffer, so ``np.frombuffer`` on it can go to ``torch.from_numpy``.
    """
    buf = bytearray(body_bytes)
    view = memoryview(buf)
    got = 0
    try:
        while got < body_bytes:
            n = f.readinto(view[got:])
            if not n:
                break
            got += n
        extra = len(f.read(1)) if got == body_bytes else 0
    except EOFError:  # a cut gzip stream
        raise size_error(path, header_bytes + body_bytes, header_bytes + got) from None
    except (OSError, zlib.error) as e:
        raise DataError(f"{path}: unreadable ({type(e).__name__}: {e})") from e
    if got < body_bytes or extra:
        raise size_error(path, header_bytes + body_bytes, header_bytes + got + extra)
    return buf


def check_labels(path: Path, labels: np.ndarray, num_classes: int, low: int = 0) -> None:
    """DataError naming the first label outside ``low .. low + num_classes - 1``."""
    if labels.size and (int(labels.min()) < low or int(labels.max()) >= low + num_classes):
        bad = int(labels.min()) if int(labels.min()) < low else int(labels.max())
        raise DataError(f"{path}: label {bad} out of range {low}..{low + num_classes - 1}")
