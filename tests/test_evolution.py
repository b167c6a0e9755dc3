"""Budgeted subnet search: children stay in the space and the budget, infeasible budgets fail
clearly, resume replays exactly, and the search beats its random start on a trained supernet."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

import evolution_search
from deploy.finetune import DEPLOY_MODULES, finetune_best, missing_modules
from memory_model import flash_bytes, peak_bytes_batch, peak_sram, sample_batch
from search.constraint import MemoryConstraint
from search.subnet.evolution import SearchSettings, _Search, run_search
from search.subnet.run import load_search_config, run_subnet_search
from search_space import ConfigError, SearchSpace, SubnetConfig, load_space
from training.config import load_config
from training.run import train_supernet

REPO = Path(__file__).resolve().parent.parent
SEARCH_SPACE = {
    "embed_dim": [16, 24],
    "depth": [1, 2, 3],
    "num_heads": [1, 2],
    "mlp_ratio": [1.0, 2.0],
    "patch_size": [4, 8],
    "rank_ratio": [0.5, 1.0],
    "img_size": 32,
    "num_classes": 10,
    "head_dim": 8,
    "pool": "avg",
    "act": "gelu_sigmoid",
}
SMALL = {"population": 8, "generations": 4, "parents": 3, "mutations": 3, "crossovers": 3}


def toy_fitness(cfg: SubnetConfig) -> float:
    """A deterministic score of the architecture alone (the search never sees how it is made)."""
    return float(cfg.embed_dim * sum(cfg.mlp_ratio) + 3 * sum(cfg.num_heads)) / cfg.patch_size


def budget_at(space, quantile: float, schedule: str = "mcu") -> int:
    peaks = peak_bytes_batch(sample_batch(space, np.random.default_rng(1), 4000), schedule, True)
    return int(np.quantile(peaks, quantile))


@pytest.fixture(scope="session")
def supernet_ckpt(tmp_path_factory) -> Path:
    """A tiny supernet trained 2 epochs on 32 px digits."""
    root = tmp_path_factory.mktemp("supernet")
    cfg = {
        "space": SEARCH_SPACE,
        "seed": 0,
        "data": {
            "cache_dir": str(root / "data"), "batch_size": 32, "rand_augment": None, "hflip": 0.0, "reprob": 0.0,
            "mixup": 0.0, "cutmix": 0.0, "scale": [0.8, 1.0], "crop_pct": 1.0, "mean": [0.0, 0.0, 0.0],
            "std": [1.0, 1.0, 1.0],
        },
        "optim": {"lr": 5e-3, "lr_base_batch": 32, "epochs": 2, "warmup_epochs": 0, "clip_grad": 1.0},
        "model": {"drop_path": 0.0},
        "eval": {"num_subnets": 0, "every": 2},
        "log": {"output": str(root / "run"), "progress": False},
    }  # fmt: skip
    (root / "c.yaml").write_text(yaml.safe_dump(cfg))
    train_supernet(load_config(root / "c.yaml"))
    return root / "run" / "checkpoint.pth"


def test_children_stay_in_space_and_budget() -> None:
    space = load_space("digits-tiny")
    budget = budget_at(space, 0.4)
    constraint = MemoryConstraint(budget, "mcu", weights_in_sram=True)
    search = _Search(space, constraint, toy_fitness, SearchSettings(**SMALL, seed=3))
    search.step(None)
    parents = search._top(3)
    children = search._mutations(parents, 20, []) + search._crossovers(parents, 20, [])
    assert len(children) >= 30
    for cfg in children + list(search.cache):
        assert space.contains(cfg), space.violation(cfg)
        assert peak_sram(cfg, "mcu", weights_in_sram=True).peak_bytes <= budget
    assert not set(children) & set(search.cache), "children must be configs never evaluated"
    # The constraint binds: it rejected draws, and none of those was ever evaluated.
    rejected = [c for c, ok in constraint._cache.items() if not ok]
    assert rejected and not set(rejected) & set(search.cache)


def test_search_evaluates_only_feasible_new_configs() -> None:
    space = load_space("digits-tiny")
    rng = np.random.default_rng(0)
    flash_median = int(np.median([flash_bytes(space.sample(rng)) for _ in range(300)]))
    constraint = MemoryConstraint(budget_at(space, 0.5), flash_budget_bytes=flash_median)
    calls: list[SubnetConfig] = []

    def fitness(cfg: SubnetConfig) -> float:
        calls.append(cfg)
        return toy_fitness(cfg)

    for algorithm in ("evolution", "random"):
        calls.clear()
        result = run_search(
            space, constraint, fitness, SearchSettings(**SMALL, algorithm=algorithm), progress=False
        )
        assert len(calls) == len(set(calls)) == SearchSettings(**SMALL).num_evaluations
        assert all(constraint(c) for c in calls)
        assert result.best_fitness == max(toy_fitness(c) for c in calls)


def test_infeasible_budget_is_a_clear_error() -> None:
    space = load_space("digits-tiny")
    constraint = MemoryConstraint(8 * 1024)
    smallest = peak_sram(space.min_config(), "mcu", weights_in_sram=True).peak_bytes
    with pytest.raises(ConfigError, match=r"infeasible for space 'digits-tiny'.*smallest peak") as err:
        constraint.check_feasible(space)
    assert f"{smallest:,} bytes" in str(err.value) and "\n" not in str(err.value)
    # The search's own bounded retries end in the same message instead of looping forever.
    with pytest.raises(ConfigError, match="infeasible"):
        run_search(space, constraint, toy_fitness, SearchSettings(**SMALL, sample_retries=50), progress=False)


def _without_time(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


def test_resume_after_interruption_gives_the_same_result(tmp_path: Path) -> None:
    space = load_space("digits-tiny")
    constraint = MemoryConstraint(budget_at(space, 0.5))
    settings = SearchSettings(**SMALL, seed=5)
    full = run_search(space, constraint, toy_fitness, settings, output=tmp_path / "full", progress=False)

    count = 0

    def dies_in_generation_3(cfg: SubnetConfig) -> float:
        nonlocal count
        count += 1
        if count == 2 * settings.population + 3:
            raise KeyboardInterrupt
        return toy_fitness(cfg)

    with pytest.raises(KeyboardInterrupt):
        run_search(space, constraint, dies_in_generation_3, settings, output=tmp_path / "cut", progress=False)
    state = json.loads((tmp_path / "cut" / "search_state.json").read_text())
    assert state["generation"] == 2
    resumed = run_search(space, constraint, toy_fitness, settings, output=tmp_path / "cut", progress=False)
    assert resumed.evaluated == full.evaluated
    assert _without_time(resumed.history) == _without_time(full.history)
    lines = (tmp_path / "cut" / "generations.jsonl").read_text().splitlines()
    assert [json.loads(x)["generation"] for x in lines] == [1, 2, 3, 4]
    with pytest.raises(ConfigError, match="other settings"):
        run_search(space, constraint, toy_fitness, SearchSettings(**SMALL, seed=6), output=tmp_path / "cut")


def _pipeline_cfg(ckpt: Path, output: Path, budget: int, *extra: str):
    overrides = [f"supernet={ckpt}", f"output={output}", f"constraint.budget={budget}", "progress=false"]
    overrides += [f"search.{k}={v}" for k, v in SMALL.items()]
    return load_search_config(None, [*overrides, *extra])


@pytest.mark.slow
def test_search_beats_random_start_on_trained_supernet(supernet_ckpt: Path, tmp_path: Path) -> None:
    space = SearchSpace.from_dict(SEARCH_SPACE)
    budget = budget_at(space, 0.6)
    cfg = _pipeline_cfg(supernet_ckpt, tmp_path, budget, "finetune.epochs=1")
    summary = run_subnet_search(cfg, finish=finetune_best)
    assert summary["holdout_top1"] > summary["initial_median_holdout_top1"]
    best = SubnetConfig.from_dict(yaml.safe_load((tmp_path / "best_subnet.yaml").read_text()))
    assert space.contains(best) and best.to_dict() == summary["best"]
    assert summary["peak_sram_bytes"]["mcu (weights in SRAM)"] <= budget
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report["peak_sram_bytes"]) == {
        "paper",
        "mcu (weights in SRAM)",
        "mcu (weights in flash)",
        "tflm",
    }
    assert 0 <= report["test_top1"] <= 100 and report["evaluations"] == 32
    assert "live buffers" in (tmp_path / "report.txt").read_text()
    assert (tmp_path / "pareto.png").stat().st_size > 1000
    # finetune 1 epoch with the supernet's recipe, then export
    ft = json.loads((tmp_path / "finetune" / "final.json").read_text())
    assert summary["finetune"]["test_top1"] == ft["test_top1"]["model"]
    art = summary["artifacts"]
    assert art["onnx"]["max_abs_diff"] < 1e-4 and Path(art["onnx"]["path"]).is_file()
    if missing_modules(DEPLOY_MODULES):
        assert "requirements-deploy.txt" in art["tflite"]["skipped"]
        assert "requirements-deploy.txt" in summary["text"]
    else:
        assert art["tflite"]["arena_head_bytes"] > 0


def _run_script(*args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # threads as in this process
    return subprocess.Popen(
        [sys.executable, str(REPO / "evolution_search.py"), *args], cwd=REPO, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_script_bad_input_exits_2_and_writes_nothing(supernet_ckpt: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    proc = _run_script("--budget", "4KB", "--supernet", str(supernet_ckpt), "--output", str(out))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "infeasible for space" in err and "smallest peak" in err
    for args, expected in (
        (["--supernet", str(tmp_path / "missing.pth")], "does not exist"),
        (
            ["--supernet", str(supernet_ckpt), "-o", "search.populaton=3"],
            "unknown config key 'search.populaton'",
        ),
        (["--supernet", str(supernet_ckpt), "-o", "search.mutations=40"], "exceed the population"),
        (["--supernet", str(supernet_ckpt), "-o", "constraint.schedule=tflite"], "unknown memory schedule"),
    ):
        assert evolution_search.main([*args, "--budget", "320KB", "--output", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and expected in err and err.count("\n") == 1, err
    assert not out.exists()


@pytest.mark.slow
def test_killed_search_resumes_to_the_same_result(supernet_ckpt: Path, tmp_path: Path) -> None:
    space = SearchSpace.from_dict(SEARCH_SPACE)
    budget = budget_at(space, 0.6)
    common = [
        "--supernet",
        str(supernet_ckpt),
        "--budget",
        str(budget),
        "--seed",
        "2",
        "-o",
        "progress=false",
    ]
    common += [f"-o=search.{k}={v}" for k, v in {**SMALL, "generations": 6}.items()]
    run_subnet_search(
        _pipeline_cfg(supernet_ckpt, tmp_path / "full", budget, "search.seed=2", "search.generations=6")
    )
    cut = _run_script(*common, "--output", str(tmp_path / "cut"))
    state = tmp_path / "cut" / "search_state.json"
    deadline = time.time() + 240
    while time.time() < deadline and not (
        state.exists() and json.loads(state.read_text())["generation"] >= 2
    ):
        time.sleep(0.02)
    cut.send_signal(signal.SIGKILL)
    cut.wait()
    assert cut.returncode == -signal.SIGKILL
    assert json.loads(state.read_text())["generation"] < 6, "the run finished before it was killed"
    again = _run_script(*common, "--output", str(tmp_path / "cut"))
    assert again.wait(timeout=300) == 0, again.stderr.read()
    a = json.loads((tmp_path / "full" / "search_state.json").read_text())
    b = json.loads(state.read_text())
    assert a["evaluated"] == b["evaluated"] and _without_time(a["history"]) == _without_time(b["history"])
    assert (tmp_path / "full" / "best_subnet.yaml").read_text() == (
        tmp_path / "cut" / "best_subnet.yaml"
    ).read_text()
