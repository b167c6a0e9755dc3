"""The subnet search sharded over ranks: each rank evaluates candidates ``rank::world`` and the
gathered scores make every rank breed the same generations as one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from search.subnet.evolution import SearchSettings, evaluate_all, run_search
from search_space import SearchSpace
from tests.test_evolution import SEARCH_SPACE, SMALL, budget_at, supernet_ckpt, toy_fitness  # noqa: F401

REPO = Path(__file__).resolve().parent.parent


def _ranked_search(rank: int, world: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        seen = []

        def fitness(cfg):
            seen.append(cfg.short())
            return toy_fitness(cfg)

        space = SearchSpace.from_dict(SEARCH_SPACE)
        settings = SearchSettings(**SMALL, seed=3)
        result = run_search(space, lambda c: True, fitness, settings, progress=False)
        record = {
            "evaluated": [[c.short(), f] for c, f in result.evaluated],
            "best": result.best.short(),
            "mine": seen,
        }
        Path(out, f"rank{rank}.json").write_text(json.dumps(record))
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
def test_two_ranks_share_the_candidates_and_search_like_one_process(tmp_path):
    space = SearchSpace.from_dict(SEARCH_SPACE)
    one = run_search(space, lambda c: True, toy_fitness, SearchSettings(**SMALL, seed=3), progress=False)
    assert evaluate_all(toy_fitness, [c for c, _ in one.evaluated]) == [f for _, f in one.evaluated]
    mp.start_processes(
        _ranked_search, args=(2, f"file://{tmp_path / 'rdv'}", str(tmp_path)), nprocs=2, start_method="spawn"
    )
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    expected = [[c.short(), f] for c, f in one.evaluated]
    for rec in ranks:
        assert rec["evaluated"] == expected and rec["best"] == one.best.short()
    # each rank evaluated its own half, together every candidate once
    assert ranks[0]["mine"] and ranks[1]["mine"] and not set(ranks[0]["mine"]) & set(ranks[1]["mine"])
    assert sorted(ranks[0]["mine"] + ranks[1]["mine"]) == sorted(c for c, _ in expected)


def _search(nproc: int, ckpt: Path, out: Path, budget: int) -> tuple[subprocess.CompletedProcess, float]:
    args = [
        "--budget", str(budget), "--supernet", str(ckpt), "--output", str(out), "--seed", "1",
        "-o", "search.population=8", "-o", "search.generations=3", "-o", "search.parents=3",
        "-o", "search.mutations=3", "-o", "search.crossovers=3", "-o", "device=cpu", "-o", "progress=false",
    ]  # fmt: skip
    run = [sys.executable, str(REPO / "evolution_search.py")]
    if nproc > 1:
        run = [
            str(Path(sys.executable).with_name("torchrun")),
            "--standalone",
            f"--nproc_per_node={nproc}",
            run[1],
        ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    proc = subprocess.run([*run, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    return proc, time.perf_counter() - start


def _without_times(out: Path) -> dict:
    state = json.loads((out / "search_state.json").read_text())
    for rec in state["history"]:
        rec.pop("seconds")
    report = json.loads((out / "report.json").read_text())
    report["pareto_plot"] = Path(report["pareto_plot"]).name if report["pareto_plot"] else None
    return {"state": state, "report": report, "best": (out / "best_subnet.yaml").read_text()}


@pytest.mark.slow
@pytest.mark.distributed
def test_torchrun_two_ranks_give_the_one_process_search(supernet_ckpt: Path, tmp_path: Path) -> None:  # noqa: F811
    budget = budget_at(SearchSpace.from_dict(SEARCH_SPACE), 0.6)
    one, t1 = _search(1, supernet_ckpt, tmp_path / "one", budget)
    assert one.returncode == 0, one.stderr[-3000:]
    two, t2 = _search(2, supernet_ckpt, tmp_path / "two", budget)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "rank 1: evaluated its share" in two.stdout
    a, b = _without_times(tmp_path / "one"), _without_times(tmp_path / "two")
    assert len(a["state"]["evaluated"]) == 24 and a == b
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == sorted(
        p.name for p in (tmp_path / "two").iterdir()
    )
    print(f"search wall time: 1 process {t1:.1f} s, 2 ranks {t2:.1f} s")
