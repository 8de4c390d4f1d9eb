"""GPU fast-path figures: images/s by precision and compile, one MNIST epoch, packing.

Run on one GPU: ``bash bench/gpu.sh`` (about 5 minutes on an H100). On CPU, ``--smoke``
runs every row at tiny sizes (CI checks that the script works; its figures mean nothing).
Also the final test top-1 of the same digits run in fp32, tf32, bf16 and bf16 + compile:
the check a precision must pass before it could become a default. Prints a table and
writes it to ``--out`` (Markdown).

Every trainer is built with ``trainers.run.build_trainer`` and sets torch's TF32 switches
only while it runs (``Trainer.flags``): fp32 is fp32 in matmuls and cuDNN convolutions
alike (PyTorch's own default allows TF32 convolutions), whatever ran before it, and each
accuracy row names the switches it trained under.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from trainers.config import EmissionsConfig, ModelConfig, Precision, TrainConfig
from trainers.data import Split
from trainers.flags import TorchFlags
from trainers.run import build_trainer
from trainers.train import Trainer


@dataclass(frozen=True)
class Sizes:
    n_train: int
    n_test: int
    width: float
    steps: int
    packed: tuple[int, ...]
    accuracy_epochs: int


FULL = Sizes(n_train=60_000, n_test=10_000, width=1.0, steps=200, packed=(1, 2, 4),
             accuracy_epochs=8)
SMOKE = Sizes(n_train=480, n_test=120, width=0.125, steps=4, packed=(1, 2),
              accuracy_epochs=1)


def synthetic_mnist(n: int, seed: int) -> Split:
    """MNIST-shaped data (throughput does not depend on pixel content)."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 28, 28), generator=gen, dtype=torch.uint8)
    return Split(images, torch.randint(0, 10, (n,), generator=gen))


def trainer_for(sizes: Sizes, precision: Precision, compile_: bool, device: str, epochs: int,
                train_subset: int | None = None, test_subset: int | None = None) -> Trainer:
    config = TrainConfig(
        dataset="mnist", epochs=epochs, batch_size=120, device=device, precision=precision,
        compile=compile_, channels_last=device.startswith("cuda"),
        model=ModelConfig(width=sizes.width), emissions=EmissionsConfig(enabled=False),
        train_subset=train_subset, test_subset=test_subset,
    )
    return build_trainer(config, (synthetic_mnist(sizes.n_train, 0),
                                  synthetic_mnist(sizes.n_test, 1)))


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def images_per_s(sizes: Sizes, precision: Precision, compile_: bool, device: str) -> float:
    """Training images/s of the trainer's own epoch loop, after a warm-up epoch."""
    n = min(sizes.n_train, sizes.steps * 120)  # time `steps` batches of the split
    trainer = trainer_for(sizes, precision, compile_, device, epochs=2, train_subset=n,
                          test_subset=120)
    trainer.run_epoch()  # warm-up (and compilation)
    sync(device)
    start = time.perf_counter()
    trainer.run_epoch()
    sync(device)
    return n / (time.perf_counter() - start)


def switches(flags: TorchFlags) -> str:
    """The TF32 switches a run trained under, as the table shows them."""
    return (f"matmul {flags.matmul_precision}, "
            f"cudnn tf32 {'on' if flags.cudnn_tf32 else 'off'}")


def digits_top1(sizes: Sizes, precision: Precision, compile_: bool,
                device: str) -> tuple[float, str]:
    """Final test top-1 after ``accuracy_epochs`` on the embedded digits (real images, no
    download), seed 0: the same run in every precision, so the gap is the precision's.
    Also the TF32 switches as they were while it trained (each trainer sets its own and
    restores the process's, so a TF32 run before the fp32 reference cannot leak into it).
    """
    config = TrainConfig(
        dataset="digits", epochs=sizes.accuracy_epochs, batch_size=32, device=device,
        precision=precision, compile=compile_, channels_last=device.startswith("cuda"),
        model=ModelConfig(width=sizes.width), emissions=EmissionsConfig(enabled=False), seed=0,
    )
    seen: list[TorchFlags] = []
    top1 = build_trainer(config).fit(lambda _: seen.append(TorchFlags.current())).final_top1
    return top1, switches(seen[-1])


def full_epoch_s(sizes: Sizes, device: str, precision: Precision) -> float:
    """Wall time of one whole epoch (all training images + test evaluation), after warm-up."""
    trainer = trainer_for(sizes, precision, False, device, epochs=2)
    trainer.run_epoch()
    sync(device)
    start = time.perf_counter()
    trainer.run_epoch()
    sync(device)
    return time.perf_counter() - start


def packed_throughput(sizes: Sizes, count: int, device: str, precision: Precision) -> float:
    """Aggregate images/s of ``count`` trainer processes sharing one device."""
    cmd = [sys.executable, __file__, "--worker", "--device", device, "--precision", precision]
    if sizes is SMOKE:
        cmd.append("--smoke")
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(count)]
    rates = [json.loads(p.communicate()[0].strip().splitlines()[-1])["images_per_s"]
             for p in procs]
    return float(sum(rates))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, any device")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16"])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path("runs/gpu-bench.md"))
    args = parser.parse_args()
    sizes = SMOKE if args.smoke else FULL
    if args.worker:
        print(json.dumps({"images_per_s": images_per_s(sizes, args.precision, False,
                                                       args.device)}))
        return 0
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: run with --smoke on CPU", file=sys.stderr)
        return 2
    gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    rows: list[tuple[str, str]] = []
    base = images_per_s(sizes, "fp32", False, args.device)
    rows.append(("images/s fp32", f"{base:,.0f}"))
    variants: tuple[tuple[Precision, bool], ...] = (
        ("tf32", False), ("bf16", False), ("bf16", True), ("fp32", True))
    for precision, compile_ in variants:
        if compile_ and args.smoke:
            # torch.compile takes minutes on a CPU; the smoke run checks the other rows.
            rows.append((f"images/s {precision} + compile", "skipped in --smoke"))
            continue
        rate = images_per_s(sizes, precision, compile_, args.device)
        label = f"images/s {precision}{' + compile' if compile_ else ''}"
        rows.append((label, f"{rate:,.0f} ({rate / base:.2f}x fp32)"))
    reference, flags = digits_top1(sizes, "fp32", False, args.device)
    rows.append((f"digits top-1 after {sizes.accuracy_epochs} epoch(s), fp32",
                  f"{reference:.2%} ({flags})"))
    for precision, compile_ in (v for v in variants if v[0] != "fp32"):
        if compile_ and args.smoke:
            rows.append((f"digits top-1, {precision} + compile", "skipped in --smoke"))
            continue
        top1, flags = digits_top1(sizes, precision, compile_, args.device)
        rows.append((f"digits top-1, {precision}{' + compile' if compile_ else ''}",
                     f"{top1:.2%} ({(top1 - reference) * 100:+.2f} pp vs fp32; {flags})"))
    epoch = full_epoch_s(sizes, args.device, "fp32")
    rows.append((f"one MNIST epoch, fp32 ({sizes.n_train:,} images, batch 120) s",
                 f"{epoch:.2f} (goal <= 2 s on an H100)"))
    one = None
    for count in sizes.packed:
        rate = packed_throughput(sizes, count, args.device, "fp32")
        one = one or rate
        rows.append((f"{count} packed trial(s), aggregate images/s",
                     f"{rate:,.0f} ({rate / one:.2f}x one trial)"))
    table = [f"device: {gpu}; torch {torch.__version__}; smoke={args.smoke}", "",
             "| row | figure |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows]
    text = "\n".join(table)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
