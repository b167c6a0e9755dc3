"""Search a trained supernet for the most accurate subnet under an SRAM (and flash) budget.

    python evolution_search.py --budget 320KB --supernet runs/digits-tiny/checkpoint.pth
    python evolution_search.py --budget 256KB --algorithm random -o search.generations=10
    python evolution_search.py --budget 320KB --finetune 10      # then finetune + export

Rerunning the same command continues an interrupted search (same result for the same seed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from common.errors import ArgumentParser, ConfigError, exit_on_error
from common.logs import setup_logging
from memory_model.budget import HELP as BUDGET_HELP
from memory_model.budget import argparse_budget


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cfg", help="search config YAML (default: configs/search/default.yaml)")
    p.add_argument("--budget", type=argparse_budget, help=f"peak SRAM budget; {BUDGET_HELP}")
    p.add_argument("--flash-budget", type=argparse_budget, help="flash budget, same units as --budget")
    p.add_argument("--board", help="board preset (stm32f746, stm32f427, stm32h743): SRAM/flash budgets")
    p.add_argument(
        "--supernet", help="supernet checkpoint (default: runs/evolve_space/chosen/checkpoint.pth)"
    )
    p.add_argument("--output", help="output directory (default: runs/search)")
    p.add_argument("--seed", type=int, help="search seed")
    p.add_argument("--algorithm", help="evolution (default) or random (the random-search baseline)")
    p.add_argument("--finetune", type=int, metavar="N", help="finetune the best subnet N epochs, then export")
    p.add_argument("--restart", action="store_true", help="discard a previous search in the output directory")
    p.add_argument("-o", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. search.population=20 or constraint.schedule=tflm")  # fmt: skip
    return p.parse_args(argv)


def build(
    cfg_path: str | None, overrides: list[str], budget: int | None = None, flash_budget: int | None = None
) -> Any:
    """The validated search config (nothing written), with the budgets in bytes when given."""
    from search.subnet.run import load_search_config

    cfg = load_search_config(cfg_path, overrides)
    if budget is not None:
        cfg.constraint.budget = budget
    if flash_budget is not None:
        cfg.constraint.flash_budget = flash_budget
    cfg.constraint.constraint()  # validates the limits as set
    return cfg


def prepare(argv: list[str] | None = None) -> tuple[Any, bool, str | None]:
    """Parse the command line and `build` the config: (config, restart, board)."""
    args = parse_args(argv)
    flags = {
        "supernet": args.supernet,
        "output": args.output,
        "search.seed": args.seed,
        "search.algorithm": args.algorithm,
        "finetune.epochs": args.finetune,
    }
    overrides = list(args.overrides) + [f"{k}={v}" for k, v in flags.items() if v is not None]
    if args.board is not None:  # the preset's SRAM / flash; an explicit --budget / --flash-budget wins
        from deploy.mcu.integrate import board_budgets

        args.budget, args.flash_budget = board_budgets(args.board, args.budget, args.flash_budget)
    return build(args.cfg, overrides, args.budget, args.flash_budget), args.restart, args.board


def run(cfg: Any, restart: bool = False, board: str | None = None) -> dict[str, Any]:
    """Search (then finetune and export, if asked; then build and run the finetuned subnet for
    ``board`` when given) and print the summary."""
    from deploy.finetune import finetune_best
    from search.subnet.run import run_subnet_search

    summary = run_subnet_search(cfg, restart=restart, finish=finetune_best)
    if board is not None and "artifacts" in summary:
        from deploy.mcu.integrate import run_for_board

        summary["mcu"] = run_for_board(Path(cfg.output), board)
        summary["text"] += f"\n{summary['mcu']}"
    print(summary["text"])
    return summary


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    try:
        run(*prepare(argv))
    except ConfigError as exc:
        return exit_on_error(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
