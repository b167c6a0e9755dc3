"""The C operator library (deploy/mcu): generated trees are bit-exact with the numpy int8
executor on the host, link for the board presets, run under QEMU, and refuse bad input."""

from __future__ import annotations

import functools
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from common.errors import ConfigError
from deploy.mcu import BOARDS, GenOptions, Steps, deploy, generate, get_board
from deploy.mcu.boards import Board
from deploy.mcu.build import BuildError, build_board, build_host, overflow_message, run_host
from deploy.mcu.plan import plan_arena, schedule
from deploy.mcu.run import numpy_logits
from memory_model.int8 import random_quant_vit
from memory_model.int8.calibrate import quantize_static_vit, to_model_input
from memory_model.mcu import mcu_peak_bytes
from search_space.config import SubnetConfig
from search_space.static import StaticViT
from training.digits import load_digits_split

# Together: low-rank MLP and attention, dense, avg and cls pooling, relu / gelu_sigmoid / gelu,
# patches that need zero padding (21 px / 5, 30 px / 7, 20 px / 3), heads that differ per layer,
# no qkv bias, no position embedding.
SUBNETS = {
    "lowrank_mlp_attn_relu": dict(embed_dim=16, depth=2, num_heads=(1, 2), mlp_ratio=(2.0, 0.5), patch_size=5,
                                  img_size=21, head_dim=8, rank_ratio=0.5, attn_rank_ratio=0.3, act="relu",
                                  abs_pos=False),
    "dense_cls_gelu": dict(embed_dim=20, depth=3, num_heads=(3, 1, 2), mlp_ratio=(2.0, 1.0, 2.0), patch_size=7,
                           img_size=30, head_dim=4, qkv_bias=False, act="gelu"),
    "avg_lowrank_gelu_sigmoid": dict(embed_dim=16, depth=2, num_heads=(2, 1), mlp_ratio=(3.0, 2.0), patch_size=3,
                                     img_size=20, head_dim=8, rank_ratio=1.0, pool="avg", act="gelu_sigmoid"),
    "avg_attn_lowrank_patch8": dict(embed_dim=24, depth=1, num_heads=(2,), mlp_ratio=(1.5,), patch_size=8,
                                    img_size=30, head_dim=8, attn_rank_ratio=0.8, pool="avg", act="relu"),
}  # fmt: skip
PIPELINE_SUBNET = dict(embed_dim=48, depth=4, num_heads=(2, 3, 2, 2), mlp_ratio=(2.0, 4.0, 3.0, 2.0), patch_size=7,
                       img_size=96, head_dim=16, rank_ratio=0.6, pool="avg", act="gelu_sigmoid")  # fmt: skip


def _cfg(fields: dict) -> SubnetConfig:
    return SubnetConfig(num_classes=10, **fields)


