"""The S landscape over seeds (bench.landscape) on synthetic scores: no training."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bench import landscape
from search.space.loop import EvolutionSettings, Grid


def test_reference_and_gap_on_synthetic_scores() -> None:
    scores = {
        0: {"a": {"S": 1.5, "A": 0.5, "R": 1.0}, "b": {"S": 1.7, "A": 0.7, "R": 1.0}, "c": {"S": 0.0, "A": 0.0, "R": 0.0}},
        1: {"a": {"S": 1.7, "A": 0.7, "R": 1.0}, "b": {"S": 1.5, "A": 0.5, "R": 1.0},
            "c": {"S": 0.0, "A": 0.0, "R": 0.0, "trained": False}},
        2: {"a": {"S": 1.9, "A": 0.9, "R": 1.0}, "b": {"S": 1.6, "A": 0.6, "R": 1.0},
            "c": {"S": 0.0, "A": 0.0, "R": 0.0, "trained": False}},
    }  # fmt: skip
    ref = landscape.reference(scores)
    assert ref["a"]["S"] == pytest.approx(1.7) and ref["b"]["S"] == pytest.approx(1.6)
    assert ref["a"]["S_sd"] == pytest.approx(0.2) and ref["c"]["trained_seeds"] == 1
    # seed 0's grid picks b, the reference's best is a: one noisy grid misses by 0.1
    assert landscape.judge(ref, "b") == {
        "S_ref": pytest.approx(1.6),
        "gap": pytest.approx(0.1),
        "rank": 2,
    }
    assert landscape.judge(ref, "a")["gap"] == 0.0 and landscape.judge(ref, "c")["rank"] == 3
    # a run under seed 0 is judged on seeds 1 and 2 only; a seed outside the reference on all three
    loo, seeds = landscape.reference_without(scores, 0)
    assert seeds == [1, 2] and loo["a"]["S"] == pytest.approx(1.8) and loo["b"]["S"] == pytest.approx(1.55)
    assert landscape.reference_without(scores, 7) == (ref, [0, 1, 2])
    assert landscape.judged(scores, 0, "b") == {
        "S_ref": pytest.approx(1.55), "gap": pytest.approx(0.25), "rank": 2, "judged_on": [1, 2]
    }  # fmt: skip


def test_random_best_is_the_exact_expectation_over_subsets() -> None:
    vals = {"a": 1.70, "b": 1.695, "c": 1.65, "d": 1.60, "e": 1.50, "x": 0.0}
    ref = {k: {"S": v, "trained_seeds": 0 if k == "x" else 3} for k, v in vals.items()}
    for n in (1, 2, 3, 5):
        subsets = list(itertools.combinations("abcde", n))  # x is untrained: never drawn
        gaps = [1.70 - max(vals[k] for k in sub) for sub in subsets]
        got = landscape.random_best(ref, n)
        assert got["points"] == n
        assert got["gap_mean"] == pytest.approx(sum(gaps) / len(gaps))
        assert got["within_1_point"] == pytest.approx(sum(g <= 0.01 for g in gaps) / len(gaps))
    assert landscape.random_best(ref, 9)["gap_mean"] == pytest.approx(0.0)  # capped at every point


def test_noise_floor_of_a_clear_and_of_a_flat_landscape() -> None:
    def ref(means, sd):
        return {k: {"S": m, "S_sd": sd, "trained_seeds": 3} for k, m in means.items()}

    # a best 20 points clear of the rest, measured to 0.5 point: an oracle's pick is never beaten
    clear = landscape.noise_floor(ref({"a": 1.9, "b": 1.7, "c": 1.6}, 0.005), 3)
    assert clear["within_1_point"] == 1.0 and clear["gap_mean"] == pytest.approx(0.0, abs=1e-6)
    assert clear["S_sd_pooled"] == pytest.approx(0.005)
    # ten points within 1 point of each other, measured to 6 points: the oracle's pick loses to noise
    flat = landscape.noise_floor(ref({f"p{i}": 1.65 - 0.001 * i for i in range(10)}, 0.06), 3)
    assert flat["gap_mean"] > 0.02 and flat["within_1_point"] < 0.5
    # untrained points are exact and never the noise; one seed has no spread
    exact = {**ref({"a": 1.7}, 0.06), "x": {"S": 0.3, "S_sd": 0.0, "trained_seeds": 0}}
    assert landscape.noise_floor(exact, 3)["gap_mean"] == 0.0
    assert landscape.noise_floor(ref({"a": 1.7}, None), 1) is None


def test_within_seed_noise_removes_each_seeds_common_shift() -> None:
    means = {"a": 1.70, "b": 1.66, "c": 1.60}
    shifts = (-0.05, 0.0, 0.07)  # a seed's scoring subnets move every point of it alike

    def ref(noise):
        rows = {
            k: [m + d + e for d, e in zip(shifts, noise[i], strict=True)]
            for i, (k, m) in enumerate(means.items())
        }
        return {
            k: {"S": float(np.mean(r)), "S_sd": float(np.std(r, ddof=1)), "S_per_seed": r, "trained_seeds": 3}
            for k, r in rows.items()
        }

    shifted = ref([(0.0, 0.0, 0.0)] * 3)
    assert landscape.within_seed_sd(shifted, list(shifted)) == pytest.approx(0.0, abs=1e-12)
    f = landscape.noise_floor(shifted, 3)
    assert f["S_sd_pooled"] == pytest.approx(float(np.std(shifts, ddof=1)))  # the shift looks like noise
    assert f["S_sd_noise"] == pytest.approx(0.0, abs=1e-12) and f["gap_mean"] == pytest.approx(0.0, abs=1e-9)
    # residual noise of 3 x 3 cells with 2 x 2 degrees of freedom: recovered exactly
    noise = [(0.01, -0.02, 0.01), (-0.01, 0.03, -0.02), (0.0, -0.01, 0.01)]
    x = np.array(noise)
    res = x - x.mean(1, keepdims=True) - x.mean(0, keepdims=True) + x.mean()
    noisy = ref(noise)
    assert landscape.within_seed_sd(noisy, list(noisy)) == pytest.approx(float(np.sqrt((res**2).sum() / 4)))
    # without per-seed scores the floor falls back to the pooled per-point sd
    bare = {k: {kk: vv for kk, vv in v.items() if kk != "S_per_seed"} for k, v in noisy.items()}
    g = landscape.noise_floor(bare, 3)
    assert g["S_sd_within_seed"] is None and g["S_sd_noise"] == g["S_sd_pooled"]


def test_replay_climbs_a_plane_and_stalls_on_a_bump() -> None:
    grid = Grid(rank_ratio=(0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0), patch_size=(4, 5, 6, 7, 8))
    settings = EvolutionSettings(epochs_per_visit=4, max_steps=20, max_total_epochs=None)

    def surface(f):
        return {grid.key(p): {"S": f(*p), "A": f(*p), "R": 0.0, "trained_seeds": 3} for p in grid.points()}

    plane = landscape.replay(surface(lambda i, j: 0.02 * i + 0.015 * j), grid, settings, 5)
    assert plane["gap_mean"] == pytest.approx(0.0) and plane["within_1_point"] == 1.0
    # a local maximum at the opposite corner from the global one: starts near it stay there
    bump = surface(lambda i, j: 0.05 * (i + j) + (0.4 if (i, j) == (0, 0) else 0.0))
    r = landscape.replay(bump, grid, settings, 20)
    assert 0.0 < r["within_1_point"] < 1.0 and r["gap_mean"] > 0.0
    assert r["random"]["points"] == max(1, round(r["epochs_mean"] / 4))
    assert landscape.replay(bump, grid, settings, 0) is None


def test_measured_best_picks_by_noisy_measurements() -> None:
    ref = {f"p{i}": {"S": 1.9 - 0.01 * i, "trained_seeds": 3} for i in range(6)}
    ref["off"] = {"S": 0.0, "trained_seeds": 0}  # nothing fits: never drawn
    for n in (1, 3, 6):  # without noise, the Monte Carlo estimate of the exact expectation
        m, exact = landscape.measured_best(ref, n, 0.0), landscape.random_best(ref, n)
        assert m["points"] == exact["points"] == n
        assert m["gap_mean"] == pytest.approx(exact["gap_mean"], abs=5e-4)
        assert m["within_1_point"] == pytest.approx(exact["within_1_point"], abs=0.02)
    assert landscape.measured_best(ref, 6, 0.0)["gap_mean"] == pytest.approx(0.0)  # the whole grid
    assert landscape.measured_best(ref, 99, 0.0)["points"] == 6
    # noise hides the best point from the whole grid: the gap grows with the noise, toward one
    # random point's (the mean gap of the six, 0.025) when the noise swamps the differences
    gaps = [landscape.measured_best(ref, 6, sd)["gap_mean"] for sd in (0.002, 0.01, 1.0)]
    assert 0.0 < gaps[0] < gaps[1] < gaps[2] and gaps[2] == pytest.approx(0.025, abs=1e-3)
    assert landscape.measured_best(ref, 6, 0.01) == landscape.measured_best(ref, 6, 0.01)  # seeded


def test_noisy_replay_is_seeded_and_costs_the_rule_its_climb() -> None:
    grid = Grid(rank_ratio=(0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0), patch_size=(4, 5, 6, 7, 8))
    settings = EvolutionSettings(epochs_per_visit=4, max_steps=20, max_total_epochs=None)
    plane = {
        grid.key(p): {"S": 0.01 * (p[0] + p[1]), "A": 0.01 * (p[0] + p[1]), "R": 0.0, "trained_seeds": 3}
        for p in grid.points()
    }
    exact = landscape.replay(plane, grid, settings, 10)
    assert landscape.replay(plane, grid, settings, 10, 0.0) == exact and exact["noise_sd"] == 0.0
    noisy = landscape.replay(plane, grid, settings, 10, 0.03)  # noise of three grid steps' rise
    assert noisy == landscape.replay(plane, grid, settings, 10, 0.03)  # seeded per start and visit
    assert exact["gap_mean"] == pytest.approx(0.0) and noisy["gap_mean"] > 0.0
    assert noisy["random"] == landscape.measured_best(plane, noisy["random"]["points"], 0.03)
