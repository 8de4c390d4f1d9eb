"""The dataset registry and loading: every split becomes a uint8 ``Split`` held in memory.

A dataset is loaded once per trial (on the driver or a worker, whichever calls
``load_dataset``) and moved whole to the trial's device; batches are index gathers on it.
File formats and their checks live in ``trainers.mnist``, ``trainers.cifar``,
``trainers.smallnorb``, ``trainers.torchvision_sets`` (FashionMNIST, KMNIST, CIFAR-100) and
``trainers.svhn``, the last two in torchvision's layouts; ``digits`` is scikit-learn's
embedded 8x8 set and needs no files.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trainers import cifar, mnist, smallnorb, svhn, torchvision_sets
from trainers.errors import ConfigError, DataError, MissingDataError

if TYPE_CHECKING:  # imported where tensors are made: the driver only checks files
    import torch

__all__ = [
    "DatasetInfo",
    "Split",
    "builtin_dataset",
    "check_dataset",
    "download_dataset",
    "dataset_info",
    "default_data_dir",
    "load_dataset",
]

Arrays = tuple["torch.Tensor", "torch.Tensor"]


@dataclass(frozen=True)
class DatasetInfo:
    """What the model and the trainer need to know about a dataset."""

    name: str
    num_classes: int
    channels: int
    stored_size: int
    """H == W of the stored uint8 images."""
    input_size: int
    """H == W fed to the model (smallNORB: 32x32 crops of the stored 48x48)."""
    train_size: int
    """Official training-set size."""
    test_size: int
    """Official test-set size."""


@dataclass(frozen=True)
class Split:
    """One split in memory: ``images`` [N, C, H, W], ``labels`` int64 [N], same device.

    Images are uint8 (every built-in set) or float32 (a plugin's, fed to the model as is).
    """

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        import torch

        if self.images.dtype not in (torch.uint8, torch.float32) or self.images.dim() != 4:
            raise ValueError(
                f"images must be uint8 or float32 [N, C, H, W], got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.dim() != 1:
            raise ValueError(
                f"labels must be int64 [N], got {self.labels.dtype} {tuple(self.labels.shape)}"
            )
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)=} != {len(self.labels)=}")

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> Split:
        """The same split on ``device`` (no copy if it is already there)."""
        return Split(self.images.to(device), self.labels.to(device))

    def subset(self, indices: torch.Tensor) -> Split:
        """The samples at ``indices`` (an index gather, on the split's device)."""
        idx = indices.to(self.labels.device)
        return Split(self.images[idx], self.labels[idx])


_INFOS = {
    "mnist": DatasetInfo("mnist", 10, 1, 28, 28, 60_000, 10_000),
    "cifar10": DatasetInfo("cifar10", 10, 3, 32, 32, 50_000, 10_000),
    "smallnorb": DatasetInfo("smallnorb", 5, 1, smallnorb.STORED_SIZE, 32, 24_300, 24_300),
    "digits": DatasetInfo("digits", 10, 1, 28, 28, 1_437, 360),
    "fashionmnist": DatasetInfo("fashionmnist", 10, 1, 28, 28, 60_000, 10_000),
    "kmnist": DatasetInfo("kmnist", 10, 1, 28, 28, 60_000, 10_000),
    "cifar100": DatasetInfo("cifar100", 100, 3, 32, 32, 50_000, 10_000),
    "svhn": DatasetInfo("svhn", 10, 3, 32, 32, 73_257, 26_032),
}


@dataclass(frozen=True)
class _Files:
    """How one file-backed dataset is checked, found, downloaded and read."""

    check: Callable[[Path], None]
    present: Callable[[Path], bool]
    download: Callable[[Path], None]
    load: Callable[[Path], tuple[Arrays, Arrays]]


_FILES = {
    "mnist": _Files(mnist.check_mnist, mnist.has_mnist, mnist.download_mnist, mnist.load_mnist),
    "cifar10": _Files(
        cifar.check_cifar10, cifar.has_cifar10, cifar.download_cifar10, cifar.load_cifar10
    ),
    "smallnorb": _Files(
        smallnorb.check_smallnorb,
        smallnorb.has_smallnorb,
        smallnorb.download_smallnorb,
        smallnorb.load_smallnorb,
    ),
    **{
        name: _Files(files.check, files.present, files.download, files.load)
        for name, files in (
            ("fashionmnist", torchvision_sets.FASHION_MNIST),
            ("kmnist", torchvision_sets.KMNIST),
            ("cifar100", torchvision_sets.CIFAR100),
            ("svhn", svhn.SVHN),
        )
    },
}


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry for ``name``; ``ConfigError`` listing the valid names otherwise."""
    try:
        return _INFOS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown dataset {name!r}; expected one of {', '.join(_INFOS)}"
        ) from None


def default_data_dir() -> Path:
    """``$LESSDATA_DATA_DIR`` if set, else ``~/.cache/lessdata``."""
    env = os.environ.get("LESSDATA_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lessdata"


def _resolve(data_dir: Path | None) -> Path:
    return Path(data_dir).expanduser() if data_dir is not None else default_data_dir()


def check_dataset(name: str, data_dir: Path | None) -> None:
    """Cheap pre-flight, no full load: files present, headers and sizes right.

    Raises ``DataError`` with one line naming the file and what was expected. ``digits`` is
    embedded and always passes.
    """
    dataset_info(name)
    if name in _FILES:
        _check(name, _resolve(data_dir))


def _check(name: str, root: Path) -> None:
    """``name``'s files in ``root``; a missing one's error names the command that fetches it."""
    try:
        _FILES[name].check(root)
    except MissingDataError as exc:
        raise MissingDataError(f"{exc}; fetch it with: lessdata download {name} "
                               f"--data-dir {root}") from None


def download_dataset(name: str, data_dir: Path | None) -> Path:
    """Fetch ``name``'s official files into ``data_dir`` unless they are there (the
    downloaders check md5s), then check them; the folder. ``digits`` is embedded: nothing
    to fetch. A failed download (no network) is one ``DataError`` line."""
    dataset_info(name)
    root = _resolve(data_dir)
    if name == "digits":
        return root
    files = _FILES[name]
    if not files.present(root):
        root.mkdir(parents=True, exist_ok=True)
        try:
            files.download(root)
        except (OSError, RuntimeError) as exc:  # URLError is an OSError; torchvision's
            text = " ".join(str(getattr(exc, "reason", None) or exc).split())
            reason = text if len(text) <= 200 else text[:199] + "…"
            raise DataError(f"cannot download {name} into {root} (no network?): "
                            f"{reason}") from None
    _check(name, root)
    return root


def load_dataset(
    name: str, data_dir: Path | None, *, download: bool = False
) -> tuple[Split, Split]:
    """(train, test) on the CPU, images uint8 at ``stored_size``.

    With ``download``, missing official files are fetched first (not for ``digits``).
    """
    dataset_info(name)
    if name == "digits":
        return _load_digits()
    files, root = _FILES[name], _resolve(data_dir)
    if download and not files.present(root):
        root.mkdir(parents=True, exist_ok=True)
        files.download(root)
    _check(name, root)
    train, test = files.load(root)
    return Split(*train), Split(*test)


def builtin_dataset(name: str, data_dir: str | None = None, download: bool = False
                    ) -> dict[str, Any]:
    """A built-in set as a dataset factory returns it (``trainers.plugins``): both splits,
    its class count, and its own augmentation and test-time transform on stored batches."""
    from trainers.augment import eval_transform, train_transform

    info = dataset_info(name)
    train, test = load_dataset(name, None if data_dir is None else Path(data_dir),
                               download=download)
    return {"train": (train.images, train.labels), "test": (test.images, test.labels),
            "num_classes": info.num_classes, "image_size": info.input_size,
            "train_transform": train_transform(name), "test_transform": eval_transform(name)}


DIGITS_TRAIN = 1_437
DIGITS_SIZE = 28


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(images [N, 8, 8], labels [N]) from the CSV scikit-learn ships.

    Read directly, as ``sklearn.datasets.load_digits`` reads it: importing scikit-learn
    (and scipy with it) costs a fresh trial worker most of a second; reading the file, a
    few milliseconds.
    """
    spec = importlib.util.find_spec("sklearn")
    origin = Path(spec.origin) if spec and spec.origin else None
    csv = origin.parent / "datasets" / "data" / "digits.csv.gz" if origin else None
    if csv is None or not csv.is_file():  # another layout: let scikit-learn find it
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.images, digits.target
    table = np.loadtxt(csv, delimiter=",")
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1]


def _load_digits() -> tuple[Split, Split]:
    """scikit-learn's 1,797 8x8 digits, scaled to 0..255, upsampled to 28x28, fixed split."""
    import torch
    import torch.nn.functional as F

    raw, target = _digits_arrays()
    pixels = torch.from_numpy(raw.astype(np.float32)) * (255.0 / 16.0)  # [N, 8, 8]
    images = F.interpolate(
        pixels.unsqueeze(1), size=(DIGITS_SIZE, DIGITS_SIZE), mode="bilinear", align_corners=False
    )  # [N, 1, 28, 28]
    images = images.round_().clamp_(0, 255).to(torch.uint8)
    labels = torch.from_numpy(target.astype(np.int64))
    # The split is part of the dataset, not of a run: a fixed seed, independent of the run seed.
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    train, test = order[:DIGITS_TRAIN], order[DIGITS_TRAIN:]
    return Split(images[train], labels[train]), Split(images[test], labels[test])
