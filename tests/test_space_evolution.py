"""Space evolution on synthetic score landscapes (no training): the local fit and update, epoch
caps, points where nothing fits, restarts, state resume. The real loop is in test_evolve_space_run."""

from __future__ import annotations

import numpy as np
import pytest

from common.errors import ConfigError
from search.space.loop import (
    EvolutionSettings,
    Grid,
    SpaceEvolution,
    climb_segments,
    climb_trail,
    initial_points,
    local_fit,
    move_steps,
)

GRID = Grid(rank_ratio=(0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0), patch_size=(4, 5, 6, 7, 8))


def synthetic(f):
    """A `train` callable scoring a visit by ``f(i, j, E)``; records every request."""
    calls = []

    def train(req):
        calls.append(req)
        s = float(f(*req.point, req.total_epochs))
        return {"A": s, "R": 0.0, "S": s}

    return train, calls


def evolve(f, state_path=None, **kw):
    settings = EvolutionSettings(**{"threshold": (0.01, 0.01), "max_steps": 20, **kw})
    train, calls = synthetic(f)
    evo = SpaceEvolution(GRID, settings, train, state_path)
    return evo.run(), evo, calls


# ---- fit and update ------------------------------------------------------------------------
def test_move_steps_symmetric_rounding_and_cap():
    h = (0.01, 0.01)
    assert move_steps(np.array([0.025, -0.025]), h).tolist() == [2, -2]
    assert move_steps(np.array([0.0099, -0.0099]), h).tolist() == [0, 0]  # floor division would give -1
    assert move_steps(np.array([0.5, -0.5]), h, max_move=2).tolist() == [2, -2]
    assert move_steps(np.array([0.03, 0.03]), (0.01, 0.02)).tolist() == [3, 1]


def test_a_trajectory_splits_into_its_climbs():
    keys = ["a", "b", "c", "d", "e"]
    assert climb_segments(keys, [0, 0, 1, 1, 2]) == [["a", "b"], ["c", "d"], ["e"]]
    assert climb_segments(keys, None) == [keys]  # runs without restarts: one climb
    assert climb_trail(keys, [0, 0, 1, 1, 2]) == ["a", "b", None, "c", "d", None, "e"]
    assert climb_trail(keys, []) == keys
    assert climb_trail([], None) == []


def test_local_fit_recovers_plane_and_handles_small_neighbourhoods():
    coords = np.array([[0, 0], [1, 0], [0, 1], [2, 3]])
    fit = local_fit(coords, 1 + 0.02 * coords[:, 0] - 0.03 * coords[:, 1])
    assert np.allclose(fit.w, [0.02, -0.03]) and not fit.degenerate
    one = local_fit(np.array([[2, 2]]), np.array([0.7]))
    assert one.w.tolist() == [0.0, 0.0] and one.degenerate
    two = local_fit(np.array([[0, 0], [1, 1]]), np.array([0.0, 0.02]))  # minimum-norm slope along the line
    assert np.allclose(two.w, [0.01, 0.01]) and two.degenerate
    line = local_fit(np.array([[0, 1], [1, 1], [2, 1]]), np.array([0.0, 0.03, 0.06]))  # collinear
    assert np.allclose(line.w, [0.03, 0.0]) and line.degenerate


@pytest.mark.parametrize(
    ("slope", "corner"), [((0.02, 0.015), (6, 4)), ((-0.02, -0.03), (0, 0)), ((0.03, -0.02), (6, 0))]
)
def test_climbs_tilted_plane_to_the_right_corner(slope, corner):
    result, evo, _ = evolve(
        lambda i, j, e: slope[0] * i + slope[1] * j, init_points=((0.6, 6), (0.7, 6), (0.6, 7))
    )
    assert GRID.index(result["rank_ratio"], result["patch_size"]) == corner
    assert result["stop_reason"].startswith("converged")
    assert all(0 <= t["point"][0] < 7 and 0 <= t["point"][1] < 5 for t in evo.trajectory)  # bounds


def test_steep_plane_is_clipped_to_the_grid():
    result, evo, _ = evolve(
        lambda i, j, e: 5 * i - 5 * j, max_move=None, init_points=((0.4, 6), (0.5, 6), (0.4, 7))
    )
    assert GRID.index(result["rank_ratio"], result["patch_size"]) == (6, 0)
    assert [t["point"] for t in evo.trajectory] == [[1, 2], [6, 0]]  # one clipped jump


