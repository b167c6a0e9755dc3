"""Memory-model benchmark: configs/s of the vectorised vs scalar ``mcu`` scorer on the
mcuformer-t space, and the ``mcu`` analytic peak == int8 executor high-water mark on
random tiny subnets.

Also R (share of subnets within budget) of the mcuformer-t space per rank ratio and patch size
at 320 KB. Run: ``.venv/bin/python bench/bench_memory.py [--subnets 1000] [--configs 100000] [--json PATH]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from common.files import atomic_write_text
from memory_model import (
    encode_configs,
    mcu_peak_bytes,
    parse_budget,
    peak_bytes_batch,
    sample_batch,
    share_within_budget,
)
from memory_model.int8.verify import check_mcu_schedule, tiny_spaces
from search_space import load_space


def bench_scoring(n_configs: int, n_scalar: int, seed: int) -> tuple[float, float]:
    space = load_space("mcuformer-t")
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    batch = sample_batch(space, rng, n_configs)
    peak_bytes_batch(batch, "mcu")
    vec_rate = n_configs / (time.perf_counter() - t0)
    configs = [space.sample(rng) for _ in range(n_scalar)]
    t0 = time.perf_counter()
    scalar = [mcu_peak_bytes(c) for c in configs]
    scalar_rate = n_scalar / (time.perf_counter() - t0)
    assert np.array_equal(peak_bytes_batch(encode_configs(configs), "mcu"), scalar)
    return vec_rate, scalar_rate


def bench_executor(n_subnets: int, seed: int) -> tuple[int, int]:
    rng = np.random.default_rng(seed)
    spaces = tiny_spaces()
    exact = 0
    for i in range(n_subnets):
        cfg = spaces[i % len(spaces)].sample(rng)
        exact += check_mcu_schedule(cfg, weights_in_sram=bool(i % 2), rng=rng).ok
    return exact, n_subnets


def r_table(budget: str, seed: int, samples: int = 2_000) -> dict[str, float]:
    """R at ``budget`` of each (rank ratio, patch size) point of the mcuformer-t space (``mcu``
    schedule, weights staged in SRAM layer by layer: the paper's assumption)."""
    space, budget_bytes = load_space("mcuformer-t"), parse_budget(budget)
    out = {}
    for rank in space.rank_ratio:
        for patch in space.patch_size:
            point = space.replace(rank_ratio=(rank,), patch_size=(patch,))
            est = share_within_budget(
                point, budget_bytes, "mcu", np.random.default_rng(seed), samples, weights_in_sram=True
            )
            out[f"r{rank}_p{patch}"] = float(est.share)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=100_000, help="configs for the vectorised path")
    parser.add_argument("--scalar", type=int, default=2_000, help="configs for the scalar path")
    parser.add_argument("--subnets", type=int, default=1_000, help="tiny subnets run by the executor")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", default="320KB", help="budget of the R table")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    vec, scalar = bench_scoring(args.configs, args.scalar, args.seed)
    print(f"mcu scoring on mcuformer-t: vectorised {vec:,.0f} configs/s (sampling + scoring), "
          f"scalar {scalar:,.0f} configs/s, ratio {vec / scalar:,.0f}x")  # fmt: skip
    t0 = time.perf_counter()
    exact, total = bench_executor(args.subnets, args.seed)
    print(f"mcu analytic == int8 executor high-water mark: {exact}/{total} subnets "
          f"({time.perf_counter() - t0:.1f} s)")  # fmt: skip
    t0 = time.perf_counter()
    r = r_table(args.budget, args.seed)
    r_s = time.perf_counter() - t0
    print(f"R at {args.budget} (mcu, weights in SRAM, 2000 samples per point, {r_s:.1f} s for {len(r)} points): "
          + ", ".join(f"{k} {v:.2f}" for k, v in r.items()))  # fmt: skip
    ok = exact == total and vec >= 100_000
    print(f"SUMMARY memory: vectorised {vec:,.0f}/s ({vec / scalar:,.0f}x scalar), "
          f"executor exact {exact}/{total}: {'OK' if ok else 'CHECK'}")  # fmt: skip
    if args.json:
        figures = {
            "vectorised_configs_per_s": vec, "scalar_configs_per_s": scalar, "executor_exact": exact,
            "executor_subnets": total, "r_budget": args.budget, "r_by_point": r, "r_seconds": r_s,
        }  # fmt: skip
        atomic_write_text(Path(args.json), json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
