"""Torch's process-wide switches (threads, TF32, determinism), set in one scope and restored.

These switches belong to the process, not to a model: a trainer that left TF32 on would
make the next trainer in the same process (a benchmark, a test, a packed Ray worker) run
in TF32 too. ``torch_flags`` sets what a run asks for and puts back what it found.

TF32 goes through the legacy switches (``set_float32_matmul_precision``,
``cudnn.allow_tf32``) on purpose: torch 2.14 raises when the legacy readers meet a state
written through the new ``fp32_precision`` API, and inductor (``torch.compile``) still
reads the legacy ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch

__all__ = ["MatmulPrecision", "TorchFlags", "torch_flags"]

MatmulPrecision = Literal["highest", "high", "medium"]
"""``highest``: fp32 matmuls in fp32; ``high``: TF32 allowed; ``medium``: bf16 allowed."""


@dataclass(frozen=True)
class TorchFlags:
    """Torch's process-wide switches a run may set; ``None`` leaves one as found."""

    threads: int | None = None
    matmul_precision: MatmulPrecision | None = None
    cudnn_tf32: bool | None = None
    cudnn_benchmark: bool | None = None
    cudnn_deterministic: bool | None = None
    deterministic: bool | None = None
    """``torch.use_deterministic_algorithms``."""
    deterministic_warn_only: bool | None = None

    @classmethod
    def current(cls) -> TorchFlags:
        """Every switch as the process has it now."""
        precision = torch.get_float32_matmul_precision()
        assert precision in ("highest", "high", "medium"), precision
        return cls(
            threads=torch.get_num_threads(),
            matmul_precision=precision,  # type: ignore[arg-type]  # checked above
            cudnn_tf32=torch.backends.cudnn.allow_tf32,
            cudnn_benchmark=torch.backends.cudnn.benchmark,
            cudnn_deterministic=torch.backends.cudnn.deterministic,
            deterministic=torch.are_deterministic_algorithms_enabled(),
            deterministic_warn_only=torch.is_deterministic_algorithms_warn_only_enabled(),
        )

    def apply(self) -> None:
        """Set every switch that is not ``None`` (each only when it differs)."""
        now = TorchFlags.current()
        if self.threads is not None and self.threads != now.threads:
            torch.set_num_threads(self.threads)
        if self.matmul_precision is not None and self.matmul_precision != now.matmul_precision:
            torch.set_float32_matmul_precision(self.matmul_precision)
        if self.cudnn_tf32 is not None:
            torch.backends.cudnn.allow_tf32 = self.cudnn_tf32
        if self.cudnn_benchmark is not None:
            torch.backends.cudnn.benchmark = self.cudnn_benchmark
        if self.cudnn_deterministic is not None:
            torch.backends.cudnn.deterministic = self.cudnn_deterministic
        if self.deterministic is not None or self.deterministic_warn_only is not None:
            mode = now.deterministic if self.deterministic is None else self.deterministic
            warn_only = (now.deterministic_warn_only if self.deterministic_warn_only is None
                         else self.deterministic_warn_only)
            torch.use_deterministic_algorithms(bool(mode), warn_only=bool(warn_only))


@contextmanager
def torch_flags(flags: TorchFlags) -> Iterator[TorchFlags]:
    """Set ``flags`` for the block; on exit, restore every switch as it was. Yields the
    switches as they were found."""
    before = TorchFlags.current()
    try:
        flags.apply()
        yield before
    finally:
        before.apply()
