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

from memory_model import BUDGET_HELP, argparse_budget
from search.evolution import ALGORITHMS
from search.run import load_search_config, run_pipeline
from search_space.errors import ConfigError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cfg", help="search config YAML (default: configs/search/default.yaml)")
    p.add_argument("--budget", type=argparse_budget, help=f"peak SRAM budget; {BUDGET_HELP}")
    p.add_argument("--flash-budget", type=argparse_budget, help="flash budget, same units as --budget")
    p.add_argument(
        "--supernet", help="supernet checkpoint (default: runs/evolve_space/chosen/checkpoint.pth)"
    )
    p.add_argument("--output", help="output directory (default: runs/search)")
    p.add_argument("--seed", type=int, help="search seed")
    p.add_argument(
        "--algorithm", choices=ALGORITHMS, help="evolution (default) or the random-search baseline"
    )
    p.add_argument("--finetune", type=int, metavar="N", help="finetune the best subnet N epochs, then export")
    p.add_argument("--restart", action="store_true", help="discard a previous search in the output directory")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. search.population=20 or constraint.schedule=tflm")  # fmt: skip
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    flags = {
        "constraint.budget": args.budget,
        "constraint.flash_budget": args.flash_budget,
        "supernet": args.supernet,
        "output": args.output,
        "search.seed": args.seed,
        "search.algorithm": args.algorithm,
        "finetune.epochs": args.finetune,
    }
    overrides = list(args.override) + [f"{k}={v}" for k, v in flags.items() if v is not None]
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    # the project's loggers only (finetuning sets its own); pipeline.py may have set them up already
    if not logging.getLogger("mcunas").handlers:
        logging.getLogger("mcunas").addHandler(handler)
    logging.getLogger("mcunas").setLevel(logging.INFO)
    try:
        cfg = load_search_config(args.cfg, overrides)
        summary = run_pipeline(cfg, restart=args.restart)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(summary["text"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
