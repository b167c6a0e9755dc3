"""Space evolution vs exhaustive grid training on the same recipe, judged over training seeds.

    python -m bench.space_vs_grid --budget 320KB -o evolve.epochs_per_visit=4   # digits-tiny: 7 x 5
    python -m bench.space_vs_grid --budget 320KB --grid coarse                 # every other rank ratio
    python -m bench.space_vs_grid --budget 320KB --seeds 0 --evo-seeds 0       # one seed each: noisy
    python -m bench.space_vs_grid --budget 320KB --matrix                      # every row of MATRIX

One short training of a point is a noisy measurement of its S (training seed; far noisier from
random init than from the pretrained dense supernet), so the landscape is measured over several
seeds before anything is judged on it:

0. Pretraining: with the config's ``pretrain`` (the digits default), the one dense supernet every
   new point starts from by truncated SVD is trained first, once, for the grid and every evolution
   alike; its epochs are reported and counted in neither method's (both would pay them once).
1. Reference: every grid point's supernet trained as a new point for t epochs (``epochs_per_visit``)
   under each seed of ``--seeds`` and scored like a visit (``<output>/grid/seed<s>``, one resumable
   job per point); the reference S of a point is its mean over seeds. A point none of whose
   subnets fits is scored without training (A = 0 whatever the weights), in the grid as in the
   evolution.
2. The exhaustive grid, as a method, costs (points with a fitting subnet) x t epochs and picks
   its best S; each seed's grid pick is judged on the reference too (where one noisy grid lands).
3. The space evolution runs once per seed of ``--evo-seeds`` (its initial points and training
   seed; ``<output>/evolve/seed<e>``, resumable like evolve_space.py), its total epochs capped at
   ``--epoch-share`` of the grid's. Gap = best reference S - reference S of the chosen point.
   A run under a reference seed takes its visits of new points from that seed's grid jobs
   (the same training, run once; the grid is measured first) and is judged on the reference
   without that seed, since a reference holding them shares their noise and flatters it (as a
   grid pick, its own seed's argmax, would be flattered).
4. Replay (lookups, no training): the update rule run on the reference landscape itself from
   ``--replay-seeds`` seeded starts with the evolutions' settings, next to the exact expected
   gap of the best of as many random trainable points as the replay's mean epochs pay for.
   Both read the reference without noise: this separates the rule's own error from the
   measurement noise of the real runs. Then the same with every visit measured with the
   spread of one t-epoch training (the noise floor's sd, fresh per visit), next to the best
   *measured* of as many random points and the whole grid measured once under that noise: what
   the rule, random picks and the exhaustive grid each show when only the noise is simulated.
5. Noise floor (simulation, no training): the mean gap of an oracle that always picks the
   landscape's best point, judged on fresh references drawn with the measured spread (the
   residual sd of S once each seed's common shift is removed): what even a perfect pick shows
   on average at each number of seeds the runs are judged on. Evolution seeds outside
   ``--seeds`` are judged on the whole reference.
6. Delivered (evaluation only): the evolutions' chosen supernets, at the E they reached, and each
   grid seed's pick and reference-best supernet (E = t), re-scored on the test split, which no
   choice saw, with one draw of subnets for all: what each method hands over.

The benchmark is one config matrix (`MATRIX`): its rows differ in where a new point's supernet
starts (the pretrained dense supernet; random init; random init with the lecun qkv init) and in
their seeds. ``--matrix`` runs the rows in turn, each in ``<output><suffix>``, and gathers every
row's summary into ``<output>/matrix.json``; ``--matrix scratch,lecun`` runs some of them.

Target: mean gap <= 0.01 (1 point of S) with every evolution within 25% of the grid's epochs.
``--jobs N`` trains N supernets at once, each in its own process with cores / N threads.
Rerunning the same command reads every finished job back and continues the rest.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.delivered import delivered_score
from bench.landscape import judge, judged, measured_best, noise_floor, reference, replay, within_target
from bench.space_vs_grid_matrix import MATRIX, MATRIX_FILE, ROW_FILE, gather_matrix, variant_argv
from common.errors import ConfigError
from common.files import atomic_write_text
from memory_model.budget import HELP as BUDGET_HELP
from memory_model.budget import argparse_budget
from search.space.config import load_evolve_config
from search.space.loop import (
    Point,
    VisitRequest,
    climb_trail,
    path_text,
)
from search.space.run import EvolveRun
from search.space.visit import RESULT_FILE

DELIVERED_SUBNETS = 32  # subnets per supernet in the test-split comparison (the visits score 8)


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
        help="cap each evolution's total epochs at this share of the grid's (0 = the config's own cap)",
    )
    p.add_argument("--seeds", type=int, nargs="+", help="training seeds of the reference (default 0 1 2)")
    p.add_argument("--evo-seeds", type=int, nargs="+", help="seeds of the evolution runs (default 0 1 2)")
    p.add_argument(
        "--matrix",
        nargs="?",
        const="all",
        help="run the rows of the config matrix (all, or comma-separated: "
        + ", ".join(v.name for v in MATRIX)
        + ") with their own seeds and settings",
    )
    p.add_argument("--replay-seeds", type=int, default=50, help="starts of the no-training replay (0 = none)")
    p.add_argument("--jobs", type=int, default=2, help="supernets trained at once (separate processes)")
    p.add_argument("-o", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    if args.jobs < 1 or args.replay_seeds < 0 or not 0 <= args.epoch_share <= 1:
        p.error("--jobs must be >= 1, --replay-seeds >= 0 and --epoch-share in [0, 1]")
    if args.matrix is not None:
        if args.seeds or args.evo_seeds:
            p.error("--matrix sets --seeds and --evo-seeds per row: drop them")
        names = [n.strip() for n in args.matrix.split(",") if n.strip()]
        unknown = sorted(set(names) - {v.name for v in MATRIX} - {"all"})
        if unknown or not names:
            p.error(f"unknown --matrix row {unknown[0] if unknown else args.matrix!r}; rows: "
                    + ", ".join(v.name for v in MATRIX))  # fmt: skip
        return args
    args.seeds, args.evo_seeds = args.seeds or [0, 1, 2], args.evo_seeds or [0, 1, 2]
    if len(set(args.seeds)) != len(args.seeds) or len(set(args.evo_seeds)) != len(args.evo_seeds):
        p.error("--seeds and --evo-seeds must not repeat a seed")
    return args


def grid_points(grid_shape: tuple[int, int], coarse: bool) -> list[Point]:
    ranks = range(0, grid_shape[0], 2 if coarse else 1)
    return [(i, j) for i in ranks for j in range(grid_shape[1])]


def trainable(run: EvolveRun, points: list[Point]) -> list[Point]:
    """The points with a subnet within budget: the ones the grid has to train."""
    return [p for p in points if run.fits(p)]


def build_runs(args: argparse.Namespace) -> tuple[dict[int, EvolveRun], dict[int, EvolveRun], int]:
    """The grid's runs (one per reference seed), the evolution runs and the grid's epochs;
    nothing is written."""
    out = Path(args.output)
    common = [*args.overrides, f"score.budget={args.budget}", "progress=false"]
    if args.jobs > 1:
        common.append("launch.kind=subprocess")
    grid = {
        s: EvolveRun(load_evolve_config(args.cfg, [*common, f"output={out / 'grid' / f'seed{s}'}",
                                                   f"recipe.overrides.seed={s}"]))
        for s in args.seeds
    }  # fmt: skip
    first = grid[args.seeds[0]]
    points = grid_points(first.grid.shape, args.grid == "coarse")
    grid_epochs = first.settings.epochs_per_visit * len(trainable(first, points))
    cap = max(1, int(args.epoch_share * grid_epochs))
    evo = {
        e: EvolveRun(load_evolve_config(args.cfg, [*common, f"output={out / 'evolve' / f'seed{e}'}", f"seed={e}",
                                                   f"recipe.overrides.seed={e}",
                                                   *([f"evolve.max_total_epochs={cap}"] if args.epoch_share else [])]))
        for e in args.evo_seeds
    }  # fmt: skip
    return grid, evo, grid_epochs


def grid_score(run: EvolveRun, pt: Point) -> dict[str, Any]:
    """One grid measurement: the point's supernet trained as a new point (from the pretrained
    dense supernet, or from random init without one) for t epochs and scored (without training
    where nothing fits)."""
    t, key = run.settings.epochs_per_visit, run.grid.key(pt)
    return run.visit(VisitRequest(f"{key}/grid", pt, run.grid.value(pt), t, None, t))


def reuse_grid_jobs(evo: EvolveRun, grid: EvolveRun) -> None:
    """Let an evolution under a reference seed take its new-point visits from that seed's finished
    grid jobs (copied into its own job directories) instead of training them again: the same
    training (config, seed, starting weights, epochs), so the same weights and scores."""
    t, visit_many = grid.settings.epochs_per_visit, evo.visit_many

    def take_grid_job(req: VisitRequest) -> None:
        src, dst = grid.job_dir(f"{grid.grid.key(req.point)}/grid"), evo.job_dir(req.job_id)
        if req.init_job is None and req.epochs == t and (src / RESULT_FILE).exists() and not dst.exists():
            tmp = dst.with_name(dst.name + ".copy")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(src, tmp)
            tmp.rename(dst)

    def train_many(reqs: list[VisitRequest]) -> list[dict[str, Any]]:
        for req in reqs:
            take_grid_job(req)
        return visit_many(reqs)

    evo.evolution.train = lambda req: train_many([req])[0]
    evo.evolution.train_many = train_many


def measure(args: argparse.Namespace, grid_runs: dict[int, EvolveRun], evo_runs: dict[int, EvolveRun]):
    """The grid measurements, then the evolutions (``--jobs`` at a time); an evolution under a
    reference seed reuses that seed's grid jobs for its new points."""
    first = grid_runs[args.seeds[0]]
    points = grid_points(first.grid.shape, args.grid == "coarse")
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        grid_f = {(s, pt): pool.submit(grid_score, run, pt) for s, run in grid_runs.items() for pt in points}
        for f in grid_f.values():
            f.result()
        for e, run in evo_runs.items():
            if e in grid_runs:
                reuse_grid_jobs(run, grid_runs[e])
        evo_f = {e: pool.submit(run.run) for e, run in evo_runs.items()}
        chosen = {e: f.result() for e, f in evo_f.items()}
        extra = {first.grid.index(c["rank_ratio"], c["patch_size"]) for c in chosen.values()} - set(points)
        for pt in sorted(extra):  # a coarse grid must still measure every chosen point
            points.append(pt)
            for s, run in grid_runs.items():
                grid_f[(s, pt)] = pool.submit(grid_score, run, pt)
        scores = {s: {first.grid.key(pt): grid_f[(s, pt)].result() for pt in points} for s in grid_runs}
    return chosen, scores


