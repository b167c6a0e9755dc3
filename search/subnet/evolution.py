"""Budgeted subnet search: AutoFormer's evolution and a random-search baseline.

The search sees a subnet only through two plain callables: ``constraint(cfg) -> bool`` (does
it fit the budget?) and ``evaluate(cfg) -> float`` (its fitness, higher is better). A
candidate that fails the constraint is never evaluated, and no config is evaluated twice
(results are cached by the config's hash).

Evolution (AutoFormer's settings by default): a random feasible population; every generation
the ``parents`` fittest configs evaluated so far yield ``mutations`` mutated children and
``crossovers`` crossover children (same-depth parents preferred), and random feasible configs
refill the population. Random search draws the same number of feasible configs per
generation. Each generation evaluates only configs never seen before, so both algorithms
spend ``population x generations`` evaluations.

Under torch.distributed (torchrun) each rank runs the same search and evaluates a share of
each generation's candidates (`evaluate_all`: candidates ``rank::world``); the gathered scores
are identical on every rank, so every rank breeds the same next generation and the result is
the one-process run's. Rank 0 alone writes the state.

State (evaluated configs in order, the generator's ``bit_generator.state``, the per-generation
records) is saved atomically after every generation; a search started again from that state
replays the uninterrupted run exactly.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from common.errors import ConfigError
from common.files import atomic_write_text
from search_space.config import SubnetConfig
from search_space.space import SearchSpace

log = logging.getLogger("mcunas.search")
ALGORITHMS = ("evolution", "random")
STATE_FORMAT = "mcunas-search-state/1"
Constraint = Callable[[SubnetConfig], bool]
Fitness = Callable[[SubnetConfig], float]


@dataclass(frozen=True)
class SearchSettings:
    """Hyperparameters of one search (AutoFormer's defaults)."""

    algorithm: str = "evolution"  # evolution | random
    population: int = 50  # candidates evaluated per generation
    generations: int = 20
    parents: int = 10  # top-k evaluated configs that breed
    mutations: int = 25  # mutated children per generation
    crossovers: int = 25  # crossover children per generation
    mutation_prob: float = 0.4  # depth, embed dim (and memory axes) resampled with this probability
    layer_mutation_prob: float = 0.2  # each layer's heads and MLP ratio resampled with this probability
    sample_retries: int = 2000  # random draws allowed per wanted candidate before giving up
    breed_retries: int = 10  # mutation/crossover attempts per wanted child (AutoFormer: 10)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ConfigError(f"algorithm must be one of {list(ALGORITHMS)}, got {self.algorithm!r}")
        for name in ("population", "generations", "parents", "sample_retries", "breed_retries"):
            if getattr(self, name) < 1:
                raise ConfigError(f"search setting '{name}' must be >= 1, got {getattr(self, name)}")
        for name in ("mutations", "crossovers"):
            if getattr(self, name) < 0:
                raise ConfigError(f"search setting '{name}' must be >= 0, got {getattr(self, name)}")
        if self.mutations + self.crossovers > self.population:
            raise ConfigError(
                f"mutations + crossovers ({self.mutations + self.crossovers}) exceed the population "
                f"({self.population}); lower them or raise the population"
            )
        for name in ("mutation_prob", "layer_mutation_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"search setting '{name}' must be in [0, 1], got {getattr(self, name)}")

    @property
    def num_evaluations(self) -> int:
        return self.population * self.generations


@dataclass
class SearchResult:
    """Everything a finished (or resumed) search knows."""

    best: SubnetConfig
    best_fitness: float
    evaluated: list[tuple[SubnetConfig, float]]  # in evaluation order
    history: list[dict[str, Any]]  # one record per generation
    initial_population: list[SubnetConfig] = field(default_factory=list)


def infeasible_message(constraint: Constraint, space: SearchSpace, draws: int) -> str:
    """Why no feasible config turned up: the constraint's own explanation when it has one."""
    explain = getattr(constraint, "explain_infeasible", None)
    if callable(explain):
        return explain(space, draws)
    return f"no subnet of space '{space.name}' satisfied the constraint in {draws} random draws"


def _rank_world() -> tuple[int, int]:
    """(rank, world size) of an initialised torch.distributed group, else (0, 1)."""
    dist = sys.modules.get("torch.distributed")  # never imports torch for a plain search
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def evaluate_all(evaluate: Fitness, configs: list[SubnetConfig]) -> list[float]:
    """The fitness of every config, in order. Under torch.distributed each rank evaluates
    ``configs[rank::world]`` and the scores are gathered, so every rank returns all of them."""
    rank, world = _rank_world()
    if world == 1:
        return [float(evaluate(c)) for c in configs]
    import torch.distributed as dist

    mine = [float(evaluate(c)) for c in configs[rank::world]]
    shares: list[list[float] | None] = [None] * world
    dist.all_gather_object(shares, mine)
    out = [0.0] * len(configs)
    for r, share in enumerate(shares):
        out[r::world] = share
    return out


class _Search:
    """One search run: population bookkeeping, breeding and the resumable state."""

    def __init__(
        self, space: SearchSpace, constraint: Constraint, evaluate: Fitness, settings: SearchSettings
    ) -> None:
        self.space, self.constraint, self.evaluate, self.s = space, constraint, evaluate, settings
        self.rng = np.random.default_rng(settings.seed)
        self.cache: dict[SubnetConfig, float] = {}  # insertion order = evaluation order
        self.history: list[dict[str, Any]] = []
        self.initial: list[SubnetConfig] = []
        self.generation = 0
        self.exhausted = False

    # ---- state --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "settings": asdict(self.s),
            "space": self.space.to_dict(),
            "generation": self.generation,
            "exhausted": self.exhausted,
            "rng": self.rng.bit_generator.state,
            "evaluated": [[c.to_dict(), f] for c, f in self.cache.items()],
            "initial": [c.to_dict() for c in self.initial],
            "history": self.history,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generation = int(state["generation"])
        self.exhausted = bool(state["exhausted"])
        self.rng.bit_generator.state = state["rng"]
        self.cache = {SubnetConfig.from_dict(c): float(f) for c, f in state["evaluated"]}
        self.initial = [SubnetConfig.from_dict(c) for c in state["initial"]]
        self.history = list(state["history"])

    # ---- candidates ---------------------------------------------------------------------
    def _is_new(self, cfg: SubnetConfig, taken: list[SubnetConfig]) -> bool:
        return cfg not in self.cache and cfg not in taken and self.constraint(cfg)

    def _random_fill(self, taken: list[SubnetConfig], size: int) -> list[SubnetConfig]:
        """Add random feasible unseen configs to ``taken`` until it has ``size``; bounded draws."""
        out = list(taken)
        draws = feasible_draws = 0
        limit = self.s.sample_retries * (size - len(out))
        while len(out) < size and draws < limit:
            if feasible_draws == 0 and draws >= self.s.sample_retries and not self.cache:
                raise ConfigError(infeasible_message(self.constraint, self.space, draws))
            cfg = self.space.sample(self.rng)
            draws += 1
            if not self.constraint(cfg):
                continue
            feasible_draws += 1
            if cfg not in self.cache and cfg not in out:
                out.append(cfg)
        if len(out) < size:
            log.info(
                "only %d of %d candidates found in %d draws: the feasible part of the space is (nearly) exhausted",
                len(out) - len(taken), size - len(taken), draws,
            )  # fmt: skip
            self.exhausted = True
        return out

    def _top(self, k: int) -> list[SubnetConfig]:
        ranked = sorted(self.cache.items(), key=lambda item: -item[1])  # stable: ties by evaluation order
        return [c for c, _ in ranked[:k]]

    def _pick(self, configs: list[SubnetConfig]) -> SubnetConfig:
        return configs[int(self.rng.integers(len(configs)))]

    def _mutations(
        self, parents: list[SubnetConfig], n: int, taken: list[SubnetConfig]
    ) -> list[SubnetConfig]:
        out: list[SubnetConfig] = []
        for _ in range(self.s.breed_retries * n):
            if len(out) == n:
                break
            child = self.space.mutate(
                self._pick(parents),
                self.rng,
                prob=self.s.mutation_prob,
                layer_prob=self.s.layer_mutation_prob,
            )
            if self._is_new(child, taken + out):
                out.append(child)
        return out

    def _crossovers(
        self, parents: list[SubnetConfig], n: int, taken: list[SubnetConfig]
    ) -> list[SubnetConfig]:
        out: list[SubnetConfig] = []
        for _ in range(self.s.breed_retries * n):
            if len(out) == n:
                break
            a, b = self._pick(parents), self._pick(parents)
            for _ in range(50):  # AutoFormer: look for same-depth parents
                if a.depth == b.depth:
                    break
                a, b = self._pick(parents), self._pick(parents)
            child = self.space.crossover(a, b, self.rng)
            if self._is_new(child, taken + out):
                out.append(child)
        return out

    def next_candidates(self) -> list[SubnetConfig]:
        if self.s.algorithm == "random" or self.generation == 0:
            return self._random_fill([], self.s.population)
        parents = self._top(self.s.parents)
        children = self._mutations(parents, self.s.mutations, [])
        children += self._crossovers(parents, self.s.crossovers, children)
        return self._random_fill(children, self.s.population)

    # ---- one generation -----------------------------------------------------------------
    def step(self, bar: tqdm | None) -> dict[str, Any]:
        start = time.perf_counter()
        candidates = self.next_candidates()
        if self.generation == 0:
            self.initial = list(candidates)
        fitness = evaluate_all(self.evaluate, candidates)
        self.cache.update(zip(candidates, fitness, strict=True))
        if bar is not None:
            bar.update(len(candidates))
        self.generation += 1
        best, best_fitness = max(self.cache.items(), key=lambda item: item[1])
        top = [self.cache[c] for c in self._top(self.s.parents)]
        record = {
            "generation": self.generation,
            "evaluated": len(candidates),
            "total_evaluated": len(self.cache),
            "generation_best": round(max(fitness), 4) if fitness else None,
            "generation_mean": round(float(np.mean(fitness)), 4) if fitness else None,
            "topk_mean": round(float(np.mean(top)), 4),
            "best_fitness": round(best_fitness, 4),
            "best": best.short(),
            "seconds": round(time.perf_counter() - start, 2),
        }
        self.history.append(record)
        if bar is not None:
            bar.set_postfix(gen=self.generation, best=f"{best_fitness:.2f}")
        return record

    def result(self) -> SearchResult:
        best, best_fitness = max(self.cache.items(), key=lambda item: item[1])
        return SearchResult(
            best, best_fitness, list(self.cache.items()), list(self.history), list(self.initial)
        )


def _fingerprint(settings: SearchSettings, space: SearchSpace) -> dict[str, Any]:
    return {"settings": asdict(settings), "space": space.to_dict()}


def run_search(
    space: SearchSpace,
    constraint: Constraint,
    evaluate: Fitness,
    settings: SearchSettings,
    *,
    output: str | Path | None = None,
    progress: bool = True,
) -> SearchResult:
    """Search ``space`` for the fittest config satisfying ``constraint``.

    With ``output``, the state is saved to ``<output>/search_state.json`` after every generation
    and the per-generation records to ``<output>/generations.jsonl``; a later call with the same
    settings, space and output continues from there.
    """
    search = _Search(space, constraint, evaluate, settings)
    state_path = Path(output) / "search_state.json" if output is not None else None
    main = _rank_world()[0] == 0  # every rank searches; rank 0 writes
    if state_path is not None and state_path.exists():
        state = json.loads(state_path.read_text())
        if state.get("format") != STATE_FORMAT:
            raise ConfigError(f"{state_path} is not a search state file ({STATE_FORMAT})")
        if {k: state.get(k) for k in ("settings", "space")} != _fingerprint(settings, space):
            raise ConfigError(
                f"{state_path} belongs to a search with other settings or another space; "
                "use a new output directory or --restart"
            )
        search.load_state_dict(state)
        log.info("resuming the search at generation %d/%d", search.generation, settings.generations)
    total = settings.num_evaluations
    with tqdm(
        total=total,
        initial=len(search.cache),
        desc=settings.algorithm,
        unit="subnet",
        disable=None if progress and main else True,
    ) as bar:
        while search.generation < settings.generations and not search.exhausted:
            record = search.step(bar)
            log.info(json.dumps(record))
            if state_path is not None and main:
                atomic_write_text(state_path, json.dumps(search.state_dict()))
                lines = "".join(json.dumps(r) + "\n" for r in search.history)
                atomic_write_text(state_path.with_name("generations.jsonl"), lines)
    if not search.cache:
        raise ConfigError(infeasible_message(constraint, space, 0))
    return search.result()
