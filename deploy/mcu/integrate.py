"""What `evolution_search.py` / `pipeline.py` need for ``--board NAME``: the board's budgets and,
after the finetune, one summary line of the subnet built and run for the board."""

from __future__ import annotations

from pathlib import Path

from deploy.mcu.boards import get_board
from deploy.mcu.build import TOOLCHAIN_PACKAGES, toolchain_missing


def board_budgets(name: str, budget: int | None = None, flash_budget: int | None = None) -> tuple[int, int]:
    """(SRAM, flash) budgets in bytes from the preset; an explicit budget wins."""
    board = get_board(name)
    return (
        board.sram_bytes if budget is None else budget,
        board.flash_bytes if flash_budget is None else flash_budget,
    )


def run_for_board(search_dir: Path, name: str, qemu_images: int = 4) -> str:
    """Build and run the search's exported subnet for board ``name``; one line for the summary."""
    board = get_board(name)
    missing = toolchain_missing()
    if missing:
        return f"mcu: skipped: install {TOOLCHAIN_PACKAGES} (missing {', '.join(missing)})"
    from deploy.mcu.__main__ import main

    out = Path(search_dir) / "mcu"
    code = main(["--search", str(search_dir), "--board", name, "--out", str(out), "--images", "0",
                 "--check", "0", "--qemu-images", str(qemu_images)])  # fmt: skip
    if code != 0:
        return f"mcu: {board.name}: failed (exit {code}); see the error above"
    import json

    r = json.loads((out / "report.json").read_text())
    b = r["board"]
    return (
        f"runs on Cortex-M7 (QEMU) in {b['sram_bytes'] / 1024:.0f} KB SRAM / {b['flash_bytes'] / 1024:.0f} KB "
        f"flash of the board's {b['board_sram_bytes'] // 1024} KB / {b['board_flash_bytes'] // 1024} KB, logits "
        f"{'equal to' if r['qemu']['equal_to_host'] else 'DIFFERENT from'} the reference"
    )
