"""README table: peak SRAM per schedule over MCUFormer's space axes, and R within budgets.

    python -m memory_model.table [--space mcuformer-t] [--budgets 256KB 320KB 512KB]
                                 [--samples 2000] [--seed 0] [--ranks 0.4 0.7 0.95]

For every patch size x rank ratio point of the space it prints the largest and smallest
subnet's peak under each schedule (``paper``'s per-FC formula; ``mcu`` with weights staged in
SRAM and with weights read from flash, and with the input streamed; ``tflm``, TF-Lite Micro's
arena head (planner on the converted int8 graph) and whole arena with its persistent tail), the
``mcu`` saving over the ``tflm`` arena, and a second table with R, the share of the
point's subnets whose peak fits each budget (``paper`` and both ``mcu`` variants). Exact GELU has no
TFLM kernel: its ``tflm`` column is the x·σ(1.702x) form that gets deployed.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from common.errors import ConfigError
from memory_model.budget import HELP, argparse_budget, format_bytes
from memory_model.mcu import mcu_peak_bytes
from memory_model.paper import paper_peak_bytes
from memory_model.schedules import share_within_budget
from memory_model.tflm import tflm_arena
from search_space.config import SubnetConfig
from search_space.space import SearchSpace, load_space

DEFAULT_BUDGETS = ("256KB", "320KB", "512KB")


def _kb(n_bytes: int) -> str:
    return f"{n_bytes / 1024:,.1f}"


def peak_row(cfg: SubnetConfig) -> dict[str, int]:
    """Peak bytes of one subnet under every schedule (``tflm``: the whole arena, 64-bit host)."""
    arena = tflm_arena(cfg)
    return {
        "paper": paper_peak_bytes(cfg),
        "mcu_sram_w": mcu_peak_bytes(cfg, weights_in_sram=True),
        "mcu_flash_w": mcu_peak_bytes(cfg, weights_in_sram=False),
        "mcu_flash_w_stream": mcu_peak_bytes(cfg, weights_in_sram=False, input="stream"),
        "tflm_head": arena.head_bytes,
        "tflm": arena.total_bytes,
    }


def peak_table(space: SearchSpace, ranks: tuple[float, ...]) -> str:
    """Markdown table of peaks (KB) per patch x rank point, max and min subnet."""
    lines = [
        "| patch | tokens | rank | subnet | paper KB | mcu, W in SRAM KB | mcu, W in flash KB "
        "| mcu, W in flash, input streamed KB | tflm head KB | tflm arena KB | mcu saving vs tflm |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for patch in space.patch_size:
        for rank in ranks:
            point = space.replace(patch_size=(patch,), rank_ratio=(rank,))
            for label, cfg in (("max", point.max_config()), ("min", point.min_config())):
                p = peak_row(cfg)
                saving = 1 - p["mcu_flash_w"] / p["tflm"]
                lines.append(
                    f"| {patch} | {cfg.num_tokens} | {rank:.2f} | {label} E{cfg.embed_dim} D{cfg.depth} | {_kb(p['paper'])} | "
                    f"{_kb(p['mcu_sram_w'])} | {_kb(p['mcu_flash_w'])} | {_kb(p['mcu_flash_w_stream'])} | "
                    f"{_kb(p['tflm_head'])} | {_kb(p['tflm'])} | {100 * saving:.0f}% |"
                )
    return "\n".join(lines)


SHARE_SCHEDULES = (
    ("paper", "paper", False),
    ("mcu, W in SRAM", "mcu", True),
    ("mcu, W in flash", "mcu", False),
)


def share_table(
    space: SearchSpace, ranks: tuple[float, ...], budgets: list[int], samples: int, seed: int
) -> str:
    """Markdown table of R per patch x rank point, per budget and schedule."""
    head = " | ".join(f"{name} ≤ {format_bytes(b)}" for b in budgets for name, _, _ in SHARE_SCHEDULES)
    lines = [f"| patch | rank | {head} |", "|---:|---:|" + "---:|" * (len(budgets) * len(SHARE_SCHEDULES))]
    for patch in space.patch_size:
        for rank in ranks:
            point = space.replace(patch_size=(patch,), rank_ratio=(rank,))
            shares = []
            for b in budgets:
                for _, schedule, in_sram in SHARE_SCHEDULES:
                    rng = np.random.default_rng(seed)
                    est = share_within_budget(
                        point, b, schedule, rng=rng, n_samples=samples, weights_in_sram=in_sram
                    )
                    shares.append(f"{est.share:.3f}")
            lines.append(f"| {patch} | {rank:.2f} | " + " | ".join(shares) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=f"Budgets: {HELP}")
    parser.add_argument("--space", default="mcuformer-t", help="space preset name or YAML path")
    parser.add_argument("--budgets", nargs="+", type=argparse_budget, default=None, help="SRAM budgets for R")
    parser.add_argument(
        "--ranks", nargs="+", type=float, default=None, help="rank ratios (default: the space's)"
    )
    parser.add_argument("--samples", type=int, default=2000, help="subnets sampled per point for R")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        space = load_space(args.space)
        ranks = tuple(args.ranks) if args.ranks else tuple(r for r in space.rank_ratio if r is not None)
        if not ranks:
            raise ConfigError("the space has no rank ratios; pass --ranks")
        budgets = args.budgets or [argparse_budget(b) for b in DEFAULT_BUDGETS]
        print(f"## Peak SRAM, {space.name} at {space.img_size} px (KB = 1024 bytes)\n")
        print(peak_table(space, ranks))
        print(f"\n## R: share of each point's subnets within budget ({args.samples} samples per cell)\n")
        print(share_table(space, ranks, budgets, args.samples, args.seed))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
