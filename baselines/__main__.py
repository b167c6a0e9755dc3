"""``python -m baselines --budget 320KB [--train-epochs N] [--output runs/baselines]``

Profiles the seed models (EfficientFormer, MobileViT, MobileOne; timm, untrained) at MCU
resolutions: peak SRAM (int8, TFLM planner and max-live), flash, params, FLOPs and whether each
fits; with ``--train-epochs`` trains every model that fits (its largest fitting resolution
under each budget) on the training config's data with the searched subnet's finetune recipe. Writes results.json,
table.md and plot.png (searched subnets beside the baselines when ``--searched`` or
runs/search holds one; with ``--train-epochs`` each searched subnet is also trained from scratch
with the same recipe, the like-for-like row to the baselines). Rerunning reuses cached profiles and resumes training.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from common.errors import ArgumentParser, ConfigError, exit_on_error
from memory_model.budget import HELP as BUDGET_HELP
from memory_model.budget import parse_budget, parse_budget_list

DEFAULT_SEARCH_DIR = Path("runs/search")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m baselines", description=__doc__.split("\n\n")[1])
    p.add_argument(
        "--budget",
        required=True,
        help="SRAM budget(s), comma-separated (one plot line each). " + BUDGET_HELP,
    )
    p.add_argument(
        "--flash-budget",
        default=None,
        help="flash limit shown beside the SRAM budgets, e.g. 1MB (the STM32F746's); same units",
    )
    p.add_argument("--train-epochs", type=int, default=None, help="train the fitting models this many epochs")
    p.add_argument(
        "--train-cfg", default="configs/train/digits-tiny.yaml", help="training config (data, recipe)"
    )
    p.add_argument("--output", default="runs/baselines", help="output directory")
    p.add_argument("--models", default=None, help="comma-separated subset of the zoo (default: all)")
    p.add_argument(
        "--train-models",
        default=None,
        help="comma-separated models to train (default: every profiled model that fits)",
    )
    p.add_argument(
        "--searched",
        default=None,
        help="comma-separated evolution_search.py output dirs or subnet YAMLs "
        "(default: runs/search if present)",
    )
    return p.parse_args(argv)


def _pick(names: str | None, specs: tuple, flag: str) -> tuple:
    """The specs a comma-separated ``flag`` value names (all of ``specs`` when it is unset)."""
    if not names:
        return specs
    wanted = [m.strip() for m in names.split(",") if m.strip()]
    unknown = sorted(set(wanted) - {s.name for s in specs})
    if unknown:
        raise ConfigError(
            f"{flag}: unknown model {unknown[0]!r}; choose from {', '.join(s.name for s in specs)}"
        )
    return tuple(s for s in specs if s.name in wanted)


def _to_train(rows: list[dict], specs: tuple, budgets: list[int]) -> list[dict]:
    """Per budget, each model's largest fitting resolution (deduplicated, smallest first)."""
    chosen: dict[tuple[str, int], dict] = {}
    for budget in budgets:
        for spec in specs:
            fitting = [r for r in rows if r["model"] == spec.name and r["arena_bytes"] <= budget]
            if fitting:
                best = max(fitting, key=lambda r: r["img_size"])
                chosen[(best["model"], best["img_size"])] = best
    return sorted(chosen.values(), key=lambda r: r["flops"])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        budgets = parse_budget_list(args.budget)
        flash_budget = None if args.flash_budget is None else parse_budget(args.flash_budget)
        if args.train_epochs is not None and args.train_epochs < 1:
            raise ConfigError(f"--train-epochs must be >= 1, got {args.train_epochs}")
        import torch

        from baselines.report import load_searched, profile_searched, write_results
        from baselines.zoo import ZOO, profile_zoo, train_baseline, train_from_scratch
        from search_space.config import SubnetConfig
        from search_space.static import StaticViT

        specs = _pick(args.models, ZOO, "--models")
        train_specs = _pick(args.train_models, specs, "--train-models")
        train_cfg = None
        if args.train_epochs is not None:
            from training.config import load_config

            train_cfg = load_config(args.train_cfg)
        searched = []
        if args.searched:
            for path in (p.strip() for p in args.searched.split(",") if p.strip()):
                searched += load_searched(path)
        elif DEFAULT_SEARCH_DIR.exists():
            try:
                searched = load_searched(DEFAULT_SEARCH_DIR)
            except ConfigError as err:
                logging.getLogger("mcunas.baselines").info("no searched subnet shown: %s", err)
    except ConfigError as err:
        return exit_on_error(err)
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    output = Path(args.output)
    rows = profile_zoo(specs, output / "profiles")
    if train_cfg is not None:
        for best in _to_train(rows, train_specs, budgets):
            run_dir = output / "train" / f"{best['model']}@{best['img_size']}"
            best["test_top1"] = train_baseline(
                best["model"], best["img_size"], train_cfg, args.train_epochs, run_dir
            )
    own = [profile_searched(e) for e in searched]
    if train_cfg is not None:
        for row, entry in zip(own, searched, strict=True):
            cfg = SubnetConfig.from_dict(entry["subnet"])
            run_dir = output / "train" / f"searched-{cfg.digest()[:8]}-scratch"  # one run per architecture
            row["scratch_test_top1"] = train_from_scratch(
                lambda cfg=cfg: StaticViT(cfg), cfg.img_size, train_cfg, args.train_epochs, run_dir,
                {"searched_from_scratch": cfg.to_dict()},
            )  # fmt: skip
    rows += own
    paths = write_results(rows, budgets, output, flash_budget)
    print(paths["table"].read_text())
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
