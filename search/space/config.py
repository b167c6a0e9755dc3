"""Configuration of `evolve_space.py`: strict YAML sections with ``key.path=value`` overrides.

Sections: ``recipe`` (the training config every point's supernet uses, plus overrides),
``pretrain`` (the dense supernet every new point starts from by truncated SVD, if any),
``score`` (budget, memory schedule, eta, how A and R are sampled), ``evolve`` (the loop, see
`search.space.loop.EvolutionSettings`) and ``launch`` (how a visit's job runs).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from common.config import build_strict, read_config_mapping
from common.errors import ConfigError
from memory_model.schedules import SCHEDULES
from search.constraint import ConstraintCfg
from search.launch import EXECUTORS, LAUNCHERS, SubmititSettings
from search.space.loop import EvolutionSettings
from search.space.visit import ScoreSettings
from training.config import TrainConfig, load_config

DEFAULT_CFG = "configs/evolve/digits-tiny.yaml"


@dataclass
class RecipeCfg:
    cfg: str = "configs/train/digits-tiny.yaml"  # training config of every point's supernet
    overrides: dict = field(default_factory=dict)  # {"optim.lr": 1e-3, ...} applied to it
    space: str | dict | None = None  # base space (grid); null = the recipe's space


@dataclass
class PretrainCfg:
    cfg: str | None = None  # training config of a dense supernet, trained once; null = no pretraining
    overrides: dict = field(default_factory=dict)  # applied to it, e.g. {"log.output": "runs/dense"}
    space: str | dict | None = None  # its (dense) space; null = the config's own


@dataclass
class ScoreCfg(ConstraintCfg):
    """The ``score`` section: the memory constraint (its budget from --budget) and how A and R
    are sampled."""

    budget: int | str | None = None  # SRAM budget, e.g. "320KB" (--budget sets it)
    eta: float = 1.0  # S = A + eta * R, A and R in [0, 1]
    eval_subnets: int = 8  # in-budget subnets whose mean holdout top-1 is A
    eval_pool: int = 2000  # subnets drawn to find them (bounded; vectorised memory check)
    r_samples: int = 10000  # Monte Carlo samples for R when the point is too large to enumerate

    def settings(self) -> ScoreSettings:
        c = self.constraint()  # the budget is required here
        return ScoreSettings(
            c.sram_budget_bytes, c.flash_budget_bytes, c.schedule, c.weights_in_sram, self.eta,
            self.eval_subnets, self.eval_pool, self.r_samples, c.max_params, c.min_params, c.input,
        )  # fmt: skip


@dataclass
class LaunchCfg(SubmititSettings):
    """The ``launch`` section: how each visit's job runs and how many run at once. With
    ``kind: submitit`` the inherited fields (executor, folder, timeout_min, max_num_timeout,
    poll_s, slurm) set up submitit (see `search.launch`)."""

    kind: str = "inprocess"  # inprocess | subprocess | torchrun | command | submitit
    nproc: int = 1  # processes per job for torchrun (and the local executor's tasks)
    command: str | None = None  # kind=command: template with {python}, {job_dir}, {nproc}
    max_parallel: int = 1  # independent visits of a step run at once (inprocess: always 1)

    def settings(self) -> SubmititSettings:
        return SubmititSettings(
            self.executor, self.folder, self.timeout_min, self.max_num_timeout, self.poll_s, self.slurm
        )


@dataclass
class SpaceEvolutionConfig:
    seed: int = 0
    output: str = "runs/evolve_space"
    progress: bool = True
    recipe: RecipeCfg = field(default_factory=RecipeCfg)
    pretrain: PretrainCfg = field(default_factory=PretrainCfg)
    score: ScoreCfg = field(default_factory=ScoreCfg)
    evolve: EvolutionSettings = field(default_factory=EvolutionSettings)  # without seed/init_points:
    launch: LaunchCfg = field(default_factory=LaunchCfg)
    init_points: list | None = None  # [[ratio, patch], ...]; null = evolve.num_init random fitting ones

    def settings(self) -> EvolutionSettings:
        """The loop's settings: the ``evolve`` section with the run's seed and initial points."""
        pts = None if self.init_points is None else tuple((float(r), int(p)) for r, p in self.init_points)
        return replace(self.evolve, seed=self.seed, init_points=pts)

    def train_config(self) -> TrainConfig:
        """The recipe with its overrides (validated strictly by `training.config`)."""
        cfg = load_config(self.recipe.cfg, _as_overrides(self.recipe.overrides))
        if self.recipe.space is not None:
            cfg.space = self.recipe.space
        return cfg

    def pretrain_config(self) -> TrainConfig | None:
        """The dense supernet's training config with its overrides, or ``None``."""
        if self.pretrain.cfg is None:  # no pretraining: its overrides have nothing to apply to
            return None
        cfg = load_config(self.pretrain.cfg, _as_overrides(self.pretrain.overrides))
        if self.pretrain.space is not None:
            cfg.space = self.pretrain.space
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_overrides(d: dict) -> list[str]:
    return [f"{k}={json.dumps(v)}" for k, v in _flatten(d)]  # JSON is YAML


