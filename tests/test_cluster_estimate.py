"""bench/cluster_estimate.py on the real ImageNet configs (few subnet draws, so fast)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from common.errors import ConfigError
from search.subnet.run import load_search_config
from search_space.counting import count_flops

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = 40


def _load_module():
    spec = importlib.util.spec_from_file_location("cluster_estimate", ROOT / "bench" / "cluster_estimate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


ce = _load_module()


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # the configs name each other by relative paths


def _estimate(epochs: int | None = None, hw=None, search=None):
    overrides = [] if epochs is None else [f"optim.epochs={epochs}"]
    train, evo, default_search = ce.load_configs(train_overrides=overrides)
    return ce.estimate(train, evo, search or default_search, hw or ce.Hardware(), samples=SAMPLES)


def test_supernet_flops_scale_linearly_with_epochs():
    stages = {e: _estimate(e).stages[0] for e in (100, 200, 300)}
    assert stages[200].parts["train"] == pytest.approx(2 * stages[100].parts["train"], rel=1e-12)
    assert stages[300].parts["eval"] == pytest.approx(3 * stages[100].parts["eval"], rel=1e-12)
    step = stages[200].flops - stages[100].flops
    assert stages[300].flops - stages[200].flops == pytest.approx(step, rel=1e-9)
    # only the final holdout + test evaluation does not grow with the epochs, and it is small
    assert stages[100].parts["final_eval"] < 0.01 * stages[100].flops


def test_supernet_flops_match_the_counter_and_the_split():
    est = _estimate()
    train, _, _ = ce.load_configs()
    pf = next(iter(est.points.values()))  # the training config's point
    space = ce.resolve_space(train.space)
    assert pf.max == count_flops(space.max_config()) and pf.min == count_flops(space.min_config())
    assert pf.min <= pf.mean <= pf.max
    assert est.splits.holdout == train.data.holdout_per_class * 1000
    assert est.splits.train + est.splits.holdout == ce.IMAGENET_TRAIN_IMAGES
    per_step = pf.max + pf.min + pf.mean if train.optim.sandwich else pf.mean
    expected = 3 * per_step * est.splits.train * train.optim.epochs
    assert est.stages[0].parts["train"] == pytest.approx(expected, rel=1e-12)


def test_evolution_bounds_and_search_from_the_configs():
    est = _estimate()
    _, evo, search = ce.load_configs()
    names = [s.name for s in est.stages]
    low, high = (est.stages[names.index(f"2 space evolution ({b})")] for b in ("lower", "upper"))
    assert low.flops < high.flops
    assert low.gpus == min(evo.launch.nproc, 8)
    init = evo.init_points
    assert all(f"r{r:g}_p{p}" in low.note for r, p in init)
    costliest = max(est.points.values(), key=lambda p: p.mean)
    assert costliest.label in high.note
    search_stage = est.stages[names.index("3 evolutionary search")]
    assert search_stage.gpus == 1
    pf = next(iter(est.points.values()))
    n = search.search.population * search.search.generations
    assert search_stage.flops >= n * pf.fit_mean * est.splits.holdout
    assert est.stages[-1].flops == 0  # finetune.epochs = 0 in the search config


def test_finetune_counted_when_the_search_config_asks():
    search = load_search_config(ce.SEARCH_CFG, ["finetune.epochs=10"])
    stage = _estimate(search=search).stages[-1]
    assert stage.name == "4 finetune" and stage.gpus == 1
    assert stage.parts["train"] > 0 and stage.flops > stage.parts["train"]


def test_wall_clock_halves_when_gpus_double():
    a, b = (_estimate(hw=ce.Hardware(gpus_per_node=g)) for g in (4, 8))
    for sa, sb in zip(a.stages, b.stages, strict=True):
        assert sa.flops == pytest.approx(sb.flops, rel=1e-12)  # counted FLOPs do not depend on the GPUs
        parallel_a = sa.wall_hours(a.hardware) - sa.serial_hours(a.hardware)
        parallel_b = sb.wall_hours(b.hardware) - sb.serial_hours(b.hardware)
        if sa.gpus == 1:  # search and finetune: one process on one GPU
            assert sb.wall_hours(b.hardware) == pytest.approx(sa.wall_hours(a.hardware))
        else:
            assert parallel_b == pytest.approx(parallel_a / 2, rel=1e-12)
    stage1_a, stage1_b = a.stages[0], b.stages[0]
    assert stage1_b.wall_hours(b.hardware) < stage1_a.wall_hours(a.hardware)
    # two nodes of 4 GPUs train the supernet as fast as one node of 8
    two_nodes = _estimate(hw=ce.Hardware(gpus_per_node=4, nodes=2)).stages[0]
    assert two_nodes.wall_hours(ce.Hardware(4, 2)) == pytest.approx(stage1_b.wall_hours(b.hardware))


def test_wall_clock_of_a_hand_sized_stage():
    # one A100 at MFU 0.35 does 312e12 x 0.35 = 1.092e14 FLOP/s, 3.9312e17 FLOP per hour; 8 of them
    # 3.14496e18 per hour. A stage of 3.14496e18 FLOP spread over 8 GPUs plus 1.9656e17 FLOP on rank 0
    # alone: 1 h + 0.5 h = 1.5 h of wall-clock while holding 8 GPUs, 12 GPU-hours
    hw = ce.Hardware(8, 1, 312.0, 0.35)
    stage = ce.Stage("x", gpus=8, parallel_flops=3.14496e18, serial_flops=1.9656e17)
    assert stage.serial_hours(hw) == pytest.approx(0.5, rel=1e-12)
    assert stage.wall_hours(hw) == pytest.approx(1.5, rel=1e-12)
    assert stage.gpu_hours(hw) == pytest.approx(12.0, rel=1e-12)
    one_gpu = ce.Stage("search", gpus=1, parallel_flops=3.9312e17, serial_flops=0.0)
    assert one_gpu.wall_hours(hw) == pytest.approx(1.0, rel=1e-12) == one_gpu.gpu_hours(hw)


@pytest.mark.parametrize("kwargs", [{"mfu": 0.0}, {"mfu": 1.5}, {"gpus_per_node": -1}, {"nodes": 0}])
def test_bad_hardware_is_refused(kwargs):
    with pytest.raises(ConfigError):
        ce.Hardware(**kwargs)


@pytest.mark.parametrize("flag", [["--mfu", "1.5"], ["--mfu", "0"], ["--gpus", "-8"]])
def test_cli_bad_input_exits_2_and_writes_nothing(flag, tmp_path, capsys):
    out = tmp_path / "estimate.json"
    assert ce.main([*flag, "--samples", str(SAMPLES), "--json", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.iterdir())


def test_cli_prints_the_table_and_writes_json(tmp_path):
    out = tmp_path / "estimate.json"
    proc = subprocess.run(
        [sys.executable, "bench/cluster_estimate.py", "--samples", str(SAMPLES), "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-1].startswith("summary: ") and "assumed MFU of 0.35" in lines[-1]
    assert any(line.startswith("| 1 supernet training | 8 |") for line in lines)
    data = json.loads(out.read_text())
    assert data["hardware"]["mfu"] == 0.35 and len(data["stages"]) == 5
    assert data["totals"]["lower_wall_hours"] < data["totals"]["upper_wall_hours"]
