"""Search a trained supernet for the most accurate subnet under an SRAM (and flash) budget.

    python evolution_search.py --budget 320KB --supernet runs/digits-tiny/checkpoint.pth
    python evolution_search.py --budget 256KB --algorithm random -o search.generations=10
    python evolution_search.py --budget 320KB --finetune 10      # then finetune + export

Rerunning the same command continues an interrupted search (same result for the same seed).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from memory_model.budget import HELP as BUDGET_HELP
from memory_model.budget import argparse_budget
from search_space.errors import ArgumentParser, ConfigError, exit_on_error


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


def prepare(argv: list[str] | None = None) -> tuple[Any, bool]:
    """Parse and validate the search settings (nothing written): (config, restart)."""
    args = parse_args(argv)
    if args.board is not None:  # the preset's SRAM / flash; an explicit --budget / --flash-budget wins
        from deploy.mcu.integrate import board_budgets

        args.budget, args.flash_budget = board_budgets(args.board, args.budget, args.flash_budget)
    flags = {
        "constraint.budget": args.budget,
        "constraint.flash_budget": args.flash_budget,
        "supernet": args.supernet,
        "output": args.output,
        "search.seed": args.seed,
        "search.algorithm": args.algorithm,
        "finetune.epochs": args.finetune,
    }
    overrides = list(args.overrides) + [f"{k}={v}" for k, v in flags.items() if v is not None]
    from search.run import load_search_config

    return load_search_config(args.cfg, overrides), args.restart


def run(cfg: Any, restart: bool = False) -> dict[str, Any]:
    """Search (then finetune and export, if asked) and print the summary."""
    from search.run import run_pipeline

    summary = run_pipeline(cfg, restart=restart)
    print(summary["text"])
    return summary


def main(argv: list[str] | None = None) -> int:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    # the project's loggers only (finetuning sets its own); pipeline.py may have set them up already
    if not logging.getLogger("mcunas").handlers:
        logging.getLogger("mcunas").addHandler(handler)
    logging.getLogger("mcunas").setLevel(logging.INFO)
    try:
        run(*prepare(argv))
    except ConfigError as exc:
        return exit_on_error(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
