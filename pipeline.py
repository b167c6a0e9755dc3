"""The whole pipeline on one budget: evolve the space (training each visited point's supernet)
→ train the chosen point's supernet further → evolutionary search under the budget →
finetune the best subnet → export (ONNX; int8 .tflite measured in tflite-micro when the
deployment requirements are installed). Each stage is its own command too (see README);
rerunning this command continues every stage from where it stopped.

    python pipeline.py                       # embedded digits, 320 KB, CPU
    python pipeline.py --budget 256KB --output runs/pipeline-256
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import evolution_search
import evolve_space
from common.errors import ArgumentParser, ConfigError, exit_on_error
from common.logs import setup_logging
from memory_model.budget import HELP as BUDGET_HELP
from memory_model.budget import argparse_budget, format_bytes

DEFAULT_BUDGET_BYTES = 320 * 1024  # MCUFormer's STM32F746


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--budget", type=argparse_budget, help=f"SRAM budget (default 320KB, or the board's); {BUDGET_HELP}"
    )
    p.add_argument("--flash-budget", type=argparse_budget, help="optional flash budget, same units")
    p.add_argument(
        "--board", help="board preset (stm32f746, stm32f427, stm32h743): its SRAM and flash are the budgets "
        "(an explicit --budget/--flash-budget wins), and the searched subnet is built and run for it"
    )  # fmt: skip
    p.add_argument("--output", default="runs/pipeline", help="root of every stage's output")
    p.add_argument("--final-epochs", type=int, default=10, help="extra epochs for the chosen supernet")
    p.add_argument("--finetune", type=int, default=10, help="finetune epochs of the searched subnet")
    p.add_argument("--population", type=int, default=20, help="search population (AutoFormer: 50)")
    p.add_argument("--generations", type=int, default=10, help="search generations (AutoFormer: 20)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def stage_overrides(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """Config overrides of the space evolution and of the subnet search for this pipeline."""
    root = Path(args.output)
    evolve = [f"output={root / 'evolve_space'}", f"seed={args.seed}", f"recipe.overrides.seed={args.seed}",
              f"evolve.final_epochs={args.final_epochs}"]  # fmt: skip
    pop = args.population
    search = [f"supernet={root / 'evolve_space' / 'chosen' / 'checkpoint.pth'}", f"output={root / 'search'}",
              f"search.seed={args.seed}", f"finetune.epochs={args.finetune}", f"search.population={pop}",
              f"search.generations={args.generations}", f"search.parents={max(2, pop // 5)}",
              f"search.mutations={pop // 2}", f"search.crossovers={pop // 2}"]  # fmt: skip
    return evolve, search


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(args.output)
    setup_logging()
    stages: list[tuple[str, float]] = []
    try:
        if args.board is not None:
            from deploy.mcu.integrate import board_budgets

            args.budget, args.flash_budget = board_budgets(args.board, args.budget, args.flash_budget)
        elif args.budget is None:
            args.budget = DEFAULT_BUDGET_BYTES
        evolve_over, search_over = stage_overrides(args)
        budgets = (args.budget, args.flash_budget)
        evolve_run = evolve_space.build(None, evolve_over, *budgets)  # every stage is checked first
        search_cfg = evolution_search.build(None, search_over, *budgets)
        t0 = time.perf_counter()
        evolve_space.run(evolve_run)
        stages.append(("evolve space + train chosen supernet", time.perf_counter() - t0))
        t0 = time.perf_counter()
        summary = evolution_search.run(search_cfg, board=args.board)
        stages.append(
            ("search + finetune + export" + (" + board run" if args.board else ""), time.perf_counter() - t0)
        )
    except ConfigError as exc:
        return exit_on_error(exc)

    result = json.loads((root / "evolve_space" / "result.json").read_text())
    print(f"\n## Pipeline summary (budget {format_bytes(args.budget)})\n")
    print("| stage | wall time |")
    print("|---|---|")
    for name, seconds in stages:
        print(f"| {name} | {seconds / 60:.1f} min |")
    print(f"| total | {sum(s for _, s in stages) / 60:.1f} min |")
    print(f"\nchosen space point: {json.dumps(result.get('point'))}; outputs under {root}/")
    if "mcu" in summary:
        tflite = summary.get("artifacts", {}).get("tflite", {})
        arena = tflite.get("arena_total_bytes") or tflite.get("arena_head_bytes")
        beside = f" (tflite-micro arena of the same model: {format_bytes(arena)})" if arena else ""
        print(f"{summary['mcu']}{beside}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
