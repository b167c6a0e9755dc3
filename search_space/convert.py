"""Convert an AutoFormer supernet checkpoint into this project's dense supernet weights.

    python -m search_space.convert supernet-tiny.pth -o autoformer-t.pth [--space autoformer-t]
        [--gp | --no-gp] [--change-qkv | --no-change-qkv]

The output holds the converted `Supernet` state dict and its dense space; ``model.init_from``
accepts it (or the AutoFormer file itself) and starts any space from it by truncated SVD. The
check printed at the end runs the space's smallest and largest subnets through the converted
supernet and its extracted static models.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common.errors import ArgumentParser, ConfigError, exit_on_error

CONVERTED_KEY = "autoformer"  # marks a converted file (see search_space.svd_init)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m search_space.convert", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="AutoFormer supernet .pth (its 'model' state dict)")
    p.add_argument("-o", "--output", required=True, help="converted weights file to write (.pth)")
    p.add_argument(
        "--space", default=None, help="preset or YAML whose choice lists the converted space keeps "
        "(default: the supernet's widths with every depth and head count)",
    )  # fmt: skip
    p.add_argument("--gp", action=argparse.BooleanOptionalAction, default=None,
                   help="trained with --gp (default: the checkpoint's args, else yes)")  # fmt: skip
    p.add_argument("--change-qkv", action=argparse.BooleanOptionalAction, default=None,
                   help="trained with --change_qkv (default: the checkpoint's args, else yes)")  # fmt: skip
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        from search_space.space import load_space

        choices = None if args.space is None else load_space(args.space)
        output = Path(args.output)
        if output.is_dir():
            raise ConfigError(
                f"--output {output} is a directory; name the file to write, e.g. {output}/autoformer.pth"
            )
        import torch

        from common.files import atomic_write
        from search_space.autoformer import load_autoformer_supernet
        from search_space.counting import count_params
        from search_space.supernet import extract_subnet

        model, space, flags = load_autoformer_supernet(
            args.checkpoint, gp=args.gp, change_qkv=args.change_qkv, choices=choices
        )
    except ConfigError as exc:
        return exit_on_error(exc)
    x = torch.randn(
        2, space.in_chans, space.img_size, space.img_size, generator=torch.Generator().manual_seed(0)
    )
    for label, cfg in (("min", space.min_config()), ("max", space.max_config())):
        model.set_active(cfg)
        with torch.no_grad():
            diff = (model(x) - extract_subnet(model, cfg).eval()(x)).abs().max().item()
        print(
            f"{label}: {cfg.short()} {count_params(cfg):,} params, supernet vs static max |diff| {diff:.2e}"
        )
    payload = {
        "model": model.state_dict(),
        "space": space.to_dict(),
        CONVERTED_KEY: {
            "source": str(Path(args.checkpoint).resolve()),
            "gp": flags.gp,
            "change_qkv": flags.change_qkv,
        },
    }
    atomic_write(output, lambda fh: torch.save(payload, fh))
    print(f"wrote {output}: space {space.to_dict()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
