"""Pictures of space evolutions: S over the grid, and the paths taken."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from common.files import atomic_write
from search.space.loop import Grid, Point, climb_trail

_PYPLOT = threading.Lock()  # pyplot's figure registry is global; runs may plot from threads
PATH_COLOURS = ("red", "deepskyblue", "magenta", "orange", "lime", "white", "sienna", "black")


def plot_grid(
    cells: dict[Point, tuple[float, str]],
    grid: Grid,
    paths: Sequence[tuple[Sequence[Point | None], Point | None]],
    title: str,
    path: str | Path,
    untrained: Collection[Point] = (),
    labels: Sequence[str] = (),
) -> None:
    """Heat map of S per grid point (``cells``: point -> (S, label)); each path of ``paths``
    (its points, ``None`` between two climbs, and its chosen point) drawn as arrows in its own
    colour with a star on the chosen point. Points without a value, and the ``untrained`` ones (nothing fits: S = η·R, far below
    any trained point), are grey and left out of the colour scale, so that it resolves the
    differences between trained points; the latter keep their label. ``labels`` (one per path)
    name the paths in a legend."""
    n_r, n_p = grid.shape
    s = np.full((n_r, n_p), np.nan)
    for (i, j), (v, _) in cells.items():
        if (i, j) not in untrained:
            s[i, j] = v
    with _PYPLOT:
        fig, ax = plt.subplots(figsize=(1.2 * n_p + 2.5 + (1.8 if labels else 0.0), 0.6 * n_r + 1.8))
        ax.set_facecolor("lightgrey")
        im = ax.imshow(s, origin="lower", cmap="viridis", aspect="auto")
        fig.colorbar(im, ax=ax, label="S = A + η·R")
        for (i, j), (_, label) in cells.items():
            ax.text(
                j, i, label, ha="center", va="center", fontsize=7,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "alpha": 0.7, "lw": 0},
            )  # fmt: skip
        colours = [PATH_COLOURS[n % len(PATH_COLOURS)] for n in range(max(len(paths), len(labels)))]
        for n, (pts, chosen) in enumerate(paths):
            colour, off = colours[n], 0.08 * (n - (len(paths) - 1) / 2)
            for a, b in itertools.pairwise(pts):
                if a is None or b is None:  # a restart: a new climb, no move
                    continue
                ax.annotate(
                    "", xy=(b[1] + off, b[0] + off), xytext=(a[1] + off, a[0] + off),
                    arrowprops={"arrowstyle": "->", "color": colour, "lw": 2},
                )  # fmt: skip
            if chosen is not None:
                ax.plot(chosen[1] + 0.32, chosen[0] + 0.3 - 0.12 * n, marker="*", color=colour,
                        markersize=14, markeredgecolor="k")  # fmt: skip
        if labels:
            handles = [
                plt.Line2D([], [], color=c, lw=2, marker="*", markersize=10, markeredgecolor="k")
                for c in colours[: len(labels)]
            ]
            ax.legend(
                handles, labels, loc="upper left", bbox_to_anchor=(1.25, 1.0), fontsize=8, frameon=False
            )
        ax.set_xticks(range(n_p), [str(p) for p in grid.patch_size])
        ax.set_yticks(range(n_r), [f"{r:g}" for r in grid.rank_ratio])
        ax.set_xlabel("patch size")
        ax.set_ylabel("low-rank ratio")
        ax.set_title(title)
        fig.tight_layout()
        atomic_write(Path(path), lambda fh: fig.savefig(fh, format="png", dpi=110))
        plt.close(fig)


def plot_scores(state: dict[str, Any], grid: Grid, path: str | Path) -> None:
    """One evolution's state: S of every trained point (latest visit, E annotated), the path
    and the chosen point."""
    cells = {tuple(p["point"]): (p["S"], f"{p['S']:.3f}\nE{p['E']}") for p in state["points"].values()}
    result = state.get("result")
    chosen = grid.index(result["rank_ratio"], result["patch_size"]) if result else None
    trail = climb_trail([tuple(t["point"]) for t in state["trajectory"]],
                        [t.get("climb", 0) for t in state["trajectory"]])  # fmt: skip
    title = f"space evolution: {len(state['points'])} points, {state['total_epochs']} epochs"
    untrained = {tuple(p["point"]) for p in state["points"].values() if not p.get("trained", True)}
    plot_grid(cells, grid, [(trail, chosen)], title, path, untrained)  # type: ignore[arg-type]
