"""The benchmark scripts on tiny settings: what they write is what BENCHMARKS.md is built from."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
import yaml

from bench import bench_int8, run_all, space_vs_grid
from bench.report import render
from memory_model import peak_sram
from search.point_eval import delivered_score
from search.space_evolution import EvolutionSettings, Grid
from search_space.config import SubnetConfig
from search_space.static import StaticViT
from tests.test_space_evolution import tiny_overrides


def test_reference_and_gap_on_synthetic_scores() -> None:
    scores = {
        0: {"a": {"S": 1.5, "A": 0.5, "R": 1.0}, "b": {"S": 1.7, "A": 0.7, "R": 1.0}, "c": {"S": 0.0, "A": 0.0, "R": 0.0}},
        1: {"a": {"S": 1.7, "A": 0.7, "R": 1.0}, "b": {"S": 1.5, "A": 0.5, "R": 1.0},
            "c": {"S": 0.0, "A": 0.0, "R": 0.0, "trained": False}},
        2: {"a": {"S": 1.9, "A": 0.9, "R": 1.0}, "b": {"S": 1.6, "A": 0.6, "R": 1.0},
            "c": {"S": 0.0, "A": 0.0, "R": 0.0, "trained": False}},
    }  # fmt: skip
    ref = space_vs_grid.reference(scores)
    assert ref["a"]["S"] == pytest.approx(1.7) and ref["b"]["S"] == pytest.approx(1.6)
    assert ref["a"]["S_sd"] == pytest.approx(0.2) and ref["c"]["trained_seeds"] == 1
    # seed 0's grid picks b, the reference's best is a: one noisy grid misses by 0.1
    assert space_vs_grid.judge(ref, "b") == {
        "S_ref": pytest.approx(1.6),
        "gap": pytest.approx(0.1),
        "rank": 2,
    }
    assert space_vs_grid.judge(ref, "a")["gap"] == 0.0 and space_vs_grid.judge(ref, "c")["rank"] == 3
    # a run under seed 0 is judged on seeds 1 and 2 only; a seed outside the reference on all three
    loo, seeds = space_vs_grid.reference_without(scores, 0)
    assert seeds == [1, 2] and loo["a"]["S"] == pytest.approx(1.8) and loo["b"]["S"] == pytest.approx(1.55)
    assert space_vs_grid.reference_without(scores, 7) == (ref, [0, 1, 2])
    assert space_vs_grid.judged(scores, 0, "b") == {
        "S_ref": pytest.approx(1.55), "gap": pytest.approx(0.25), "rank": 2, "judged_on": [1, 2]
    }  # fmt: skip


def test_random_best_is_the_exact_expectation_over_subsets() -> None:
    vals = {"a": 1.70, "b": 1.695, "c": 1.65, "d": 1.60, "e": 1.50, "x": 0.0}
    ref = {k: {"S": v, "trained_seeds": 0 if k == "x" else 3} for k, v in vals.items()}
    for n in (1, 2, 3, 5):
        subsets = list(itertools.combinations("abcde", n))  # x is untrained: never drawn
        gaps = [1.70 - max(vals[k] for k in sub) for sub in subsets]
        got = space_vs_grid.random_best(ref, n)
        assert got["points"] == n
        assert got["gap_mean"] == pytest.approx(sum(gaps) / len(gaps))
        assert got["within_1_point"] == pytest.approx(sum(g <= 0.01 for g in gaps) / len(gaps))
    assert space_vs_grid.random_best(ref, 9)["gap_mean"] == pytest.approx(0.0)  # capped at every point


def test_noise_floor_of_a_clear_and_of_a_flat_landscape() -> None:
    def ref(means, sd):
        return {k: {"S": m, "S_sd": sd, "trained_seeds": 3} for k, m in means.items()}

    # a best 20 points clear of the rest, measured to 0.5 point: an oracle's pick is never beaten
    clear = space_vs_grid.noise_floor(ref({"a": 1.9, "b": 1.7, "c": 1.6}, 0.005), 3)
    assert clear["within_1_point"] == 1.0 and clear["gap_mean"] == pytest.approx(0.0, abs=1e-6)
    assert clear["S_sd_pooled"] == pytest.approx(0.005)
    # ten points within 1 point of each other, measured to 6 points: the oracle's pick loses to noise
    flat = space_vs_grid.noise_floor(ref({f"p{i}": 1.65 - 0.001 * i for i in range(10)}, 0.06), 3)
    assert flat["gap_mean"] > 0.02 and flat["within_1_point"] < 0.5
    # untrained points are exact and never the noise; one seed has no spread
    exact = {**ref({"a": 1.7}, 0.06), "x": {"S": 0.3, "S_sd": 0.0, "trained_seeds": 0}}
    assert space_vs_grid.noise_floor(exact, 3)["gap_mean"] == 0.0
    assert space_vs_grid.noise_floor(ref({"a": 1.7}, None), 1) is None


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
    assert space_vs_grid.within_seed_sd(shifted, list(shifted)) == pytest.approx(0.0, abs=1e-12)
    f = space_vs_grid.noise_floor(shifted, 3)
    assert f["S_sd_pooled"] == pytest.approx(float(np.std(shifts, ddof=1)))  # the shift looks like noise
    assert f["S_sd_noise"] == pytest.approx(0.0, abs=1e-12) and f["gap_mean"] == pytest.approx(0.0, abs=1e-9)
    # residual noise of 3 x 3 cells with 2 x 2 degrees of freedom: recovered exactly
    noise = [(0.01, -0.02, 0.01), (-0.01, 0.03, -0.02), (0.0, -0.01, 0.01)]
    x = np.array(noise)
    res = x - x.mean(1, keepdims=True) - x.mean(0, keepdims=True) + x.mean()
    noisy = ref(noise)
    assert space_vs_grid.within_seed_sd(noisy, list(noisy)) == pytest.approx(
        float(np.sqrt((res**2).sum() / 4))
    )
    # without per-seed scores the floor falls back to the pooled per-point sd
    bare = {k: {kk: vv for kk, vv in v.items() if kk != "S_per_seed"} for k, v in noisy.items()}
    g = space_vs_grid.noise_floor(bare, 3)
    assert g["S_sd_within_seed"] is None and g["S_sd_noise"] == g["S_sd_pooled"]


def test_replay_climbs_a_plane_and_stalls_on_a_bump() -> None:
    grid = Grid(rank_ratio=(0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0), patch_size=(4, 5, 6, 7, 8))
    settings = EvolutionSettings(epochs_per_visit=4, max_steps=20, max_total_epochs=None)

    def landscape(f):
        return {grid.key(p): {"S": f(*p), "A": f(*p), "R": 0.0, "trained_seeds": 3} for p in grid.points()}

    plane = space_vs_grid.replay(landscape(lambda i, j: 0.02 * i + 0.015 * j), grid, settings, 5)
    assert plane["gap_mean"] == pytest.approx(0.0) and plane["within_1_point"] == 1.0
    # a local maximum at the opposite corner from the global one: starts near it stay there
    bump = landscape(lambda i, j: 0.05 * (i + j) + (0.4 if (i, j) == (0, 0) else 0.0))
    r = space_vs_grid.replay(bump, grid, settings, 20)
    assert 0.0 < r["within_1_point"] < 1.0 and r["gap_mean"] > 0.0
    assert r["random"]["points"] == max(1, round(r["epochs_mean"] / 4))
    assert space_vs_grid.replay(bump, grid, settings, 0) is None


@pytest.mark.slow
def test_space_vs_grid_summary(tmp_path, monkeypatch) -> None:
    out = tmp_path / "svg"
    over = [
        o
        for o in tiny_overrides(tmp_path / "data", out)
        if not o.startswith(("output=", "score.budget", "init_points"))  # random starts per evolution seed
    ]
    args = ["--budget", "6KB", "--output", str(out), "--epoch-share", "0.5", "--seeds", "0", "1",
            "--evo-seeds", "0", "1", "--jobs", "1", *(x for o in over for x in ("-o", o))]  # fmt: skip
    assert space_vs_grid.main(args) == 0
    s = json.loads((out / "summary.json").read_text())
    # 3 x 3 grid, t = 1; at 6 KB no patch-4 subnet fits: those 3 points are scored without training
    assert s["grid_points"] == 9 and s["grid_points_trained"] == 6 and s["epochs_grid"] == 6
    # one dense supernet, pretrained once before any run, is where every new point of every run starts
    assert s["pretrain"]["epochs"] == 1 and s["pretrain"]["space"] == "inline"
    grid_logs = list((out / "grid").rglob("train.log"))
    assert len(grid_logs) == 12  # 6 trained points x 2 seeds
    dense = tmp_path / "dense" / "checkpoint.pth"
    assert all(f"initialised from {dense} by truncated SVD" in f.read_text() for f in grid_logs)
    ref, per_seed = s["reference"], s["grid_scores"]
    for key, v in ref.items():
        assert v["S"] == pytest.approx((per_seed["0"][key]["S"] + per_seed["1"][key]["S"]) / 2)
        if key.endswith("_p4"):
            assert v["S"] == 0.0 and v["trained_seeds"] == 0 and per_seed["1"][key]["trained"] is False
        else:
            assert v["R"] == 1.0 and v["trained_seeds"] == 2 and v["S"] > 1.0
    best = max(v["S"] for v in ref.values())
    assert s["reference_best"]["S"] == best
    best_key = s["reference_best"]["point"]
    for v in s["evolutions"]:
        assert v["total_epochs"] <= 3 and v["epoch_share"] == v["total_epochs"] / 6  # cap: 0.5 x 6 epochs
        assert v["gap_all_seeds"] == pytest.approx(best - ref[v["point"]]["S"]) and v["gap"] >= 0
        other = per_seed[str(1 - v["seed"])]  # judged without its own seed: the other one alone
        assert v["judged_on"] == [1 - v["seed"]]
        assert v["gap"] == pytest.approx(max(x["S"] for x in other.values()) - other[v["point"]]["S"])
        assert v["trajectory"][-1] in ref and v["point"] in ref
        first = v["first_climb"]  # the same run without restarts
        assert first["point"] in ref and first["total_epochs"] <= v["total_epochs"]
        assert first["gap"] == pytest.approx(max(x["S"] for x in other.values()) - other[first["point"]]["S"])
        # under a reference seed, every new-point visit was taken from that seed's grid job
        visits = json.loads((out / "evolve" / f"seed{v['seed']}" / "state.json").read_text())["visits"]
        new = [x for x in visits.values() if x["init_job"] is None and x["scores"].get("trained", True)]
        assert new and all(
            x["scores"]["S"] == per_seed[str(v["seed"])][x["job_id"].split("/")[0]]["S"] for x in new
        )
        for x in new:  # a copy of the grid's job directory, not a second training
            cfg = yaml.safe_load(
                (out / "evolve" / f"seed{v['seed']}" / "points" / x["job_id"] / "train.yaml").read_text()
            )
            assert f"grid/seed{v['seed']}/points/" in cfg["log"]["output"]
    for v in s["grid_picks"]:
        own, other = per_seed[str(v["seed"])], per_seed[str(1 - v["seed"])]
        assert own[v["point"]]["S"] == max(x["S"] for x in own.values())
        assert v["gap"] == pytest.approx(max(x["S"] for x in other.values()) - other[v["point"]]["S"])
    assert s["gap_mean"] == pytest.approx(sum(v["gap"] for v in s["evolutions"]) / 2)
    assert s["target_met"] == (s["gap_mean"] <= 0.01 and s["epoch_share_max"] <= 0.25)
    rep = s["replay"]  # the update rule replayed on the reference: lookups, within the same cap
    assert rep["seeds"] == 50 and 0.0 <= rep["within_1_point"] <= 1.0 and rep["gap_mean"] >= 0.0
    assert rep["epochs_mean"] <= 3 and rep["random"] == space_vs_grid.random_best(
        ref, rep["random"]["points"]
    )
    assert s["noise_floor"] == pytest.approx(space_vs_grid.noise_floor(ref, 2, 1))  # judged on one seed
    assert s["noise_floors"] == [s["noise_floor"]]  # every run judged on one seed
    d = s["delivered"]  # the chosen supernets on the test split, one subnet draw for every seed
    assert d["split"] == "test" and len(d["evolutions"]) == 2 and len(d["grid"]) == 2
    for v in d["evolutions"]:
        job = json.loads((out / "evolve" / f"seed{v['seed']}" / "result.json").read_text())["job"]
        kept = json.loads(
            (out / "evolve" / f"seed{v['seed']}" / "points" / job / "delivered.json").read_text()
        )
        assert kept["S"] == v["S_test"] and kept["evaluated"]["split"] == "test"
        assert kept["S"] == pytest.approx(kept["A"] + kept["eta"] * kept["R"])
    drawn = [
        json.loads((out / "grid" / f"seed{g}" / "points" / best_key / "grid" / "delivered.json").read_text())
        for g in (0, 1)
    ]
    assert (
        drawn[0]["evaluated"]["subnets"] == drawn[1]["evaluated"]["subnets"]
    )  # not the training seed's draw
    assert [v["best_S_test"] for v in d["grid"]] == [x["S"] for x in drawn]
    assert d["grid_best_mean"] == pytest.approx(sum(x["S"] for x in drawn) / 2)
    assert d["evolution_mean"] == pytest.approx(sum(v["S_test"] for v in d["evolutions"]) / 2)
    with pytest.raises(FileNotFoundError, match="not finished"):
        delivered_score(tmp_path, 4)
    assert (out / "reference.png").stat().st_size > 0
    # rerunning reads every finished job back: the same summary, nothing trained
    import training.run

    monkeypatch.setattr(training.run, "train_supernet", lambda cfg: pytest.fail("retrained a finished job"))
    assert space_vs_grid.main(args) == 0
    assert json.loads((out / "summary.json").read_text()) == s
    # the document is rendered from the saved figures, and judges the target on them
    results = tmp_path / "results"
    results.mkdir()
    (results / "space_vs_grid.json").write_text(json.dumps({"summary": s}))
    doc = render(results, {"machine": {}, "steps": {}})
    row = next(ln for ln in doc.splitlines() if ln.startswith("| space evolution within"))
    assert row.endswith("| met |" if s["target_met"] else "| **missed** |")
    assert (
        f"mean gap {100 * s['gap_mean']:.2f} points over 2 runs" in doc
        and "| supernet step ≤ 1.10× the static model | – | not run |" in doc
        and "≤ 25% of its epochs (from random init) | – | not run |" in doc  # the variants: their own steps
        and "≤ 25% of its epochs (from random init, qkv init lecun) | – | not run |" in doc
        and "starts from the dense supernet pretrained once (1 epochs over `inline`" in doc
        and f"within 1 point from {100 * rep['within_1_point']:.0f}% of the starts" in doc
        and f"itself land {100 * s['noise_floor']['gap_mean']:.2f} points below" in doc
        and f"score S {d['evolution_mean']:.4f} on average over 2 runs" in doc
    )


def test_space_vs_grid_bad_budget_exits_2(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        space_vs_grid.main(["--budget", "320QB", "--output", str(tmp_path / "o")])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        space_vs_grid.main(["--budget", "320KB", "--output", str(tmp_path / "o"), "--seeds", "0", "0"])
    assert exc.value.code == 2 and "must not repeat a seed" in capsys.readouterr().err
    assert (
        space_vs_grid.main(["--budget", "320KB", "--output", str(tmp_path / "o"), "-o", "evolve.tt=4"]) == 2
    )
    assert "unknown config key 'evolve.tt'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_bench_int8_on_an_exported_subnet(tmp_path, capsys) -> None:
    cfg = SubnetConfig(
        embed_dim=32, depth=1, num_heads=(2,), mlp_ratio=(2.0,), patch_size=8, img_size=32,
        num_classes=10, head_dim=16, pool="avg", act="gelu_sigmoid", rank_ratio=0.5,
    )  # fmt: skip
    search = tmp_path / "search"
    search.mkdir()
    (search / "best_subnet.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    torch.manual_seed(0)
    torch.save(StaticViT(cfg).state_dict(), search / "model.pt")
    out = tmp_path / "int8.json"
    assert (
        bench_int8.main(["--search", str(search), "--images", "6", "--calib", "8", "--json", str(out)]) == 0
    )
    r = json.loads(out.read_text())
    assert r["images"] == 6 and r["arena_bytes"] == peak_sram(cfg, "mcu").peak_bytes
    assert 0 <= r["agreement"] <= 100 and r["int8_images_per_s"] > 0
    assert "summary: int8 top-1 agrees" in capsys.readouterr().out
    assert bench_int8.main(["--search", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_run_all_unknown_step_exits_2(capsys) -> None:
    assert run_all.main(["--only", "supernet,warp_drive"]) == 2
    assert "unknown step 'warp_drive'" in capsys.readouterr().err