def _flatten(d: dict, prefix: str = "") -> list[tuple[str, Any]]:
    """``{"data": {"batch_size": 64}, "optim.lr": 1e-3}`` -> dotted keys."""
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.extend(_flatten(v, f"{key}.") if isinstance(v, dict) else [(key, v)])
    return out


def _check(cfg: SpaceEvolutionConfig) -> None:
    s, launch = cfg.score, cfg.launch
    checks = [
        (s.schedule in SCHEDULES, f"score.schedule must be one of {list(SCHEDULES)}"),
        (s.eta >= 0, "score.eta must be >= 0"),
        (
            s.eval_subnets >= 1 and s.eval_pool >= s.eval_subnets,
            "score.eval_subnets >= 1 and eval_pool >= it",
        ),
        (s.r_samples >= 1, "score.r_samples must be >= 1"),
        (launch.kind in LAUNCHERS, f"launch.kind must be one of {list(LAUNCHERS)}"),
        (launch.nproc >= 1, "launch.nproc must be >= 1"),
        (launch.max_parallel >= 1, "launch.max_parallel must be >= 1"),
        (launch.executor in EXECUTORS, f"launch.executor must be one of {list(EXECUTORS)}"),
        (launch.timeout_min > 0 and launch.poll_s > 0, "launch.timeout_min and launch.poll_s must be > 0"),
        (launch.max_num_timeout >= 0, "launch.max_num_timeout must be >= 0"),
        (launch.slurm.nodes >= 1 and launch.slurm.gpus_per_node >= 0, "launch.slurm.nodes must be >= 1"),
        (launch.kind != "command" or bool(launch.command), "launch.kind=command needs launch.command"),
        (launch.command is None or "{job_dir}" in launch.command, "launch.command must contain {job_dir}"),
    ]
    for ok, msg in checks:
        if not ok:
            raise ConfigError(msg)
    if cfg.init_points is not None:
        ok = isinstance(cfg.init_points, list) and all(
            isinstance(p, list) and len(p) == 2 and isinstance(p[0], (int, float)) and isinstance(p[1], int)
            for p in cfg.init_points
        )
        if not ok or not cfg.init_points:
            raise ConfigError(
                "init_points must be a non-empty list of [rank_ratio, patch_size] pairs or null"
            )
    cfg.settings()  # validates the loop settings


def load_evolve_config(path: str | Path | None, overrides: list[str] = ()) -> SpaceEvolutionConfig:
    """Read the YAML (default: the digits-tiny preset), apply overrides, validate strictly."""
    data = read_config_mapping(Path(path or DEFAULT_CFG), overrides)
    for key in ("seed", "init_points"):  # run-level settings the loop receives from the top level
        if isinstance(data.get("evolve"), dict) and key in data["evolve"]:
            raise ConfigError(f"'evolve.{key}' is set at the top level of the config: use '{key}'")
    init_points = data.pop("init_points", None)
    cfg = build_strict(SpaceEvolutionConfig, data, "")
    cfg.init_points = init_points
    _check(cfg)
    cfg.train_config()  # the recipe must load
    cfg.pretrain_config()  # and so must the pretraining
    return cfg
