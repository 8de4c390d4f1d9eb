"""CIFAR-10: tiny batch files in the official pickle format, and the restricted unpickler."""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from trainers.cifar import batches_dir, check_cifar10, load_cifar10, read_batch, read_pickle
from trainers.errors import DataError

LABEL_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer"]
LABEL_NAMES += [b"dog", b"frog", b"horse", b"ship", b"truck"]


def _batch(name: str, labels: list[int], data: np.ndarray) -> dict[bytes, object]:
    return {
        b"batch_label": name.encode(),
        b"labels": labels,
        b"data": data,
        b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))],
    }


def _dump(path: Path, obj: object) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))


def write_tiny_cifar(data_dir: Path, rows: int = 4, test_rows: int = 3) -> Path:
    """Five train batches of ``rows`` and a test batch, in the real format.

    Row r of train batch b has label (b * rows + r) % 10 and every byte equal to that index.
    """
    root = batches_dir(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    for b in range(5):
        index = np.arange(b * rows, (b + 1) * rows)
        data = np.repeat(index.astype(np.uint8)[:, None], 3072, axis=1)
        _dump(
            root / f"data_batch_{b + 1}",
            _batch(f"training batch {b + 1} of 5", [int(i) % 10 for i in index], data),
        )
    data = np.zeros((test_rows, 3072), np.uint8)
    data[1, 2 * 1024 + 5 * 32 + 7] = 123  # channel 2 (blue), row 5, column 7
    _dump(root / "test_batch", _batch("testing batch 1 of 1", [9, 0, 3][:test_rows], data))
    meta = {b"num_cases_per_batch": rows, b"label_names": LABEL_NAMES, b"num_vis": 3072}
    _dump(root / "batches.meta", meta)
    return root


def test_load_tiny(tmp_path: Path) -> None:
    write_tiny_cifar(tmp_path)
    check_cifar10(tmp_path)
    (train_x, train_y), (test_x, test_y) = load_cifar10(tmp_path)
    assert train_x.shape == (20, 3, 32, 32) and train_x.dtype == torch.uint8
    assert test_x.shape == (3, 3, 32, 32)
    assert train_y.dtype == torch.int64
    assert train_y.tolist() == [i % 10 for i in range(20)]
    assert test_y.tolist() == [9, 0, 3]
    assert (train_x == torch.arange(20, dtype=torch.uint8)[:, None, None, None]).all()


def test_pixel_layout_is_row_major_chw(tmp_path: Path) -> None:
    write_tiny_cifar(tmp_path)
    _, (test_x, _) = load_cifar10(tmp_path)
    assert test_x[1, 2, 5, 7] == 123
    assert int(test_x.sum()) == 123


def _binstring(b: bytes) -> bytes:
    """A Python 2 ``str`` as protocol 2 writes it (SHORT_BINSTRING / BINSTRING)."""
    if len(b) < 256:
        return b"U" + bytes([len(b)]) + b
    return b"T" + struct.pack("<I", len(b)) + b


def _python2_batch(row: bytes, label: int) -> bytes:
    """A one-row batch, opcode for opcode as Python 2 / NumPy 1 wrote the official files."""
    dtype = (
        b"cnumpy\ndtype\n" + _binstring(b"u1") + b"K\x00K\x01\x87R"
        b"(K\x03" + _binstring(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    )
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85"
        + _binstring(b"b")
        + b"\x87R(K\x01K\x01M\x00\x0c\x86"  # state: version 1, shape (1, 3072)
        + dtype
        + b"\x89"
        + _binstring(row)
        + b"tb"
    )
    labels = _binstring(b"labels") + b"]K" + bytes([label]) + b"a"
    return b"\x80\x02}(" + _binstring(b"data") + array + labels + b"u."


def test_python2_pickle_as_in_the_official_files(tmp_path: Path) -> None:
    path = tmp_path / "data_batch_1"
    path.write_bytes(_python2_batch(bytes(range(256)) * 12, 7))
    images, labels = read_batch(path)
    assert images.shape == (1, 3, 32, 32) and labels.tolist() == [7]
    assert images[0, 0, 0, :3].tolist() == [0, 1, 2]
    assert images[0, 2, 31, -1] == 255


def test_str_keys_accepted(tmp_path: Path) -> None:
    path = tmp_path / "batch"
    _dump(path, {"data": np.zeros((2, 3072), np.uint8), "labels": [1, 2]})
    images, labels = read_batch(path)
    assert images.shape == (2, 3, 32, 32) and labels.tolist() == [1, 2]


def test_missing_batch(tmp_path: Path) -> None:
    root = write_tiny_cifar(tmp_path)
    (root / "data_batch_3").unlink()
    for run in (check_cifar10, load_cifar10):
        with pytest.raises(DataError, match=r"data_batch_3: missing \(expected the official"):
            run(tmp_path)


def test_truncated_pickle(tmp_path: Path) -> None:
    root = write_tiny_cifar(tmp_path)
    path = root / "data_batch_2"
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(DataError, match="data_batch_2: truncated"):
        check_cifar10(tmp_path)
    with pytest.raises(DataError, match="data_batch_2: not a valid CIFAR-10 pickle"):
        read_batch(path)


def test_garbage_file(tmp_path: Path) -> None:
    root = write_tiny_cifar(tmp_path)
    (root / "test_batch").write_bytes(b"\x80\x02" + np.random.default_rng(0).bytes(64) + b".")
    with pytest.raises(DataError, match="test_batch: not a valid CIFAR-10 pickle"):
        load_cifar10(tmp_path)
    (root / "test_batch").write_bytes(b"hello")
    with pytest.raises(DataError, match="test_batch: not a CIFAR-10 pickle"):
        check_cifar10(tmp_path)


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def test_forbidden_global_is_rejected(tmp_path: Path) -> None:
    root = write_tiny_cifar(tmp_path)
    marker = tmp_path / "pwned"
    evil = _batch("x", [0], np.zeros((1, 3072), np.uint8))
    evil[b"filenames"] = [_Evil(marker)]
    _dump(root / "data_batch_1", evil)
    with pytest.raises(DataError, match=r"forbidden global (os|posix)\.system"):
        load_cifar10(tmp_path)
    assert not marker.exists()


def test_codecs_encode_only_for_latin1(tmp_path: Path) -> None:
    # protocol-2 bytes are rebuilt with _codecs.encode(text, 'latin1'); other codecs are refused
    path = tmp_path / "p"
    path.write_bytes(b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x06\x00\x00\x00rot_13\x86R.")
    with pytest.raises(DataError, match="only allowed for latin1"):
        read_pickle(path)


@pytest.mark.parametrize(
    ("data", "labels", "message"),
    [
        (np.zeros((2, 3072), np.uint8), [0, 10], "label 10 out of range 0..9"),
        (np.zeros((2, 3072), np.uint8), [0], "1 labels for 2 images"),
        (np.zeros((2, 1024), np.uint8), [0, 1], "expected 3072 bytes per row, found 1024"),
        (np.zeros((2, 3072), np.float32), [0, 1], "expected data as a uint8 array"),
    ],
)
def test_invalid_batches(tmp_path: Path, data: np.ndarray, labels: list[int], message: str) -> None:
    path = tmp_path / "data_batch_1"
    _dump(path, _batch("x", labels, data))
    with pytest.raises(DataError, match=message):
        read_batch(path)


def test_meta_needs_ten_label_names(tmp_path: Path) -> None:
    root = write_tiny_cifar(tmp_path)
    _dump(root / "batches.meta", {b"label_names": LABEL_NAMES[:9]})
    with pytest.raises(DataError, match="batches.meta: expected 10 label_names"):
        load_cifar10(tmp_path)