def test_stops_at_the_maximum_of_a_bowl():
    bowl = lambda i, j, e: 1 - 0.01 * ((i - 3) ** 2 + (j - 2) ** 2)  # noqa: E731
    result, evo, _ = evolve(bowl, threshold=(0.015, 0.015), init_points=((0.4, 8), (0.5, 8), (0.4, 7)))
    assert GRID.index(result["rank_ratio"], result["patch_size"]) == (3, 2)
    assert len(evo.trajectory) > 1  # it had to travel


def test_flat_plane_never_moves():
    result, evo, calls = evolve(lambda i, j, e: 0.5, num_init=4, seed=3, epochs_per_visit=2)
    assert result["stop_reason"].startswith("converged") and len(evo.trajectory) == 1
    assert result["total_epochs"] == 8 and len(calls) == 4  # only the initial points were trained


def test_one_and_two_points_and_collinear_neighbourhoods_do_not_crash():
    plane = lambda i, j, e: 0.02 * i + 0.02 * j  # noqa: E731
    one, _, _ = evolve(plane, init_points=((0.6, 6),), neighbours=3)
    assert one["point"] == "r0.6_p6" and one["stop_reason"].startswith("converged")
    two, _, _ = evolve(plane, init_points=((0.6, 6), (0.7, 6)), neighbours=3)
    assert two["rank_ratio"] == 1.0  # climbs along the line the two points span
    line, evo, _ = evolve(plane, init_points=((0.4, 6), (0.5, 6), (0.6, 6)), neighbours=3, max_steps=1)
    fit = evo.fits[0]
    assert fit["degenerate"] and fit["move"] == [1, 0]  # moves along the line only, no crash
    # max_steps ends the run on the newcomer r0.7_p6 (E 4) before it is compared at equal E:
    # the choice is the best of the last fit's neighbourhood
    assert evo.trajectory[-1]["rank_ratio"] == 0.7 and line["rank_ratio"] == 0.6


def test_neighbours_are_brought_to_the_same_epochs_before_a_fit():
    f = lambda i, j, e: 0.02 * i + 0.001 * e  # noqa: E731 (accuracy grows with training)
    _, evo, calls = evolve(f, init_points=((0.4, 6), (0.5, 6), (0.4, 7)), max_steps=3, epochs_per_visit=2)
    for fit in evo.fits:
        assert len(set(fit["neighbour_E"])) == 1  # a fair fit: every neighbour trained as long
    assert any(fit["caught_up"] for fit in evo.fits)  # the fairness rule trained someone t more epochs
    moved = [c for c in calls if c.init_job is not None and not c.job_id.startswith(c.init_job.split("/")[0])]
    assert moved and all(c.total_epochs > c.epochs for c in moved)  # warm-started, E includes the source


def test_state_resume_replays_to_the_same_result(tmp_path):
    f = lambda i, j, e: 0.02 * i - 0.01 * j + 0.002 * e  # noqa: E731
    ref, ref_evo, ref_calls = evolve(f, tmp_path / "a.json", num_init=3, seed=1, epochs_per_visit=2)
    settings = EvolutionSettings(threshold=(0.01, 0.01), max_steps=20, num_init=3, seed=1, epochs_per_visit=2)
    train, calls = synthetic(f)

    def dying(req):
        if len(calls) == 4:
            raise KeyboardInterrupt
        return train(req)

    with pytest.raises(KeyboardInterrupt):
        SpaceEvolution(GRID, settings, dying, tmp_path / "b.json").run()
    evo = SpaceEvolution(GRID, settings, train, tmp_path / "b.json")
    assert evo.run() == ref
    assert evo.state() == ref_evo.state()
    assert len(calls) == len(ref_calls)  # every visit trained exactly once over both runs
    with pytest.raises(ConfigError, match="other settings"):
        SpaceEvolution(GRID, settings, train, tmp_path / "b.json", fingerprint={"eta": 2})


