"""Loading any data set and building any model through its factory, checked.

One path for the built-in sets, the capsule CNN and a grid's own factories
(``trainers.factories`` resolves each to an import path and keyword arguments):

- A dataset factory returns a mapping with ``train`` and ``test``, each ``(images, labels)``:
  images a uint8 or float32 array or tensor ``[N, C, H, W]`` (uint8 is scaled to [-1, 1)
  as the built-in sets are, float32 is fed as it is), labels integers ``[N]``. Optional keys:
  ``num_classes`` (else the largest label + 1) and ``augment``, a callable
  ``augment(x, generator) -> x`` on a whole float batch on the trial's device, drawing its
  randomness from ``generator`` (seeded per run and epoch); default: no augmentation. The
  built-in sets give instead ``train_transform(raw, generator)`` and ``test_transform(raw)``,
  which take the stored batch (uint8, smallNORB's 48x48 crops to 32) and ``image_size``.
- A model factory is called as ``build(num_classes=K, in_channels=C, image_size=S, **kwargs)``
  and returns an ``nn.Module`` from float ``[B, C, S, S]`` to logits ``[B, K]``. Its initial
  weights depend on the run seed only: a factory that takes ``seed`` is given the run's
  initialisation seed; any other is called with torch's CPU RNG forked and seeded from it
  (restored afterwards), so third-party modules' default initialisation is seeded too.

``check_model`` runs a model on a probe batch of the test split (4 images): the driver
calls it once at ``submit`` (``orchestrator.plugins``), before any trial starts.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from trainers.augment import eval_transform, preprocess, train_transform
from trainers.config import ModelConfig, PluginSpec
from trainers.data import DatasetInfo, Split
from trainers.errors import ConfigError, LessdataError
from trainers.factories import (
    dataset_factory,
    dataset_label,
    import_factory,
    model_factory,
    one_line,
)
from trainers.rng import derive_seed

__all__ = ["LoadedData", "Transforms", "builtin_transforms", "check_data", "check_model",
           "load_data", "make_model"]

PROBE_BATCH = 4
TrainTransform = Callable[[Tensor, torch.Generator], Tensor]
TestTransform = Callable[[Tensor], Tensor]
_KEYS = ("train", "test", "num_classes", "augment", "train_transform", "test_transform",
         "image_size")


@dataclass(frozen=True)
class Transforms:
    """Stored batch -> model input: ``train`` draws from the generator, ``test`` does not."""

    train: TrainTransform
    test: TestTransform


@dataclass(frozen=True)
class LoadedData:
    """Both splits in memory, what the model needs to know, and how batches become input."""

    train: Split
    test: Split
    info: DatasetInfo
    transforms: Transforms


def builtin_transforms(name: str) -> Transforms:
    """A built-in set's augmentation and test-time transform."""
    return Transforms(train_transform(name), eval_transform(name))


def load_data(dataset: str | PluginSpec, data_dir: Path | None = None,
              download: bool = False) -> LoadedData:
    """Call ``dataset``'s factory once and check what it returns (on the CPU)."""
    spec = dataset_factory(dataset, data_dir, download)
    where = f"dataset factory {spec.factory!r}"
    factory = import_factory(spec.factory, "dataset factory")
    try:
        out = factory(**spec.kwargs)
    except LessdataError:
        raise  # the built-in sets' own lines (a missing file, say)
    except Exception as exc:  # noqa: BLE001 - the user's factory: one line, not a traceback
        raise ConfigError(f"{where} raised {one_line(exc)}") from None
    return check_data(out, dataset_label(dataset), where)


