"""``python -m baselines --budget 320KB [--train-epochs N] [--output runs/baselines]``

Profiles the seed models (EfficientFormer, MobileViT, MobileOne; timm, untrained) at MCU
resolutions: peak SRAM (int8, TFLM planner and max-live), flash, params, FLOPs and whether each
fits; with ``--train-epochs`` trains every model that fits (its largest fitting resolution) on
the training config's data with the searched subnet's finetune recipe. Writes results.json,
table.md and plot.png (searched subnets beside the baselines when ``--searched`` or
runs/search holds one). Rerunning reuses cached profiles and resumes training.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from memory_model.budget import HELP as BUDGET_HELP
from memory_model.budget import parse_budget
from search_space.errors import ConfigError

DEFAULT_SEARCH_DIR = Path("runs/search")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m baselines", description=__doc__.split("\n\n")[1])
    p.add_argument(
        "--budget",
        required=True,
        help="SRAM budget(s), comma-separated (first one: plot line). " + BUDGET_HELP,
    )
    p.add_argument("--train-epochs", type=int, default=None, help="train the fitting models this many epochs")
    p.add_argument(
        "--train-cfg", default="configs/train/digits-tiny.yaml", help="training config (data, recipe)"
    )
    p.add_argument("--output", default="runs/baselines", help="output directory")
    p.add_argument("--models", default=None, help="comma-separated subset of the zoo (default: all)")
    p.add_argument(
        "--searched", default=None, help="subnet YAML or search output dir (default: runs/search if present)"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        budgets = [parse_budget(b.strip()) for b in args.budget.split(",") if b.strip()]
        if not budgets:
            raise ConfigError("--budget is empty; pass e.g. 320KB")
        if args.train_epochs is not None and args.train_epochs < 1:
            raise ConfigError(f"--train-epochs must be >= 1, got {args.train_epochs}")
        import torch

        from baselines.report import load_searched, profile_searched, write_results
        from baselines.zoo import ZOO, profile_zoo, train_baseline

        specs = ZOO
        if args.models:
            wanted = [m.strip() for m in args.models.split(",") if m.strip()]
            unknown = sorted(set(wanted) - {s.name for s in ZOO})
            if unknown:
                raise ConfigError(
                    f"unknown model {unknown[0]!r}; choose from {', '.join(s.name for s in ZOO)}"
                )
            specs = tuple(s for s in ZOO if s.name in wanted)
        train_cfg = None
        if args.train_epochs is not None:
            from training.config import load_config

            train_cfg = load_config(args.train_cfg)
        searched_path = args.searched or (DEFAULT_SEARCH_DIR if DEFAULT_SEARCH_DIR.exists() else None)
        searched = []
        if searched_path is not None:
            try:
                searched = load_searched(searched_path)
            except ConfigError as err:
                if args.searched:
                    raise
                logging.getLogger("mcunas.baselines").info("no searched subnet shown: %s", err)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    output = Path(args.output)
    rows = profile_zoo(specs, output / "profiles")
    if train_cfg is not None:
        for spec in specs:
            fitting = [r for r in rows if r["model"] == spec.name and r["peak_bytes"] <= budgets[0]]
            if not fitting:
                continue
            best = max(fitting, key=lambda r: r["img_size"])
            run_dir = output / "train" / f"{spec.name}@{best['img_size']}"
            best["test_top1"] = train_baseline(
                spec.name, best["img_size"], train_cfg, args.train_epochs, run_dir
            )
    rows += [profile_searched(e) for e in searched]
    paths = write_results(rows, budgets, output)
    print(paths["table"].read_text())
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