def test_epoch_cap_is_hard_and_a_capped_run_keeps_the_best_of_the_last_fit():
    f = lambda i, j, e: 0.02 * i - 0.03 * (j - 1) ** 2 + 0.001 * e  # noqa: E731
    init = ((0.4, 6), (0.5, 6), (0.4, 7))
    uncapped, _, _ = evolve(f, init_points=init, max_steps=10, epochs_per_visit=2)
    branches = set()
    for cap in range(6, uncapped["total_epochs"] + 4):
        res, evo, calls = evolve(f, init_points=init, max_steps=10, epochs_per_visit=2, max_total_epochs=cap)
        assert res["total_epochs"] == sum(c.epochs for c in calls) <= cap  # catch-ups included
        if uncapped["total_epochs"] <= cap:
            assert res == uncapped  # a cap the run never reaches changes nothing
            continue
        assert res["stop_reason"] == "max_total_epochs reached"
        here = GRID.key(tuple(evo.trajectory[-1]["point"]))
        if not evo.fits:  # capped before any fit: the best initial point
            expected, branch = max(evo.points[GRID.index(*p)].S for p in init), "no fit"
        else:  # the best of the last fit's equal-E neighbourhood, not the longer-trained newcomer
            fit = evo.fits[-1]
            expected, branch = max(fit["neighbour_S"]), ("at" if fit["at"] == here else "before") + " current"
            assert res["point"] in fit["neighbours"]
        assert res["S"] == pytest.approx(expected, abs=1e-6)
        branches.add(branch)
    assert {"at current", "before current"} <= branches


def _with_infeasible_column(s_infeasible: float):
    """Patch 4 (j = 0) holds no fitting subnet: scored without training at ``s_infeasible``."""
    calls = []

    def train(req):
        calls.append(req)
        i, j = req.point
        if j == 0:
            return {"A": 0.0, "R": s_infeasible, "S": s_infeasible, "trained": False}
        s = 1.0 + 0.02 * i - 0.03 * j + 0.001 * req.total_epochs
        return {"A": s - 1.0, "R": 1.0, "S": s}

    return train, calls


def test_points_where_nothing_fits_cost_no_epochs_and_never_seed_a_warm_start():
    train, calls = _with_infeasible_column(0.0)
    settings = EvolutionSettings(threshold=(0.01, 0.01), max_steps=20, epochs_per_visit=2,
                                 init_points=((0.4, 4), (0.4, 5), (0.5, 5)))  # fmt: skip
    evo = SpaceEvolution(GRID, settings, train)
    res = evo.run()
    infeasible = [c for c in calls if c.point[1] == 0]
    assert infeasible and not any("_p4" in k for fit in evo.fits for k in fit["caught_up"])
    assert res["total_epochs"] == sum(c.epochs for c in calls if c.point[1] != 0)
    assert not any(c.init_job and c.init_job.endswith(("_p4/v0", "_p4/v1")) for c in calls if c.point[1] != 0)
    assert evo.points[(0, 0)].trained is False and res["trained"] and res["patch_size"] != 4
    assert evo.state()["points"]["r0.4_p4"]["trained"] is False


def test_random_starts_are_drawn_among_points_where_a_subnet_fits():
    def feasible(pt):
        return pt[1] != 0  # patch 4 holds no fitting subnet

    for seed in range(40):
        s = EvolutionSettings(num_init=3, seed=seed)
        starts = initial_points(GRID, s, feasible)
        assert len(set(starts)) == 3 and all(feasible(p) for p in starts)
        assert initial_points(GRID, s, feasible) == starts  # seeded
    # without a predicate (or when no point fits) starts come from the whole grid
    anywhere = {
        p for seed in range(40) for p in initial_points(GRID, EvolutionSettings(num_init=3, seed=seed))
    }
    assert any(p[1] == 0 for p in anywhere)
    assert len(initial_points(GRID, EvolutionSettings(num_init=3), lambda pt: False)) == 3
    # explicit points are taken as given, fitting or not
    given = EvolutionSettings(init_points=((0.4, 4), (0.5, 5)))
    assert initial_points(GRID, given, feasible) == [(0, 0), (1, 1)]
    # the loop draws its starts through the predicate: no infeasible start is visited first
    train, calls = _with_infeasible_column(0.0)
    SpaceEvolution(
        GRID, EvolutionSettings(threshold=(0.01, 0.01), num_init=3, seed=3), train, feasible=feasible
    ).run()
    assert all(c.point[1] != 0 for c in calls[:3])


