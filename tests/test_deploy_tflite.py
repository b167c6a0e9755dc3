"""Ground truth: exported int8 .tflite files measured in tflite-micro (deployment venv only).

Run with ``.venv-deploy/bin/pytest -m deploy tests/test_deploy_tflite.py``; skipped where the
optional deployment packages (requirements-deploy.txt) are not installed.
"""

from __future__ import annotations

import pytest

pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_quantizer")
pytest.importorskip("tflite_micro")

import torch

from common.errors import ConfigError
from deploy.compare import COMPARE_SUBNETS, compare_subnet, markdown_table
from deploy.export import export_int8, randomize_affine
from deploy.tflm_measure import measure_arena, parse_allocations
from memory_model.flash import QPARAM_BYTES, flash_report
from memory_model.tflite_graph import plan_tflite, read_graph
from search_space.static import StaticViT

pytestmark = [pytest.mark.deploy, pytest.mark.slow]


@pytest.fixture(scope="module")
def comparisons():
    torch.set_num_threads(1)
    return [compare_subnet(cfg) for cfg in COMPARE_SUBNETS]


def test_at_least_ten_varied_subnets() -> None:
    assert len(COMPARE_SUBNETS) >= 10
    assert len({c.patch_size for c in COMPARE_SUBNETS}) >= 5
    assert len({c.depth for c in COMPARE_SUBNETS}) >= 3
    assert len({c.num_heads for c in COMPARE_SUBNETS}) >= 5
    assert len({c.mlp_ratio for c in COMPARE_SUBNETS}) >= 5


def test_planner_equals_tflite_micro_to_the_byte(comparisons) -> None:
    print("\n" + markdown_table(comparisons))
    for row in comparisons:
        assert row.planner_head_bytes == row.measured_head_bytes, row.cfg.short()
        assert row.measured_head_bytes >= row.max_live_bytes


def test_tflm_from_config_within_two_percent(comparisons) -> None:
    for row in comparisons:
        assert abs(row.tflm_error) <= 0.02, (row.cfg.short(), row.tflm_bytes, row.measured_head_bytes)
        assert row.ops_match, row.cfg.short()  # memory_model.tflm mirrors the converter op for op


def test_flash_report_matches_exported_constants() -> None:
    cfg = COMPARE_SUBNETS[2]  # cls token, position embedding, factorised MLP, x*sigmoid(1.702x)
    torch.manual_seed(0)
    graph = read_graph(export_int8(randomize_affine(StaticViT(cfg)), cfg))
    quantised = [t for t in graph.tensors if t.is_constant and t.quant_channels > 0 and t.shape]
    int8_bytes = sum(t.nbytes for t in quantised if t.dtype_name == "int8")
    int32_bytes = sum(t.nbytes for t in quantised if t.dtype_name == "int32")
    report = flash_report(cfg)
    assert int32_bytes == report.biases_int32_bytes
    assert int8_bytes == report.weights_int8_bytes + report.other_int8_bytes
    channels = sum(t.quant_channels for t in quantised)
    assert channels * QPARAM_BYTES == report.quant_params_bytes


def test_large_models_get_inline_weights() -> None:
    # >= 256 KB of constants: the quantizer would append them after the flatbuffer, and TFLM
    # would then plan them in the arena; the export re-serialises them inline.
    cfg = COMPARE_SUBNETS[-1]
    torch.manual_seed(0)
    model_bytes = export_int8(randomize_affine(StaticViT(cfg)), cfg)
    assert len(model_bytes) > 256 * 1024
    assert plan_tflite(model_bytes).head_bytes == measure_arena(model_bytes).head_bytes


def test_export_refuses_exact_gelu() -> None:
    import dataclasses

    cfg = dataclasses.replace(COMPARE_SUBNETS[0], act="gelu")
    with pytest.raises(ConfigError, match="gelu"):
        export_int8(StaticViT(cfg), cfg)


def test_parse_allocations_needs_all_lines() -> None:
    log = "Arena allocation total 30 bytes\nArena allocation head 10 bytes\nArena allocation tail 20 bytes\n"
    usage = parse_allocations(log)
    assert (usage.head_bytes, usage.tail_bytes, usage.total_bytes) == (10, 20, 30)
    with pytest.raises(RuntimeError, match="tail"):
        parse_allocations("Arena allocation head 10 bytes")
