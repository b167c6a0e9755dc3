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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from memory_model import parse_budget
from search.constraints import MemoryConstraint
from search.evolution import SearchResult, SearchSettings, run_search
from search.report import pareto_plot, subnet_report
from search.subnet_eval import SupernetEvaluator
from search_space.errors import ConfigError
from training.checkpoint import atomic_write_text, prepare_output
from training.config import build_strict, read_config_mapping

log = logging.getLogger("mcunas.search")
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs" / "search"
DEFAULT_SUPERNET = "runs/evolve_space/chosen/checkpoint.pth"


@dataclass
class ConstraintCfg:
    budget: str | int = "320KB"  # peak SRAM budget; KB = KiB = 1024 bytes
    flash_budget: str | int | None = None  # null = no flash limit
    max_params: int | None = None
    min_params: int | None = None
    schedule: str = "mcu"  # memory schedule of the constraint: mcu | paper | tflm
    weights_in_sram: bool = True  # mcu schedule: weights copied to SRAM (the paper's assumption)


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
    build_constraint(cfg.constraint)  # validates budgets and limits
    if cfg.finetune.epochs < 0:
        raise ConfigError(f"finetune.epochs must be >= 0, got {cfg.finetune.epochs}")
    if cfg.finetune.layout not in ("nchw", "nhwc"):
        raise ConfigError(f"finetune.layout must be nchw or nhwc, got {cfg.finetune.layout!r}")
    return cfg


def _bytes(value: str | int | None) -> int | None:
    if value is None:
        return None
    return value if isinstance(value, int) else parse_budget(value)


def build_constraint(c: ConstraintCfg) -> MemoryConstraint:
    return MemoryConstraint(
        sram_budget_bytes=_bytes(c.budget),
        schedule=c.schedule,
        weights_in_sram=c.weights_in_sram,
        flash_budget_bytes=_bytes(c.flash_budget),
        max_params=c.max_params,
        min_params=c.min_params,
    )


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


def run_pipeline(cfg: SearchRunConfig, *, restart: bool = False) -> dict[str, Any]:
    """Search (resuming when the output holds the same search), report, optionally finetune
    and export. Everything that can be refused is checked before anything is written."""
    output = Path(cfg.output)
    constraint = build_constraint(cfg.constraint)
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
    if restart and output.is_dir():
        shutil.rmtree(output)
    prepare_output(output)
    atomic_write_text(output / "search_config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    log.info(
        "%s search over space '%s' (%s subnets) under %s; fitness = holdout top-1 with inherited weights",
        cfg.search.algorithm, evaluator.space.name, f"{evaluator.space.num_subnets():,}", constraint.describe(),
    )  # fmt: skip
    result = run_search(
        evaluator.space, constraint, evaluator.holdout_top1, cfg.search, output=output, progress=cfg.progress
    )
    summary = report_result(result, evaluator, constraint, output)
    if cfg.finetune.epochs > 0:
        from deploy.finetune import artifacts_text, export_artifacts, finetune_subnet

        model, ft = finetune_subnet(
            evaluator.extract(result.best),
            result.best,
            evaluator.train_cfg,
            cfg.finetune.epochs,
            output / "finetune",
        )
        art = export_artifacts(model, result.best, output, cfg.finetune.layout)
        summary["finetune"] = {
            "epochs": cfg.finetune.epochs,
            "holdout_top1": ft["holdout_top1"]["model"],
            "test_top1": ft["test_top1"]["model"],
            "checkpoint": ft["checkpoint"],
        }
        summary["artifacts"] = art
        summary["text"] += (
            f"\nfinetuned {cfg.finetune.epochs} epoch(s) with the supernet's recipe: holdout top-1 {summary['finetune']['holdout_top1']:.2f}%, "
            f"test top-1 {summary['finetune']['test_top1']:.2f}%\n" + artifacts_text(art, output)
        )
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
