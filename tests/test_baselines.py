"""Baselines: every seed model profiles, the report/CLI, and multi-scale batch sizes."""

import json

import numpy as np
import pytest
import torch
import yaml

from baselines.__main__ import _to_train, main
from baselines.report import (
    best_per_budget,
    load_searched,
    profile_searched,
    runtime_peak,
    table_markdown,
    write_results,
)
from baselines.zoo import ZOO, build_baseline, deployed_form, profile_baseline, profile_zoo, spec_for
from memory_model import peak_sram
from search_space.config import SubnetConfig
from training.multiscale import MultiScaleBatchSampler, num_tokens, scaled_batch_size, step_patch_size

TINY = SubnetConfig(
    embed_dim=32, depth=1, num_heads=(2,), mlp_ratio=(2.0,), patch_size=8, img_size=32, num_classes=10,
    head_dim=16, pool="avg", act="relu",
)  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("spec", ZOO, ids=lambda s: s.name)
def test_every_seed_model_traces_and_profiles(spec) -> None:
    res = spec.resolutions[0]
    r = profile_baseline(spec.name, res)
    assert r.max_live_bytes <= r.peak_bytes
    assert r.peak_bytes >= 3 * res * res  # the int8 input image alone
    assert r.flops > 0 and r.params > 0 and r.flash_bytes > r.params  # int8 weights + int32 biases


def test_mobileone_is_measured_reparameterised() -> None:
    model = build_baseline("mobileone_s0", 96)
    before = sum(p.numel() for p in model.parameters())
    r = profile_baseline("mobileone_s0", 96)
    assert r.params == sum(p.numel() for p in deployed_form(model).parameters()) < before
    assert "BATCH_NORM" not in r.op_kinds


def test_profile_cache_is_reused(tmp_path) -> None:
    spec = spec_for("mobileone_s0")
    one = type(spec)(spec.name, spec.family, (96,), spec.default_res)
    rows = profile_zoo((one,), tmp_path)
    cached = tmp_path / "mobileone_s0@96.json"
    data = json.loads(cached.read_text())
    data["peak_bytes"] = 1  # a cached value is read back, not recomputed
    cached.write_text(json.dumps(data))
    assert profile_zoo((one,), tmp_path)[0]["peak_bytes"] == 1 != rows[0]["peak_bytes"]


def test_searched_subnet_from_yaml_and_dir(tmp_path) -> None:
    (tmp_path / "subnet.yaml").write_text(yaml.safe_dump(TINY.to_dict()))
    assert load_searched(tmp_path / "subnet.yaml")[0]["subnet"] == TINY.to_dict()
    run = tmp_path / "search"
    run.mkdir()
    (run / "best.yaml").write_text(yaml.safe_dump({"subnet": TINY.to_dict(), "test_top1": {"best": 91.5}}))
    entry = load_searched(run)[0]
    assert entry["test_top1"] == 91.5
    row = profile_searched(entry)
    tflm = peak_sram(TINY, "tflm")
    assert row["peak_bytes"] == tflm.options["head_bytes"]  # the profiler plans the head
    assert row["arena_bytes"] == row["tflm_config_bytes"] == tflm.peak_bytes  # the whole arena
    paths = write_results([row], [320 * 1024, 1024], tmp_path / "out")
    table = paths["table"].read_text()
    assert "fits 320.0 KB" in table and "| yes | no | 91.5 |" in table
    assert paths["plot"].stat().st_size > 0


