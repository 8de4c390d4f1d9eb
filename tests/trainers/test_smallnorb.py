"""smallNORB: the NORB matrix format (read/write), the split checks and Byerly's preprocessing."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from trainers.errors import DataError
from trainers.smallnorb import (
    INT32_MAGIC,
    UINT8_MAGIC,
    check_smallnorb,
    file_name,
    load_smallnorb,
    norb_dir,
    norb_header,
    preprocess,
    read_norb,
    write_norb,
)


def write_tiny_norb(
    data_dir: Path, n_train: int = 6, n_test: int = 4, gz: bool = False
) -> dict[str, np.ndarray]:
    """A smallNORB folder in the real format: pair i's first image is the constant 10 * i."""
    root = norb_dir(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        dat = np.zeros((n, 2, 96, 96), np.uint8)
        dat[:, 0] = (10 * np.arange(n, dtype=np.uint8))[:, None, None]
        dat[:, 1] = 200  # the second camera, which preprocessing drops
        cat = (np.arange(n) % 5).astype(np.int32)
        info = np.stack([np.arange(n)] * 4, axis=1).astype(np.int32)
        for kind, array in (("dat", dat), ("cat", cat), ("info", info)):
            name = file_name(split, kind) + (".gz" if gz else "")
            write_norb(root / name, array)
            arrays[f"{split}-{kind}"] = array
    return arrays


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(6 * 2 * 3 * 4, dtype=np.uint8).reshape(6, 2, 3, 4),
        np.array([0, 4, 1, -3, 2**31 - 1], dtype=np.int32),
        np.arange(12, dtype=np.int32).reshape(6, 2),
    ],
    ids=["uint8-4d", "int32-1d", "int32-2d"],
)
def test_round_trip(tmp_path: Path, array: np.ndarray, suffix: str) -> None:
    path = tmp_path / f"m.mat{suffix}"
    write_norb(path, array)
    back = read_norb(path)
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)
    assert norb_header(path).shape == array.shape


def test_writer_uses_the_official_header(tmp_path: Path) -> None:
    write_norb(tmp_path / "cat.mat", np.array([3, 1], np.int32))
    raw = (tmp_path / "cat.mat").read_bytes()
    # magic, ndim 1, then three sizes (unused ones are 1), then little-endian int32 data
    assert raw == struct.pack("<5i2i", INT32_MAGIC, 1, 2, 1, 1, 3, 1)


def test_reader_parses_a_hand_built_file(tmp_path: Path) -> None:
    body = bytes(range(2 * 2 * 3 * 3))
    head = struct.pack("<6i", UINT8_MAGIC, 4, 2, 2, 3, 3)
    (tmp_path / "dat.mat").write_bytes(head + body)
    array = read_norb(tmp_path / "dat.mat")
    assert array.shape == (2, 2, 3, 3)
    assert array[1, 0, 2, 1] == 1 * 18 + 0 * 9 + 2 * 3 + 1


def test_writer_rejects_other_dtypes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint8 or int32"):
        write_norb(tmp_path / "x.mat", np.zeros(3, np.float32))


@pytest.mark.parametrize("gz", [False, True])
def test_load_tiny(tmp_path: Path, gz: bool) -> None:
    arrays = write_tiny_norb(tmp_path, gz=gz)
    check_smallnorb(tmp_path)
    (train_x, train_y), (test_x, test_y) = load_smallnorb(tmp_path)
    assert train_x.shape == (6, 1, 48, 48) and train_x.dtype == torch.uint8
    assert test_x.shape == (4, 1, 48, 48)
    assert train_y.dtype == torch.int64
    assert train_y.tolist() == arrays["train-cat"].tolist()
    # first camera only, inverted: pair i was the constant 10 * i
    assert (train_x[:, 0, 0, 0] == 255 - 10 * torch.arange(6)).all()
    assert (train_x == train_x[:, :, :1, :1]).all()