def pretraining(run: EvolveRun) -> dict[str, Any] | None:
    """The dense supernet every new point starts from: what it is and what it cost (paid once,
    shared by the grid and every evolution, counted in neither's epochs); ``None`` without one."""
    if run.pretrain_dir is None:
        return None
    done = json.loads((run.pretrain_dir / "result.json").read_text())
    space = run.pretrain_dict["space"]
    return {
        "space": space if isinstance(space, str) else space.get("name", "inline"),
        "epochs": done["epochs"],
        "holdout_top1": done["holdout_top1"],
        "test_top1": done["test_top1"],
    }


def delivered(grid_runs, evo_runs, chosen, picks, best_key: str) -> dict[str, Any]:
    """What each method hands over: the chosen supernets (at the E they reached) scored on the
    test split, which no choice saw, with one subnet draw for all, next to each grid seed's pick
    and reference-best supernet (at E = t). Untrained choices are left out."""

    def s_test(run: EvolveRun, job: str) -> float:
        return delivered_score(run.job_dir(job), DELIVERED_SUBNETS)["S"]

    evo = [{"seed": e, "point": c["point"], "E": c["E"], "S_test": s_test(evo_runs[e], c["job"])}
           for e, c in chosen.items() if c.get("trained", True) and c.get("job")]  # fmt: skip
    grid = [{"seed": p["seed"], "point": p["point"], "S_test": s_test(grid_runs[p["seed"]], f"{p['point']}/grid"),
             "best_S_test": s_test(grid_runs[p["seed"]], f"{best_key}/grid")} for p in picks]  # fmt: skip
    means = {
        "evolution_mean": statistics.fmean(v["S_test"] for v in evo) if evo else None,
        "grid_pick_mean": statistics.fmean(v["S_test"] for v in grid),
        "grid_best_mean": statistics.fmean(v["best_S_test"] for v in grid),
    }
    return {"split": "test", "subnets": DELIVERED_SUBNETS, "evolutions": evo, "grid": grid, **means}