def test_cli_bad_budget_writes_nothing(tmp_path, capsys) -> None:
    assert main(["--budget", "320 parsecs", "--output", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert not (tmp_path / "o").exists()
    assert main(["--budget", "320KB", "--models", "resnet50", "--output", str(tmp_path / "o")]) == 2


@pytest.mark.slow
def test_cli_profiles_and_reports(tmp_path) -> None:
    (tmp_path / "subnet.yaml").write_text(yaml.safe_dump(TINY.to_dict()))
    out = tmp_path / "bl"
    args = ["--budget", "256KB,512KB", "--models", "mobileone_s0", "--output", str(out)]
    assert main([*args, "--searched", str(tmp_path / "subnet.yaml")]) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {r["img_size"] for r in rows if r["model"] == "mobileone_s0"} == set(
        spec_for("mobileone_s0").resolutions
    )
    assert any(r["family"] == "searched" for r in rows)
    assert (out / "plot.png").is_file() and "mobileone_s0" in (out / "table.md").read_text()


# ---- multi-scale batches --------------------------------------------------------------
def test_scaled_batch_keeps_tokens_times_batch() -> None:
    base = num_tokens(96, 4, False)  # 576 tokens
    assert scaled_batch_size(base, 16, base) == 16
    assert scaled_batch_size(num_tokens(96, 8, False), 16, base) == 64  # 144 tokens: 4x the images
    assert scaled_batch_size(num_tokens(96, 6, False), 16, base) == 36


def test_multiscale_batches_carry_expected_sizes() -> None:
    patches = (4, 6, 8)
    s = MultiScaleBatchSampler(1000, 16, patches, img_size=96, cls_token=False, seed=3)
    assert s.batch_by_patch == {4: 16, 6: 36, 8: 64}
    s.set_epoch(2)
    batches = list(s)
    plan = s.plan(2)
    assert len(batches) == len(s) == len(plan)
    assert [len(b) for b in batches] == [b for _, b in plan]
    assert [p for p, _ in plan] == [step_patch_size(3, 2 * len(s) + k, patches) for k in range(len(s))]
    assert len({p for p, _ in plan}) > 1  # several resolutions in one epoch
    for p, b in plan:
        assert abs(num_tokens(96, p, False) * b - 576 * 16) <= num_tokens(96, p, False) / 2
    assert all(0 <= i < 1000 for b in batches for i in b)
    cfgs = s.constrain([TINY, TINY])  # the first batch handed out decides the first step's subnets
    assert [c.patch_size for c in cfgs] == [plan[0][0]] * 2


def test_multiscale_loader_batches_images() -> None:
    from torch.utils.data import DataLoader, TensorDataset

    from training.multiscale import multiscale_loader

    data = TensorDataset(torch.zeros(100, 3, 8, 8), torch.zeros(100, dtype=torch.long))
    s = MultiScaleBatchSampler(100, 4, (2, 4), img_size=8, cls_token=True, seed=0)
    loader = multiscale_loader(DataLoader(data, batch_size=4), s)
    sizes = [x.shape[0] for x, _ in loader]
    assert sizes == [b for _, b in s.plan(0)] and set(sizes) == {4, 14}  # 17 and 5 tokens: 4 * 17 / 5 = 13.6
    assert np.isclose(len(s), np.ceil(100 / np.mean([4, 14])))


def test_search_output_dir_reads_the_finetuned_top1_and_its_schedule(tmp_path) -> None:
    run = tmp_path / "search"
    run.mkdir()
    report = {"best": TINY.to_dict(), "test_top1": 80.0, "finetune": {"epochs": 3, "test_top1": 85.5}}
    (run / "report.json").write_text(json.dumps(report))
    cfg = {"constraint": {"budget": 320 * 1024, "schedule": "mcu", "weights_in_sram": True}}
    (run / "search_config.yaml").write_text(yaml.safe_dump(cfg))
    (entry,) = load_searched(run)
    assert entry["test_top1"] == 85.5 and entry["inherited_test_top1"] == 80.0
    assert entry["label"] == "searched@320.0 KB" and entry["schedule"] == "mcu"
    row = profile_searched(entry)
    assert row["runtime_peak_bytes"] == peak_sram(TINY, "mcu", weights_in_sram=True).peak_bytes
    assert row["arena_bytes"] == peak_sram(TINY, "tflm").peak_bytes != row["runtime_peak_bytes"]
    base = {"model": "m", "family": "mobileone", "img_size": 96, "params": 1, "flops": 1, "flash_bytes": 2048,
            "max_live_bytes": 10, "peak_bytes": row["runtime_peak_bytes"] + 1, "test_top1": 90.0}  # fmt: skip
    lo, hi = row["runtime_peak_bytes"], row["runtime_peak_bytes"] + 1
    table = best_per_budget([row, base], [lo, hi])
    first, second = table.strip().splitlines()[2:]
    assert "| – | – | – |" in first and "85.5" in first  # only the searched subnet fits the lower budget
    assert "| m (96) | 90.0 |" in second
    flash = best_per_budget([row, base], [hi], flash_budget_bytes=1024)
    assert "| none fits |" in flash and "≤ 1.0 KB flash" in flash  # the baseline needs more flash than that


def test_each_budget_trains_its_largest_fitting_resolution() -> None:
    rows = [
        {"model": "a", "img_size": px, "peak_bytes": peak // 4, "arena_bytes": peak, "flops": px}
        for px, peak in ((96, 100), (128, 200), (160, 400))
    ]
    spec = type("S", (), {"name": "a"})
    picked = _to_train(rows, (spec,), [150, 250, 500, 50])
    assert [r["img_size"] for r in picked] == [96, 128, 160]
    assert [r["img_size"] for r in _to_train(rows, (spec,), [60])] == []  # the head would fit, the arena not


def test_baselines_are_judged_by_their_whole_arena() -> None:
    row = {"model": "m", "family": "mobileone", "img_size": 96, "params": 1, "flops": 1, "flash_bytes": 2048,
           "max_live_bytes": 10, "peak_bytes": 100 * 1024, "arena_bytes": 300 * 1024}  # fmt: skip
    assert runtime_peak(row) == 300 * 1024
    table = table_markdown([row], [256 * 1024, 320 * 1024])
    assert "TFLM head (KB)" in table and "TFLM arena (KB)" in table
    assert "| 100.0 | 0.0 | 300.0 | tflm | 300.0 | no | yes |" in table
