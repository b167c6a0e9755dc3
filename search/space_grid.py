"""The space-point grid of a space evolution and the local fit that moves a point on it.

A space point is a pair of grid indices (rank-ratio index, patch-size index); `Grid` maps them
to values and spaces. `local_fit` and `move_steps` are MCUFormer's update, pure functions of
scores; `climb_segments` and `path_text` present a trajectory (one segment per climb).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LinearRegression

from search_space.errors import ConfigError
from search_space.space import SearchSpace

Point = tuple[int, int]  # (rank-ratio index, patch-size index)


@dataclass(frozen=True)
class Grid:
    """The space-point grid: the base space's rank-ratio and patch-size choices."""

    rank_ratio: tuple[float, ...]
    patch_size: tuple[int, ...]

    @classmethod
    def from_space(cls, space: SearchSpace) -> Grid:
        if space.rank_ratio[0] is None:
            raise ConfigError("space evolution needs a low-rank space (rank_ratio values, not null)")
        return cls(tuple(sorted(space.rank_ratio)), tuple(sorted(space.patch_size)))

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.rank_ratio), len(self.patch_size)

    def value(self, pt: Point) -> tuple[float, int]:
        return self.rank_ratio[pt[0]], self.patch_size[pt[1]]

    def key(self, pt: Point) -> str:
        r, p = self.value(pt)
        return f"r{r:g}_p{p}"

    def index(self, rank_ratio: float, patch_size: int) -> Point:
        """Grid indices of a (ratio, patch) value; a one-line error when it is off the grid."""
        hits = [i for i, r in enumerate(self.rank_ratio) if math.isclose(r, rank_ratio, abs_tol=1e-9)]
        if not hits or patch_size not in self.patch_size:
            raise ConfigError(
                f"space point ({rank_ratio}, {patch_size}) is not on the grid: rank_ratio in "
                f"{list(self.rank_ratio)}, patch_size in {list(self.patch_size)}"
            )
        return hits[0], self.patch_size.index(patch_size)

    def clip(self, u: np.ndarray) -> Point:
        return tuple(int(np.clip(v, 0, n - 1)) for v, n in zip(u, self.shape, strict=True))  # type: ignore[return-value]

    def points(self) -> list[Point]:
        return [(i, j) for i in range(self.shape[0]) for j in range(self.shape[1])]

    def space(self, base: SearchSpace, pt: Point) -> SearchSpace:
        """The space of one point: the base space with one rank ratio and one patch size."""
        r, p = self.value(pt)
        return base.replace(rank_ratio=(r,), patch_size=(p,))


@dataclass(frozen=True)
class Fit:
    w: np.ndarray  # S per grid step along each axis
    intercept: float
    degenerate: bool  # fewer distinct directions than axes


def local_fit(coords: np.ndarray, scores: np.ndarray) -> Fit:
    """Least-squares plane through ``(coords, scores)``; never fails on 1, 2 or collinear points
    (scikit-learn's solver returns the minimum-norm slope: zero across the points' line)."""
    coords = np.asarray(coords, float).reshape(len(scores), -1)
    scores = np.asarray(scores, float)
    axes = coords.shape[1]
    if len(scores) < 2:
        return Fit(np.zeros(axes), float(scores[0]) if len(scores) else 0.0, True)
    rank = np.linalg.matrix_rank(coords - coords.mean(axis=0))
    reg = LinearRegression().fit(coords, scores)
    return Fit(np.asarray(reg.coef_, float), float(reg.intercept_), bool(rank < axes))


def move_steps(w: np.ndarray, threshold: tuple[float, ...], max_move: int | None = None) -> np.ndarray:
    """Grid steps per axis: ``sign(w) * floor(|w| / h)`` (toward higher S), capped at max_move."""
    steps = np.sign(w) * np.floor(np.abs(w) / np.asarray(threshold, float) + 1e-12)
    if max_move is not None:
        steps = np.clip(steps, -max_move, max_move)
    return steps.astype(int)


def climb_segments(keys: list[Any], climbs: list[int] | None) -> list[list[Any]]:
    """A trajectory's entries (``keys``) split into its climbs (``climbs``: the climb of each
    entry; ``None`` or empty = one climb, as in runs without restarts)."""
    segments: list[list[Any]] = []
    for n, key in enumerate(keys):
        if not segments or (climbs and climbs[n] != climbs[n - 1]):
            segments.append([])
        segments[-1].append(key)
    return segments


def climb_trail(keys: list[Any], climbs: list[int] | None) -> list[Any]:
    """A trajectory's entries with ``None`` between two climbs (where a plot draws no arrow)."""
    return [k for seg in climb_segments(keys, climbs) for k in (*seg, None)][:-1]


def path_text(keys: list[str], climbs: list[int] | None, arrow: str = " -> ") -> str:
    """A trajectory as text, climbs separated by '; restart '."""
    return "; restart ".join(arrow.join(seg) for seg in climb_segments(keys, climbs))
