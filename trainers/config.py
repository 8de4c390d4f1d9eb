"""Typed, validated configs: one per concern, unknown keys are errors.

Defaults follow Byerly's training recipe (PAPER.md section 3) except where marked
*ours*: those are documented in docs/method.md and configurable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from trainers.schedule import Benchmark, Schedule

__all__ = [
    "DATASETS",
    "SELECTIONS",
    "EmissionsConfig",
    "ModelConfig",
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

    dataset: DatasetName = "digits"
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
    model: ModelConfig = Field(default_factory=ModelConfig)
    emissions: EmissionsConfig = Field(default_factory=EmissionsConfig)
    device: str = "auto"
    """'auto' (cuda if available, else cpu), 'cpu', 'cuda', 'cuda:1' ..."""
    precision: Precision = "fp32"
    compile: bool = False
    channels_last: bool = False
    threads: Annotated[int, Field(ge=1)] | None = None
    """torch intra-op threads on CPU (default: torch's own choice)."""
