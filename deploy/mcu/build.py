"""Build and run a generated tree: host (system C compiler) and board (arm-none-eabi-gcc,
QEMU mps2-an500 with semihosting). The linker is the judge of whether a model fits a board."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.errors import ConfigError
from deploy.mcu.boards import EXT_FLASH_ORIGIN, FLASH_ORIGIN, QEMU_CPU, QEMU_MACHINE, RAM_ORIGIN, Board
from deploy.mcu.codegen import BOARD_FILES, HOST_FILES, KERNEL_FILES, csrc

TOOLCHAIN_PACKAGES = "gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"
STACK_BYTES = 4096
HOST_CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror")
BOARD_CFLAGS = (
    "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", f"-mcpu={QEMU_CPU}", "-mthumb", "-mfloat-abi=soft",
    "-ffunction-sections", "-fdata-sections", "-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs",
    "-Wl,--gc-sections",
)  # fmt: skip
QEMU_TICK_INSTRUCTIONS = 40  # -icount shift=0: 1 ns per instruction; SysTick at the 25 MHz core clock
_OVERFLOW = re.compile(r"region [`']?(\w+)'? overflowed by (\d+) bytes")
REGION_NAMES = {"RAM": "SRAM", "FLASH": "flash", "QSPI": "external flash"}


class BuildError(ConfigError):
    """The model does not fit the board (or the toolchain is missing): a one-line message."""


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BuildError(
            f"{name} not found: install the Cortex-M toolchain and emulator ({TOOLCHAIN_PACKAGES}; "
            "`bash scripts/setup.sh` as root does it)"
        )
    return path


def toolchain_missing() -> list[str]:
    """Board tools missing on this machine (empty when the board build and QEMU run work)."""
    return [
        t for t in ("arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm") if shutil.which(t) is None
    ]


def _run(cmd: list[str], cwd: Path, what: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({' '.join(cmd[:2])} ...):\n{proc.stderr[-4000:]}")
    return proc


def build_host(tree: Path, cc: str = "cc", extra: tuple[str, ...] = ()) -> Path:
    """Compile the tree with the system C compiler; returns the executable."""
    exe = tree / "model_host"
    srcs = [n for n in KERNEL_FILES + HOST_FILES if n.endswith(".c")] + ["model.c"]
    _run([require_tool(cc), *HOST_CFLAGS, *extra, "-o", exe.name, *srcs], tree, "host build")
    return exe


def write_images(path: Path, images: np.ndarray) -> Path:
    np.ascontiguousarray(images, np.uint8).tofile(path)
    return path


def run_host(exe: Path, images: np.ndarray, repeat: int = 1) -> tuple[np.ndarray, float]:
    """(int32 logits (N, classes), seconds spent in the model) of ``images`` (N, H, W, C)."""
    path = write_images(exe.parent / "images.bin", images)
    proc = _run([str(exe.resolve()), path.name, str(repeat)], exe.parent, "host run")
    logits = np.array([[int(v) for v in line.split()] for line in proc.stdout.splitlines()], np.int64)
    seconds = float(proc.stderr.split()[-1])
    return logits, seconds


@dataclass(frozen=True)
class BoardBuild:
    elf: Path
    board: Board
    sections: dict[str, int]  # section -> bytes (arm-none-eabi-size -A)

    @property
    def flash_bytes(self) -> int:  # code + rodata (+ .data's initial values) in internal flash
        s = self.sections
        return s.get(".text", 0) + s.get(".ARM.exidx", 0) + s.get(".data", 0)

    @property
    def ext_flash_bytes(self) -> int:
        return self.sections.get(".qspi", 0)

    @property
    def sram_bytes(self) -> int:  # data + bss (arena included) + stack
        s = self.sections
        return s.get(".data", 0) + s.get(".bss", 0) + s.get(".stack", 0)


def linker_script(board: Board, stack_bytes: int = STACK_BYTES) -> str:
    text = (csrc() / "board.ld.in").read_text()
    values = {
        "board": board.name,
        "flash_origin": hex(FLASH_ORIGIN),
        "flash_bytes": board.flash_bytes,
        "ram_origin": hex(RAM_ORIGIN),
        "sram_bytes": board.sram_bytes,
        "ext_origin": hex(EXT_FLASH_ORIGIN),
        "ext_bytes": board.ext_flash_bytes,
        "stack_bytes": stack_bytes,
    }
    for key, val in values.items():
        text = text.replace("{" + key + "}", str(val))
    return text


def overflow_message(board: Board, ld_stderr: str) -> str | None:
    """One line naming board, region(s) and overflow bytes, or None when ld said nothing of it."""
    found = {m.group(1): int(m.group(2)) for m in _OVERFLOW.finditer(ld_stderr)}
    if not found:
        return None
    parts = [f"{REGION_NAMES.get(r, r)} overflowed by {n:,} bytes" for r, n in found.items()]
    return (
        f"the model does not fit board {board.name} ({board.sram_bytes // 1024} KB SRAM / "
        f"{board.flash_bytes // 1024} KB flash): {'; '.join(parts)}"
    )


def build_board(tree: Path, board: Board, dsp: bool = False, ext_flash: bool = False) -> BoardBuild:
    """Cross-compile for Cortex-M7 with the board's linker script; overflow -> `BuildError`."""
    gcc, size = require_tool("arm-none-eabi-gcc"), require_tool("arm-none-eabi-size")
    (tree / "board.ld").write_text(linker_script(board))
    srcs = [n for n in KERNEL_FILES + BOARD_FILES if n.endswith(".c")] + ["model.c"]
    defs = ["-DMCU_USE_DSP"] if dsp else []
    if ext_flash:
        defs.append('-DMCU_EXT_FLASH=__attribute__((section(".qspi_weights")))')
    cmd = [gcc, *BOARD_CFLAGS, *defs, "-T", "board.ld", "-o", "model.elf", *srcs]
    proc = subprocess.run(cmd, cwd=tree, capture_output=True, text=True)
    if proc.returncode != 0:
        msg = overflow_message(board, proc.stderr)
        if msg is not None:
            raise BuildError(msg)
        raise RuntimeError(f"board build failed:\n{proc.stderr[-4000:]}")
    out = _run([size, "-A", "model.elf"], tree, "arm-none-eabi-size").stdout
    sections = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(".") and parts[1].isdigit():
            sections[parts[0]] = int(parts[1])
    return BoardBuild(tree / "model.elf", board, sections)


