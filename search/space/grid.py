"""The space-point grid of a space evolution, the local fit that moves a point on it, and the
loop's plain data.

A space point is a pair of grid indices (rank-ratio index, patch-size index); `Grid` maps them
to values and spaces. `local_fit` and `move_steps` are MCUFormer's update, pure functions of
scores; `climb_segments` and `path_text` present a trajectory (one segment per climb).
`EvolutionSettings`, `VisitRequest` and `PointRecord` are what `search.space.loop`'s loop
is configured with, asks a launcher for and keeps per point; `initial_points` picks its starts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.linear_model import LinearRegression

from common.errors import ConfigError
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


@dataclass(frozen=True)
class EvolutionSettings:
    """Hyperparameters of the evolution loop (see `search.space.loop`'s docstring)."""

    epochs_per_visit: int = 2  # t
    neighbours: int = 3  # k, the point itself included
    threshold: float | tuple[float, float] = 0.01  # h per axis (one value: both), in S per grid step
    max_move: int | None = 1  # grid steps per axis and step; None = unlimited
    max_steps: int = 6
    max_total_epochs: int | None = None
    init_points: tuple[tuple[float, int], ...] | None = None  # explicit (ratio, patch) values
    num_init: int = 3  # random initial points when init_points is None
    restarts: int = 0  # new climbs from unvisited random points after a climb stops, epochs allowing
    final_epochs: int = 0  # extra epochs for the chosen point's supernet
    seed: int = 0

    def __post_init__(self) -> None:
        h = self.threshold
        object.__setattr__(
            self, "threshold", tuple(map(float, h if isinstance(h, (tuple, list)) else (h, h)))
        )
        checks = [
            (self.epochs_per_visit >= 1, "epochs_per_visit must be >= 1"),
            (self.neighbours >= 1, "neighbours must be >= 1"),
            (len(self.threshold) == 2 and all(h > 0 for h in self.threshold), "threshold must be > 0"),
            (self.max_move is None or self.max_move >= 1, "max_move must be >= 1 or null"),
            (self.max_steps >= 0, "max_steps must be >= 0"),
            (self.max_total_epochs is None or self.max_total_epochs >= 1, "max_total_epochs must be >= 1"),
            (self.num_init >= 1, "num_init must be >= 1"),
            (self.restarts >= 0, "restarts must be >= 0"),
            (self.final_epochs >= 0, "final_epochs must be >= 0"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f"evolve.{msg}")


@dataclass(frozen=True)
class VisitRequest:
    """One training visit of a point: a resumable job with a stable id."""

    job_id: str  # "<point key>/v<n>" or "<point key>/final"
    point: Point
    value: tuple[float, int]  # (rank ratio, patch size)
    epochs: int  # epochs trained in this visit
    init_job: str | None  # job whose checkpoint initialises this one; None = a new point (the
    # run's starting weights: the pretrained dense supernet by SVD, or random init without one)
    total_epochs: int  # E(x) after the visit


TrainFn = Callable[[VisitRequest], dict[str, Any]]  # -> {"A", "R", "S", ...}


@dataclass
class PointRecord:
    point: Point
    epochs: int = 0  # E(x)
    S: float = float("nan")
    A: float = float("nan")
    R: float = float("nan")
    jobs: list[str] = field(default_factory=list)
    trained: bool = True  # False: nothing fits the budget, S is known without training
    history: list[dict[str, float]] = field(default_factory=list)  # (E, S, A, R) per visit


def initial_points(
    grid: Grid, settings: EvolutionSettings, feasible: Callable[[Point], bool] | None = None
) -> list[Point]:
    """Explicit points, or ``num_init`` distinct random ones (seeded), not all on one line. Random
    starts are drawn among the points ``feasible`` accepts (those with a subnet within budget: a
    start where nothing fits is known without training to score S = eta * R), or among every
    point when it accepts none or is not given."""
    if settings.init_points is not None:
        pts = [grid.index(r, p) for r, p in settings.init_points]
        if not pts:
            raise ConfigError("evolve.init_points is empty; give at least one [rank_ratio, patch_size] pair")
        return list(dict.fromkeys(pts))
    everything = grid.points()
    if feasible is not None:
        everything = [p for p in everything if feasible(p)] or everything
    n = min(settings.num_init, len(everything))
    rng = np.random.default_rng([settings.seed, 5])
    for _ in range(100):  # bounded retries for a non-collinear start
        pick = [everything[i] for i in sorted(rng.choice(len(everything), size=n, replace=False))]
        if n < 3 or not local_fit(np.array(pick), np.zeros(n)).degenerate:
            return pick
    return pick
