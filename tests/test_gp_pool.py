"""``pool: gp`` (AutoFormer's --gp: class token kept, the head reads the patch-token mean) through
the memory model, the int8 executor and the C operator library."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from memory_model import encode_configs, mcu_peak_bytes, paper_peak_bytes, peak_bytes_batch, sample_batch
from memory_model.flash import flash_report
from memory_model.int8 import random_quant_vit, run_int8
from memory_model.int8.calibrate import quantize_static_vit, to_model_input
from memory_model.int8.verify import check_mcu_schedule, tiny_spaces
from memory_model.mcu import build_ops
from memory_model.tflm import tflm_graph, tflm_report
from search_space.config import SubnetConfig
from search_space.space import SearchSpace
from search_space.static import StaticViT


def gp_spaces() -> list[SearchSpace]:
    """The tiny test spaces with gp pooling instead of theirs."""
    return [dataclasses.replace(s, pool="gp", name=f"{s.name}-gp") for s in tiny_spaces()]


def _avg(cfg: SubnetConfig) -> SubnetConfig:
    return dataclasses.replace(cfg, pool="avg")


def test_gp_mcu_peak_is_avg_pooling_with_one_more_token(rng) -> None:
    for space in gp_spaces():
        for cfg in [space.min_config(), space.max_config(), *(space.sample(rng) for _ in range(5))]:
            kinds = [op.kind for op in build_ops(cfg)]
            assert kinds[-3:] == ["norm_sum", "mean", "head"]
            assert next(op for op in build_ops(cfg) if op.kind == "norm_sum").args["skip"] == 1
            assert cfg.num_tokens == _avg(cfg).num_tokens + 1
            assert mcu_peak_bytes(cfg) >= mcu_peak_bytes(_avg(cfg))
            assert paper_peak_bytes(cfg) >= paper_peak_bytes(_avg(cfg))


def test_gp_batch_equals_scalar(rng) -> None:
    configs = [sp.sample(rng) for sp in gp_spaces() for _ in range(60)]
    configs += [sp.sample(rng) for sp in tiny_spaces() for _ in range(30)]  # mixed with cls and avg
    batch = encode_configs(configs)
    for schedule, sram in (("paper", False), ("mcu", False), ("mcu", True)):
        want = np.array(
            [paper_peak_bytes(c) if schedule == "paper" else mcu_peak_bytes(c, sram) for c in configs]
        )
        assert np.array_equal(peak_bytes_batch(batch, schedule, sram), want), (schedule, sram)
    space = gp_spaces()[0]
    sampled = sample_batch(space, rng, 50)
    assert np.all(sampled.cls_token) and not np.any(sampled.cls_head)


def test_gp_mcu_peak_equals_executor_high_water_mark(rng) -> None:
    checked = 0
    for space in gp_spaces():
        for cfg in [space.min_config(), space.max_config(), *(space.sample(rng) for _ in range(6))]:
            for sram in (False, True):
                result = check_mcu_schedule(cfg, sram, rng)
                assert result.ok, (cfg.short(), sram, result)
                checked += 1
    assert checked >= 60


def test_gp_int8_executor_matches_float_model(rng) -> None:
    for space in gp_spaces():
        cfg = space.sample(rng)
        model = StaticViT(cfg).eval()
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.2 * torch.randn_like(p))
        images = rng.integers(0, 256, (24, cfg.img_size, cfg.img_size, 3), dtype=np.uint8)
        qmodel = quantize_static_vit(model, images[:16])
        with torch.no_grad():
            ref = model(to_model_input(images[16:])).numpy()
            x = to_model_input(images[16:])
            wrong = model.head(model.forward_features(x).mean(dim=1)).numpy()  # mean with the class token
        got = np.stack([run_int8(qmodel, im).logits for im in images[16:]])
        err = np.abs(got - ref).max() / np.abs(ref).max()
        assert err < 0.25, (cfg.short(), err)
        assert np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.97
        assert np.abs(got - ref).mean() < np.abs(got - wrong).mean()


def test_gp_tflm_graph_and_flash_count_the_class_token() -> None:
    cfg = SubnetConfig(embed_dim=16, depth=1, num_heads=(2,), mlp_ratio=(2.0,), patch_size=4, img_size=16,
                       num_classes=10, head_dim=8, pool="gp")  # fmt: skip
    ops = tflm_graph(cfg).op_names()
    assert "CONCATENATION" in ops and ops[-3:] == ["SLICE", "MEAN", "FULLY_CONNECTED"]
    assert tflm_report(cfg).peak_bytes > tflm_report(_avg(cfg)).peak_bytes
    cls = dataclasses.replace(cfg, pool="cls")
    assert (
        flash_report(cfg).total_bytes == flash_report(cls).total_bytes > flash_report(_avg(cfg)).total_bytes
    )


@pytest.mark.parametrize("sram", [True, False])
def test_gp_c_library_bit_exact_with_numpy_executor(sram: bool, tmp_path) -> None:
    from deploy.mcu import GenOptions, generate
    from deploy.mcu.build import build_host, run_host
    from deploy.mcu.run import numpy_logits
    from training.digits import load_digits_split

    cfg = SubnetConfig(embed_dim=16, depth=2, num_heads=(1, 2), mlp_ratio=(2.0, 1.0), patch_size=5, img_size=21,
                       num_classes=10, head_dim=8, rank_ratio=0.5, act="gelu_sigmoid", pool="gp")  # fmt: skip
    q = random_quant_vit(cfg, np.random.default_rng(4))
    images = load_digits_split("test", cfg.img_size)[0][:16]
    gen = generate(q, tmp_path / "tree", GenOptions(weights_in_sram=sram))
    assert gen.plan.arena_bytes == mcu_peak_bytes(cfg, sram)
    logits, _ = run_host(build_host(gen.out_dir), images)
    ref = numpy_logits(q, images, sram)
    np.testing.assert_array_equal(logits, ref)
    assert len({tuple(r) for r in ref}) > 1


@pytest.mark.parametrize("abs_pos", [True, False])
def test_gp_static_model_lowers_to_the_config_tflm_graph(abs_pos: bool) -> None:
    """The exported gp StaticViT: same ops, buffers, peak and flash as `tflm_graph(cfg)` (which,
    for any pool, does not model relative position)."""
    from memory_model import peak_sram
    from memory_model.flash import flash_bytes
    from memory_model.profile import lower, profile_model
    from memory_model.tflite_graph import graph_buffers

    cfg = SubnetConfig(embed_dim=16, depth=2, num_heads=(1, 2), mlp_ratio=(2.0, 1.0), patch_size=5, img_size=21,
                       num_classes=10, head_dim=8, rank_ratio=0.5, pool="gp", abs_pos=abs_pos)  # fmt: skip
    g = lower(StaticViT(cfg), torch.zeros(1, 3, cfg.img_size, cfg.img_size))
    ref = tflm_graph(cfg)
    assert g.op_kinds() == ref.op_names()
    ours = [(b.size_bytes, b.first_op, b.last_op) for b in g.buffers()]
    assert ours == [(b.size_bytes, b.first_op, b.last_op) for b in graph_buffers(ref)]
    report = profile_model(StaticViT(cfg), cfg.img_size)
    assert report.peak_bytes == peak_sram(cfg, "tflm").options["head_bytes"]
    assert report.flash_bytes == flash_bytes(cfg)


def test_gp_warm_start_keeps_the_class_token_position() -> None:
    """Warm start between gp space points of different grids resamples only the patch positions."""
    from search_space.supernet import Supernet
    from search_space.transfer import warm_start

    src_space = SearchSpace(embed_dim=(16,), depth=(1,), num_heads=(1,), mlp_ratio=(2.0,), patch_size=(8,),
                            img_size=32, num_classes=5, head_dim=8, pool="gp")  # fmt: skip
    dst_space = src_space.replace(patch_size=(16,))
    src, dst = Supernet(src_space), Supernet(dst_space)
    warm_start(dst, src.state_dict(), src_space)
    assert dst.pos_embed.shape[1] == 1 + 4 and src.pos_embed.shape[1] == 1 + 16
    assert torch.equal(dst.pos_embed[:, 0], src.pos_embed[:, 0])