def test_preprocess_inverts_and_area_resizes() -> None:
    pairs = np.zeros((1, 2, 96, 96), np.uint8)
    pairs[0, 0, :, 48:] = 200  # right half
    pairs[0, 0, 0, 0] = 100  # one pixel of a 2x2 block: averaged with three zeros
    out = preprocess(pairs)
    assert out.shape == (1, 1, 48, 48) and out.dtype == torch.uint8
    assert out[0, 0, 10, 0] == 255 and out[0, 0, 10, 47] == 55
    assert out[0, 0, 0, 0] == 230  # 255 - 100 / 4


def test_missing_file(tmp_path: Path) -> None:
    write_tiny_norb(tmp_path)
    path = norb_dir(tmp_path) / file_name("test", "info")
    path.unlink()
    with pytest.raises(DataError, match="missing") as info:
        check_smallnorb(tmp_path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_wrong_magic(tmp_path: Path) -> None:
    write_tiny_norb(tmp_path)
    path = norb_dir(tmp_path) / file_name("train", "dat")
    raw = bytearray(path.read_bytes())
    raw[:4] = struct.pack("<i", 0x12345678)
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"not a NORB file: magic 0x12345678, expected 0x1e3d4c55"):
        check_smallnorb(tmp_path)
    with pytest.raises(DataError, match="not a NORB file"):
        load_smallnorb(tmp_path)


def test_int32_matrix_where_uint8_expected(tmp_path: Path) -> None:
    write_tiny_norb(tmp_path)
    write_norb(norb_dir(tmp_path) / file_name("train", "dat"), np.zeros((6, 2, 96, 96), np.int32))
    with pytest.raises(DataError, match="magic 0x1e3d4c54, expected 0x1e3d4c55"):
        check_smallnorb(tmp_path)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated(tmp_path: Path, gz: bool) -> None:
    write_tiny_norb(tmp_path)
    path = norb_dir(tmp_path) / file_name("train", "dat")
    raw = path.read_bytes()[:-100]
    expected = f"truncated: expected {24 + 6 * 2 * 96 * 96} bytes from its header, found"
    if gz:
        path.unlink()
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)
    with pytest.raises(DataError, match=expected):
        check_smallnorb(tmp_path)
    with pytest.raises(DataError, match=expected):
        load_smallnorb(tmp_path)


def test_cut_gzip_stream(tmp_path: Path) -> None:
    write_tiny_norb(tmp_path, gz=True)
    path = norb_dir(tmp_path) / (file_name("test", "dat") + ".gz")
    path.write_bytes(path.read_bytes()[:-20])  # loses the gzip trailer and some data
    for run in (check_smallnorb, load_smallnorb):
        with pytest.raises(DataError, match="truncated: gzip stream cut short") as info:
            run(tmp_path)
        assert str(info.value).startswith(str(path))


def test_trailing_data(tmp_path: Path) -> None:
    write_tiny_norb(tmp_path)
    path = norb_dir(tmp_path) / file_name("test", "cat")
    path.write_bytes(path.read_bytes() + b"\0\0\0\0")
    with pytest.raises(DataError, match="trailing data"):
        check_smallnorb(tmp_path)


def test_category_out_of_range(tmp_path: Path) -> None:
    write_tiny_norb(tmp_path)
    write_norb(norb_dir(tmp_path) / file_name("test", "cat"), np.array([0, 1, 7, 2], np.int32))
    check_smallnorb(tmp_path)  # the header is fine; the values are checked at load time
    with pytest.raises(DataError, match="category 7 out of range 0..4"):
        load_smallnorb(tmp_path)


def test_counts_must_agree(tmp_path: Path) -> None:
    write_tiny_norb(tmp_path)
    write_norb(norb_dir(tmp_path) / file_name("train", "cat"), np.zeros(5, np.int32))
    with pytest.raises(DataError, match=r"expected shape \(6,\)"):
        check_smallnorb(tmp_path)
