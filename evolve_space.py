"""Search-space evolution (MCUFormer): move a space point (low-rank ratio, patch size) over the
grid toward higher S = A + eta * R, one supernet per point.

    python evolve_space.py --budget 320KB
    python evolve_space.py --cfg configs/evolve/mcuformer-t-imagenet.yaml --budget 320KB \
        -o recipe.overrides.data.root=/datasets/imagenet

Re-running the same command continues from the output directory's state.json.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from common.errors import ArgumentParser, ConfigError, exit_on_error
from common.logs import setup_logging
from memory_model.budget import HELP as BUDGET_HELP
from memory_model.budget import argparse_budget


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--budget", type=argparse_budget, help=f"SRAM budget (required unless in the config); {BUDGET_HELP}"
    )
    p.add_argument("--flash-budget", type=argparse_budget, help="optional flash budget, same units")
    p.add_argument("--cfg", help="evolution config YAML (default: configs/evolve/digits-tiny.yaml)")
    p.add_argument("--output", help="output directory (default: the config's, runs/evolve_space)")
    p.add_argument("-o", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. -o evolve.max_steps=4 (repeatable)")  # fmt: skip
    p.add_argument("--seed", type=int, help="seed (initial points, subnet samples, training)")
    p.add_argument("--final-epochs", type=int, help="train the chosen point's supernet N more epochs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def build(
    cfg_path: str | None, overrides: list[str], budget: int | None = None, flash_budget: int | None = None
) -> Any:
    """The validated run (an `EvolveRun`; nothing written): the config file with ``overrides``,
    and the budgets in bytes when given. Bad input raises `ConfigError`."""
    from search.space.config import load_evolve_config
    from search.space.run import EvolveRun

    cfg = load_evolve_config(cfg_path, overrides)
    if budget is not None:
        cfg.score.budget = budget
    if flash_budget is not None:
        cfg.score.flash_budget = flash_budget
    return EvolveRun(cfg)


def prepare(argv: list[str] | None = None) -> Any:
    """Parse the command line and `build` the run."""
    args = parse_args(argv)
    overrides = list(args.overrides)
    if args.output:
        overrides.append(f"output={args.output}")
    if args.seed is not None:  # the loop's draws and every visit's training and scoring
        overrides += [f"seed={args.seed}", f"recipe.overrides.seed={args.seed}"]
    if args.final_epochs is not None:
        overrides.append(f"evolve.final_epochs={args.final_epochs}")
    if args.no_progress:
        overrides.append("progress=false")
    return build(args.cfg, overrides, args.budget, args.flash_budget)


def run(evolve_run: Any) -> dict[str, Any]:
    """Run a prepared space evolution and print its summary; returns the result."""
    from search.space.run import summary_table

    result = evolve_run.run()
    print(summary_table(evolve_run.evolution.state()))
    print(
        f"chosen: rank_ratio {result['rank_ratio']:g}, patch {result['patch_size']} "
        f"(S {result['S']:.4f} = A {result['A']:.4f} + {result['eta']:g} x R {result['R']:.3f}; E {result['E']}); "
        f"{result['stop_reason']}; {result['total_epochs']} epochs over {result['points_trained']} points"
    )
    print(f"supernet: {result['supernet_checkpoint']}")
    if result["pretrained_checkpoint"]:
        print(f"new points started from the dense supernet {result['pretrained_checkpoint']} (truncated SVD)")
    return result


def main(argv: list[str] | None = None) -> int:
    setup_logging()  # the training jobs log under the same loggers
    try:
        run(prepare(argv))
    except ConfigError as exc:
        return exit_on_error(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
