"""A space's S landscape measured over training seeds, and how a chosen point is judged on it.

A *reference* maps each grid point's key to its S (and A, R) averaged over several seeds' grid
measurements (every point trained as a new point for t epochs and scored). `judge` gives a
chosen point's gap to the reference best (in S; 0.01 is one point of A). `noise_floor`,
`random_best` and `replay` say what a gap means: the gap a perfect pick shows from the
reference's own noise, the gap of the best of n random points, and the update rule's own gap
on the landscape, noise-free or with every visit measured as noisily as one t-epoch training
(`measured_best`: the best *measured* of n random points, or of the whole grid, under that
noise). Benchmark analysis for ``bench/space_vs_grid.py``, not part of the search itself: pure
functions of scores, except `replay`, which runs `SpaceEvolution` on lookups (no training).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import statistics
import zlib
from typing import Any

import numpy as np

from search.space.grid import EvolutionSettings, Grid, Point, VisitRequest
from search.space.loop import SpaceEvolution

TARGET_GAP = 0.01  # 1 point of S


def within_target(gap: float) -> bool:
    """A gap to the reference best within the target (float round-off tolerated)."""
    return gap <= TARGET_GAP + 1e-12


def reference(scores: dict[int, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per point: mean and spread of S (and A, R) over the seeds."""
    keys = next(iter(scores.values())).keys()
    ref = {}
    for k in keys:
        s = [scores[seed][k]["S"] for seed in scores]
        ref[k] = {
            "S": statistics.fmean(s),
            "S_sd": statistics.stdev(s) if len(s) > 1 else None,
            "A": statistics.fmean(scores[seed][k]["A"] for seed in scores),
            "R": statistics.fmean(scores[seed][k]["R"] for seed in scores),
            "S_per_seed": s,
            "trained_seeds": sum(bool(scores[seed][k].get("trained", True)) for seed in scores),
        }
    return ref


def reference_without(
    scores: dict[int, dict[str, dict[str, Any]]], seed: int
) -> tuple[dict[str, Any], list[int]]:
    """The reference a run under ``seed`` is judged on, and its seeds: without ``seed``'s own
    measurements when they are among several (an evolution's from-scratch visits are that
    seed's grid jobs, bit for bit, and a grid's pick is its own argmax: judged on a reference that
    holds them, both gain the noise they share with it); all seeds otherwise."""
    others = [s for s in scores if s != seed]
    if len(others) == len(scores) or not others:
        return reference(scores), list(scores)
    return reference({s: scores[s] for s in others}), others


def judge(ref: dict[str, dict[str, Any]], point: str) -> dict[str, Any]:
    best = max(ref.values(), key=lambda v: v["S"])["S"]
    return {
        "S_ref": ref[point]["S"],
        "gap": best - ref[point]["S"],
        "rank": 1 + sum(v["S"] > ref[point]["S"] for v in ref.values()),
    }


def judged(scores: dict[int, dict[str, dict[str, Any]]], seed: int, point: str) -> dict[str, Any]:
    """`judge` on `reference_without` the run's seed, with the seeds it used."""
    ref, seeds = reference_without(scores, seed)
    return {**judge(ref, point), "judged_on": seeds}


def random_best(ref: dict[str, dict[str, Any]], n: int) -> dict[str, Any]:
    """Exact expected gap (and chance of a gap <= 1 point) of the best of ``n`` >= 1 distinct
    points drawn uniformly from the trained ones (at least one), each judged by its reference S."""
    s = sorted((v["S"] for v in ref.values() if v["trained_seeds"]), reverse=True)
    n = min(n, len(s))
    p = [math.comb(len(s) - j, n - 1) / math.comb(len(s), n) for j in range(1, len(s) + 1)]  # best = j-th
    best = max(v["S"] for v in ref.values())
    return {
        "points": n,
        "gap_mean": sum(pj * (best - sj) for pj, sj in zip(p, s, strict=True)),
        "within_1_point": sum(pj for pj, sj in zip(p, s, strict=True) if within_target(best - sj)),
    }


def measured_best(
    ref: dict[str, dict[str, Any]], n: int, noise_sd: float, draws: int = 20000
) -> dict[str, Any]:
    """Expected gap (and chance of a gap <= 1 point) of the point with the best *measured* S among
    ``n`` >= 1 distinct trained points drawn uniformly, each measured once with normal noise of sd
    ``noise_sd`` around its reference S and judged by its reference S (Monte Carlo, seeded);
    ``n`` = every trained point is an exhaustive grid measured once."""
    mu = np.array([v["S"] for v in ref.values() if v["trained_seeds"]])
    n = min(n, len(mu))
    rng = np.random.default_rng(0)
    idx = np.argsort(rng.random((draws, len(mu))), axis=1)[:, :n]  # n distinct points per draw
    measured = mu[idx] + rng.standard_normal(idx.shape) * noise_sd
    picked = mu[idx[np.arange(draws), measured.argmax(axis=1)]]
    gap = max(v["S"] for v in ref.values()) - picked
    return {
        "points": n,
        "noise_sd": noise_sd,
        "draws": draws,
        "gap_mean": float(gap.mean()),
        "within_1_point": float(np.mean(gap <= TARGET_GAP + 1e-12)),
    }


