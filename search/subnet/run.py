"""The subnet search as one resumable job: config -> constraint + fitness -> search -> report
(-> finetune -> export). `evolution_search.py` is the command-line front end.

Outputs in the output directory: ``search_config.yaml`` (resolved), ``search_state.json``
(resume), ``generations.jsonl``, ``best_subnet.yaml``, ``report.json`` / ``report.txt`` (peak
SRAM per schedule with the per-op breakdown, flash, params, FLOPs, holdout and test top-1),
``pareto.png``; with finetuning also ``finetune/`` (checkpoint, metrics), ``model.pt``,
``model.onnx`` and, with the deployment stack, ``model_int8.tflite``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from common.config import build_strict, read_config_mapping
from common.errors import ConfigError
from common.files import atomic_write_text, prepare_output
from search.constraint import ConstraintCfg, MemoryConstraint
from search.subnet.evaluator import SupernetEvaluator
from search.subnet.evolution import SearchResult, SearchSettings, run_search
from search.subnet.report import pareto_plot, subnet_report
from search_space.config import SubnetConfig

log = logging.getLogger("mcunas.search")
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "search"
DEFAULT_SUPERNET = "runs/evolve_space/chosen/checkpoint.pth"


@dataclass
class FinetuneCfg:
    epochs: int = 0  # 0 = no finetuning (and no export)
    layout: str = "nchw"  # ONNX input layout: nchw | nhwc


@dataclass
class SearchRunConfig:
    supernet: str = DEFAULT_SUPERNET  # supernet training checkpoint
    output: str = "runs/search"
    device: str = "auto"
    progress: bool = True
    search: SearchSettings = field(default_factory=SearchSettings)
    constraint: ConstraintCfg = field(default_factory=ConstraintCfg)
    finetune: FinetuneCfg = field(default_factory=FinetuneCfg)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity(self) -> dict[str, Any]:
        """What makes two runs the same search (resume refuses anything else)."""
        d = self.to_dict()
        return {k: d[k] for k in ("supernet", "search", "constraint")}


def load_search_config(path: str | Path | None, overrides: list[str] = ()) -> SearchRunConfig:
    """Read a YAML search config (default: configs/search/default.yaml), apply ``key=value``
    overrides (dotted keys, e.g. ``search.population=20``), validate strictly."""
    path = Path(path) if path is not None else CONFIG_DIR / "default.yaml"
    data = read_config_mapping(path, overrides, what="search config")
    cfg = build_strict(SearchRunConfig, data)
    cfg.constraint.constraint()  # validates budgets and limits
    if cfg.finetune.epochs < 0:
        raise ConfigError(f"finetune.epochs must be >= 0, got {cfg.finetune.epochs}")
    if cfg.finetune.layout not in ("nchw", "nhwc"):
        raise ConfigError(f"finetune.layout must be nchw or nhwc, got {cfg.finetune.layout!r}")
    return cfg


def _check_output(cfg: SearchRunConfig, output: Path, restart: bool) -> None:
    saved = output / "search_config.yaml"
    if restart or not saved.exists():
        return
    theirs = yaml.safe_load(saved.read_text())
    mine = cfg.identity()
    if {k: theirs.get(k) for k in mine} != mine:
        diff = next(k for k in mine if theirs.get(k) != mine[k])
        raise ConfigError(
            f"{output} holds a search with another '{diff}'; use a new --output or --restart to start over"
        )


Finish = Callable[[dict[str, Any], SubnetConfig, SupernetEvaluator, "SearchRunConfig"], dict[str, Any]]


def run_subnet_search(
    cfg: SearchRunConfig, *, restart: bool = False, finish: Finish | None = None
) -> dict[str, Any]:
    """Search (resuming when the output holds the same search) and report; then ``finish``
    (summary, best subnet, evaluator, config) -> summary, if given, e.g. finetuning and export.
    Everything that can be refused is checked before anything is written."""
    output = Path(cfg.output)
    constraint = cfg.constraint.constraint()
    if Path(cfg.supernet).is_dir():
        raise ConfigError(
            f"supernet checkpoint {cfg.supernet} is a directory; pass its checkpoint file "
            f"(e.g. {Path(cfg.supernet) / 'checkpoint.pth'})"
        )
    if not Path(cfg.supernet).is_file():
        raise ConfigError(
            f"supernet checkpoint {cfg.supernet} does not exist; make one with evolve_space.py or "
            "supernet_train.py, or pass --supernet"
        )
    evaluator = SupernetEvaluator(cfg.supernet, cfg.device)
    constraint.check_feasible(evaluator.space)
    _check_output(cfg, output, restart)
    if evaluator.is_main:  # under torchrun rank 0 writes; the other ranks evaluate their share
        if restart and output.is_dir():
            shutil.rmtree(output)
        prepare_output(output)
        atomic_write_text(output / "search_config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    evaluator.barrier()
    log.info(
        "%s search over space '%s' (%s subnets) under %s; fitness = holdout top-1 with inherited weights",
        cfg.search.algorithm, evaluator.space.name, f"{evaluator.space.num_subnets():,}", constraint.describe(),
    )  # fmt: skip
    result = run_search(
        evaluator.space, constraint, evaluator.holdout_top1, cfg.search, output=output, progress=cfg.progress
    )
    if not evaluator.is_main:
        return {"text": f"rank {evaluator.dist.rank}: evaluated its share of every generation"}
    summary = report_result(result, evaluator, constraint, output)
    if finish is not None:  # e.g. deploy.finetune.finetune_best: finetune and export the best subnet
        summary = finish(summary, result.best, evaluator, cfg)
        _write_report(summary, output)
    return summary


def report_result(
    result: SearchResult, evaluator: SupernetEvaluator, constraint: MemoryConstraint, output: Path
) -> dict[str, Any]:
    """best_subnet.yaml, report.json/.txt and pareto.png for a finished search."""
    best = result.best
    atomic_write_text(output / "best_subnet.yaml", yaml.safe_dump(best.to_dict(), sort_keys=False))
    report = subnet_report(best)
    peaks = [constraint.peak_bytes(c) for c, _ in result.evaluated]
    summary: dict[str, Any] = {
        "best": best.to_dict(),
        "best_short": best.short(),
        "constraint": constraint.describe(),
        "evaluations": len(result.evaluated),
        "generations": len(result.history),
        "holdout_top1": result.best_fitness,
        "test_top1": evaluator.test_top1(best),
        "initial_median_holdout_top1": _median(
            [dict(result.evaluated)[c] for c in result.initial_population]
        ),
        **report["numbers"],
    }
    plotted = pareto_plot(
        peaks, [f for _, f in result.evaluated], constraint.sram_budget_bytes, constraint.peak_bytes(best),
        result.best_fitness, output / "pareto.png", title=f"{constraint.schedule} schedule",
    )  # fmt: skip
    summary["pareto_plot"] = str(output / "pareto.png") if plotted else None
    summary["text"] = "\n".join(
        [
            f"best subnet: {best.short()}  ({output / 'best_subnet.yaml'})",
            f"constraint: {constraint.describe()}; {len(result.evaluated)} subnets evaluated in "
            f"{len(result.history)} generations",
            f"top-1 with inherited weights: holdout {summary['holdout_top1']:.2f}%, test {summary['test_top1']:.2f}% "
            f"(median of the random initial population: {summary['initial_median_holdout_top1']:.2f}% holdout)",
            report["text"],
        ]
    )
    summary["breakdown"] = report["breakdown"]
    _write_report(summary, output)
    return summary


def _median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    return float(s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2) if n else float("nan")


def _write_report(summary: dict[str, Any], output: Path) -> None:
    data = {k: v for k, v in summary.items() if k not in ("text", "breakdown")}
    atomic_write_text(output / "report.json", json.dumps(data, indent=2))
    atomic_write_text(output / "report.txt", summary["text"] + "\n\n" + summary["breakdown"] + "\n")