def check_data(out: Any, label: str, where: str) -> LoadedData:
    """``out`` as a ``LoadedData``; one ``ConfigError`` line naming the first problem."""
    if not isinstance(out, Mapping):
        raise ConfigError(f"{where} returned a {type(out).__name__}, expected a mapping with "
                          "'train' and 'test'")
    unknown = sorted(set(out) - set(_KEYS), key=str)
    missing = [k for k in ("train", "test") if k not in out]
    if missing or unknown:
        what = f"no {missing[0]!r}" if missing else f"unknown key {unknown[0]!r}"
        raise ConfigError(f"{where} returned {what}; expected 'train', 'test' and optionally "
                          "'num_classes', 'augment'")
    train = _split(out["train"], f"{where}: train")
    test = _split(out["test"], f"{where}: test")
    if train.images.shape[1:] != test.images.shape[1:] or train.images.dtype != test.images.dtype:
        raise ConfigError(f"{where}: train images {_shape(train.images)} {train.images.dtype} "
                          f"and test images {_shape(test.images)} {test.images.dtype} differ "
                          "in [C, H, W] or dtype")
    num_classes = _num_classes(out.get("num_classes"), train, test, where)
    transforms = _transforms(out, train.images.dtype, where)
    _, channels, height, _ = train.images.shape
    size = out.get("image_size", height)
    if not isinstance(size, int) or size < 1:
        raise ConfigError(f"{where}: image_size must be a positive int, got {size!r}")
    info = DatasetInfo(label, num_classes, channels, height, size, len(train), len(test))
    return LoadedData(train, test, info, transforms)


def _split(pair: Any, where: str) -> Split:
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise ConfigError(f"{where} must be a pair (images, labels), got "
                          f"{type(pair).__name__}")
    images = _tensor(pair[0], f"{where} images")
    labels = _tensor(pair[1], f"{where} labels")
    if images.dim() != 4 or images.dtype not in (torch.uint8, torch.float32):
        raise ConfigError(f"{where} images must be uint8 or float32 [N, C, H, W], got "
                          f"{images.dtype} {_shape(images)}")
    if labels.dim() != 1 or labels.dtype.is_floating_point or labels.dtype.is_complex \
            or labels.dtype == torch.bool:
        raise ConfigError(f"{where} labels must be integers [N], got {labels.dtype} "
                          f"{_shape(labels)}")
    if len(images) != len(labels) or len(labels) == 0:
        raise ConfigError(f"{where}: {len(images)} images and {len(labels)} labels (need the "
                          "same number, at least 1)")
    return Split(images.contiguous(), labels.to(torch.int64))


def _tensor(value: Any, where: str) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    raise ConfigError(f"{where} must be a numpy array or torch tensor, got "
                      f"{type(value).__name__}")


def _num_classes(given: Any, train: Split, test: Split, where: str) -> int:
    low = int(min(train.labels.min(), test.labels.min()))
    high = int(max(train.labels.max(), test.labels.max()))
    if given is None:
        num_classes = high + 1
    elif isinstance(given, int) and not isinstance(given, bool) and given >= 1:
        num_classes = given
    else:
        raise ConfigError(f"{where}: num_classes must be a positive int, got {given!r}")
    if low < 0 or high >= num_classes:
        bad = low if low < 0 else high
        raise ConfigError(f"{where}: label {bad} is out of range 0..{num_classes - 1} "
                          f"(num_classes={num_classes}"
                          f"{', inferred from the labels' if given is None else ''})")
    if num_classes < 2:
        raise ConfigError(f"{where}: {num_classes} class; a classifier needs at least 2")
    return num_classes


def _to_input(dtype: torch.dtype) -> TestTransform:
    """uint8 is scaled as the built-in sets are; float32 is the model's input as it is."""
    return preprocess if dtype == torch.uint8 else (lambda images: images)


def _transforms(out: Mapping[str, Any], dtype: torch.dtype, where: str) -> Transforms:
    raw = ("train_transform" in out, "test_transform" in out)
    if any(raw):
        if not all(raw) or "augment" in out:
            raise ConfigError(f"{where}: give 'augment', or both 'train_transform' and "
                              "'test_transform', not a mix")
        train, test = out["train_transform"], out["test_transform"]
        for name, fn in (("train_transform", train), ("test_transform", test)):
            if not callable(fn):
                raise ConfigError(f"{where}: {name} is not callable")
        return Transforms(train, test)
    to_input = _to_input(dtype)
    augment = out.get("augment")
    if augment is None:
        return Transforms(lambda images, _gen: to_input(images), to_input)
    if not callable(augment):
        raise ConfigError(f"{where}: augment is a {type(augment).__name__}, not callable")
    return Transforms(lambda images, gen: augment(to_input(images), gen), to_input)


