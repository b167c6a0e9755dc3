"""The one memory constraint of both searches: peak SRAM (memory model) within the budget,
optionally flash and parameter limits. `MemoryConstraint` is a plain callable
``constraint(cfg) -> bool`` (cached per config) with a vectorised `fits_batch` for many configs
at once (the space evolution's pools and R); it knows nothing about training or accuracy.
`ConstraintCfg` is its YAML section: budgets are parsed into bytes when the config is read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from common.errors import ConfigError
from memory_model import flash_bytes, format_bytes, get_schedule, peak_bytes_batch, peak_sram, sample_batch
from memory_model.batch import encode_configs
from memory_model.budget import parse_budget
from memory_model.mcu import INPUT_MODES
from memory_model.schedules import BATCHED as BATCHED_SCHEDULES
from search_space.config import SubnetConfig
from search_space.counting import count_params
from search_space.space import SearchSpace

MIN_PEAK_SAMPLES = 20_000  # vectorised draws used to name the smallest peak of a space


def _bytes(value: int | str | None, what: str) -> int | None:
    """A budget as bytes: ints pass (bools refused), text goes through `parse_budget`."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str):
        return parse_budget(value)
    raise ConfigError(f"{what} must be a size such as '320KB' or a number of bytes, got {value!r}")


def _check_input(schedule: str, input: object) -> None:
    """``input`` is ``whole`` or ``stream``, and ``stream`` only for the ``mcu`` schedule."""
    if input not in INPUT_MODES:
        raise ConfigError(f"input must be one of {list(INPUT_MODES)} (the mcu image in SRAM), got {input!r}")
    if input != "whole" and schedule != "mcu":
        raise ConfigError(
            f"input '{input}' applies to the mcu schedule only (schedule is '{schedule}'); "
            "set input: whole or schedule: mcu"
        )


@dataclass
class ConstraintCfg:
    """YAML section of a memory constraint; ``budget``/``flash_budget`` may be written as text
    ('320KB') and hold bytes once read."""

    budget: int | str | None = "320KB"  # peak SRAM; KB = KiB = 1024 bytes
    flash_budget: int | str | None = None  # null = no flash limit
    max_params: int | None = None
    min_params: int | None = None
    schedule: str = "mcu"  # memory schedule: mcu | paper | tflm
    weights_in_sram: bool = True  # mcu: weights staged in SRAM per op (the paper's assumption)
    input: str = "whole"  # mcu: the image whole in SRAM, or "stream": one row of patches at a time

    def __post_init__(self) -> None:
        self.budget = _bytes(self.budget, "budget")
        self.flash_budget = _bytes(self.flash_budget, "flash_budget")
        _check_input(self.schedule, self.input)

    def constraint(self) -> MemoryConstraint:
        if self.budget is None:
            raise ConfigError(
                "no SRAM budget: pass --budget (e.g. --budget 320KB) or set the budget in the config"
            )
        return MemoryConstraint(
            sram_budget_bytes=self.budget,
            schedule=self.schedule,
            weights_in_sram=self.weights_in_sram,
            flash_budget_bytes=self.flash_budget,
            max_params=self.max_params,
            min_params=self.min_params,
            input=self.input,
        )

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class MemoryConstraint:
    """``peak_sram(cfg, schedule) <= sram_budget_bytes`` and the optional flash/param limits."""

    sram_budget_bytes: int
    schedule: str = "mcu"
    weights_in_sram: bool = True  # the paper's assumption: weights are copied to SRAM per layer
    flash_budget_bytes: int | None = None
    max_params: int | None = None
    min_params: int | None = None
    input: str = "whole"  # mcu only: "whole" image in SRAM or "stream" (one row of patches)
    _cache: dict[SubnetConfig, bool] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        get_schedule(self.schedule)  # an unknown name is a one-line error
        _check_input(self.schedule, self.input)
        if self.sram_budget_bytes <= 0:
            raise ConfigError(f"the SRAM budget must be positive, got {self.sram_budget_bytes} bytes")
        for name in ("flash_budget_bytes", "max_params", "min_params"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name} must be positive or null, got {value}")

    @property
    def options(self) -> dict[str, bool | str]:
        """The schedule's options: ``mcu`` takes ``weights_in_sram`` and ``input``."""
        if self.schedule != "mcu":
            return {}
        return {"weights_in_sram": self.weights_in_sram, "input": self.input}

    def peak_bytes(self, cfg: SubnetConfig) -> int:
        return peak_sram(cfg, self.schedule, **self.options).peak_bytes

    def __call__(self, cfg: SubnetConfig) -> bool:
        if cfg not in self._cache:
            self._cache[cfg] = self._check(cfg)
        return self._cache[cfg]

    def fits_batch(self, configs: Sequence[SubnetConfig]) -> np.ndarray:
        """`__call__` for many configs at once (bool array): peaks vectorised where the schedule
        has a batched form, the same answers as the scalar check."""
        if not configs:
            return np.zeros(0, dtype=bool)
        if self.schedule in BATCHED_SCHEDULES:
            peaks = peak_bytes_batch(encode_configs(configs), self.schedule, **self.options)
        else:
            peaks = np.array([self.peak_bytes(c) for c in configs])
        ok = peaks <= self.sram_budget_bytes
        if self.flash_budget_bytes is not None:
            ok &= np.array([flash_bytes(c) for c in configs]) <= self.flash_budget_bytes
        if self.max_params is not None or self.min_params is not None:
            params = np.array([count_params(c) for c in configs])
            ok &= params <= (self.max_params if self.max_params is not None else np.inf)
            ok &= params >= (self.min_params if self.min_params is not None else 0)
        return ok

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
        if self.schedule in BATCHED_SCHEDULES:
            batch = sample_batch(space, np.random.default_rng(seed), MIN_PEAK_SAMPLES)
            peaks = peak_bytes_batch(batch, self.schedule, **self.options)
            smallest = min(smallest, int(peaks.min()))
        return smallest

    def describe(self) -> str:
        how = self.schedule + (", input streamed" if self.input == "stream" else "")
        parts = [f"peak SRAM ({how}) <= {format_bytes(self.sram_budget_bytes)}"]
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
