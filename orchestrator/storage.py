"""Where a grid's record, lease and checkpoints live: a local folder or an object store.

Runs on the driver and on the workers (the trainable reads and writes its checkpoints
here). ``--storage`` is either a folder that every node mounts (NFS, a CSI volume) or a
URI that ``pyarrow.fs`` opens: ``s3://bucket/prefix``, ``gs://bucket/prefix``,
``abfs://...``, ``hdfs://...``; then no node needs a shared volume. pyarrow is a Ray
dependency already, so an object store costs no new package.

An S3-compatible store other than AWS (MinIO, Ceph, moto) is reached through
``$LESSDATA_S3_ENDPOINT`` or the AWS CLI's ``$AWS_ENDPOINT_URL_S3`` /
``$AWS_ENDPOINT_URL`` (``http://host:port``; pyarrow itself reads none of them);
credentials come from the usual ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``
(or a node's instance role).

What each backend guarantees:

- ``write_bytes``: a reader sees the old bytes or the new ones, never a part. A folder:
  written beside, then renamed. An object store: one PUT (or a multipart upload) makes the
  object appear whole when it completes.
- ``publish`` / ``read_published`` (checkpoints): a folder as ``write_bytes``; an object
  store writes the bytes under a new, unique key, then switches a small pointer object
  (``KEY.latest``) to it, and only then deletes older versions: the pointer always names a
  complete object, whatever the store does with large uploads.
- the lease: exclusive on a folder (``flock``, ``orchestrator.lease``) and in an S3 bucket
  (conditional writes, ``orchestrator.s3_lease``); best effort on the other object stores
  (``orchestrator.lease``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from orchestrator.atomic_write import PARTIAL_PREFIX, write_atomically
from trainers.errors import StorageError

__all__ = ["S3_SCHEMES", "LocalStore", "ObjectStore", "Store", "is_remote", "join",
           "open_store", "s3_endpoint", "storage_location"]

S3_SCHEMES = ("s3", "s3a")
"""The URI schemes of an S3 (or S3-compatible) bucket."""

LATEST = ".latest"
"""The suffix of a published key's pointer object on an object store."""


def is_remote(location: str) -> bool:
    """True for a URI with a scheme (``s3://...``), False for a path or ``file://``."""
    scheme = urlparse(location).scheme
    return len(scheme) > 1 and scheme != "file"  # one letter: a Windows drive


def storage_location(value: str | Path) -> str:
    """``value`` normalised: a URI without its trailing '/', a path made absolute."""
    text = str(value)
    if is_remote(text):
        return text.rstrip("/")
    if text.startswith("file://"):
        text = text[len("file://"):]
    return str(Path(text).expanduser().resolve())


def join(location: str, *parts: str) -> str:
    """``location`` / ``parts`` for a path or a URI alike."""
    return "/".join([location.rstrip("/"), *parts])


class Store:
    """Bytes under keys ('grids/g.json') below one location; keys use '/'."""

    location: str

    def read_bytes(self, key: str) -> bytes:
        """The bytes at ``key``; FileNotFoundError when there are none."""
        raise NotImplementedError

    def write_bytes(self, key: str, data: bytes, what: str | None = None) -> None:
        """Replace ``key`` as a whole (module docstring: what a reader can see); ``what``
        names it in a full-disk error."""
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def list(self, prefix: str) -> list[str]:
        """The keys of the files directly under ``prefix``, sorted ([] if none)."""
        raise NotImplementedError

    def modified(self, key: str) -> float:
        """When ``key`` was last written (seconds since the epoch)."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        """Remove ``key``; nothing when it is absent."""
        raise NotImplementedError

    def delete_all(self) -> None:
        """Remove everything below this store's location."""
        raise NotImplementedError

    def publish(self, key: str, data: bytes, what: str | None = None) -> None:
        """Replace ``key`` so that ``read_published`` sees the old or the new bytes."""
        self.write_bytes(key, data, what)

    def read_published(self, key: str) -> bytes | None:
        """What ``publish`` last wrote under ``key``; None when nothing was."""
        try:
            return self.read_bytes(key)
        except FileNotFoundError:
            return None