def make_model(model: ModelConfig | PluginSpec, info: DatasetInfo, seed: int) -> nn.Module:
    """``model``'s factory called for ``info``'s shapes, its weights seeded from ``seed``."""
    spec = model_factory(model)
    where = f"model factory {spec.factory!r}"
    build = import_factory(spec.factory, "model factory")
    kwargs = {"num_classes": info.num_classes, "in_channels": info.channels,
              "image_size": info.input_size, **spec.kwargs}
    init_seed = derive_seed(seed, "init")
    try:
        if _takes_seed(build):
            net = build(seed=seed, **kwargs)
        else:
            # A module's default initialisation draws from torch's global RNG: forked and
            # seeded for this call only, so the same run seed gives the same weights.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(init_seed)
                net = build(**kwargs)
    except LessdataError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's factory: one line
        raise ConfigError(f"{where} raised {one_line(exc)}") from None
    if not isinstance(net, nn.Module):
        raise ConfigError(f"{where} returned a {type(net).__name__}, expected a torch.nn.Module")
    return net


def _takes_seed(build: Callable[..., Any]) -> bool:
    try:
        return "seed" in inspect.signature(build).parameters
    except (TypeError, ValueError):  # a builtin or C callable: no signature to read
        return False


def check_model(net: nn.Module, data: LoadedData, where: str) -> None:
    """Run ``net`` (eval mode, no grad) and the augmentation on ``PROBE_BATCH`` test images:
    float input ``[B, C, S, S]`` in, logits ``[B, K]`` out; one ``ConfigError`` otherwise."""
    raw = data.test.images[:PROBE_BATCH]
    x = _call(lambda: data.transforms.test(raw), "the test-time transform", where)
    gen = torch.Generator().manual_seed(0)
    augmented = _call(lambda: data.transforms.train(raw, gen), "augment", where)
    for name, batch in (("test-time input", x), ("augment's output", augmented)):
        if not isinstance(batch, Tensor) or batch.dtype != torch.float32 or batch.dim() != 4:
            what = (f"{batch.dtype} {_shape(batch)}" if isinstance(batch, Tensor)
                    else type(batch).__name__)
            raise ConfigError(f"{where}: the {name} must be float32 [B, C, H, W], got {what}")
    expected_in = (len(raw), data.info.channels, data.info.input_size)
    if tuple(x.shape[:3]) != expected_in or augmented.shape != x.shape:
        raise ConfigError(f"{where}: a batch {_shape(raw)} became {_shape(x)} for testing and "
                          f"{_shape(augmented)} augmented; both must be [B, C, S, S] with "
                          f"S = image_size {data.info.input_size}")
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            logits = _call(lambda: net(x), "the model's forward", where)
    finally:
        net.train(was_training)
    expected = [len(raw), data.info.num_classes]
    if not isinstance(logits, Tensor):
        raise ConfigError(f"{where}: the model returned a {type(logits).__name__} for a batch "
                          f"{_shape(x)}, expected logits {expected}")
    if list(logits.shape) != expected or not logits.dtype.is_floating_point:
        raise ConfigError(f"{where}: the model returned {logits.dtype} {_shape(logits)} for a "
                          f"batch {_shape(x)}, expected float logits {expected} "
                          f"(num_classes={data.info.num_classes})")


def _call(fn: Callable[[], Any], what: str, where: str) -> Any:
    try:
        return fn()
    except LessdataError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's code: one line
        raise ConfigError(f"{where}: {what} raised {one_line(exc)}") from None


def _shape(t: Any) -> str:
    return str(list(t.shape)) if hasattr(t, "shape") else "?"
