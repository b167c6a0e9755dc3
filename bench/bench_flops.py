"""Achieved training FLOP/s as a share of this machine's matmul peak, fp32 and bf16.

The peak is measured in the same run with a large square ``torch.mm``; the training step
(forward + backward + AdamW) of a supernet with an active config is timed and its FLOPs
counted as 3x the forward FLOPs of `search_space.counting.count_flops` (backward ~ 2x
forward). Ratios, not absolute times, are what this reports: the machine is shared.

    python bench/bench_flops.py [--batch 32] [--rounds 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from common.files import atomic_write_text
from search_space import SearchSpace, SubnetConfig, load_space
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


def cases() -> list[tuple[str, SearchSpace, SubnetConfig]]:
    """(label, space, active config): tiny (digits space max), small (DeiT-Tiny-sized dense ViT
    in the AutoFormer-T space at 224 px), paper-T (an MCUFormer-T subnet, low-rank, 240 px)."""
    digits = load_space("digits-tiny")
    auto_t = load_space("autoformer-t").replace(rel_pos=False)
    small = dataclasses.replace(
        auto_t.replace(embed_dim=(192, 216, 240)).min_config(), num_heads=(3,) * 12, mlp_ratio=(4.0,) * 12
    )
    mcu = load_space("mcuformer-t")
    return [
        ("tiny", digits, digits.max_config()),
        ("small", auto_t, small),
        ("paper-T", mcu, mcu.sample(np.random.default_rng(0))),
    ]


def train_step_flops(
    space: SearchSpace, cfg: SubnetConfig, batch: int, dtype: torch.dtype | None, rounds: int
) -> float:
    """Achieved FLOP/s of supernet training steps (forward + backward + AdamW) on ``cfg``."""
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
    return 3 * count_flops(cfg) * batch / statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    np.random.seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}")
    print("| precision | matmul peak GFLOP/s | case | config | px | train GFLOP/s | share of peak |")
    print("|---|---|---|---|---|---|---|")
    shares, rows = {}, []
    for label, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        peak = matmul_peak_flops(dtype)
        for case, space, cfg in cases():
            achieved = train_step_flops(
                space, cfg, args.batch, None if dtype is torch.float32 else dtype, args.rounds
            )
            shares[(label, case)] = achieved / peak
            rows.append({"precision": label, "case": case, "config": cfg.short(), "img_size": cfg.img_size,
                         "peak_flops": peak, "train_flops": achieved, "share": achieved / peak})  # fmt: skip
            print(
                f"| {label} | {peak / 1e9:.0f} | {case} | {cfg.short()} | {cfg.img_size} "
                f"| {achieved / 1e9:.1f} | {achieved / peak:.1%} |",
                flush=True,
            )
    small = shares[("fp32", "small")]
    verdict = "meets" if small >= 0.60 else "misses"
    print(
        f"summary: fp32 training reaches {small:.1%} of the fp32 matmul peak on the small config ({verdict} 60%)"
    )
    if args.json:
        figures = {"batch": args.batch, "threads": torch.get_num_threads(), "rows": rows}
        atomic_write_text(Path(args.json), json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
