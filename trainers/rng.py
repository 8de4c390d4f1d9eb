"""Seeded generators: one per purpose, all derived from the run seed.

No global RNG is ever seeded. A generator for (seed, purpose, epoch) is rebuilt from
those three values alone, so a run restored at an epoch boundary draws exactly what an
uninterrupted run draws.
"""

from __future__ import annotations

import hashlib

import torch

__all__ = ["derive_seed", "generator"]

PURPOSES = ("init", "order", "augment", "selection", "subset")


def derive_seed(seed: int, purpose: str, epoch: int | None = None) -> int:
    """A 63-bit seed for ``purpose`` (and ``epoch``), independent across purposes."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown RNG purpose {purpose!r}; expected one of {PURPOSES}")
    key = f"lessdata/{seed}/{purpose}/{'' if epoch is None else epoch}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1


def generator(
    seed: int, purpose: str, epoch: int | None = None, device: torch.device | str = "cpu"
) -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` seeded for (seed, purpose, epoch)."""
    gen = torch.Generator(device=device)
    gen.manual_seed(derive_seed(seed, purpose, epoch))
    return gen
