"""Achieved training FLOP/s as a share of this machine's matmul peak, fp32 and bf16.

The peak is measured in the same run with a large square ``torch.mm``; the training step
(forward + backward + AdamW) of a supernet with an active config is timed and its FLOPs
counted as 3x the forward FLOPs of `search_space.counting.count_flops` (backward ~ 2x
forward). Ratios, not absolute times, are what this reports: the machine is shared.

    python bench/bench_flops.py [--batch 64] [--rounds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import numpy as np
import torch

from search_space import load_space
from search_space.counting import count_flops
from search_space.supernet import Supernet


def matmul_peak_flops(dtype: torch.dtype, n: int = 2048, rounds: int = 5) -> float:
    """FLOP/s of an n x n x n matmul (median of ``rounds``)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times)


def train_step_flops(
    space_name: str, batch: int, dtype: torch.dtype | None, rounds: int
) -> tuple[float, str]:
    """(achieved FLOP/s, config) of supernet training steps on the space's max config."""
    space = load_space(space_name)
    if space_name == "mcuformer-t":  # the paper-T config at a CPU-friendly resolution
        space = space.replace(img_size=64, patch_size=(8,), rank_ratio=(0.6,), num_classes=10)
    cfg = space.max_config()
    net = Supernet(space)
    net.set_active(cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x = torch.randn(batch, 3, cfg.img_size, cfg.img_size)
    y = torch.randint(0, cfg.num_classes, (batch,))
    ctx = torch.autocast("cpu", dtype=dtype) if dtype is not None else contextlib.nullcontext()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with ctx:
            loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()

    step()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return 3 * count_flops(cfg) * batch / statistics.median(times), cfg.short()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    torch.manual_seed(0)
    np.random.seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}")
    print("| precision | matmul peak GFLOP/s | space | config | train GFLOP/s | share of peak |")
    print("|---|---|---|---|---|---|")
    shares = {}
    for label, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        peak = matmul_peak_flops(dtype)
        for space_name in ("digits-tiny", "mcuformer-t"):
            achieved, cfg = train_step_flops(
                space_name, args.batch, None if dtype is torch.float32 else dtype, args.rounds
            )
            shares[(label, space_name)] = achieved / peak
            print(
                f"| {label} | {peak / 1e9:.0f} | {space_name} | {cfg} | {achieved / 1e9:.1f} | {achieved / peak:.1%} |",
                flush=True,
            )
    small = shares[("fp32", "mcuformer-t")]
    verdict = "meets" if small >= 0.60 else "misses"
    print(
        f"summary: fp32 training reaches {small:.1%} of the fp32 matmul peak on the small config ({verdict} 60%)"
    )


if __name__ == "__main__":
    main()