@dataclass(frozen=True)
class QemuRun:
    logits: np.ndarray  # int32 (N, classes)
    ticks: np.ndarray  # SysTick ticks per inference
    seconds: float  # host wall time of the whole emulation

    @property
    def instructions(self) -> np.ndarray:
        """Instructions per inference under -icount shift=0 (QEMU is not cycle-accurate)."""
        return self.ticks * QEMU_TICK_INSTRUCTIONS


def qemu_command(elf: Path) -> list[str]:
    return [
        require_tool("qemu-system-arm"), "-M", QEMU_MACHINE, "-cpu", QEMU_CPU, "-display", "none",
        "-monitor", "none", "-serial", "none", "-semihosting-config", "enable=on,target=native",
        "-icount", "shift=0", "-kernel", elf.name,
    ]  # fmt: skip


def run_qemu(build: BoardBuild, images: np.ndarray, timeout_s: float = 600) -> QemuRun:
    """Run ``images`` on the emulated Cortex-M7; logits and SysTick ticks read back."""
    tree = build.elf.parent
    write_images(tree / "images.bin", images)
    t0 = time.perf_counter()
    proc = subprocess.run(
        qemu_command(build.elf), cwd=tree, capture_output=True, text=True, timeout=timeout_s
    )
    seconds = time.perf_counter() - t0
    out = proc.stdout + proc.stderr
    logits = [[int(v) for v in line.split()[1:]] for line in out.splitlines() if line.startswith("l ")]
    ticks = [int(line.split()[1]) for line in out.splitlines() if line.startswith("ticks ")]
    if proc.returncode != 0 or len(logits) != len(images):
        raise RuntimeError(
            f"QEMU run failed (exit {proc.returncode}, {len(logits)} of {len(images)} images):\n{out[-2000:]}"
        )
    return QemuRun(np.array(logits, np.int64), np.array(ticks, np.int64), seconds)