def test_the_chosen_point_is_a_trained_one_while_any_exists():
    train, _ = _with_infeasible_column(1.5)  # contrived: S = eta * R above every trained point
    settings = EvolutionSettings(threshold=(0.01, 0.01), max_steps=20, epochs_per_visit=2,
                                 init_points=((0.4, 4), (0.4, 5), (0.5, 5)))  # fmt: skip
    evo = SpaceEvolution(GRID, settings, train)
    res = evo.run()
    assert res["trained"] and res["patch_size"] != 4
    fit = evo.fits[-1]
    trained = [(s, k) for s, k in zip(fit["neighbour_S"], fit["neighbours"], strict=True) if "_p4" not in k]
    assert trained and res["point"] == max(trained)[1]  # the last fit's best trained neighbour
    # with no trained neighbour in the last fit, the best trained point of the run
    evo.fits[-1] = {**fit, "neighbours": ["r0.4_p4"], "neighbour_S": [1.5]}
    assert evo.points[evo._best_of_last_fit()].trained is False


def test_an_untrained_current_point_forces_no_catch_up():
    """Moving into the infeasible column: the point stands at its nearest trained point's E, so
    the fit there compares it with the neighbours as they are, without training any of them."""
    train, calls = _with_infeasible_column(0.0)
    settings = EvolutionSettings(threshold=(0.01, 0.01), max_steps=20, epochs_per_visit=2,
                                 init_points=((0.5, 6), (0.6, 6), (0.5, 7)))  # fmt: skip
    evo = SpaceEvolution(GRID, settings, train)
    res = evo.run()
    at_untrained = [f for f in evo.fits if f["at"].endswith("_p4")]
    assert at_untrained, "the climb reaches the infeasible column"
    fit = at_untrained[0]
    assert fit["caught_up"] == []  # no epochs spent on neighbours for a point that has no weights
    e = [v for v in fit["neighbour_E"] if v is not None]
    assert fit["neighbour_E"][0] is None and e and len(set(e)) == 1
    untrained = evo.points[(4, 0)]  # r0.8_p4, reached from r0.7_p5
    assert fit["at"] == "r0.8_p4" and untrained.trained is False and untrained.epochs == fit["E"] == e[0]
    assert res["trained"] and res["total_epochs"] == sum(c.epochs for c in calls if c.point[1] != 0)


# ---- restarts --------------------------------------------------------------------------------
def test_restarts_spend_the_budget_on_new_climbs_from_unvisited_points():
    result, evo, calls = evolve(lambda i, j, e: 0.5, num_init=3, seed=2, epochs_per_visit=2, restarts=2)
    starts = [tuple(t["point"]) for t in evo.trajectory if t["step"] > 0 or t["climb"] > 0]
    assert result["climbs"] == 3 and [t["climb"] for t in evo.trajectory] == [0, 1, 2]
    assert len(set(starts)) == 2 and not set(starts) & {c.point for c in calls[:3]}  # new points each time
    assert all(c.init_job is None for c in calls[3:5])  # a restart starts from the run's starting weights
    assert result["total_epochs"] == 10 and result["points_trained"] == 5
    assert result["stop_reason"].count("converged") == 3


def test_restarts_stop_at_the_epoch_cap():
    result, _, _ = evolve(
        lambda i, j, e: 0.5, num_init=3, epochs_per_visit=2, restarts=10, max_total_epochs=9
    )
    assert result["total_epochs"] == 8 and result["climbs"] == 2
    assert result["stop_reason"].endswith("no restart: max_total_epochs reached")


def test_restarts_without_a_cap_end_when_every_point_was_visited():
    small = Grid(rank_ratio=(0.5, 1.0), patch_size=(4, 8))
    settings = EvolutionSettings(num_init=2, restarts=5, seed=0, epochs_per_visit=1)
    evo = SpaceEvolution(small, settings, synthetic(lambda i, j, e: 0.5)[0])
    result = evo.run()
    assert result["points_trained"] == 4 and result["climbs"] == 3
    assert result["stop_reason"].endswith("every point with a fitting subnet visited")