class LocalStore(Store):
    """A folder (on a volume that every node mounts, for a cluster)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)

    def _path(self, key: str) -> Path:
        return self.root / key if key else self.root

    def read_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def write_bytes(self, key: str, data: bytes, what: str | None = None) -> None:
        # Written beside, then renamed: a crash mid-write leaves the previous file intact,
        # a full disk is one StorageError line and leaves no partial file.
        write_atomically(self._path(key), data, what)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def list(self, prefix: str) -> list[str]:
        folder = self._path(prefix)
        if not folder.is_dir():
            return []
        return sorted(f"{prefix}/{p.name}".lstrip("/") for p in folder.iterdir()
                      if p.is_file() and PARTIAL_PREFIX not in p.name)

    def modified(self, key: str) -> float:
        return self._path(key).stat().st_mtime

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_all(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class ObjectStore(Store):
    """A bucket prefix, through ``pyarrow.fs`` (S3, GCS, Azure, HDFS)."""

    def __init__(self, location: str) -> None:
        self.location = location
        self._opened: tuple[Any, str] | None = None

    def _open(self) -> tuple[Any, str]:
        # On first use: from_uri may ask the store for the bucket's region.
        if self._opened is None:
            self._opened = _filesystem(self.location)
        return self._opened

    @property
    def fs(self) -> Any:
        return self._open()[0]

    @property
    def root(self) -> str:
        return self._open()[1]

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}" if key else self.root

    @contextlib.contextmanager
    def _failing(self, what: str, key: str) -> Iterator[None]:
        """pyarrow's errors (no such bucket, refused, denied) as one StorageError line;
        a missing key stays a FileNotFoundError."""
        try:
            yield
        except FileNotFoundError:
            raise
        except OSError as exc:
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            raise StorageError(f"cannot {what} the storage at {self.location}/{key}: {first}"
                               ) from None

    def read_bytes(self, key: str) -> bytes:
        with self._failing("read", key), self.fs.open_input_stream(self._path(key)) as src:
            return bytes(src.read())

    def write_bytes(self, key: str, data: bytes, what: str | None = None) -> None:
        with self._failing("write", key), self.fs.open_output_stream(self._path(key)) as out:
            out.write(data)

    def exists(self, key: str) -> bool:
        from pyarrow.fs import FileType

        with self._failing("read", key):
            return bool(self.fs.get_file_info(self._path(key)).type != FileType.NotFound)

    def list(self, prefix: str) -> list[str]:
        from pyarrow.fs import FileSelector, FileType

        with self._failing("read", prefix):
            infos = self.fs.get_file_info(FileSelector(self._path(prefix),
                                                       allow_not_found=True))
        start = len(self.root) + 1
        return sorted(i.path[start:] for i in infos if i.type == FileType.File)

    def modified(self, key: str) -> float:
        mtime = self.fs.get_file_info(self._path(key)).mtime
        if mtime is None:
            raise FileNotFoundError(self._path(key))
        return float(mtime.timestamp())

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(self._path(key))

    def delete_all(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_dir(self.root)

    def publish(self, key: str, data: bytes, what: str | None = None) -> None:
        # A new object under a unique key, then the pointer to it, then the old versions:
        # at every moment the pointer names a complete object.
        version = f"{key}.{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        self.write_bytes(version, data)
        self.write_bytes(key + LATEST, version.rsplit("/", 1)[-1].encode())
        folder = key.rsplit("/", 1)[0] if "/" in key else ""
        name = key.rsplit("/", 1)[-1]
        for old in self.list(folder):
            base = old.rsplit("/", 1)[-1]
            if base.startswith(name + ".") and base != name + LATEST and old != version:
                self.delete(old)

    def read_published(self, key: str) -> bytes | None:
        folder = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
        for _ in range(3):  # the pointer moved on and its old object went, between reads
            try:
                version = self.read_bytes(key + LATEST).decode().strip()
            except FileNotFoundError:
                return None
            try:
                return self.read_bytes(folder + version)
            except FileNotFoundError:
                continue
        raise StorageError(f"{self.location}/{key}{LATEST} names a checkpoint that is gone")


def open_store(location: str | Path) -> Store:
    """The store at ``location`` (a path or a URI); nothing is created until written."""
    text = storage_location(location)
    return ObjectStore(text) if is_remote(text) else LocalStore(Path(text))


def s3_endpoint() -> str | None:
    """The S3-compatible endpoint named in the environment (module docstring), or None."""
    for name in ("LESSDATA_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        if os.environ.get(name):
            return os.environ[name]
    return None


def _filesystem(location: str) -> tuple[Any, str]:
    """(pyarrow filesystem, path below it) for ``location``."""
    url = urlparse(location)
    endpoint = s3_endpoint() if url.scheme in S3_SCHEMES and "?" not in location else None
    return _cached_filesystem(location, endpoint)


@functools.lru_cache(maxsize=32)
def _cached_filesystem(location: str, endpoint: str | None) -> tuple[Any, str]:
    # One client per (location, endpoint) and process: a worker saving a checkpoint
    # every epoch does not pay a new connection each time.
    from pyarrow import fs

    try:
        if endpoint is None:
            filesystem, root = fs.FileSystem.from_uri(location)
            return filesystem, root.rstrip("/")
        url, end = urlparse(location), urlparse(endpoint)
        if not end.netloc:
            raise StorageError(f"the S3 endpoint {endpoint!r} is not a URL like "
                               "http://host:port (LESSDATA_S3_ENDPOINT or AWS_ENDPOINT_URL)")
        filesystem = fs.S3FileSystem(endpoint_override=end.netloc, scheme=end.scheme or "https",
                                     region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
        return filesystem, f"{url.netloc}{url.path}".rstrip("/")
    except (OSError, ValueError, TypeError) as exc:
        raise StorageError(f"cannot open the storage {location}: {exc}") from None
