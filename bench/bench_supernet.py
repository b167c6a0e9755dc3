"""Training-step cost of weight sharing: supernet (active config) vs static model vs timm.

One step = forward + backward + AdamW on a batch of 64 random images (CPU). All models of a
case are timed round-robin in the same run and the medians compared, so machine noise hits
them alike. Target: supernet / static <= 1.10.

    python bench/bench_supernet.py [--batch 64] [--rounds 7] [--steps 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from timm.models.vision_transformer import VisionTransformer

from common.files import atomic_write_text
from search_space import SearchSpace, SubnetConfig, load_space
from search_space.static import StaticViT
from search_space.supernet import Supernet


def timm_vit(cfg: SubnetConfig) -> VisionTransformer:
    """timm's ViT of the same size (dense, uniform heads and MLP ratio, divisible patch)."""
    return VisionTransformer(
        img_size=cfg.img_size,
        patch_size=cfg.patch_size,
        num_classes=cfg.num_classes,
        embed_dim=cfg.embed_dim,
        depth=cfg.depth,
        num_heads=cfg.num_heads[0],
        mlp_ratio=cfg.mlp_ratio[0],
        class_token=cfg.pool == "cls",
        global_pool="token" if cfg.pool == "cls" else "avg",
        fc_norm=False,
    )


def step_fn(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    return step


def measure(
    models: dict[str, torch.nn.Module], batch: int, cfg: SubnetConfig, rounds: int, steps: int
) -> dict:
    x = torch.randn(batch, cfg.in_chans, cfg.img_size, cfg.img_size)
    y = torch.randint(0, cfg.num_classes, (batch,))
    steps_by_name = {name: step_fn(m.train(), x, y) for name, m in models.items()}
    for fn in steps_by_name.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, fn in steps_by_name.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            times[name].append((time.perf_counter() - t0) / steps)
    return {name: statistics.median(t) for name, t in times.items()}


def cases() -> list[tuple[str, SearchSpace, SubnetConfig, bool]]:
    """(label, space, active config, timm-comparable)."""
    digits = load_space("digits-tiny")
    dense_digits = digits.replace(rank_ratio=(None,))
    uniform = dataclasses.replace(
        dense_digits.max_config(), embed_dim=64, num_heads=(2,) * 4, mlp_ratio=(3.0,) * 4
    )
    paper_t = load_space("autoformer-t").replace(img_size=32, patch_size=(4,), rel_pos=False, num_classes=10)
    deit_like = paper_t.replace(embed_dim=(192, 216, 240)).min_config()
    deit_like = dataclasses.replace(deit_like, num_heads=(3,) * 12, mlp_ratio=(4.0,) * 12)
    mcu = load_space("mcuformer-t").replace(img_size=32, patch_size=(4,), num_classes=10, rank_ratio=(0.5,))
    mcu_cfg = mcu.sample(np.random.default_rng(0))
    return [
        (f"tiny dense (digits space, {digits.img_size} px)", dense_digits, uniform, True),
        (
            f"tiny low-rank (digits space, {digits.img_size} px)",
            digits,
            digits.sample(np.random.default_rng(0)),
            False,
        ),
        ("small dense (AutoFormer-T space, 32 px)", paper_t, deit_like, True),
        ("paper-T low-rank (MCUFormer-T space, 32 px)", mcu, mcu_cfg, False),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}")
    print("| case | active config | supernet ms | static ms | timm ms | supernet/static | supernet/timm |")
    print("|---|---|---|---|---|---|---|")
    worst, rows = 0.0, []
    for label, space, cfg, comparable in cases():
        net = Supernet(space)
        net.set_active(cfg)
        models = {"supernet": net, "static": StaticViT(cfg)}
        if comparable:
            models["timm"] = timm_vit(cfg)
        t = measure(models, args.batch, cfg, args.rounds, args.steps)
        ratio = t["supernet"] / t["static"]
        worst = max(worst, ratio)
        rows.append({"case": label, "config": cfg.short(), "ms": {k: 1e3 * v for k, v in t.items()}})
        timm_ms = f"{1e3 * t['timm']:.1f}" if "timm" in t else "-"
        timm_ratio = f"{t['supernet'] / t['timm']:.3f}" if "timm" in t else "-"
        print(
            f"| {label} | {cfg.short()} | {1e3 * t['supernet']:.1f} | {1e3 * t['static']:.1f} | {timm_ms} "
            f"| {ratio:.3f} | {timm_ratio} |",
            flush=True,
        )
    verdict = "meets" if worst <= 1.10 else "misses"
    print(f"summary: worst supernet/static training-step ratio {worst:.3f} ({verdict} the 1.10 target)")
    if args.json:
        figures = {"batch": args.batch, "threads": torch.get_num_threads(), "cases": rows, "worst": worst}
        atomic_write_text(Path(args.json), json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
