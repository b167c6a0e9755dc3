"""``pool: gp`` exported to int8 .tflite and measured in tflite-micro (deployment venv only)."""

from __future__ import annotations

import pytest

pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_quantizer")
pytest.importorskip("tflite_micro")

import torch

from deploy.compare import compare_subnet
from search_space.config import SubnetConfig

pytestmark = [pytest.mark.deploy, pytest.mark.slow]


def test_gp_export_matches_the_config_tflm_model_to_the_byte() -> None:
    torch.set_num_threads(1)
    cfg = SubnetConfig(embed_dim=48, depth=2, num_heads=(2, 2), mlp_ratio=(2.0, 3.0), patch_size=8, img_size=32,
                       num_classes=10, head_dim=16, act="gelu_sigmoid", pool="gp", rank_ratio=0.5)  # fmt: skip
    row = compare_subnet(cfg)
    assert row.ops_match  # class token concatenated, SLICE of the patch tokens, MEAN, head
    assert row.planner_head_bytes == row.measured_head_bytes == row.tflm_bytes
