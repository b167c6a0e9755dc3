"""Board presets: the SRAM and flash a Cortex-M7 part offers, placed in QEMU's mps2-an500 map.

QEMU's ``mps2-an500`` (Cortex-M7) maps 4 MB of RAM at 0x00000000 (code), 4 MB at 0x20000000
(data) and 16 MB at 0x60000000. The linker script puts FLASH, RAM and an optional external
flash at those origins but with the *board's* sizes, so the linker enforces the part's limits.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.errors import ConfigError

QEMU_MACHINE = "mps2-an500"
QEMU_CPU = "cortex-m7"
FLASH_ORIGIN, RAM_ORIGIN, EXT_FLASH_ORIGIN = 0x00000000, 0x20000000, 0x60000000
QEMU_LIMITS_BYTES = {"flash": 4 << 20, "sram": 4 << 20, "ext_flash": 16 << 20}
KB = 1024


@dataclass(frozen=True)
class Board:
    """A microcontroller's memories (bytes). ``ext_flash_bytes`` > 0: memory-mapped QSPI."""

    name: str
    description: str
    sram_bytes: int
    flash_bytes: int
    ext_flash_bytes: int = 0

    def summary(self) -> str:
        ext = f", optional {self.ext_flash_bytes // (1 << 20)} MB QSPI" if self.ext_flash_bytes else ""
        return f"{self.name}: {self.sram_bytes // KB} KB SRAM / {self.flash_bytes // KB} KB flash{ext}"


BOARDS: dict[str, Board] = {
    b.name: b
    for b in (
        Board(
            "stm32f746",
            "STM32F746 (Discovery kit; MCUFormer's headline board)",
            320 * KB,
            1024 * KB,
            16 << 20,
        ),
        Board("stm32f427", "STM32F427", 256 * KB, 1024 * KB),
        Board("stm32h743", "STM32H743", 512 * KB, 2048 * KB),
    )
}

for _b in BOARDS.values():  # every preset must fit inside QEMU's memory map
    assert _b.sram_bytes <= QEMU_LIMITS_BYTES["sram"] and _b.flash_bytes <= QEMU_LIMITS_BYTES["flash"]
    assert _b.ext_flash_bytes <= QEMU_LIMITS_BYTES["ext_flash"]


def get_board(name: str) -> Board:
    """The preset called ``name``; an unknown name is a `ConfigError` listing the boards."""
    if name not in BOARDS:
        raise ConfigError(f"unknown board '{name}'; choose one of: {', '.join(BOARDS)}")
    return BOARDS[name]