def test_final_choice_compares_the_climbs_at_equal_epochs():
    # the initial points sit on a low plateau; everything else is higher, and training pays
    low = {(0, 0), (1, 0), (0, 1)}
    f = lambda i, j, e: (0.5 if (i, j) in low else 0.6 + 0.001 * i) + 0.02 * e  # noqa: E731
    result, evo, _ = evolve(f, init_points=((0.4, 4), (0.5, 4), (0.4, 5)), epochs_per_visit=2, restarts=1)
    assert result["climbs"] == 2 and evo.final is not None
    assert len(set(evo.final["E"])) == 1 and evo.final["compared_at_E"] == evo.final["E"][0]
    assert evo.final["caught_up"]  # the initial plateau's choice was trained up to the newcomer's E
    assert GRID.index(result["rank_ratio"], result["patch_size"]) not in low


def test_restarts_resume_to_the_same_result(tmp_path):
    f = lambda i, j, e: 0.02 * ((i * 7 + j * 3) % 5) + 0.002 * e  # noqa: E731 (bumpy)
    kw = {"num_init": 3, "seed": 4, "epochs_per_visit": 2, "restarts": 3, "max_total_epochs": 30}
    ref, _, ref_calls = evolve(f, tmp_path / "a.json", **kw)
    train, calls = synthetic(f)

    def dying(req):
        if len(calls) == len(ref_calls) - 2:
            raise KeyboardInterrupt
        return train(req)

    settings = EvolutionSettings(threshold=(0.01, 0.01), max_steps=20, **kw)
    with pytest.raises(KeyboardInterrupt):
        SpaceEvolution(GRID, settings, dying, tmp_path / "b.json").run()
    assert SpaceEvolution(GRID, settings, train, tmp_path / "b.json").run() == ref
    assert ref["climbs"] > 1


def test_final_choice_without_epochs_for_catch_ups_compares_a_shared_epoch_count():
    from search.space.loop import PointRecord

    def record(pt, history):
        last = history[-1]
        return PointRecord(pt, epochs=last[0], S=last[1], A=last[1], R=0.0, jobs=[f"j{n}" for n in range(len(history))],
                           history=[{"E": e, "S": s, "A": s, "R": 0.0} for e, s in history])  # fmt: skip

    evo = SpaceEvolution(GRID, EvolutionSettings(max_total_epochs=10), synthetic(lambda i, j, e: 0.0)[0])
    evo.total_epochs = 10  # the cap is spent: no catch-up
    a, b, c = (1, 1), (4, 3), (2, 2)
    evo.points = {a: record(a, [(2, 0.60), (4, 0.66)]), b: record(b, [(2, 0.62)]), c: record(c, [(6, 0.70)])}
    assert evo._final_choice([a, b]) == b  # at E 2, where both were measured, b is better
    assert evo.final["compared_at_E"] == 2 and evo.final["caught_up"] == []
    assert (
        evo._final_choice([a, c]) == c and evo.final["compared_at_E"] is None
    )  # nothing shared: as they stand
    evo.total_epochs = 0  # with epochs to spare, the laggard is trained up first
    assert evo._final_choice([a, b]) in (a, b) and evo.final["caught_up"] == ["r0.8_p7"]
    assert evo.final["compared_at_E"] == 4 and evo.final["E"] == [4, 4]


def test_first_climb_is_exactly_the_run_without_restarts():
    f = lambda i, j, e: 0.02 * ((i * 7 + j * 3) % 5) + 0.01 * np.sin(i * j) + 0.002 * e  # noqa: E731
    for seed in range(6):
        kw = {"num_init": 3, "seed": seed, "epochs_per_visit": 2, "max_total_epochs": 24}
        bare, _, bare_calls = evolve(f, **kw)
        full, _, calls = evolve(f, restarts=3, **kw)
        assert full["climb_choices"][0] == bare["point"] and full["climb_epochs"][0] == bare["total_epochs"]
        assert [c.job_id for c in calls[: len(bare_calls)]] == [c.job_id for c in bare_calls]
        assert full["total_epochs"] >= bare["total_epochs"] and bare["climb_choices"] == [bare["point"]]
