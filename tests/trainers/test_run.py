"""``nvml_index``: the CUDA device a trial uses, as NVML numbers it (for the GPU share)."""

from __future__ import annotations

import pytest
import torch

from trainers.run import nvml_index


@pytest.mark.parametrize(("visible", "index", "expected"), [
    (None, 1, 1),  # no CUDA_VISIBLE_DEVICES: the numbers agree
    ("3,5", 0, 3),  # Ray gave this worker GPUs 3 and 5: CUDA's 0 is NVML's 3
    ("3,5", 1, 5),
    ("GPU-1234abcd", 0, None),  # a UUID: not mapped, the static share stands
    ("3", 2, None),  # out of the visible list
])
def test_cuda_index_maps_through_visible_devices(monkeypatch: pytest.MonkeyPatch,
                                                 visible: str | None, index: int,
                                                 expected: int | None) -> None:
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert nvml_index(torch.device("cuda", index)) == expected


def test_no_index_off_cuda() -> None:
    assert nvml_index(torch.device("cpu")) is None
