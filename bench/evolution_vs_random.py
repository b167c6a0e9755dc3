"""Evolution vs random search at the same budget and number of evaluations, over several seeds.

Each (algorithm, seed) run is an ordinary resumable search (its state under ``--output``); the
best subnet of each is scored on the test split with inherited weights. Prints one line per run,
then the mean and spread (sample std) of each algorithm's test top-1, and writes ``summary.json``.

    python bench/evolution_vs_random.py --supernet runs/digits-tiny/checkpoint.pth --budget 320KB
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch

from common.errors import ConfigError
from common.files import atomic_write_text
from memory_model import BUDGET_HELP, argparse_budget, format_bytes
from search.constraint import MemoryConstraint
from search.subnet.evaluator import SupernetEvaluator
from search.subnet.evolution import ALGORITHMS, SearchSettings, run_search
from search_space.config import SubnetConfig

log = logging.getLogger("mcunas.bench")


def settings_for(algorithm: str, seed: int, population: int, generations: int) -> SearchSettings:
    """AutoFormer's proportions at a smaller population: top 20 % breed, half mutations, half crossovers."""
    return SearchSettings(
        algorithm=algorithm,
        population=population,
        generations=generations,
        parents=max(2, population // 5),
        mutations=population // 2,
        crossovers=population // 2,
        seed=seed,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--supernet", default="runs/digits-tiny/checkpoint.pth", help="supernet checkpoint")
    p.add_argument("--budget", type=argparse_budget, default=argparse_budget("320KB"), help=BUDGET_HELP)
    p.add_argument("--schedule", default="mcu", help="memory schedule of the constraint (mcu | paper | tflm)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--population", type=int, default=20)
    p.add_argument("--generations", type=int, default=10)
    p.add_argument("--output", default="runs/bench/evolution_vs_random")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the machine may be shared)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    torch.set_num_threads(args.threads)
    try:
        constraint = MemoryConstraint(args.budget, args.schedule, weights_in_sram=True)
        evaluator = SupernetEvaluator(args.supernet, "cpu")
        constraint.check_feasible(evaluator.space)
        runs = [
            (a, s, settings_for(a, s, args.population, args.generations))
            for s in args.seeds
            for a in ALGORITHMS
        ]
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    fitness_of: dict[SubnetConfig, float] = {}  # a subnet's holdout top-1 is the same in every run

    def holdout(cfg: SubnetConfig) -> float:
        if cfg not in fitness_of:
            fitness_of[cfg] = evaluator.holdout_top1(cfg)
        return fitness_of[cfg]

    rows = []
    for algorithm, seed, settings in runs:
        out = Path(args.output) / f"{algorithm}-seed{seed}"
        result = run_search(evaluator.space, constraint, holdout, settings, output=out, progress=False)
        row = {
            "algorithm": algorithm,
            "seed": seed,
            "evaluations": len(result.evaluated),
            "holdout_top1": result.best_fitness,
            "test_top1": evaluator.test_top1(result.best),
            "peak_bytes": constraint.peak_bytes(result.best),
            "best": result.best.short(),
        }
        rows.append(row)
        print(
            f"{algorithm:<9} seed {seed}: {row['evaluations']} evaluations, best {row['best']} "
            f"({format_bytes(row['peak_bytes'])}) holdout {row['holdout_top1']:.2f}% test {row['test_top1']:.2f}%",
            flush=True,
        )
    stats = {}
    for algorithm in ALGORITHMS:
        test = np.array([r["test_top1"] for r in rows if r["algorithm"] == algorithm])
        hold = np.array([r["holdout_top1"] for r in rows if r["algorithm"] == algorithm])
        stats[algorithm] = {
            "test_mean": float(test.mean()),
            "test_std": float(test.std(ddof=1)) if len(test) > 1 else 0.0,
            "holdout_mean": float(hold.mean()),
            "holdout_std": float(hold.std(ddof=1)) if len(hold) > 1 else 0.0,
        }
    summary = {
        "supernet": args.supernet,
        "budget_bytes": args.budget,
        "schedule": args.schedule,
        "seeds": args.seeds,
        "population": args.population,
        "generations": args.generations,
        "runs": rows,
        "stats": stats,
    }
    atomic_write_text(Path(args.output) / "summary.json", json.dumps(summary, indent=2))
    e, r = stats["evolution"], stats["random"]
    print(
        f"summary ({len(args.seeds)} seeds, {args.population * args.generations} evaluations each, budget "
        f"{format_bytes(args.budget)} {args.schedule}): test top-1 evolution {e['test_mean']:.2f} ± "
        f"{e['test_std']:.2f}% vs random {r['test_mean']:.2f} ± {r['test_std']:.2f}% "
        f"(holdout {e['holdout_mean']:.2f} ± {e['holdout_std']:.2f} vs {r['holdout_mean']:.2f} ± {r['holdout_std']:.2f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
