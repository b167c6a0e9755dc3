"""Generate, build and run a searched subnet as C: host check, board link, QEMU run.

python -m deploy.mcu --search runs/pipeline/search --board stm32f746
python -m deploy.mcu --subnet best_subnet.yaml --weights model.pt --board stm32h743 --placement flash
python -m deploy.mcu --list-boards
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common.errors import ConfigError
from deploy.mcu.boards import BOARDS, get_board
from deploy.mcu.build import TOOLCHAIN_PACKAGES, toolchain_missing
from deploy.mcu.codegen import GenOptions
from deploy.mcu.run import Steps, deploy, summary_lines
from deploy.mcu.source import load_float_model, load_subnet, quantize_model, random_model, search_dir_files
from memory_model.mcu import check_input_mode


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m deploy.mcu", description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group()
    src.add_argument("--search", help="search output directory (best_subnet.yaml + model.pt)")
    src.add_argument("--subnet", help="subnet YAML (with --weights or --random-weights)")
    p.add_argument("--weights", help="model.pt state dict of --subnet")
    p.add_argument("--random-weights", type=int, metavar="SEED", help="seeded random int8 weights (tests)")
    p.add_argument("--board", default="stm32f746", help=f"board preset: {', '.join(BOARDS)}")
    p.add_argument("--placement", choices=("sram", "flash"), default="sram",
                   help="weights staged per op into the arena (sram, the search's default) or read from flash")  # fmt: skip
    p.add_argument("--input", default="whole",
                   help="whole: the image in the arena; stream: one row of patches at a time from mcu_read_rows()")  # fmt: skip
    p.add_argument(
        "--ext-flash", action="store_true", help="place weights beyond internal flash in the board's QSPI"
    )
    p.add_argument("--out", help="output directory (default: <search>/mcu or mcu_build)")
    p.add_argument("--images", type=int, default=360, help="digits test images run on the host")
    p.add_argument("--check", type=int, default=360, help="of those, compared with the numpy executor")
    p.add_argument("--qemu-images", type=int, default=4, help="images run under QEMU (0: no board run)")
    p.add_argument("--no-board", action="store_true", help="host only: no cross-compile, no QEMU")
    p.add_argument(
        "--subkernel", type=int, default=4, help="patch-embedding sub-kernel side (P = whole kernel)"
    )
    p.add_argument("--sqrt-iters", type=int, default=3, help="LayerNorm square-root Newton iterations")
    p.add_argument("--dsp", action="store_true", help="Cortex-M DSP dual-MAC (SMLAD) dot products")
    p.add_argument("--list-boards", action="store_true", help="print the board presets and exit")
    return p.parse_args(argv)


def _validate(args: argparse.Namespace) -> None:
    for name in ("images", "check", "qemu_images"):
        if getattr(args, name) < 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    check_input_mode(args.input)
    if args.subkernel < 1 or args.sqrt_iters < 0:
        raise ConfigError("--subkernel must be >= 1 and --sqrt-iters >= 0")
    if not (args.search or args.subnet):
        raise ConfigError("pass --search DIR (a search output directory) or --subnet YAML")
    if args.subnet and (args.weights is None) == (args.random_weights is None):
        raise ConfigError("--subnet needs exactly one of --weights model.pt or --random-weights SEED")
    if args.search and (args.weights or args.random_weights is not None):
        raise ConfigError("--search takes its weights from the directory; drop --weights / --random-weights")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list_boards:
        print("\n".join(f"{b.summary()}  ({b.description})" for b in BOARDS.values()))
        return 0
    try:
        _validate(args)
        board = None if args.no_board else get_board(args.board)
        if board is not None and toolchain_missing():
            raise ConfigError(
                f"the board build needs {', '.join(toolchain_missing())}: install {TOOLCHAIN_PACKAGES} "
                "(`bash scripts/setup.sh` as root), or pass --no-board"
            )
        if args.search:
            cfg_path, weights = search_dir_files(Path(args.search))
            cfg = load_subnet(cfg_path)
        else:
            cfg, weights = load_subnet(Path(args.subnet)), args.weights and Path(args.weights)
        model = load_float_model(cfg, weights) if weights else None  # checked before anything is written
        from training.digits import load_digits_split

        test_x = load_digits_split("test", cfg.img_size)[0][: args.images] if args.images else None
        q = quantize_model(model) if model is not None else random_model(cfg, args.random_weights)
        qemu_x = None
        if board is not None and args.qemu_images:
            qemu_x = load_digits_split("test", cfg.img_size)[0][: args.qemu_images]
        steps = Steps(test_x, args.check, qemu_x, board, args.ext_flash, args.dsp)
        opts = GenOptions(args.placement == "sram", args.subkernel, args.sqrt_iters, input=args.input)
        out = (
            Path(args.out) if args.out else (Path(args.search) / "mcu" if args.search else Path("mcu_build"))
        )
        report = deploy(q, out, opts, steps)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("\n".join(summary_lines(report)))
    print(f"C tree, binaries and report.json in {report['out_dir']}")
    ok = report.get("host", {}).get("equal_to_numpy", True) and report.get("qemu", {}).get(
        "equal_to_host", True
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
