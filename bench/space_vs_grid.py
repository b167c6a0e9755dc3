"""Space evolution vs exhaustive grid training, on the same recipe.

    python bench/space_vs_grid.py --budget 320KB                  # full grid (digits-tiny: 7 x 5)
    python bench/space_vs_grid.py --budget 320KB --grid coarse    # every other rank ratio

1. Runs the space evolution (``<output>/evolve``, resumable like evolve_space.py).
2. Trains every grid point's supernet from scratch for t epochs (``epochs_per_visit``) and
   scores it the same way (``<output>/grid``, one resumable job per point).
3. Compares: epochs spent by each, and the grid's S at the chosen point vs the grid's best S
   (both measured at E = t, so the comparison is fair); the evolution's own S (at its larger E)
   is printed too. Target: within 0.01 (1 point) of the grid-best S with <= 25% of its epochs.
   The evolution's total epochs are capped at ``--epoch-share`` of the grid's (soft: a visit
   that starts under the cap finishes), and the grid-best and chosen points are retrained with
   another seed (``--noise-seed``) to show how far S moves from training noise alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from memory_model.budget import HELP as BUDGET_HELP
from memory_model.budget import argparse_budget
from search.evolve_config import load_evolve_config
from search.evolve_run import EvolveRun
from search.space_evolution import VisitRequest
from search_space.errors import ConfigError
from training.checkpoint import atomic_write_text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", type=argparse_budget, required=True, help=BUDGET_HELP)
    p.add_argument("--cfg", help="evolution config (default: configs/evolve/digits-tiny.yaml)")
    p.add_argument("--output", default="runs/space_vs_grid")
    p.add_argument(
        "--grid", choices=("full", "coarse"), default="full", help="coarse: every other rank ratio"
    )
    p.add_argument(
        "--epoch-share",
        type=float,
        default=0.25,
        help="cap the evolution's total epochs at this share of the grid's (0 = the config's own cap)",
    )
    p.add_argument(
        "--noise-seed",
        type=int,
        default=1,
        help="retrain the grid-best and the chosen point with this recipe seed: the S noise floor "
        "(-1 = skip)",
    )
    p.add_argument("-o", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return p.parse_args(argv)


def _grid_points(grid_shape: tuple[int, int], coarse: bool) -> list[tuple[int, int]]:
    ranks = range(0, grid_shape[0], 2 if coarse else 1)
    return [(i, j) for i in ranks for j in range(grid_shape[1])]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.output)
    common = [*args.overrides, f"score.budget={args.budget}B", "progress=false"]
    try:
        grid_run = EvolveRun(load_evolve_config(args.cfg, [*common, f"output={out / 'grid'}"]))
        grid, t = grid_run.grid, grid_run.settings.epochs_per_visit
        points = _grid_points(grid.shape, args.grid == "coarse")
        evo_over = [*common, f"output={out / 'evolve'}"]
        if args.epoch_share > 0:
            evo_over.append(f"evolve.max_total_epochs={max(1, int(args.epoch_share * t * len(points)))}")
        evo_run = EvolveRun(load_evolve_config(args.cfg, evo_over))
        noise_run = None
        if args.noise_seed >= 0:
            noise_over = [*common, f"output={out / 'noise'}", f"recipe.overrides.seed={args.noise_seed}"]
            noise_run = EvolveRun(load_evolve_config(args.cfg, noise_over))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    chosen = evo_run.run()
    chosen_pt = grid.index(chosen["rank_ratio"], chosen["patch_size"])
    if chosen_pt not in points:
        points.append(chosen_pt)  # the coarse grid must still score the chosen point
    scores = {}
    for pt in points:
        req = VisitRequest(f"{grid.key(pt)}/grid", pt, grid.value(pt), t, None, t)
        scores[grid.key(pt)] = grid_run.visit(req)
    best_key = max(scores, key=lambda k: scores[k]["S"])
    grid_epochs = t * len(points)
    s_chosen, s_best = scores[chosen["point"]]["S"], scores[best_key]["S"]
    rank = 1 + sum(v["S"] > s_chosen for v in scores.values())
    noise: dict[str, dict] = {}
    if noise_run is not None:  # the same grid measurement with another training seed
        for key in dict.fromkeys([best_key, chosen["point"]]):
            pt = next(p for p in points if grid.key(p) == key)
            req = VisitRequest(f"{key}/seed{args.noise_seed}", pt, grid.value(pt), t, None, t)
            noise[key] = {"S": noise_run.visit(req)["S"], "S_seed0": scores[key]["S"]}
    summary = {
        "grid": args.grid,
        "grid_points": len(points),
        "epochs_per_visit": t,
        "evolution": {k: chosen[k] for k in ("point", "S", "A", "R", "E", "total_epochs", "stop_reason")},
        "grid_best": {"point": best_key, **scores[best_key]},
        "grid_S_at_chosen": s_chosen,
        "S_gap": s_best - s_chosen,
        "epochs_evolution": chosen["total_epochs"],
        "epochs_grid": grid_epochs,
        "epoch_ratio": chosen["total_epochs"] / grid_epochs,
        "chosen_rank_in_grid": rank,
        "noise_seed": args.noise_seed,
        "noise": noise,
        "noise_floor_S": max((abs(v["S"] - v["S_seed0"]) for v in noise.values()), default=None),
        "grid_scores": scores,
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    print(f"{'point':<12}{'A %':>8}{'R':>7}{'S':>8}   (grid, E={t})")
    for key, s in sorted(scores.items(), key=lambda kv: -kv[1]["S"]):
        mark = ">" if key == chosen["point"] else " "
        print(f"{mark}{key:<11}{100 * s['A']:>8.2f}{s['R']:>7.3f}{s['S']:>8.4f}")
    print(
        f"evolution chose {chosen['point']} (grid S {s_chosen:.4f}; its own S {chosen['S']:.4f} at E={chosen['E']}); "
        f"grid best {best_key} S {s_best:.4f}; gap {s_best - s_chosen:+.4f}; epochs {chosen['total_epochs']} vs "
        f"{grid_epochs} ({100 * summary['epoch_ratio']:.0f}%); chosen point ranks {rank} of {len(scores)}"
    )
    for key, v in noise.items():
        print(f"noise floor: {key} S {v['S_seed0']:.4f} (seed 0) vs {v['S']:.4f} (seed {args.noise_seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
