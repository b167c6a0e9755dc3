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
from memory_model.budget import HELP as BUDGET_HELP
from memory_model.budget import argparse_budget, format_bytes
from search_space.errors import ArgumentParser, ConfigError, exit_on_error


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", type=argparse_budget, default=argparse_budget("320KB"), help=BUDGET_HELP)
    p.add_argument("--flash-budget", type=argparse_budget, help="optional flash budget, same units")
    p.add_argument("--output", default="runs/pipeline", help="root of every stage's output")
    p.add_argument("--final-epochs", type=int, default=10, help="extra epochs for the chosen supernet")
    p.add_argument("--finetune", type=int, default=10, help="finetune epochs of the searched subnet")
    p.add_argument("--population", type=int, default=20, help="search population (AutoFormer: 50)")
    p.add_argument("--generations", type=int, default=10, help="search generations (AutoFormer: 20)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def stage_args(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The space evolution's and the subnet search's command lines for this pipeline."""
    root = Path(args.output)
    budget = f"{args.budget}B"
    flash = ["--flash-budget", f"{args.flash_budget}B"] if args.flash_budget else []
    evolve = ["--budget", budget, *flash, "--output", str(root / "evolve_space"), "--seed", str(args.seed),
              "--final-epochs", str(args.final_epochs)]  # fmt: skip
    search = ["--budget", budget, *flash, "--supernet", str(root / "evolve_space" / "chosen" / "checkpoint.pth"),
              "--output", str(root / "search"), "--seed", str(args.seed), "--finetune", str(args.finetune),
              "-o", f"search.population={args.population}", "-o", f"search.generations={args.generations}",
              "-o", f"search.parents={max(2, args.population // 5)}",
              "-o", f"search.mutations={args.population // 2}", "-o", f"search.crossovers={args.population // 2}"]  # fmt: skip
    return evolve, search


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(args.output)
    evolve_space.setup_logging()
    stages: list[tuple[str, float]] = []
    try:
        evolve_argv, search_argv = stage_args(args)
        evolve_run = evolve_space.prepare(evolve_argv)  # every stage is validated before any starts
        search_cfg, _ = evolution_search.prepare(search_argv)
        t0 = time.perf_counter()
        evolve_space.run(evolve_run)
        stages.append(("evolve space + train chosen supernet", time.perf_counter() - t0))
        t0 = time.perf_counter()
        evolution_search.run(search_cfg)
        stages.append(("search + finetune + export", time.perf_counter() - t0))
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
