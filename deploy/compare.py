"""Export subnets, measure them in TF-Lite Micro, and compare with the planner and ``tflm``.

For one subnet: export to int8 .tflite (:mod:`deploy.export`), plan the file's own graph
with the emulated greedy planner (:mod:`memory_model.tflite_graph`), measure the arena head in
tflite-micro (:mod:`deploy.tflm_measure`), and predict the head from the config alone
(:mod:`memory_model.tflm`). The planner must equal TFLM to the byte; the config-only
prediction is checked against the measured head.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from deploy.export import export_int8, randomize_affine
from deploy.tflm_measure import measure_arena
from memory_model.tflite_graph import plan_tflite, read_graph, tflite_max_live_bytes
from memory_model.tflm import tflm_graph, tflm_plan
from search_space.config import SubnetConfig
from search_space.static import StaticViT


def _cfg(e: int, heads: tuple[int, ...], mlp: tuple[float, ...], patch: int, img: int, **kw) -> SubnetConfig:
    return SubnetConfig(
        embed_dim=e, depth=len(heads), num_heads=heads, mlp_ratio=mlp, patch_size=patch, img_size=img, **kw
    )


# Different patch sizes (token counts, padding), depths, heads, MLP ratios, ranks, pools and
# activations; small enough that the whole set exports and runs in a few minutes on 2 cores.
COMPARE_SUBNETS: tuple[SubnetConfig, ...] = (
    _cfg(48, (2,), (2.0,), 8, 32, num_classes=10, head_dim=16, act="relu"),
    _cfg(64, (2, 3), (2.0, 3.0), 4, 32, num_classes=10, head_dim=16, act="gelu_sigmoid"),
    _cfg(48, (3, 2, 2), (4.0, 2.0, 3.0), 8, 64, num_classes=10, head_dim=16, act="gelu_sigmoid", rank_ratio=0.5),
    _cfg(80, (4, 4), (3.0, 4.0), 8, 64, num_classes=10, head_dim=16, act="relu", pool="avg", rank_ratio=0.75),
    _cfg(64, (2, 4, 3, 2), (2.0, 2.0, 4.0, 3.0), 4, 36, num_classes=10, head_dim=16, act="gelu_sigmoid",
         pool="avg", rank_ratio=1.0),
    _cfg(96, (3, 3), (4.0, 3.5), 6, 40, num_classes=10, head_dim=32, act="relu"),
    _cfg(72, (2,), (3.5,), 5, 28, num_classes=100, head_dim=24, act="gelu_sigmoid", attn_rank_ratio=0.5,
         rank_ratio=0.5),
    _cfg(32, (1, 2, 1), (4.0, 4.0, 2.0), 2, 16, num_classes=10, head_dim=16, act="relu", pool="avg"),
    _cfg(64, (4, 3), (2.0, 4.0), 16, 64, num_classes=10, head_dim=16, act="gelu_sigmoid", qkv_bias=False),
    _cfg(56, (2, 2, 2), (3.0, 3.0, 3.0), 7, 56, num_classes=10, head_dim=16, act="relu", rank_ratio=0.6),
    _cfg(48, (3, 3), (2.0, 2.0), 4, 30, num_classes=10, head_dim=16, act="gelu_sigmoid", pool="avg",
         abs_pos=False),
    _cfg(128, (2, 2), (4.0, 4.0), 16, 96, num_classes=10, head_dim=64, act="relu", rank_ratio=0.4),
)  # fmt: skip


# MCUFormer-T-sized subnets at 240 px (bench only: each takes about a minute).
LARGE_SUBNETS: tuple[SubnetConfig, ...] = (
    _cfg(168, (3,) * 12, (3.5,) * 12, 32, 240, num_classes=1000, act="relu", rank_ratio=0.4),
    _cfg(192, (4, 3) * 6 + (4,), (4.0, 3.5) * 6 + (4.0,), 28, 240, num_classes=1000, act="gelu_sigmoid",
         rank_ratio=0.6),
)  # fmt: skip


@dataclass(frozen=True)
class Comparison:
    cfg: SubnetConfig
    planner_head_bytes: int  # emulated planner over the exported .tflite
    measured_head_bytes: int  # tflite-micro "Arena allocation head"
    tflm_bytes: int  # memory_model.tflm from the config alone
    max_live_bytes: int  # lower bound over the exported graph
    export_s: float
    ops_match: bool  # memory_model.tflm's op list equals the exported graph's

    @property
    def tflm_error(self) -> float:
        """Relative error of the config-only prediction against the measured head."""
        return (self.tflm_bytes - self.measured_head_bytes) / self.measured_head_bytes


def compare_subnet(cfg: SubnetConfig, seed: int = 0, keep_dir: Path | None = None) -> Comparison:
    """Export ``cfg`` (random weights, non-trivial LayerNorms), measure and predict its head."""
    torch.manual_seed(seed)
    model = randomize_affine(StaticViT(cfg), seed)
    start = time.perf_counter()
    out = (
        None
        if keep_dir is None
        else Path(keep_dir) / f"{cfg.short().replace(' ', '_').replace('/', '-')}.tflite"
    )
    model_bytes = export_int8(model, cfg, out)
    export_s = time.perf_counter() - start
    return Comparison(
        cfg=cfg,
        planner_head_bytes=plan_tflite(model_bytes).head_bytes,
        measured_head_bytes=measure_arena(model_bytes).head_bytes,
        tflm_bytes=tflm_plan(cfg).head_bytes,
        max_live_bytes=tflite_max_live_bytes(model_bytes),
        export_s=export_s,
        ops_match=read_graph(model_bytes).op_names() == tflm_graph(cfg).op_names(),
    )


def markdown_table(rows: list[Comparison]) -> str:
    """The comparison as a Markdown table."""
    lines = [
        "| subnet | img | act | pool | planner(.tflite) B | tflite-micro head B | tflm(cfg) B | diff | max-live B "
        "| same ops |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        c = r.cfg
        lines.append(
            f"| {c.short()} | {c.img_size} | {c.act} | {c.pool} | {r.planner_head_bytes:,} | "
            f"{r.measured_head_bytes:,} | {r.tflm_bytes:,} | {100 * r.tflm_error:+.2f}% | {r.max_live_bytes:,} "
            f"| {'yes' if r.ops_match else 'no'} |"
        )
    return "\n".join(lines)
