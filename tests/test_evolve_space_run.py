"""Space evolution for real: point scoring, the CLI's bad input, and the loop training tiny
supernets end to end with kill-and-resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import evolve_space
import search.space.visit as point_eval
from search.space.config import load_evolve_config
from search.space.loop import Grid
from search.space.run import EvolveRun

# ---- scoring ------------------------------------------------------------------------------
TINY_BASE = {
    "embed_dim": [16, 24], "depth": [1, 2], "num_heads": [1, 2], "mlp_ratio": [2.0], "patch_size": [4, 8, 16],
    "rank_ratio": [0.5, 0.75, 1.0], "img_size": 32, "num_classes": 10, "head_dim": 8, "pool": "avg",
}  # fmt: skip
SCORE = {"schedule": "mcu", "weights_in_sram": True, "eta": 0.5, "eval_subnets": 4, "eval_pool": 60,
         "r_samples": 500, "flash_budget_bytes": None}  # fmt: skip


def _score(budget_bytes: int) -> point_eval.ScoreSettings:
    return point_eval.ScoreSettings(budget_bytes=budget_bytes, **SCORE)


def test_points_are_scored_on_the_same_architectures():
    from search_space.space import SearchSpace

    base, score = SearchSpace.from_dict(TINY_BASE), _score(6 * 1024)
    grid = Grid.from_space(base)
    arch = lambda c: (c.embed_dim, c.depth, c.num_heads, c.mlp_ratio)  # noqa: E731
    picks = {
        p: point_eval.fitting_subnets(grid.space(base, grid.index(r, p)), score, seed=3)[0]
        for r, p in ((0.5, 8), (1.0, 16))
    }
    assert len(picks[8]) == 4 and [arch(c) for c in picks[8]] == [arch(c) for c in picks[16]]
    assert {c.patch_size for c in picks[8]} == {8} and {c.rank_ratio for c in picks[16]} == {1.0}
    other_seed = point_eval.fitting_subnets(grid.space(base, grid.index(0.5, 8)), score, seed=4)[0]
    assert [arch(c) for c in other_seed] != [arch(c) for c in picks[8]]


def test_a_point_where_nothing_fits_is_scored_without_training():
    from search_space.space import SearchSpace

    base = SearchSpace.from_dict(TINY_BASE)
    grid = Grid.from_space(base)
    tight = _score(6 * 1024)  # patch 4 peaks at >= 7.75 KB under mcu
    known = point_eval.score_without_training(grid.space(base, grid.index(0.75, 4)), tight, seed=0)
    assert known is not None and known["A"] == 0.0 and known["R"] == 0.0 and known["S"] == 0.0
    assert known["fit_in_pool"] == "0/60" and known["trained"] is False
    assert point_eval.score_without_training(grid.space(base, grid.index(0.75, 8)), tight, seed=0) is None


# ---- the real loop -----------------------------------------------------------------------
TINY_SPACE = (
    "recipe.space={embed_dim: [16, 24], depth: [1, 2], num_heads: [1, 2], mlp_ratio: [2.0], "
    "patch_size: [4, 8, 16], rank_ratio: [0.5, 0.75, 1.0], img_size: 32, num_classes: 10, head_dim: 8, pool: avg}"
)


TINY_DENSE = TINY_SPACE.replace("recipe.space", "pretrain.space").replace("[0.5, 0.75, 1.0]", "[null]")


def tiny_overrides(data_dir: Path, output: Path) -> list[str]:
    """The tiny space at 64 KB; new points start from a 1-epoch dense supernet beside the data."""
    return [
        TINY_SPACE,
        TINY_DENSE,
        f"output={output}",
        "progress=false",
        *(
            f"{part}.{o}"
            for part in ("recipe.overrides", "pretrain.overrides")
            for o in (f"data.cache_dir={data_dir}", "data.batch_size=64", "optim.lr_base_batch=64")
        ),
        f"pretrain.overrides.log.output={data_dir.parent / 'dense'}",
        "pretrain.overrides.optim.epochs=1",
        "pretrain.overrides.optim.warmup_epochs=0",
        "score.budget=64KB",
        "score.eval_subnets=2",
        "score.eval_pool=40",
        "evolve.epochs_per_visit=1",
        "evolve.max_steps=2",
        "evolve.max_total_epochs=null",
        "evolve.threshold=0.0001",  # any slope moves: the run must warm-start and catch up
        "init_points=[[0.75, 8], [1.0, 8], [0.75, 16]]",
    ]


def _comparable(state: dict) -> dict:
    return {k: state[k] for k in ("points", "trajectory", "fits", "result", "total_epochs", "visits")}


@pytest.mark.slow
def test_real_loop_end_to_end_with_kill_and_resume(tmp_path, monkeypatch):
    data = tmp_path / "data"
    ref_run = EvolveRun(load_evolve_config(None, tiny_overrides(data, tmp_path / "ref")))
    ref = ref_run.run()
    ref_state = json.loads((tmp_path / "ref" / "state.json").read_text())
    assert ref_state["status"] == "done" and ref["total_epochs"] >= 3
    for name in (
        "result.json",
        "trajectory.csv",
        "score_grid.png",
        "chosen/checkpoint.pth",
        "chosen/space.yaml",
    ):
        assert (tmp_path / "ref" / name).exists(), name
    warm = [
        v
        for v in ref_state["visits"].values()
        if v["init_job"] and v["init_job"].split("/")[0] != v["job_id"].split("/")[0]
    ]
    assert warm, "no point was warm-started from another"
    log_text = (tmp_path / "ref" / "points" / warm[0]["job_id"] / "train.log").read_text()
    assert "warm-started from" in log_text and "by truncated SVD" not in log_text
    # every new point starts from the dense supernet, pretrained once before the first visit
    dense = tmp_path / "dense"
    assert json.loads((dense / "result.json").read_text())["epochs"] == 1
    fresh = [v for v in ref_state["visits"].values() if v["init_job"] is None]
    assert len(fresh) >= 3  # the initial points
    for v in fresh:
        log_text = (tmp_path / "ref" / "points" / v["job_id"] / "train.log").read_text()
        assert f"initialised from {dense / 'checkpoint.pth'} by truncated SVD" in log_text
    visit = next(iter(ref_state["visits"].values()))
    result = json.loads((tmp_path / "ref" / "points" / visit["job_id"] / "result.json").read_text())
    assert result["evaluated"]["split"] == "holdout" and 0 <= result["A"] <= 1

    # Kill inside the third job, after its training and before its scores, then rerun.
    real_score, seen = point_eval.score_job, []

    def dying(job_dir, spec):
        seen.append(job_dir)
        if len(seen) == 3:
            raise KeyboardInterrupt
        return real_score(job_dir, spec)

    monkeypatch.setattr(point_eval, "score_job", dying)
    with pytest.raises(KeyboardInterrupt):
        EvolveRun(load_evolve_config(None, tiny_overrides(data, tmp_path / "b"))).run()
    monkeypatch.setattr(point_eval, "score_job", real_score)
    # the rest runs as subprocess jobs: the same job boundary, another launcher
    resumed = EvolveRun(
        load_evolve_config(None, [*tiny_overrides(data, tmp_path / "b"), "launch.kind=subprocess"])
    )
    out = resumed.run()
    assert {k: out[k] for k in ref if k not in ("supernet_checkpoint", "job_checkpoint")} == {
        k: ref[k] for k in ref if k not in ("supernet_checkpoint", "job_checkpoint")
    }
    assert _comparable(json.loads((tmp_path / "b" / "state.json").read_text())) == _comparable(ref_state)


def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    dense_out = f"pretrain.overrides.log.output={tmp_path / 'dense'}"
    for bad, message in (
        (["-o", "pretrain.space=digits-tiny"], "space 'digits-tiny' is low-rank; SVD initialisation starts"),
        (["-o", "pretrain.space=autoformer-t"], "the dense space 'autoformer-t' has img_size 224"),
        (
            ["-o", "recipe.overrides.model.init_from=deit.pth"],
            "both pretrain.cfg and the recipe's model.init_from",
        ),
        (["-o", "pretrain.overrides.optim.epochz=3"], "unknown config key 'optim.epochz'"),
    ):
        assert evolve_space.main(["--budget", "320KB", "--output", str(out), "-o", dense_out, *bad]) == 2
        assert message in capsys.readouterr().err
    assert (
        evolve_space.main(["--budget", "320KB", "--output", str(out), "-o", "init_points=[[0.45, 6]]"]) == 2
    )
    assert "not on the grid" in capsys.readouterr().err
    assert evolve_space.main(["--budget", "320KB", "--output", str(out), "-o", "evolve.max_stepz=3"]) == 2
    assert "unknown config key 'evolve.max_stepz'" in capsys.readouterr().err
    assert evolve_space.main(["--output", str(out)]) == 2
    assert "--budget" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        evolve_space.main(["--budget", "lots", "--output", str(out)])
    assert exc.value.code == 2
    assert not out.exists() and not (tmp_path / "dense").exists()
