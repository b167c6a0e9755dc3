"""Generate, build and check one subnet: host bit-exactness against the numpy executor,
board link (the linker enforces the board's SRAM and flash), QEMU run with logits read back.

The tree is written to a temporary sibling directory and renamed into place only when every
requested step succeeded, so a failed build leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from deploy.mcu.boards import Board
from deploy.mcu.build import BuildError, build_board, build_host, run_host, run_qemu
from deploy.mcu.codegen import Generated, GenOptions, generate
from memory_model.int8 import QuantViT, run_int8
from memory_model.mcu import mcu_peak_bytes

EXT_MARGIN_BYTES = 256  # moved beyond the overflow, for alignment padding


@dataclass(frozen=True)
class Steps:
    host_images: np.ndarray | None = None  # run on the host build
    check_images: int = 0  # of those, compared with the numpy executor
    qemu_images: np.ndarray | None = None  # run under QEMU (compared with the host)
    board: Board | None = None  # cross-compile and link for this board
    ext_flash: bool = False  # weights that do not fit internal flash go to the board's QSPI
    dsp: bool = False


def numpy_logits(q: QuantViT, images: np.ndarray, weights_in_sram: bool, input: str = "whole") -> np.ndarray:
    """int32 logits of the reference executor, in an arena of exactly the analytic peak
    (``input="stream"``: the executor pulls each image's rows through its source callback)."""
    peak = mcu_peak_bytes(q.cfg, weights_in_sram, input)
    return np.array(
        [run_int8(q, im, weights_in_sram, arena_bytes=peak, input=input).logits_int32 for im in images]
    )


def _board_build(q: QuantViT, tree: Path, opts: GenOptions, steps: Steps) -> tuple[Generated | None, object]:
    """Link for the board; with ``ext_flash``, move the largest weight arrays to QSPI until it links."""
    try:
        return None, build_board(tree, steps.board, steps.dsp, ext_flash=bool(opts.ext_weights))
    except BuildError as err:
        if not (steps.ext_flash and steps.board.ext_flash_bytes) or "flash overflowed" not in str(err):
            raise
        need = int(str(err).split("flash overflowed by ")[1].split()[0].replace(",", "")) + EXT_MARGIN_BYTES
    gen = generate(q, tree.with_name(tree.name + "-ext"), opts)
    moved, total = [], 0
    for name, nbytes in sorted(gen.weight_arrays_bytes.items(), key=lambda kv: -kv[1]):
        if total >= need:
            break
        moved.append(name)
        total += nbytes
    shutil.rmtree(gen.out_dir)
    shutil.rmtree(tree)
    gen = generate(q, tree, replace(opts, ext_weights=frozenset(moved)))
    return gen, build_board(tree, steps.board, steps.dsp, ext_flash=True)


def deploy(q: QuantViT, out_dir: Path, opts: GenOptions, steps: Steps) -> dict:
    """Run the requested steps; returns the report (also written to ``out_dir/report.json``)."""
    out_dir = Path(out_dir).resolve()
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        report = _deploy(q, tmp, opts, steps)
        (tmp / "report.json").write_text(json.dumps(report, indent=1))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(tmp.with_name(tmp.name + "-ext"), ignore_errors=True)
    report["out_dir"] = str(out_dir)
    return report


def _deploy(q: QuantViT, tree: Path, opts: GenOptions, steps: Steps) -> dict:
    cfg = q.cfg
    gen = generate(q, tree, opts)
    default_sub = opts.subkernel == 4
    report: dict = {
        "subnet": cfg.short(),
        "weights_in_sram": opts.weights_in_sram,
        "subkernel": opts.subkernel,
        "sqrt_iters": opts.sqrt_iters,
        "arena_bytes": gen.plan.arena_bytes,
        "analytic_mcu_peak_bytes": (
            mcu_peak_bytes(cfg, opts.weights_in_sram, opts.input) if default_sub else None
        ),
        "input": opts.input,
        "weights_bytes": sum(gen.weight_arrays_bytes.values()),
    }
    host_logits = None
    if steps.host_images is not None:
        exe = build_host(tree)
        host_logits, seconds = run_host(exe, steps.host_images)
        report["host"] = {
            "images": len(steps.host_images),
            "images_per_s": len(steps.host_images) / max(seconds, 1e-9),
        }
        if steps.check_images:
            k = min(steps.check_images, len(steps.host_images))
            ref = numpy_logits(q, steps.host_images[:k], opts.weights_in_sram, opts.input)
            report["host"]["checked_images"] = k
            report["host"]["equal_to_numpy"] = bool(np.array_equal(host_logits[:k], ref))
        report["host"]["logits"] = host_logits.tolist()
    if steps.board is not None:
        regen, build = _board_build(q, tree, opts, steps)
        gen = regen or gen
        b = steps.board
        report["board"] = {
            "name": b.name,
            "sram_bytes": build.sram_bytes,
            "flash_bytes": build.flash_bytes,
            "ext_flash_bytes": build.ext_flash_bytes,
            "board_sram_bytes": b.sram_bytes,
            "board_flash_bytes": b.flash_bytes,
            "sections": build.sections,
            "dsp": steps.dsp,
        }
        if steps.qemu_images is not None:
            run = run_qemu(build, steps.qemu_images)
            k = len(steps.qemu_images)
            ref = (
                host_logits[:k]
                if host_logits is not None
                else run_host(build_host(tree), steps.qemu_images)[0]
            )
            report["qemu"] = {
                "images": k,
                "equal_to_host": bool(np.array_equal(run.logits, ref)),
                "instructions_per_inference": int(np.median(run.instructions)),
                "counting": "SysTick ticks x 40 under -icount shift=0 (1 ns per instruction, 25 MHz tick)",
                "seconds": run.seconds,
                "logits": run.logits.tolist(),
            }
    return report


def summary_lines(report: dict) -> list[str]:
    """Human summary of `deploy`'s report."""
    kb = lambda n: f"{n / 1024:.1f} KB"  # noqa: E731
    lines = [
        f"subnet {report['subnet']}: arena {report['arena_bytes']:,} B"
        + (
            f" (= analytic mcu peak {report['analytic_mcu_peak_bytes']:,} B)"
            if report["analytic_mcu_peak_bytes"] == report["arena_bytes"]
            else ""
        )
        + f", weights {'staged in SRAM' if report['weights_in_sram'] else 'read from flash'}"
        + (", input streamed one row of patches at a time" if report.get("input") == "stream" else "")
    ]
    if "host" in report:
        h = report["host"]
        eq = ""
        if "equal_to_numpy" in h:
            eq = f", logits {'bit-identical to' if h['equal_to_numpy'] else 'DIFFER from'} the numpy executor on {h['checked_images']}"
        lines.append(f"host: {h['images']} images, {h['images_per_s']:.1f} images/s{eq}")
    if "board" in report:
        b = report["board"]
        ext = f" + {kb(b['ext_flash_bytes'])} QSPI" if b["ext_flash_bytes"] else ""
        lines.append(
            f"board {b['name']}: links in {kb(b['sram_bytes'])} SRAM / {kb(b['flash_bytes'])} flash{ext} "
            f"of {kb(b['board_sram_bytes'])} / {kb(b['board_flash_bytes'])}"
        )
    if "qemu" in report:
        r = report["qemu"]
        lines.append(
            f"qemu mps2-an500 (Cortex-M7): {r['images']} images, logits "
            f"{'equal to' if r['equal_to_host'] else 'DIFFER from'} the host's; "
            f"{r['instructions_per_inference']:,} instructions per inference (QEMU -icount, not cycle-accurate)"
        )
    return lines
