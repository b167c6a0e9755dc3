"""Peak SRAM per schedule over a space's axes, and R per budget: where a budget binds.

    python -m memory_model.table [--space mcuformer-t] [--budgets 256KB,320KB,512KB]
                                 [--samples 10000] [--seed 0] [--ranks 0.4 0.7 0.95]
                                 [--only peaks|shares|summary]

For every patch size x rank ratio point of the space it prints the largest and smallest
subnet's peak under each schedule (``paper``'s per-FC formula; ``mcu`` with weights staged in
SRAM or read from flash, each with the input whole or streamed; ``tflm``, TF-Lite Micro's arena
head and its whole arena with the persistent tail, 64-bit host), the ``mcu`` saving over the
``tflm`` arena; then per budget a table of R, the share of the point's subnets whose peak fits
(``paper`` and the four ``mcu`` variants, vectorised through the schedule registry), and a
summary: per budget and schedule, on how many points R is 1 and its smallest value. Exact GELU
has no TFLM kernel: its ``tflm`` column is the x·σ(1.702x) form that gets deployed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from common.errors import ArgumentParser, ConfigError, exit_on_error
from memory_model.budget import HELP, format_bytes, parse_budget_list
from memory_model.schedules import peak_sram, share_within_budget
from memory_model.tflm import tflm_arena
from search_space.config import SubnetConfig
from search_space.space import SearchSpace, load_space

DEFAULT_BUDGETS = "256KB,320KB,512KB"
VIEWS = ("all", "peaks", "shares", "summary")


@dataclass(frozen=True)
class Variant:
    """One column of the R tables: a schedule with its options."""

    label: str
    schedule: str
    options: dict


VARIANTS = (
    Variant("paper", "paper", {}),
    Variant("mcu, W SRAM, whole", "mcu", {"weights_in_sram": True, "input": "whole"}),
    Variant("mcu, W SRAM, stream", "mcu", {"weights_in_sram": True, "input": "stream"}),
    Variant("mcu, W flash, whole", "mcu", {"weights_in_sram": False, "input": "whole"}),
    Variant("mcu, W flash, stream", "mcu", {"weights_in_sram": False, "input": "stream"}),
)


def _kb(n_bytes: int) -> str:
    return f"{n_bytes / 1024:,.1f}"


def points(space: SearchSpace, ranks: tuple[float, ...]) -> list[tuple[int, float, SearchSpace]]:
    """Every (patch, rank) point of ``space`` as a one-point space."""
    return [
        (patch, rank, space.replace(patch_size=(patch,), rank_ratio=(rank,)))
        for patch in space.patch_size
        for rank in ranks
    ]


def peak_row(cfg: SubnetConfig) -> dict[str, int]:
    """Peak bytes of one subnet under every schedule (``tflm``: the whole arena, 64-bit host)."""
    arena = tflm_arena(cfg)
    row = {v.label: peak_sram(cfg, v.schedule, **v.options).peak_bytes for v in VARIANTS}
    return {**row, "tflm head": arena.head_bytes, "tflm arena": arena.total_bytes}


def peak_table(space: SearchSpace, ranks: tuple[float, ...]) -> str:
    """Markdown table of peaks (KB) per patch x rank point, largest and smallest subnet."""
    cols = [v.label for v in VARIANTS] + ["tflm head", "tflm arena"]
    lines = [
        "| patch | tokens | rank | subnet | "
        + " | ".join(f"{c} KB" for c in cols)
        + " | mcu saving vs tflm |",
        "|---:|---:|---:|---|" + "---:|" * (len(cols) + 1),
    ]
    for patch, rank, point in points(space, ranks):
        for label, cfg in (("max", point.max_config()), ("min", point.min_config())):
            p = peak_row(cfg)
            saving = 1 - p["mcu, W flash, whole"] / p["tflm arena"]
            lines.append(
                f"| {patch} | {cfg.num_tokens} | {rank:.2f} | {label} E{cfg.embed_dim} D{cfg.depth} | "
                + " | ".join(_kb(p[c]) for c in cols)
                + f" | {100 * saving:.0f}% |"
            )
    return "\n".join(lines)


def shares(
    space: SearchSpace, ranks: tuple[float, ...], budgets: list[int], samples: int, seed: int
) -> np.ndarray:
    """R per (point, budget, variant), shape (points, budgets, variants); every cell draws the
    same subnets (one seed), so the columns differ by the schedule alone."""
    pts = points(space, ranks)
    out = np.zeros((len(pts), len(budgets), len(VARIANTS)))
    for i, (_, _, point) in enumerate(pts):
        for j, budget in enumerate(budgets):
            for k, v in enumerate(VARIANTS):
                est = share_within_budget(
                    point, budget, v.schedule, np.random.default_rng(seed), n_samples=samples, **v.options
                )
                out[i, j, k] = est.share
    return out


def share_tables(space: SearchSpace, ranks: tuple[float, ...], budgets: list[int], r: np.ndarray) -> str:
    """One markdown table of R per budget: a row per point, a column per schedule variant."""
    pts = points(space, ranks)
    blocks = []
    for j, budget in enumerate(budgets):
        lines = [
            f"R within {format_bytes(budget)}:\n",
            "| patch | rank | " + " | ".join(v.label for v in VARIANTS) + " |",
            "|---:|---:|" + "---:|" * len(VARIANTS),
        ]
        for i, (patch, rank, _) in enumerate(pts):
            lines.append(f"| {patch} | {rank:.2f} | " + " | ".join(f"{x:.3f}" for x in r[i, j]) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def summary_table(budgets: list[int], r: np.ndarray) -> str:
    """Per budget and schedule variant: points with R = 1 (of all points) and the smallest R."""
    n = r.shape[0]
    lines = [
        "| budget | " + " | ".join(v.label for v in VARIANTS) + " |",
        "|---|" + "---|" * len(VARIANTS),
    ]
    for j, budget in enumerate(budgets):
        cells = [
            f"R=1 on {int((r[:, j, k] == 1.0).sum())}/{n}, min {r[:, j, k].min():.2f}"
            for k in range(len(VARIANTS))
        ]
        lines.append(f"| {format_bytes(budget)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> object:
    parser = ArgumentParser(description=__doc__.splitlines()[0], epilog=f"Budgets: {HELP}")
    parser.add_argument("--space", default="mcuformer-t", help="space preset name or YAML path")
    parser.add_argument(
        "--budgets",
        nargs="+",
        default=[DEFAULT_BUDGETS],
        help=f"SRAM budgets for R (default {DEFAULT_BUDGETS})",
    )
    parser.add_argument(
        "--ranks", nargs="+", type=float, default=None, help="rank ratios (default: the space's)"
    )
    parser.add_argument("--samples", type=int, default=10_000, help="subnets sampled per point for R")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=VIEWS, default="all", help="print one part only")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        budgets = [b for text in args.budgets for b in parse_budget_list(text)]
        if args.samples < 1:
            raise ConfigError(f"--samples must be >= 1, got {args.samples}")
        space = load_space(args.space)
        ranks = tuple(args.ranks) if args.ranks else tuple(r for r in space.rank_ratio if r is not None)
        if not ranks:
            raise ConfigError("the space has no rank ratios; pass --ranks")
        out = []
        if args.only in ("all", "peaks"):
            out += [
                f"## Peak SRAM, {space.name} at {space.img_size} px (KB = 1024 bytes)",
                peak_table(space, ranks),
            ]
        if args.only != "peaks":
            r = shares(space, ranks, budgets, args.samples, args.seed)
            if args.only in ("all", "shares"):
                out += [
                    f"## R: share of each point's subnets within budget ({args.samples} samples per cell)"
                ]
                out += [share_tables(space, ranks, budgets, r)]
            if args.only in ("all", "summary"):
                out += [f"## R summary, {space.name}: {r.shape[0]} points", summary_table(budgets, r)]
        print("\n\n".join(out))
    except ConfigError as err:
        return exit_on_error(err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