def within_seed_sd(ref: dict[str, dict[str, Any]], trained: list[str]) -> float | None:
    """One measurement's spread as a ranking sees it: the residual sd of S over (trained point,
    seed) once each seed's mean over the trained points is removed (two-way, no interaction). A
    shift common to every point of a seed (its scoring subnets, say) moves no gap, within a seed
    or on a mean over seeds. ``None`` without per-seed scores on at least two points."""
    rows = [ref[k].get("S_per_seed") for k in trained]
    if len(rows) < 2 or any(r is None for r in rows):
        return None
    x = np.array(rows, dtype=float)
    res = x - x.mean(axis=1, keepdims=True) - x.mean(axis=0, keepdims=True) + x.mean()
    return float(math.sqrt((res**2).sum() / ((x.shape[0] - 1) * (x.shape[1] - 1))))


def noise_floor(
    ref: dict[str, dict[str, Any]], n_seeds: int, judged_seeds: int | None = None, draws: int = 20000
) -> dict[str, Any] | None:
    """The gap an oracle shows from the reference's own noise: it always picks the best point of
    the landscape, judged on fresh references of ``judged_seeds`` (default ``n_seeds``) seeds
    simulated around the ``n_seeds``-seed one, independent of the oracle as of any run judged on
    the reference without its own seed.

    The observed reference means are taken as the truth and one measurement's spread as
    `within_seed_sd` (the pooled per-point sd, ``S_sd_pooled``, when the per-seed scores are
    not at hand); normal noise, sd / sqrt(judged_seeds) on a mean; untrained points are exact. A
    lower bound in effect: the observed means are spread wider than the truth, which gives the
    oracle's point a larger margin than it has. ``None`` with fewer than two seeds."""
    trained = [k for k, v in ref.items() if v["trained_seeds"] == n_seeds and v["S_sd"] is not None]
    if n_seeds < 2 or not trained:
        return None
    pooled = math.sqrt(statistics.fmean(ref[k]["S_sd"] ** 2 for k in trained))
    within = within_seed_sd(ref, trained)
    sd = pooled if within is None else within
    mu = np.array([v["S"] for v in ref.values()])
    noisy = np.array([k in trained for k in ref], dtype=float)
    rng = np.random.default_rng(0)
    judged_seeds = judged_seeds or n_seeds
    sim = mu + rng.standard_normal((draws, len(mu))) * noisy * (sd / math.sqrt(judged_seeds))
    gap = sim.max(axis=1) - sim[:, int(np.argmax(mu))]
    return {
        "S_sd_pooled": pooled,
        "S_sd_within_seed": within,
        "S_sd_noise": sd,
        "draws": draws,
        "judged_seeds": judged_seeds,
        "gap_mean": float(gap.mean()),
        "within_1_point": float(np.mean(gap <= TARGET_GAP + 1e-12)),
    }


def replay(
    ref: dict[str, dict[str, Any]], grid: Grid, settings: EvolutionSettings, seeds: int, noise_sd: float = 0.0
) -> dict[str, Any] | None:
    """The update rule on the reference landscape itself (S looked up, the same at every E) from
    ``seeds`` seeded starts with ``settings``, beside the best of as many random trained
    points as its mean epochs pay for. With ``noise_sd`` > 0 every visit of a trained point
    measures its S with normal noise of that sd, drawn afresh per visit (seeded by the start and
    the visit's id), and the random points are compared by their measured S too."""
    if seeds == 0 or not any(v["trained_seeds"] for v in ref.values()):
        return None

    def trainable_at(pt: Point) -> bool:  # also where random starts are drawn, as in the real runs
        return ref[grid.key(pt)]["trained_seeds"] > 0

    def lookup(req: VisitRequest) -> dict[str, Any]:
        v, trained = ref[grid.key(req.point)], trainable_at(req.point)
        z = 0.0
        if noise_sd and trained:
            z = float(np.random.default_rng([seed, zlib.crc32(req.job_id.encode())]).normal(0.0, noise_sd))
        return {"A": v["A"] + z, "R": v["R"], "S": v["S"] + z, "trained": trained}

    gaps, epochs, seed = [], [], 0
    # lookups: the steps of every start would flood the log
    quiet = logging.getLogger("mcunas.evolve")
    was_disabled, quiet.disabled = quiet.disabled, True
    try:
        for seed in range(seeds):
            start = dataclasses.replace(settings, seed=seed, final_epochs=0)
            c = SpaceEvolution(grid, start, lookup, None, feasible=trainable_at).run()
            gaps.append(judge(ref, grid.key(grid.index(c["rank_ratio"], c["patch_size"])))["gap"])
            epochs.append(c["total_epochs"])
    finally:
        quiet.disabled = was_disabled
    n_random = max(1, round(statistics.fmean(epochs) / settings.epochs_per_visit))  # the same spend
    return {
        "seeds": seeds,
        "gap_mean": statistics.fmean(gaps),
        "within_1_point": sum(within_target(g) for g in gaps) / seeds,
        "epochs_mean": statistics.fmean(epochs),
        "noise_sd": noise_sd,
        "random": measured_best(ref, n_random, noise_sd) if noise_sd else random_best(ref, n_random),
    }
