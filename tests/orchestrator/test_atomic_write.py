"""Atomic writes on a really full file system (a small tmpfs): one line naming the folder,
the size needed and the space free; no partial file; the previous version kept."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from ray.exceptions import RayTaskError

from orchestrator import atomic_write
from orchestrator.atomic_write import human_bytes, storage_failure, write_atomically
from orchestrator.lease import hold_lease
from orchestrator.plan import PlanOptions, resolve_plan, write_plan
from trainers.errors import StorageError


def _mount(path: Path, options: str) -> Path:
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    return path


@pytest.fixture
def tiny(tmp_path: Path) -> Iterator[Path]:
    """A 64 kB tmpfs."""
    mount = _mount(tmp_path / "tiny", "size=64k")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if "partial" in p.name)


def test_a_write_that_fits_replaces_the_file(tiny: Path) -> None:
    target = tiny / "ckpt" / "trainer.pt"
    write_atomically(target, b"a" * 10_000)
    write_atomically(target, b"b" * 20_000)
    assert target.read_bytes() == b"b" * 20_000 and _leftovers(target.parent) == []


def test_a_write_too_large_for_the_free_space_is_one_line(tiny: Path) -> None:
    target = tiny / "ckpt" / "trainer.pt"
    write_atomically(target, b"a" * 10_000)
    with pytest.raises(StorageError) as info:
        write_atomically(target, b"b" * 200_000, "a checkpoint")
    line = str(info.value)
    assert line.startswith(f"no space left in {tiny / 'ckpt'} to write a checkpoint: it "
                           "needs 200.0 kB, ") and line.endswith(" kB is free there"), line
    assert "\n" not in line
    assert target.read_bytes() == b"a" * 10_000 and _leftovers(target.parent) == []


def test_enospc_mid_write_removes_the_partial_file(tiny: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the free space is not known beforehand (or another writer took it since), the
    write itself meets ENOSPC: the same line, and the partial file is removed."""
    monkeypatch.setattr(atomic_write, "_free_bytes", lambda folder: None)
    with pytest.raises(StorageError, match=r"it needs 200\.0 kB, unknown is free there"):
        write_atomically(tiny / "trainer.pt", b"b" * 200_000, "a checkpoint")
    assert list(tiny.iterdir()) == []


def test_no_inode_left_is_a_full_disk_too(tmp_path: Path) -> None:
    mount = _mount(tmp_path / "inodes", "size=1m,nr_inodes=2")  # the root folder + 1
    try:
        write_atomically(mount / "a.json", b"{}")
        with pytest.raises(StorageError, match="no space left in"):
            write_atomically(mount / "b.json", b"{}")
        assert sorted(p.name for p in mount.iterdir()) == ["a.json"]
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_storage_failure_finds_the_line_in_what_ray_hands_back() -> None:
    line = "no space left in /s/checkpoints/x to write a checkpoint: it needs 1.0 MB, 4 B"
    wrapped = RayTaskError("train", "Traceback ...\nStorageError: " + line,
                           StorageError(line)).as_instanceof_cause()
    assert isinstance(wrapped, StorageError)  # Ray's dual class: its own text is the traceback
    assert storage_failure(wrapped) == line
    assert storage_failure(RuntimeError(f"Traceback (most recent call last):\n  ...\n"
                                        f"trainers.errors.StorageError: {line}\n")) == line
    assert storage_failure(RuntimeError("CUDA out of memory")) is None
    assert storage_failure(None) is None


def test_human_bytes() -> None:
    assert [human_bytes(b) for b in (0, 999, 1000, 303_195, 999_999, 4.2e9)] == [
        "0 B", "999 B", "1.0 kB", "303.2 kB", "1.0 MB", "4.2 GB"]


def _fill(folder: Path, leave: int) -> None:
    """Fill ``folder``'s file system up to ``leave`` bytes free (in whole pages)."""
    free = shutil.disk_usage(folder).free
    (folder / "filler.bin").write_bytes(b"\0" * max(0, free - leave))


def test_the_grid_record_and_the_lease_on_a_full_disk(tiny: Path, tmp_path: Path) -> None:
    """The driver's own writes: the record (``write_plan``) and the lease say the same line."""
    grid = tmp_path / "g.yaml"
    grid.write_text(yaml.safe_dump({
        "name": "full", "dataset": "digits", "epochs": 2, "experiments": ["Benchmark", "E1"],
        "model": {"width": 0.125}, "training": {"train_subset": 100, "test_subset": 50}}))
    plan = resolve_plan(PlanOptions(grid=str(grid), storage=tiny / "s",
                                    tracking_uri=f"sqlite:///{tmp_path}/m.db"))
    (tiny / "s" / "grids").mkdir(parents=True)
    _fill(tiny, leave=4096)
    with pytest.raises(StorageError, match=r"no space left in .*/s/grids to write the "
                                           r"grid's record: it needs \d+\.\d kB, 4\.1 kB is"):
        write_plan(plan)
    (tiny / "filler.bin").unlink()
    _fill(tiny, leave=0)
    lease = tiny / "s" / "leases" / "full.json"
    with pytest.raises(StorageError, match=r"to write the grid's lease: it needs \d+ B, 0 B"), \
            hold_lease(lease, "grid 'full'"):
        pass
    assert [p for p in tiny.rglob("*") if "partial" in p.name] == []
