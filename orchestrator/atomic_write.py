"""Files written whole or not at all, and a full disk said in one line.

``write_atomically`` writes a partial file next to the target and renames it over the
target: a crash mid-write leaves the previous version intact. When the folder lacks the
space (``ENOSPC``, or a quota's ``EDQUOT``) it raises ``StorageError`` naming the folder,
the size of what was being written and the space free there, and removes the partial
file, so a full disk is not filled further by leftovers. The free space is checked
first, so a write that cannot fit is not even started. Used for the trainer checkpoints
(on workers) and the grid record (on the driver).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from pathlib import Path

from trainers.errors import StorageError

__all__ = ["PARTIAL_PREFIX", "human_bytes", "no_space", "storage_failure", "write_atomically"]

PARTIAL_PREFIX = "partial-"
_FULL = {errno.ENOSPC, errno.EDQUOT}


def human_bytes(size: float) -> str:
    """``1.5 MB``, ``812.0 kB``, ``40 B`` (decimal units, as ``df -H``)."""
    units = ("B", "kB", "MB", "GB", "TB")
    step = 0
    while step < len(units) - 1 and round(size, 1) >= 1000:
        size, step = size / 1000, step + 1
    return f"{size:.0f} B" if step == 0 else f"{size:.1f} {units[step]}"


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def no_space(folder: Path, what: str, size: int) -> StorageError:
    """The one line for a ``folder`` too full for ``what`` of ``size`` bytes."""
    free = _free_bytes(folder)
    shown = "unknown" if free is None else human_bytes(free)
    return StorageError(f"no space left in {folder} to write {what}: it needs "
                        f"{human_bytes(size)}, {shown} is free there")


def write_atomically(path: Path, data: bytes, what: str | None = None) -> None:
    """Write ``data`` to ``path`` through a partial file in its folder, then rename.

    ``StorageError`` (one line: folder, size needed, space free) when the folder is full;
    the partial file is gone either way.
    """
    folder = path.parent
    what = what or path.name
    folder.mkdir(parents=True, exist_ok=True)
    free = _free_bytes(folder)
    if free is not None and free < len(data):
        raise no_space(folder, what, len(data))
    tmp = None
    try:
        # ".NAME.partial-XXXX": hidden, and never matching "*.json" or "*.pt" globs
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{PARTIAL_PREFIX}", dir=folder)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException as exc:  # KeyboardInterrupt mid-write too: no partial file left
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in _FULL:
            raise no_space(folder, what, len(data)) from None
        raise


def storage_failure(error: BaseException | str | None) -> str | None:
    """The line of a ``StorageError`` that ended a trial (None for any other error); also
    from the one-line reason the driver's callbacks recorded for a failed trial.

    Ray hands a worker's exception back wrapped (``RayTaskError``, ``TuneError``), as an
    object whose ``cause`` is the original, or only as the worker's traceback text.
    """
    if isinstance(error, str):
        line = re.search(r"(no space left in [^\n]+? is free there)", error)
        return line.group(1).strip() if line else None
    for _ in range(8):  # a short chain: wrapper, cause, its cause
        if error is None:
            return None
        cause = getattr(error, "cause", None)  # RayTaskError: the worker's own exception
        if isinstance(cause, BaseException):
            error = cause  # (the wrapper may subclass StorageError too; its text is Ray's)
            continue
        if isinstance(error, StorageError):
            return str(error)
        text = re.search(r"StorageError: (no space left in [^\n]+)", str(error))
        if text:
            return text.group(1).strip()
        error = error.__cause__
    return None
