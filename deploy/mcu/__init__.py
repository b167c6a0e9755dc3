"""MCUFormer's operator library in C: a generator that turns an int8 subnet (`QuantViT`) into a
C99 tree that runs the ``mcu`` schedule in one static arena of the analytic peak, bit-exact with
the numpy executor; board presets, Cortex-M7 builds and QEMU runs (``python -m deploy.mcu``)."""

from deploy.mcu.boards import BOARDS, Board, get_board
from deploy.mcu.build import BuildError, toolchain_missing
from deploy.mcu.codegen import GenOptions, generate
from deploy.mcu.run import Steps, deploy, summary_lines

__all__ = [
    "BOARDS",
    "Board",
    "BuildError",
    "GenOptions",
    "Steps",
    "deploy",
    "generate",
    "get_board",
    "summary_lines",
    "toolchain_missing",
]