@functools.lru_cache(maxsize=4)
def _trained(cfg: SubnetConfig, steps: int = 60) -> object:
    """A float StaticViT trained a few Adam steps on digits, calibrated and quantised."""
    torch.manual_seed(0)
    x, y = load_digits_split("train", cfg.img_size)
    model = StaticViT(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = to_model_input(x), torch.from_numpy(y)
    for step in range(steps):
        idx = torch.arange(step * 32, step * 32 + 32) % len(xt)
        loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return quantize_static_vit(model.eval(), x[:64])


@pytest.mark.parametrize("name", sorted(SUBNETS))
@pytest.mark.parametrize("weights_in_sram", [True, False])
def test_host_bit_exact_with_numpy_executor(name, weights_in_sram, tmp_path) -> None:
    cfg = _cfg(SUBNETS[name])
    q = _trained(cfg) if name.startswith("dense") else random_quant_vit(cfg, np.random.default_rng(1))
    images = load_digits_split("test", cfg.img_size)[0][:24]
    gen = generate(q, tmp_path / "tree", GenOptions(weights_in_sram=weights_in_sram))
    assert gen.plan.arena_bytes == mcu_peak_bytes(cfg, weights_in_sram)
    logits, _ = run_host(build_host(gen.out_dir), images)
    ref = numpy_logits(q, images, weights_in_sram)
    assert logits.shape == (24, 10)
    np.testing.assert_array_equal(logits, ref)
    assert len({tuple(r) for r in ref}) > 1  # the images really differ in their logits


@pytest.mark.slow
def test_pipeline_subnet_bit_exact_both_placements(tmp_path) -> None:
    cfg = _cfg(PIPELINE_SUBNET)
    q = random_quant_vit(cfg, np.random.default_rng(0))
    images = load_digits_split("test", 96)[0][:6]
    for sram in (True, False):
        gen = generate(q, tmp_path / f"tree{int(sram)}", GenOptions(weights_in_sram=sram))
        assert gen.plan.arena_bytes == mcu_peak_bytes(cfg, sram)
        logits, _ = run_host(build_host(gen.out_dir), images)
        np.testing.assert_array_equal(logits, numpy_logits(q, images, sram))


def test_subkernel_and_sqrt_iterations_are_parameters(tmp_path) -> None:
    cfg = _cfg(SUBNETS["dense_cls_gelu"])
    q = random_quant_vit(cfg, np.random.default_rng(2))
    images = load_digits_split("test", cfg.img_size)[0][:8]
    ref = numpy_logits(q, images, True)
    arenas = {}
    for sub in (2, 4, 7):  # sub-kernel sizes change the staging bytes, never the integer result
        gen = generate(q, tmp_path / f"s{sub}", GenOptions(subkernel=sub))
        arenas[sub] = gen.plan.arena_bytes
        np.testing.assert_array_equal(run_host(build_host(gen.out_dir), images)[0], ref)
    for sub, arena in arenas.items():  # the staged sub-kernel sets the patch op's bytes
        ops = schedule(cfg, True, sub)
        patch = next(op for op in ops if op.kind == "patch_embed")
        assert patch.live["W"] == 4 * 20 + 20 * 3 * min(sub, 7) ** 2
        assert arena == max(sum(op.live.values()) for op in ops) == plan_arena(ops).arena_bytes
    assert arenas[2] <= arenas[4] <= arenas[7]
    one = generate(q, tmp_path / "sqrt1", GenOptions(sqrt_iters=1))
    got = run_host(build_host(one.out_dir), images)[0]
    assert not np.array_equal(got, ref)  # one Newton step is a different (coarser) LayerNorm


def test_qemu_run_equals_host_and_reports_sizes(tmp_path) -> None:
    """One small subnet on the emulated Cortex-M7 (needs the toolchain: scripts/setup.sh)."""
    cfg = _cfg(SUBNETS["lowrank_mlp_attn_relu"])
    q = random_quant_vit(cfg, np.random.default_rng(3))
    images = load_digits_split("test", cfg.img_size)[0][:3]
    steps = Steps(host_images=images, check_images=3, qemu_images=images, board=get_board("stm32f746"))
    report = deploy(q, tmp_path / "out", GenOptions(), steps)
    assert report["host"]["equal_to_numpy"] and report["qemu"]["equal_to_host"]
    assert report["arena_bytes"] == report["analytic_mcu_peak_bytes"] == mcu_peak_bytes(cfg, True)
    b = report["board"]
    assert b["sram_bytes"] >= report["arena_bytes"] and b["sram_bytes"] <= b["board_sram_bytes"]
    assert report["weights_bytes"] < b["flash_bytes"] <= b["board_flash_bytes"]
    assert report["qemu"]["instructions_per_inference"] > 10_000
    assert (tmp_path / "out" / "model.elf").is_file() and (tmp_path / "out" / "report.json").is_file()


def test_sram_overflow_is_one_line_naming_board_region_bytes(tmp_path) -> None:
    # 96 px / patch 4 = 576 tokens: one head's 576 x 576 probabilities alone exceed 320 KB
    cfg = SubnetConfig(embed_dim=16, depth=1, num_heads=(1,), mlp_ratio=(1.0,), patch_size=4, img_size=96,
                       num_classes=10, head_dim=8, pool="avg")  # fmt: skip
    q = random_quant_vit(cfg, np.random.default_rng(0))
    board = get_board("stm32f746")
    steps = Steps(board=board)
    with pytest.raises(BuildError) as err:
        deploy(q, tmp_path / "out", GenOptions(), steps)
    msg = str(err.value)
    over = mcu_peak_bytes(cfg, True) - board.sram_bytes
    assert "\n" not in msg and "stm32f746" in msg and "SRAM overflowed by" in msg
    reported = int(msg.split("SRAM overflowed by ")[1].split()[0].replace(",", ""))
    assert reported > over  # the arena alone is over; stack and data come on top
    assert not (tmp_path / "out").exists() and not list(tmp_path.iterdir())


def test_flash_overflow_message_and_parser(tmp_path) -> None:
    board = Board("tiny", "a part with 8 KB of flash", 64 * 1024, 8 * 1024)
    cfg = _cfg(SUBNETS["dense_cls_gelu"])
    gen = generate(random_quant_vit(cfg, np.random.default_rng(0)), tmp_path / "t", GenOptions())
    with pytest.raises(
        BuildError, match=r"^the model does not fit board tiny .*: flash overflowed by [\d,]+ bytes$"
    ):
        build_board(gen.out_dir, board)
    text = "ld: region `RAM' overflowed by 1234 bytes\nld: region `FLASH' overflowed by 99 bytes"
    assert overflow_message(BOARDS["stm32f427"], text) == (
        "the model does not fit board stm32f427 (256 KB SRAM / 1024 KB flash): SRAM overflowed by 1,234 bytes; "
        "flash overflowed by 99 bytes"
    )
    assert overflow_message(BOARDS["stm32f427"], "undefined reference to `foo'") is None


def _cli(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(_root())}
    return subprocess.run(
        [sys.executable, "-m", "deploy.mcu", *args], capture_output=True, text=True, cwd=cwd, env=env
    )


def test_cli_unknown_board_lists_boards(tmp_path) -> None:
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(_cfg(SUBNETS["dense_cls_gelu"]).to_dict()))
    proc = _cli("--subnet", "s.yaml", "--random-weights", "0", "--board", "esp32", "--out", "o", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip() == "error: unknown board 'esp32'; choose one of: stm32f746, stm32f427, stm32h743"
    )
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_cli_refuses_weights_of_another_subnet(tmp_path) -> None:
    cfg = _cfg(SUBNETS["dense_cls_gelu"])
    other = SubnetConfig(**{**cfg.to_dict(), "embed_dim": 24})
    (tmp_path / "best_subnet.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    torch.save(StaticViT(other).state_dict(), tmp_path / "model.pt")
    proc = _cli("--search", ".", "--no-board", "--out", "o", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert (
        "are not those of subnet E20 D3" in proc.stderr and "'cls_token' is shape (1, 1, 24)" in proc.stderr
    )
    assert not (tmp_path / "o").exists()


def test_cli_missing_toolchain_names_packages(tmp_path) -> None:
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(_cfg(SUBNETS["dense_cls_gelu"]).to_dict()))
    env_path = "/nonexistent"
    proc = subprocess.run(
        [sys.executable, "-m", "deploy.mcu", "--subnet", "s.yaml", "--random-weights", "0", "--out", "o"],
        capture_output=True, text=True, cwd=tmp_path, env={"PATH": env_path, "PYTHONPATH": str(_root())},
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_cli_host_only_end_to_end(tmp_path) -> None:
    cfg = _cfg(SUBNETS["avg_lowrank_gelu_sigmoid"])
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    proc = _cli("--subnet", "s.yaml", "--random-weights", "4", "--no-board", "--images", "12", "--check", "12",
                "--placement", "flash", "--out", "o", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "bit-identical to the numpy executor on 12" in proc.stdout
    assert f"(= analytic mcu peak {mcu_peak_bytes(cfg, False):,} B)" in proc.stdout
    assert (tmp_path / "o" / "model.c").is_file() and not list(tmp_path.glob(".o.tmp-*"))


def _root():
    from pathlib import Path

    return Path(__file__).resolve().parents[1]


def test_dsp_dot_products_and_external_flash_under_qemu(tmp_path) -> None:
    """SMLAD dot products give the same logits; weights beyond internal flash go to QSPI."""
    cfg = _cfg(SUBNETS["avg_attn_lowrank_patch8"])
    q = random_quant_vit(cfg, np.random.default_rng(5))
    images = load_digits_split("test", cfg.img_size)[0][:2]
    gen = generate(q, tmp_path / "probe", GenOptions(weights_in_sram=False))
    need = build_board(gen.out_dir, get_board("stm32h743")).flash_bytes
    flash = need - sum(gen.weight_arrays_bytes.values()) // 2  # code fits, half the weights do not
    board = Board("qspi-part", "a part with little flash and a QSPI", 64 * 1024, flash, 1 << 20)
    steps = Steps(
        host_images=images, check_images=2, qemu_images=images, board=board, ext_flash=True, dsp=True
    )
    report = deploy(q, tmp_path / "out", GenOptions(weights_in_sram=False), steps)
    assert report["host"]["equal_to_numpy"] and report["qemu"]["equal_to_host"]
    b = report["board"]
    assert b["ext_flash_bytes"] > 0 and b["flash_bytes"] <= flash
    with pytest.raises(BuildError, match="flash overflowed"):
        deploy(
            q, tmp_path / "no_ext", GenOptions(weights_in_sram=False), replace_steps(steps, ext_flash=False)
        )


def replace_steps(steps: Steps, **kw) -> Steps:
    from dataclasses import replace

    return replace(steps, **kw)


def test_board_budgets_and_skip_line(monkeypatch, tmp_path) -> None:
    from deploy.mcu import integrate

    assert integrate.board_budgets("stm32f746") == (320 * 1024, 1024 * 1024)
    assert integrate.board_budgets("stm32h743", budget=100_000) == (100_000, 2048 * 1024)
    with pytest.raises(ConfigError, match="choose one of: stm32f746"):
        integrate.board_budgets("nrf52")
    monkeypatch.setattr("shutil.which", lambda name: None)
    line = integrate.run_for_board(tmp_path, "stm32f746")
    assert line.startswith("mcu: skipped: install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm")


def test_evolution_search_board_sets_budgets() -> None:
    import evolution_search

    base = ["--cfg", str(_root() / "configs" / "search" / "default.yaml"), "--board", "stm32f427"]
    cfg, _, _ = evolution_search.prepare(base)
    assert (cfg.constraint.budget, cfg.constraint.flash_budget) == (256 * 1024, 1024 * 1024)
    cfg, _, _ = evolution_search.prepare([*base, "--budget", "100KB"])  # an explicit budget wins
    assert (cfg.constraint.budget, cfg.constraint.flash_budget) == (100 * 1024, 1024 * 1024)
    with pytest.raises(ConfigError, match="unknown board 'foo'"):
        evolution_search.prepare([*base[:2], "--board", "foo"])
