"""The search's constraint: peak SRAM (memory model) within the budget, optionally flash and
parameter limits. A plain callable ``constraint(cfg) -> bool``, cached per config; it knows
nothing about training or accuracy."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from memory_model import SCHEDULES, flash_bytes, format_bytes, peak_bytes_batch, peak_sram, sample_batch
from search_space.config import SubnetConfig
from search_space.counting import count_params
from search_space.errors import ConfigError
from search_space.space import SearchSpace

MIN_PEAK_SAMPLES = 20_000  # vectorised draws used to name the smallest peak of a space


@dataclass
class MemoryConstraint:
    """``peak_sram(cfg, schedule) <= sram_budget_bytes`` and the optional flash/param limits."""

    sram_budget_bytes: int
    schedule: str = "mcu"
    weights_in_sram: bool = True  # the paper's assumption: weights are copied to SRAM per layer
    flash_budget_bytes: int | None = None
    max_params: int | None = None
    min_params: int | None = None
    _cache: dict[SubnetConfig, bool] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown memory schedule '{self.schedule}'; choose one of {list(SCHEDULES)}")
        if self.sram_budget_bytes <= 0:
            raise ConfigError(f"the SRAM budget must be positive, got {self.sram_budget_bytes} bytes")
        for name in ("flash_budget_bytes", "max_params", "min_params"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name} must be positive or null, got {value}")

    @property
    def options(self) -> dict[str, bool]:
        return {"weights_in_sram": self.weights_in_sram} if self.schedule == "mcu" else {}

    def peak_bytes(self, cfg: SubnetConfig) -> int:
        return peak_sram(cfg, self.schedule, **self.options).peak_bytes

    def __call__(self, cfg: SubnetConfig) -> bool:
        if cfg not in self._cache:
            self._cache[cfg] = self._check(cfg)
        return self._cache[cfg]

    def _check(self, cfg: SubnetConfig) -> bool:
        if self.max_params is not None or self.min_params is not None:
            params = count_params(cfg)
            if self.max_params is not None and params > self.max_params:
                return False
            if self.min_params is not None and params < self.min_params:
                return False
        if self.flash_budget_bytes is not None and flash_bytes(cfg) > self.flash_budget_bytes:
            return False
        return self.peak_bytes(cfg) <= self.sram_budget_bytes

    def smallest_peak_bytes(self, space: SearchSpace, seed: int = 0) -> int:
        """The smallest peak in ``space``: min_config's peak, lowered by any smaller one among
        ``MIN_PEAK_SAMPLES`` vectorised random draws (``mcu``/``paper`` schedules)."""
        smallest = self.peak_bytes(space.min_config())
        if self.schedule in ("mcu", "paper"):
            batch = sample_batch(space, np.random.default_rng(seed), MIN_PEAK_SAMPLES)
            peaks = peak_bytes_batch(batch, self.schedule, self.weights_in_sram)
            smallest = min(smallest, int(peaks.min()))
        return smallest

    def describe(self) -> str:
        parts = [f"peak SRAM ({self.schedule}) <= {format_bytes(self.sram_budget_bytes)}"]
        if self.flash_budget_bytes is not None:
            parts.append(f"flash <= {format_bytes(self.flash_budget_bytes)}")
        if self.max_params is not None:
            parts.append(f"params <= {self.max_params:,}")
        if self.min_params is not None:
            parts.append(f"params >= {self.min_params:,}")
        return ", ".join(parts)

    def explain_infeasible(self, space: SearchSpace, draws: int) -> str:
        """One line: why no config of ``space`` was found (naming the smallest peak)."""
        smallest = self.smallest_peak_bytes(space)
        where = f"space '{space.name}'"
        if smallest > self.sram_budget_bytes:
            return (
                f"the SRAM budget {format_bytes(self.sram_budget_bytes)} ({self.sram_budget_bytes:,} bytes) is "
                f"infeasible for {where}: its smallest peak ({self.schedule} schedule) is "
                f"{format_bytes(smallest)} ({smallest:,} bytes); raise --budget or use a smaller space"
            )
        min_cfg = space.min_config()
        if self.flash_budget_bytes is not None and flash_bytes(min_cfg) > self.flash_budget_bytes:
            return (
                f"the flash budget {format_bytes(self.flash_budget_bytes)} is infeasible for {where}: its "
                f"smallest subnet needs {format_bytes(flash_bytes(min_cfg))} of flash; raise --flash-budget"
            )
        if self.max_params is not None and count_params(min_cfg) > self.max_params:
            return (
                f"max_params {self.max_params:,} is infeasible for {where}: its smallest subnet has "
                f"{count_params(min_cfg):,} parameters"
            )
        return (
            f"no subnet of {where} met {self.describe()} in {draws:,} random draws (the smallest peak is "
            f"{format_bytes(smallest)}, so only a tiny share fits); raise the budget or narrow the space"
        )

    def check_feasible(self, space: SearchSpace) -> None:
        """Raise the clear `ConfigError` at once when not even the smallest peak (or the smallest
        subnet's flash) fits."""
        too_big = self.smallest_peak_bytes(space) > self.sram_budget_bytes
        if self.flash_budget_bytes is not None:
            too_big = too_big or flash_bytes(space.min_config()) > self.flash_budget_bytes
        if too_big:
            raise ConfigError(self.explain_infeasible(space, 0))
