"""The factory path every data set and model takes: built-ins as registry entries, a
grid's own factories checked (one line per problem), seeded model initialisation."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from trainers.config import ModelConfig, PluginSpec
from trainers.data import dataset_info, load_dataset
from trainers.errors import ConfigError
from trainers.factories import code_digest, code_on_path, import_factory
from trainers.model import build_model
from trainers.plugins import check_data, check_model, load_data, make_model


def _pairs(n_train: int = 12, n_test: int = 6, classes: int = 3) -> dict[str, Any]:
    gen = np.random.default_rng(0)
    return {split: (gen.integers(0, 256, (n, 1, 8, 8)).astype(np.uint8),
                    np.arange(n) % classes)
            for split, n in (("train", n_train), ("test", n_test))}


def test_builtin_set_through_the_registry_is_the_set() -> None:
    data = load_data("digits")
    train, test = load_dataset("digits", None)
    assert torch.equal(data.train.images, train.images)
    assert torch.equal(data.test.labels, test.labels)
    assert data.info == dataset_info("digits")


def test_capsule_through_the_registry_has_build_models_weights() -> None:
    config = ModelConfig(width=0.25)
    info = dataset_info("digits")
    a = make_model(config, info, seed=3)
    b = build_model(config, info.channels, info.input_size, info.num_classes, 3)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


def test_plugin_data_is_checked_and_k_inferred() -> None:
    data = check_data(_pairs(), "toy", "dataset factory 'x:y'")
    assert data.info.num_classes == 3 and data.info.channels == 1
    assert (data.info.input_size, data.info.train_size, data.info.test_size) == (8, 12, 6)
    x = data.transforms.test(data.train.images[:2])
    assert x.dtype == torch.float32 and float(x.min()) >= -1.0 and float(x.max()) < 1.0


def test_float32_images_are_fed_as_they_are_and_augment_gets_the_generator() -> None:
    out = _pairs()
    out["train"] = (torch.rand(12, 1, 8, 8), torch.arange(12) % 3)
    out["test"] = (torch.rand(6, 1, 8, 8), torch.arange(6) % 3)
    seen: list[torch.Generator] = []

    def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        seen.append(gen)
        return x.flip(-1)

    data = check_data({**out, "augment": augment, "num_classes": 5}, "toy", "f")
    assert data.info.num_classes == 5
    raw = data.train.images[:2]
    assert torch.equal(data.transforms.test(raw), raw)
    assert torch.equal(data.transforms.train(raw, torch.Generator()), raw.flip(-1))
    assert len(seen) == 1


def _with(**changes: Any) -> dict[str, Any]:
    return {**_pairs(), **changes}


@pytest.mark.parametrize(("out", "message"), [
    ([1, 2], "returned a list, expected a mapping"),
    ({"train": _pairs()["train"]}, "no 'test'"),
    (_with(extra=1), "unknown key 'extra'"),
    (_with(train=(np.zeros((4, 8, 8), np.uint8), np.zeros(4, int))), r"uint8 or float32 \[N, C"),
    (_with(train=(np.zeros((4, 1, 8, 8)), np.zeros(4, int))), "float64"),
    (_with(train=(np.zeros((4, 1, 8, 8), np.uint8), np.zeros(4))), "labels must be integers"),
    (_with(train=(np.zeros((4, 1, 8, 8), np.uint8), np.zeros(3, int))), "4 images and 3 labels"),
    (_with(train=(np.zeros((4, 1, 8, 8), np.uint8), np.array([0, 1, 7, 1])), num_classes=3),
     "label 7 is out of range 0..2"),
    (_with(train=(np.zeros((4, 1, 8, 8), np.uint8), np.array([0, -1, 1, 1]))),
     "label -1 is out of range"),
    (_with(test=(np.zeros((4, 3, 8, 8), np.uint8), np.zeros(4, int))), "differ"),
    (_with(train=[1, 2]), "must be a numpy array or torch tensor"),
    (_with(augment="flip"), "augment is a str, not callable"),
])
def test_bad_data_is_one_line(out: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        check_data(out, "toy", "dataset factory 'pkg.data:load'")
    assert "\n" not in str(err.value) and "pkg.data:load" in str(err.value)


def _mlp(num_classes: int, in_channels: int, image_size: int, out: int | None = None
         ) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size**2,
                                                 out or num_classes))


def _register(monkeypatch: pytest.MonkeyPatch, **attrs: Callable[..., Any]) -> None:
    """A module ``toy_nets`` with ``attrs``, importable for the test."""
    module = type(sys)("toy_nets")
    module.__dict__.update(attrs)
    monkeypatch.setitem(sys.modules, "toy_nets", module)


def test_plugin_model_weights_follow_the_run_seed_only(monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    _register(monkeypatch, build=_mlp)
    info = check_data(_pairs(), "toy", "f").info
    spec = PluginSpec(factory="toy_nets:build")
    state = torch.get_rng_state()
    a, b, c = (make_model(spec, info, seed) for seed in (0, 0, 1))
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left as it was
    wa, wb, wc = (next(m.parameters()) for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


@pytest.mark.parametrize(("build", "message"), [
    (lambda **kw: _mlp(**kw, out=7), r"returned torch.float32 \[4, 7\] .* expected float "
                                     r"logits \[4, 3\]"),
    (lambda **kw: "a model", "returned a str, expected a torch.nn.Module"),
    (lambda **kw: nn.Linear(3, 3), "the model's forward raised RuntimeError"),
    (lambda **kw: 1 / 0, "raised ZeroDivisionError"),
])
def test_bad_model_is_one_line(monkeypatch: pytest.MonkeyPatch, build: Callable[..., Any],
                               message: str) -> None:
    _register(monkeypatch, build=build)
    data = check_data(_pairs(), "toy", "f")
    where = "model factory 'toy_nets:build'"
    with pytest.raises(ConfigError, match=message) as err:
        check_model(make_model(PluginSpec(factory="toy_nets:build"), data.info, 0), data, where)
    assert "\n" not in str(err.value) and "toy_nets:build" in str(err.value)


def test_bad_import_paths_are_one_line(tmp_path: Path) -> None:
    pkg = tmp_path / "badpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "broken.py").write_text("import not_a_module_anywhere\n")
    (pkg / "ok.py").write_text("VALUE = 3\n")
    with code_on_path([pkg]):
        cases = {"nowhere_pkg.mod:f": "no module named 'nowhere_pkg'",
                 "badpkg.missing:f": "no module named 'badpkg.missing'",
                 "badpkg.broken:f": "importing badpkg.broken failed: ModuleNotFoundError",
                 "badpkg.ok:build": "module badpkg.ok has no 'build'",
                 "badpkg.ok:VALUE": "VALUE is a int, not callable"}
        for path, message in cases.items():
            with pytest.raises(ConfigError, match=message):
                import_factory(path, "model factory")
    assert "badpkg" not in sys.modules and str(tmp_path) not in sys.path


def test_code_digest_follows_the_content(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text("x = 1\n")
    before = code_digest([pkg])
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "a.pyc").write_bytes(b"\0")
    assert code_digest([pkg]) == before  # caches are not the code
    (pkg / "a.py").write_text("x = 2\n")
    assert code_digest([pkg]) != before
    assert code_digest([]) is None
