"""What a searched subnet costs (peak SRAM per schedule with the per-op breakdown, flash,
params, FLOPs) and the Pareto plot of a search."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from memory_model import flash_bytes, format_bytes, peak_sram
from search_space.config import SubnetConfig
from search_space.counting import count_flops, count_params

log = logging.getLogger("mcunas.search")
# (label, schedule, options) of every memory estimate reported for a subnet.
SCHEDULE_VIEWS = (
    ("paper", "paper", {}),
    ("mcu (weights in SRAM)", "mcu", {"weights_in_sram": True}),
    ("mcu (weights in flash)", "mcu", {"weights_in_sram": False}),
    ("tflm", "tflm", {}),
)


def subnet_report(cfg: SubnetConfig) -> dict[str, Any]:
    """Numbers (bytes, counts), a short text table, and every schedule's per-op breakdown."""
    reports = [(label, peak_sram(cfg, schedule, **opts)) for label, schedule, opts in SCHEDULE_VIEWS]
    flash = flash_bytes(cfg)
    numbers = {
        "params": count_params(cfg),
        "flops": count_flops(cfg),
        "flash_bytes": flash,
        "peak_sram_bytes": {label: r.peak_bytes for label, r in reports},
    }
    lines = [
        f"params {numbers['params']:,} | FLOPs {numbers['flops'] / 1e6:.1f} M | flash (int8) {flash:,} B "
        f"({format_bytes(flash)})",
        "peak SRAM per schedule:",
    ]
    lines += [
        f"  {label:<24} {r.peak_bytes:>10,} B  {format_bytes(r.peak_bytes):>9}  at {r.peak_op.name}"
        for label, r in reports
    ]
    breakdown = "\n\n".join(f"== {label} ==\n{r.table()}" for label, r in reports)
    return {"numbers": numbers, "text": "\n".join(lines), "breakdown": breakdown}


def pareto_front(peaks: list[int], accs: list[float]) -> list[int]:
    """Indices of the configs no other config beats on both peak (lower) and accuracy (higher),
    in increasing peak order."""
    order = sorted(range(len(peaks)), key=lambda i: (peaks[i], -accs[i]))
    front, best = [], float("-inf")
    for i in order:
        if accs[i] > best:
            front.append(i)
            best = accs[i]
    return front


def pareto_plot(
    peaks_bytes: list[int],
    accs: list[float],
    budget_bytes: int,
    best_peak_bytes: int,
    best_acc: float,
    path: Path,
    title: str = "",
) -> bool:
    """Accuracy vs peak SRAM of everything evaluated, Pareto front, budget line; False when
    matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed; no Pareto plot")
        return False
    kb = [p / 1024 for p in peaks_bytes]
    front = pareto_front(peaks_bytes, accs)
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    ax.scatter(kb, accs, s=10, alpha=0.45, label=f"evaluated ({len(accs)})")
    ax.step([kb[i] for i in front], [accs[i] for i in front], where="post", color="C2", label="Pareto front")
    ax.axvline(budget_bytes / 1024, color="C3", linestyle="--", label=f"budget {format_bytes(budget_bytes)}")
    ax.scatter([best_peak_bytes / 1024], [best_acc], marker="*", s=180, color="C1", zorder=5, label="best")
    ax.set_xlabel("peak SRAM (KB = 1024 B)")
    ax.set_ylabel("holdout top-1 (%), inherited weights")
    ax.set_title(f"Search: accuracy vs peak SRAM ({title})" if title else "Search: accuracy vs peak SRAM")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return True
