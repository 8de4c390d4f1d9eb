"""Typed, validated configs: one per concern, unknown keys are errors.

Defaults follow Byerly's training recipe (PAPER.md section 3) except where marked
*ours*: those are documented in docs/method.md and configurable.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, JsonValue, Tag, field_validator

from trainers.schedule import Benchmark, Schedule

__all__ = [
    "DATASETS",
    "SELECTIONS",
    "DatasetChoice",
    "EmissionsConfig",
    "ModelChoice",
    "ModelConfig",
    "PluginSpec",
    "TrainConfig",
]

DATASETS = ("mnist", "cifar10", "smallnorb", "digits", "fashionmnist", "kmnist", "cifar100", "svhn")
SELECTIONS = ("fixed", "per_epoch", "stratified", "loss_soft", "hardest", "easiest", "forgetting")

DatasetName = Literal[
    "mnist", "cifar10", "smallnorb", "digits", "fashionmnist", "kmnist", "cifar100", "svhn"
]
SelectionName = Literal[
    "fixed", "per_epoch", "stratified", "loss_soft", "hardest", "easiest", "forgetting"
]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Config):
    """The homogeneous-vector-capsule CNN (Byerly et al.)."""

    heads: Literal[1, 3] = 1
    """1: the paper's single head after the last conv; 3: Byerly's, after convs 3, 6, 9."""
    merge: Literal["norm", "affine", "sum"] = "norm"
    """How the branch logits [B, classes, heads] become the logits (1 head as 3):
    'norm' (Byerly): x learnable branch weights (init 1), shift-only batch norm per branch
    over batch and classes, sum over branches; 'affine' (lessdata before issue 12):
    w x + b per branch, then the sum; 'sum': the raw capsule norms summed (no parameters)."""
    width: Annotated[float, Field(gt=0.0, le=4.0)] = 1.0
    """Channel multiplier (32, 48, ... x width); < 1 for quick CPU runs."""
    convs: Annotated[int, Field(ge=3, le=9, multiple_of=3)] = 9
    bn_momentum: Annotated[float, Field(gt=0.0, le=1.0)] = 0.1
    """PyTorch BN momentum. TF's 0.9997 is 0.0003, too slow for short runs (ours: 0.1)."""
    bn_eps: Annotated[float, Field(gt=0.0)] = 1e-3
    init_std: Annotated[float, Field(gt=0.0)] = 0.05


FACTORY = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"


class PluginSpec(_Config):
    """A factory named by import path, ``"package.module:function"``, and its keyword
    arguments (JSON values: they travel in every trial's config and MLflow params).

    A dataset factory returns the mapping ``trainers.plugins`` checks; a model factory is
    called as ``build(num_classes=K, in_channels=C, image_size=H, **kwargs)``.
    """

    factory: Annotated[str, Field(max_length=300)]
    kwargs: dict[str, JsonValue] = Field(default_factory=dict)

    @field_validator("factory")
    @classmethod
    def _import_path(cls, path: str) -> str:
        if not re.fullmatch(FACTORY, path):
            raise ValueError(f"{path!r} is not an import path 'package.module:function'")
        return path


def _model_kind(value: Any) -> str:
    is_plugin = isinstance(value, PluginSpec) or (isinstance(value, dict) and "factory" in value)
    return "PluginSpec" if is_plugin else "ModelConfig"


def _dataset_kind(value: Any) -> str:
    return "DatasetName" if isinstance(value, str) else "PluginSpec"


ModelChoice = Annotated[
    Annotated[ModelConfig, Tag("ModelConfig")] | Annotated[PluginSpec, Tag("PluginSpec")],
    Discriminator(_model_kind),
]
"""The capsule CNN's settings, or a model factory (a mapping with ``factory:``)."""
DatasetChoice = Annotated[
    Annotated[DatasetName, Tag("DatasetName")] | Annotated[PluginSpec, Tag("PluginSpec")],
    Discriminator(_dataset_kind),
]
"""A built-in data set's name, or a dataset factory (a mapping with ``factory:``)."""


class EmissionsConfig(_Config):
    """codecarbon's offline tracker, plus the paper-style estimate."""

    enabled: bool = True
    country_iso_code: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "GBR"
    measure_power_secs: Annotated[float, Field(gt=0.0)] = 15.0
    device_power_w: Annotated[float, Field(gt=0.0)] = 250.0
    """Average device power for the paper-style estimate (runtime x power x intensity)."""
    carbon_intensity_g_per_kwh: Annotated[float, Field(gt=0.0)] = 233.0
    """Grid carbon intensity for the estimate (GBR average)."""
    share: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    """Share of the measured device attributed to this trial (its fractional GPU or CPU share)."""


Precision = Literal["fp32", "tf32", "bf16"]


class TrainConfig(_Config):
    """Everything one training run needs; stored in every checkpoint and MLflow run."""

    dataset: DatasetChoice = "digits"
    data_dir: Path | None = None
    experiment: str = "Benchmark"
    schedule: Schedule = Field(default_factory=Benchmark)
    selection: SelectionName = "fixed"
    anneal: Annotated[float, Field(gt=0.0, le=1.0)] = 0.875
    """loss_soft: from ``epoch / epochs >= anneal`` on, every sample with weight 1 (InfoBatch's
    delta, ours: 0.875, the last 12.5% of the epochs; 1.0 = never)."""
    seed: Annotated[int, Field(ge=0)] = 0
    epochs: Annotated[int, Field(ge=1)] = 300
    batch_size: Annotated[int, Field(ge=1)] = 120
    lr: Annotated[float, Field(gt=0.0)] = 1e-3
    lr_decay: Annotated[float, Field(gt=0.0, le=1.0)] = 0.98
    lr_min: Annotated[float, Field(ge=0.0)] = 1e-7
    ema_decay: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.999
    ema_warmup: bool = True
    """TF's num_updates warm-up: decay = min(ema_decay, (1 + t) / (10 + t)) (ours: on)."""
    augment: bool = True
    train_subset: Annotated[int, Field(ge=1)] | None = None
    """Use a seeded random subset of this many training samples (quick runs)."""
    test_subset: Annotated[int, Field(ge=1)] | None = None
    model: ModelChoice = Field(default_factory=ModelConfig)
    emissions: EmissionsConfig = Field(default_factory=EmissionsConfig)
    device: str = "auto"
    """'auto' (cuda if available, else cpu), 'cpu', 'cuda', 'cuda:1' ..."""
    precision: Precision = "fp32"
    compile: bool = False
    channels_last: bool = False
    threads: Annotated[int, Field(ge=1)] | None = None
    """torch intra-op threads on CPU (default: torch's own choice)."""