def summarise(args, grid_runs, evo_runs, grid_epochs, chosen, scores) -> dict[str, Any]:
    first = grid_runs[args.seeds[0]]
    t = first.settings.epochs_per_visit
    n_grid = len(grid_points(first.grid.shape, args.grid == "coarse"))
    ref = reference(scores)
    best_key = max(ref, key=lambda k: (ref[k]["S"], -list(ref).index(k)))
    evolutions = []
    for e, c in chosen.items():
        traj = [first.grid.key(tuple(p["point"])) for p in evo_runs[e].evolution.trajectory]
        climbs = [p.get("climb", 0) for p in evo_runs[e].evolution.trajectory]
        evolutions.append(
            {"seed": e, **{k: c[k] for k in ("point", "S", "A", "R", "E", "total_epochs", "stop_reason")},
             "epoch_share": c["total_epochs"] / grid_epochs, "trajectory": traj, "climbs": climbs,
             **judged(scores, e, c["point"]), "gap_all_seeds": judge(ref, c["point"])["gap"],
             # the same run without restarts: its first climb's choice, at the epochs spent by then
             "first_climb": {"point": c["climb_choices"][0], "total_epochs": c["climb_epochs"][0],
                             **judged(scores, e, c["climb_choices"][0])}}
        )  # fmt: skip
    picks = []
    for s, sc in scores.items():
        pick = max(sc, key=lambda k: (sc[k]["S"], -list(sc).index(k)))
        picks.append({"seed": s, "point": pick, "S_own": sc[pick]["S"], **judged(scores, s, pick),
                      "gap_all_seeds": judge(ref, pick)["gap"]})  # fmt: skip
    sds = [v["S_sd"] for v in ref.values() if v["S_sd"] is not None and v["trained_seeds"] == len(scores)]
    gaps = [v["gap"] for v in evolutions]
    shares = [v["epoch_share"] for v in evolutions]
    mean_gap = statistics.fmean(gaps)
    settings = evo_runs[args.evo_seeds[0]].settings
    floor = noise_floor(ref, len(scores), min(len(v["judged_on"]) for v in evolutions))
    visit_sd = floor["S_sd_noise"] if floor else 0.0  # one visit's spread, as the runs measure S
    return {
        "grid": args.grid,
        "grid_points": n_grid,
        "grid_points_trained": grid_epochs // t,
        "epochs_per_visit": t,
        "epochs_grid": grid_epochs,
        "pretrain": pretraining(first),
        "seeds": list(args.seeds),
        "evo_seeds": list(args.evo_seeds),
        "reference_best": {"point": best_key, **ref[best_key]},
        "reference": ref,
        "evolutions": evolutions,
        "grid_picks": picks,
        "gap_mean": mean_gap,
        "gap_max": max(gaps),
        "epoch_share_mean": statistics.fmean(shares),
        "epoch_share_max": max(shares),
        "S_sd_mean": statistics.fmean(sds) if sds else None,
        "target_met": within_target(mean_gap) and max(shares) <= 0.25,
        "replay": replay(ref, first.grid, settings, args.replay_seeds),
        "replay_without_restarts": None
        if not settings.restarts
        else replay(ref, first.grid, dataclasses.replace(settings, restarts=0), args.replay_seeds),
        "replay_noisy": replay(ref, first.grid, settings, args.replay_seeds, visit_sd) if visit_sd else None,
        "grid_measured": measured_best(ref, grid_epochs // t, visit_sd) if visit_sd else None,
        "gap_mean_first_climb": statistics.fmean(v["first_climb"]["gap"] for v in evolutions),
        "noise_floor": floor,
        "noise_floors": [
            noise_floor(ref, len(scores), n) for n in sorted({len(v["judged_on"]) for v in evolutions})
        ],
        "gap_mean_all_seeds": statistics.fmean(v["gap_all_seeds"] for v in evolutions),
        "delivered": delivered(grid_runs, evo_runs, chosen, picks, best_key),
        "grid_scores": scores,
    }


def report(s: dict[str, Any]) -> str:
    best = s["reference_best"]
    lines = [
        f"{'point':<12}{'S mean':>8}{'sd':>7}{'A %':>8}{'R':>7}   reference over seeds {s['seeds']}, E = t"
    ]
    marks = {v["point"] for v in s["evolutions"]}
    for k, v in sorted(s["reference"].items(), key=lambda kv: -kv[1]["S"])[:12]:
        sd = f"{v['S_sd']:.4f}" if v["S_sd"] is not None else "-"
        lines.append(
            f"{'>' if k in marks else ' '}{k:<11}{v['S']:>8.4f}{sd:>7}{100 * v['A']:>8.2f}{v['R']:>7.3f}"
        )
    for v in s["evolutions"]:
        lines.append(
            f"evolution seed {v['seed']}: {path_text(v['trajectory'], v.get('climbs'))}; chose {v['point']} after "
            f"{v['total_epochs']} epochs ({100 * v['epoch_share']:.0f}% of {s['epochs_grid']}); reference S "
            f"{v['S_ref']:.4f}, gap {100 * v['gap']:+.2f} points, rank {v['rank']} ({v['stop_reason']}); "
            f"first climb alone: {v['first_climb']['point']} after {v['first_climb']['total_epochs']} epochs, "
            f"gap {100 * v['first_climb']['gap']:+.2f} points"
        )
    for v in s["grid_picks"]:
        lines.append(
            f"grid seed {v['seed']} picks {v['point']} (own S {v['S_own']:.4f}): reference gap "
            f"{100 * v['gap']:+.2f} points, rank {v['rank']}"
        )
    r = s.get("replay")
    if r:
        rb = r["random"]
        lines.append(
            f"replay on the reference ({r['seeds']} starts, no training): gap mean {100 * r['gap_mean']:.2f} "
            f"points, within 1 point {100 * r['within_1_point']:.0f}%, {r['epochs_mean']:.1f} epochs; best of "
            f"{rb['points']} random points: gap {100 * rb['gap_mean']:.2f}, within 1 point "
            f"{100 * rb['within_1_point']:.0f}%"
        )
    r, g = s.get("replay_noisy"), s.get("grid_measured")
    if r and g:
        lines.append(
            f"replay with every visit measured with noise sd {100 * r['noise_sd']:.2f} points: gap mean "
            f"{100 * r['gap_mean']:.2f}, within 1 point {100 * r['within_1_point']:.0f}%; best measured of "
            f"{r['random']['points']} random points: gap {100 * r['random']['gap_mean']:.2f}; the whole grid "
            f"measured once: gap {100 * g['gap_mean']:.2f}"
        )
    bare = s.get("replay_without_restarts")
    if bare:
        lines.append(
            f"replay without restarts: gap mean {100 * bare['gap_mean']:.2f} points, within 1 point "
            f"{100 * bare['within_1_point']:.0f}%, {bare['epochs_mean']:.1f} epochs"
        )
    if "gap_mean_first_climb" in s:
        lines.append(
            f"the same runs without restarts (first climbs): gap mean {100 * s['gap_mean_first_climb']:.2f}"
        )
    for f in [f for f in s.get("noise_floors") or [s.get("noise_floor")] if f]:
        spread = f.get("S_sd_noise", f["S_sd_pooled"])
        lines.append(
            f"noise floor: an oracle picking the landscape's best point lands {100 * f['gap_mean']:.2f} points "
            f"below the best of a fresh {f['judged_seeds']}-seed reference on average, within 1 point "
            f"{100 * f['within_1_point']:.0f}% of the time (measurement sd {100 * spread:.2f} points, "
            f"pooled per-point sd {100 * f['S_sd_pooled']:.2f})"
        )
    sd = (
        ""
        if s["S_sd_mean"] is None
        else f"; mean per-point sd of S over seeds {100 * s['S_sd_mean']:.2f} points"
    )
    lines.append(
        "every run judged on the reference without its own seed; on every seed, its own included, the "
        f"evolution gap mean would be {100 * s['gap_mean_all_seeds']:.2f} points"
    )
    d = s.get("delivered")
    if d and d["evolution_mean"] is not None:
        es = sorted({v["E"] for v in d["evolutions"]})
        lines.append(
            f"delivered ({d['split']} split, never used to choose; {d['subnets']} subnets drawn alike): the "
            f"evolutions' chosen supernets (E {es[0]}-{es[-1]}) S {d['evolution_mean']:.4f} on average, the grid "
            f"picks' {d['grid_pick_mean']:.4f}, the reference-best point's {d['grid_best_mean']:.4f} (E = t); "
            f"evolution - grid pick {100 * (d['evolution_mean'] - d['grid_pick_mean']):+.2f} points"
        )
    pre = s.get("pretrain")
    lines.append(
        "new points start from random init"
        if not pre
        else f"new points start from the dense supernet '{pre['space']}' ({pre['epochs']} epochs, paid once, "
        "counted in neither method's epochs)"
    )
    lines.append(
        f"best reference point {best['point']} S {best['S']:.4f}; evolution gap mean {100 * s['gap_mean']:.2f} / "
        f"max {100 * s['gap_max']:.2f} points at {100 * s['epoch_share_max']:.0f}% of the grid's epochs at most"
        f"{sd}; target {'met' if s['target_met'] else 'missed'}"
    )
    return "\n".join(lines)


def plot(s: dict[str, Any], run: EvolveRun, path: Path) -> None:
    """The reference S over the grid with every evolution's path and choice."""
    from search.space.plot import plot_grid  # matplotlib only where a figure is drawn

    at = {run.grid.key(p): p for p in run.grid.points()}
    cells = {at[k]: (v["S"], f"{v['S']:.3f}") for k, v in s["reference"].items()}
    paths = [
        (climb_trail([at[k] for k in v["trajectory"]], v.get("climbs")), at[v["point"]])
        for v in s["evolutions"]
    ]
    untrained = {at[k] for k, v in s["reference"].items() if not v["trained_seeds"]}
    title = f"reference S (mean of {len(s['seeds'])} seeds, E = {s['epochs_per_visit']}) and the evolutions"
    labels = [f"evolution seed {v['seed']}" for v in s["evolutions"]]
    plot_grid(cells, run.grid, paths, title, path, untrained, labels)


def run_matrix(args: argparse.Namespace) -> int:
    """Run the chosen rows in turn, then gather every row with a summary into ``matrix.json``
    (a row not run this time keeps the summary of its last run)."""
    names = {n.strip() for n in args.matrix.split(",")}
    rows = [v for v in MATRIX if "all" in names or v.name in names]
    for v in rows:  # a bad setting fails the first row, before any training
        t0 = time.perf_counter()
        code = main(variant_argv(args, v))
        if code:
            return code
        row = {"command": " ".join(["python -m bench.space_vs_grid", *variant_argv(args, v)]),
               "wall_s": time.perf_counter() - t0}  # fmt: skip
        atomic_write_text(Path(f"{args.output}{v.suffix}") / ROW_FILE, json.dumps(row))
    gathered = gather_matrix(args)
    print(f"matrix: {', '.join(g['name'] for g in gathered)} gathered in {Path(args.output) / MATRIX_FILE}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.matrix is not None:
        return run_matrix(args)
    out = Path(args.output)
    try:
        grid_runs, evo_runs, grid_epochs = build_runs(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(threadName)s %(message)s", "%H:%M:%S"))
    logger = logging.getLogger("mcunas")  # visits and evolution steps log under it
    logger.handlers[:], logger.propagate = [handler], False
    logger.setLevel(logging.INFO)
    grid_runs[args.seeds[0]].pretrained()  # every run's new points start from it: first, on every core
    if args.jobs > 1:  # the jobs' processes share the cores
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.jobs)))
    chosen, scores = measure(args, grid_runs, evo_runs)
    summary = summarise(args, grid_runs, evo_runs, grid_epochs, chosen, scores)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    plot(summary, grid_runs[args.seeds[0]], out / "reference.png")
    print(report(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
