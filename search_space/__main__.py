"""Inspect a search space: its size, extreme and sampled subnets with params, FLOPs and peak SRAM,
and a check that each extracted static model reproduces the supernet.

    python -m search_space [--space digits-tiny] [--samples 8] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys

from common.errors import ArgumentParser, exit_on_error
from search_space import ConfigError, load_space
from search_space.counting import count_flops, count_params


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m search_space", description=__doc__.split("\n\n")[0])
    p.add_argument("--space", default="digits-tiny", help="preset name in configs/spaces or a YAML path")
    p.add_argument("--samples", type=int, default=8, help="random subnets to show besides min and max")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-check", action="store_true", help="skip building the supernet (large spaces)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        space = load_space(args.space)
    except ConfigError as exc:
        return exit_on_error(exc)
    import numpy as np
    import torch

    from memory_model import peak_sram
    from search_space.supernet import Supernet, extract_subnet

    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    configs = [("min", space.min_config()), ("max", space.max_config())]
    configs += [(f"sample {i}", space.sample(rng)) for i in range(args.samples)]
    net = None if args.no_check else Supernet(space).eval()
    if net is not None:
        print(
            f"space '{space.name}': {space.num_subnets():,} subnets; supernet {count_params(space.max_config()):,} "
            f"params at its max config, {sum(p.numel() for p in net.parameters()):,} stored"
        )
    x = torch.randn(2, space.in_chans, space.img_size, space.img_size)
    print(
        "| subnet | config | tokens | params | MFLOPs | peak SRAM mcu (KB) | peak SRAM tflm (KB) | supernet == static |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, cfg in configs:
        same = "-"
        if net is not None:
            net.set_active(cfg)
            with torch.no_grad():
                same = str(torch.allclose(net(x), extract_subnet(net, cfg).eval()(x), atol=1e-5))
        mcu = peak_sram(cfg, "mcu").peak_bytes / 1024
        tflm = peak_sram(cfg, "tflm").peak_bytes / 1024
        print(
            f"| {label} | {cfg.short()} | {cfg.num_tokens} | {count_params(cfg):,} | {count_flops(cfg) / 1e6:.1f} "
            f"| {mcu:.1f} | {tflm:.1f} | {same} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
