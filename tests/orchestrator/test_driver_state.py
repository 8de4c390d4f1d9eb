"""Tune's own state lives on the driver's disk, never in the grid's storage."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.driver_state import driver_state_dir, tune_location
from trainers.errors import ConfigError


def test_the_folder_comes_from_the_variable_then_xdg_then_home(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = tmp_path / "store"
    monkeypatch.setenv("LESSDATA_DRIVER_STATE", str(tmp_path / "state"))
    assert driver_state_dir(storage) == tmp_path / "state"
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
    monkeypatch.delenv("LESSDATA_DRIVER_STATE")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert driver_state_dir(storage) == tmp_path / "xdg" / "lessdata"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert driver_state_dir(storage) == tmp_path / "home" / ".local" / "state" / "lessdata"


@pytest.mark.parametrize("inside", [".", "tune", "a/b/../c"])
def test_a_folder_inside_the_storage_is_refused(inside: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    storage = tmp_path / "store"
    monkeypatch.setenv("LESSDATA_DRIVER_STATE", str(storage / inside))
    with pytest.raises(ConfigError, match="inside the grid's storage"):
        driver_state_dir(storage)


def test_one_grid_name_on_two_storages_gets_two_tune_folders(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LESSDATA_DRIVER_STATE", str(tmp_path / "state"))
    path_a, name_a = tune_location(tmp_path / "a", "grid")
    path_b, name_b = tune_location(tmp_path / "b", "grid")
    assert path_a == path_b == str(tmp_path / "state" / "tune")
    assert name_a != name_b and name_a.startswith("grid-")
    assert tune_location(tmp_path / "a", "grid") == (path_a, name_a)
