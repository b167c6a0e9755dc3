"""Train a weight-sharing ViT supernet.

    python supernet_train.py --cfg configs/train/digits-tiny.yaml
    torchrun --nproc_per_node=8 supernet_train.py --cfg configs/train/mcuformer-t-imagenet.yaml

Re-running the same command continues from the output directory's checkpoint.
"""

from __future__ import annotations

import argparse
import logging
import sys

from common.errors import ArgumentParser, ConfigError, exit_on_error


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cfg", help="YAML config (sections: space, model, data, optim, eval, log, seed)")
    p.add_argument("-o", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. -o optim.epochs=10 (repeatable)")  # fmt: skip
    p.add_argument("--output", help="output directory (same as -o log.output=...)")
    p.add_argument("--epochs", type=int, help="same as -o optim.epochs=N")
    p.add_argument("--resume", metavar="CKPT", help="continue from this checkpoint (default: the output's)")
    p.add_argument("--restart", action="store_true", help="delete the output directory and start over")
    p.add_argument("--wandb", action="store_true", help="log to wandb (offline unless log.wandb_mode=online)")
    p.add_argument("--check-sync", action="store_true", help="verify every rank trains the same subnet")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = list(args.overrides)
    if args.output:
        overrides.append(f"log.output={args.output}")
    if args.epochs is not None:
        overrides.append(f"optim.epochs={args.epochs}")
    if args.wandb:
        overrides.append("log.wandb=true")
    from training.config import load_config
    from training.engine import NonFiniteLoss

    try:
        cfg = load_config(args.cfg, overrides)
        from training.run import train_supernet

        train_supernet(cfg, resume=args.resume, restart=args.restart, check_sync=args.check_sync)
    except ConfigError as exc:
        return exit_on_error(exc)
    except NonFiniteLoss as exc:
        logging.getLogger("mcunas").error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
