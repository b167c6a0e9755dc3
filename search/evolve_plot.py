"""Picture of a space evolution: S of every trained point over the grid, and the path taken."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import itertools

import matplotlib.pyplot as plt
import numpy as np

from search.space_evolution import Grid
from training.checkpoint import _atomic


def plot_scores(state: dict[str, Any], grid: Grid, path: str | Path) -> None:
    """Heat map of S (latest visit of each trained point, E annotated); arrows show the path,
    a star the chosen point. Untrained points stay blank."""
    n_r, n_p = grid.shape
    s = np.full((n_r, n_p), np.nan)
    for p in state["points"].values():
        s[p["point"][0], p["point"][1]] = p["S"]
    fig, ax = plt.subplots(figsize=(1.2 * n_p + 2.5, 0.6 * n_r + 1.8))
    im = ax.imshow(s, origin="lower", cmap="viridis", aspect="auto")
    fig.colorbar(im, ax=ax, label="S = A + η·R")
    for p in state["points"].values():
        i, j = p["point"]
        ax.text(
            j,
            i,
            f"{p['S']:.3f}\nE{p['E']}",
            ha="center",
            va="center",
            fontsize=7,
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "alpha": 0.7, "lw": 0},
        )
    pts = [t["point"] for t in state["trajectory"]]
    for a, b in itertools.pairwise(pts):
        ax.annotate(
            "", xy=(b[1], b[0]), xytext=(a[1], a[0]), arrowprops={"arrowstyle": "->", "color": "red", "lw": 2}
        )
    result = state.get("result")
    if result:
        i, j = grid.index(result["rank_ratio"], result["patch_size"])
        ax.plot(j + 0.32, i + 0.3, marker="*", color="orange", markersize=14, markeredgecolor="k")
    ax.set_xticks(range(n_p), [str(p) for p in grid.patch_size])
    ax.set_yticks(range(n_r), [f"{r:g}" for r in grid.rank_ratio])
    ax.set_xlabel("patch size")
    ax.set_ylabel("low-rank ratio")
    ax.set_title(f"space evolution: {len(state['points'])} points, {state['total_epochs']} epochs")
    fig.tight_layout()
    _atomic(Path(path), lambda fh: fig.savefig(fh, format="png", dpi=110))
    plt.close(fig)
