"""The schedule registry: one entry per peak-SRAM schedule, ``paper``, ``mcu`` or ``tflm``,
with its scalar form (a `MemoryReport` per config, with the per-op breakdown), its options and,
where one exists, its vectorised form over a `ConfigBatch` (bytes per row, equal to the scalar).

``paper``: MCUFormer's published per-FC-layer formula (`memory_model.paper`).
``mcu``: the full int8 schedule with MCUFormer's techniques (`memory_model.mcu`); options
``weights_in_sram`` and ``input`` (``whole`` | ``stream``), in both forms. ``tflm``: TF-Lite Micro's whole arena
on the same subnet (`memory_model.tflm`, imported only when asked for; no batched form).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from common.errors import ConfigError
from memory_model.batch import ConfigBatch, enumerate_batch, mcu_peak_batch, paper_peak_batch, sample_batch
from memory_model.mcu import mcu_report
from memory_model.paper import paper_report
from memory_model.report import MemoryReport
from search_space.config import SubnetConfig
from search_space.space import SearchSpace


def _tflm_report(cfg: SubnetConfig) -> MemoryReport:
    from memory_model.tflm import tflm_report

    return tflm_report(cfg)


@dataclass(frozen=True)
class Schedule:
    """A schedule's scalar form, its options, and its batched form (``None``: none exists).
    Both forms take the same keyword options; the batched one returns bytes per row."""

    name: str
    report: Callable[..., MemoryReport]
    options: frozenset[str]
    batch: Callable[..., np.ndarray] | None


SCHEDULES: dict[str, Schedule] = {
    "mcu": Schedule("mcu", mcu_report, frozenset({"weights_in_sram", "input"}), mcu_peak_batch),
    "paper": Schedule("paper", lambda cfg: paper_report(cfg), frozenset(), lambda b: paper_peak_batch(b)),
    "tflm": Schedule("tflm", _tflm_report, frozenset(), None),
}
BATCHED = tuple(name for name, s in SCHEDULES.items() if s.batch is not None)


def get_schedule(name: str) -> Schedule:
    """The registered schedule ``name``; an unknown name is a one-line `ConfigError`."""
    if name not in SCHEDULES:
        raise ConfigError(f"unknown memory schedule '{name}'; choose one of {list(SCHEDULES)}")
    return SCHEDULES[name]


def _check_options(schedule: str, entry: Schedule, options: dict[str, Any]) -> None:
    unknown = sorted(set(options) - entry.options)
    if unknown:
        valid = sorted(entry.options) or "none"
        raise ConfigError(f"schedule '{schedule}' has no option '{unknown[0]}' (valid: {valid})")


def peak_sram(cfg: SubnetConfig, schedule: str = "mcu", **options: Any) -> MemoryReport:
    """Peak SRAM of ``cfg`` under ``schedule`` with its per-op breakdown."""
    entry = get_schedule(schedule)
    _check_options(schedule, entry, options)
    return entry.report(cfg, **options)


def peak_bytes_batch(
    batch: ConfigBatch, schedule: str = "mcu", weights_in_sram: bool = False, **options: Any
) -> np.ndarray:
    """Peak bytes of every row of ``batch`` (int64 array), equal to the scalar schedule with the
    same options (``weights_in_sram`` is ignored by schedules without it, e.g. ``paper``)."""
    entry = get_schedule(schedule)
    if entry.batch is None:
        raise ConfigError(f"schedule '{schedule}' has no batched form; batched schedules: {list(BATCHED)}")
    _check_options(schedule, entry, options)
    if "weights_in_sram" in entry.options:
        options["weights_in_sram"] = weights_in_sram
    return entry.batch(batch, **options)


@dataclass(frozen=True)
class ShareEstimate:
    """R with how it was obtained; ``stderr`` is 0 for exact enumeration."""

    share: float
    method: str  # "enumeration" | "sampling"
    num_evaluated: int
    stderr: float


def share_within_budget(
    space: SearchSpace,
    budget_bytes: int,
    schedule: str = "mcu",
    rng: np.random.Generator | None = None,
    n_samples: int = 10_000,
    max_enumerate: int = 200_000,
    weights_in_sram: bool = False,
    **options: Any,
) -> ShareEstimate:
    """R = P(peak <= budget) for a subnet drawn by ``space.sample``: exact by weighted
    enumeration when ``space.num_subnets() <= max_enumerate``, else from ``n_samples`` draws.
    ``options`` are the schedule's other options (``mcu``: ``input="stream"``)."""
    if budget_bytes < 0:
        raise ConfigError(f"budget_bytes must be >= 0, got {budget_bytes}")
    if space.num_subnets() <= max_enumerate:
        batch, weight = enumerate_batch(space)
        fits = peak_bytes_batch(batch, schedule, weights_in_sram, **options) <= budget_bytes
        return ShareEstimate(float(min(1.0, weight[fits].sum())), "enumeration", len(batch), 0.0)
    if rng is None:
        raise ConfigError("share_within_budget needs an rng to sample a large space")
    if n_samples < 1:
        raise ConfigError(f"n_samples must be >= 1, got {n_samples}")
    peaks = peak_bytes_batch(sample_batch(space, rng, n_samples), schedule, weights_in_sram, **options)
    fits = peaks <= budget_bytes
    r = float(fits.mean())
    return ShareEstimate(r, "sampling", n_samples, float(np.sqrt(r * (1 - r) / n_samples)))
