"""The int8 arena executor: integer kernels, arena, the `mcu` peak proven to the byte, and
agreement with the float model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from memory_model.int8 import Arena, ArenaOverflowError, run_int8
from memory_model.int8.calibrate import quantize_static_vit, to_model_input
from memory_model.int8.intops import (
    activation_int8,
    isqrt_newton,
    layernorm_consts,
    layernorm_int8,
    softmax_uint8,
)
from memory_model.int8.quant import random_params
from memory_model.int8.verify import check_mcu_schedule, tiny_spaces
from memory_model.mcu import mcu_peak_bytes
from search_space import ConfigError, SubnetConfig
from search_space.static import StaticViT
from training.digits import load_digits_split

# ---- integer kernels ---------------------------------------------------------------------


def test_isqrt_three_newton_steps_is_close() -> None:
    v = np.array([1, 2, 15, 16, 17, 1000, 123_456_789, 2**40 + 12345])
    r = isqrt_newton(v)
    assert np.all(np.abs(r - np.sqrt(v)) <= np.maximum(1, 0.002 * np.sqrt(v)))


def test_softmax_matches_float(rng) -> None:
    logits = rng.integers(-3000, 3000, (20, 37))
    scale = 0.004
    p = softmax_uint8(logits, scale).astype(np.float64) / 255
    ref = np.exp(logits * scale - (logits * scale).max(1, keepdims=True))
    ref /= ref.sum(1, keepdims=True)
    assert np.abs(p - ref).max() < 3 / 255


@pytest.mark.parametrize("act", ["gelu_sigmoid", "relu", None])
def test_activation_matches_float(act, rng) -> None:
    acc = rng.integers(-20000, 20000, 500)
    acc_scale, out_scale = np.full(500, 2e-4), 4 / 127
    x = acc * acc_scale
    ref = {"gelu_sigmoid": x / (1 + np.exp(-1.702 * x)), "relu": np.maximum(x, 0), None: x}[act]
    got = activation_int8(acc, acc_scale, out_scale, act).astype(np.float64) * out_scale
    assert np.abs(got - ref).max() < 1.5 * out_scale


def test_layernorm_matches_float(rng) -> None:
    x = rng.integers(-127, 128, (10, 48)).astype(np.int8)
    gamma, beta, out_scale = 1 + rng.normal(0, 0.2, 48), rng.normal(0, 0.2, 48), 3 / 127
    g, b = layernorm_consts(gamma, beta, out_scale)
    got = layernorm_int8(x, 0.05, g, b, 1e-6).astype(np.float64) * out_scale
    xf = x * 0.05
    ref = (xf - xf.mean(1, keepdims=True)) / np.sqrt(xf.var(1, keepdims=True) + 1e-6) * gamma + beta
    assert np.abs(got - ref).max() < 1.5 * out_scale


def test_arena_is_a_two_ended_lifo_stack() -> None:
    a = Arena(64)
    a.alloc("x", 16, "low")
    a.alloc("t", 8, "high")
    a.alloc("y", 32, "low")
    assert a.used_bytes == a.high_water_bytes == 56
    with pytest.raises(ArenaOverflowError):
        a.alloc("z", 12, "high")
    with pytest.raises(RuntimeError, match="LIFO"):
        a.free("x")
    a.view("y")[:] = 7
    a.shrink("y", 8)
    assert a.used_bytes == 32 and (a.view("y") == 7).all()
    a.free("y")
    a.free("t")
    a.free("x")
    assert a.used_bytes == 0 and a.high_water_bytes == 56


# ---- the mcu schedule, to the byte ---------------------------------------------------------


def test_random_params_have_static_vit_names_and_shapes(rng) -> None:
    for space in tiny_spaces():
        cfg = space.max_config()
        want = {k: tuple(v.shape) for k, v in StaticViT(cfg).state_dict().items()}
        got = {k: v.shape for k, v in random_params(cfg, rng).items()}
        assert got == want


def test_mcu_peak_equals_executor_high_water_mark(rng) -> None:
    """>= 200 random tiny subnets x both weight placements: analytic == measured, to the
    byte, op by op; the exact-size arena runs, 4 bytes less overflows."""
    checked = 0
    for space in tiny_spaces():
        configs = [space.min_config(), space.max_config()] + [space.sample(rng) for _ in range(28)]
        for cfg in configs:
            for sram in (False, True):
                result = check_mcu_schedule(cfg, sram, rng)
                assert result.ok, (cfg, sram, result)
                checked += 1
    assert checked >= 200


def test_executor_matches_float_model_on_random_weights(rng) -> None:
    for space in tiny_spaces():
        cfg = space.sample(rng)
        model = StaticViT(cfg).eval()
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.2 * torch.randn_like(p))
        images = rng.integers(0, 256, (24, cfg.img_size, cfg.img_size, 3), dtype=np.uint8)
        qmodel = quantize_static_vit(model, images[:16])
        with torch.no_grad():
            ref = model(to_model_input(images[16:])).numpy()
        got = np.stack([run_int8(qmodel, im).logits for im in images[16:]])
        err = np.abs(got - ref).max() / np.abs(ref).max()
        assert err < 0.25, (cfg.short(), err)
        assert np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.97


def test_executor_rejects_bad_input(rng) -> None:
    cfg = tiny_spaces()[0].min_config()
    qmodel = quantize_static_vit(StaticViT(cfg).eval(), rng.integers(0, 256, (2, 30, 30, 3), dtype=np.uint8))
    with pytest.raises(ConfigError, match="uint8"):
        run_int8(qmodel, np.zeros((30, 30, 3), np.float32))
    with pytest.raises(ArenaOverflowError):
        run_int8(qmodel, np.zeros((30, 30, 3), np.uint8), arena_bytes=mcu_peak_bytes(cfg) - 4)


# ---- digits data and a trained model ------------------------------------------------------


def test_digits_splits() -> None:
    test_x, test_y = load_digits_split("test", 16)
    hold_x, _ = load_digits_split("holdout", 16)
    train_x, train_y = load_digits_split("train", 12)
    assert test_x.shape == (360, 16, 16, 3) and test_x.dtype == np.uint8 and test_y.dtype == np.int64
    assert hold_x.shape[0] == 180 and train_x.shape == (1257, 12, 12, 3)
    assert test_x.max() > 200 and (test_x[..., 0] == test_x[..., 2]).all()
    assert set(np.unique(train_y)) == set(range(10))
    with pytest.raises(ConfigError, match="split"):
        load_digits_split("val", 16)


AGREEMENT_CFG = SubnetConfig(
    embed_dim=64, depth=2, num_heads=(2, 2), mlp_ratio=(2.0, 2.0), patch_size=4, img_size=32,
    num_classes=10, head_dim=32, act="gelu_sigmoid",
)  # fmt: skip


def train_digits_vit(cfg: SubnetConfig, epochs: int = 30, seed: int = 0) -> StaticViT:
    """A small `StaticViT` trained on the digits train split (AdamW, one-cycle)."""
    torch.manual_seed(seed)
    model = StaticViT(cfg)
    images, labels = load_digits_split("train", cfg.img_size)
    x, y = to_model_input(images), torch.from_numpy(labels)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.05)
    steps = epochs * -(-len(x) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps, pct_start=0.15)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 64):
            idx = perm[i : i + 64]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


@pytest.mark.slow
def test_int8_agrees_with_trained_float_model() -> None:
    model = train_digits_vit(AGREEMENT_CFG)
    train_x, _ = load_digits_split("train", 32)
    test_x, test_y = load_digits_split("test", 32)
    qmodel = quantize_static_vit(model, train_x[:256])
    with torch.no_grad():
        ref = model(to_model_input(test_x)).numpy().argmax(1)
    got = np.array([run_int8(qmodel, im).logits.argmax() for im in test_x])
    agreement = (got == ref).mean()
    print(
        f"top-1 agreement {agreement:.4f}; float acc {(ref == test_y).mean():.4f}, int8 {(got == test_y).mean():.4f}"
    )
    assert (ref == test_y).mean() > 0.85
    assert agreement >= 0.99
