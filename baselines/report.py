"""The comparison table and plot: baselines and searched subnets, peak SRAM vs accuracy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import yaml

from common.errors import ConfigError
from common.strict_yaml import read_yaml
from memory_model.budget import format_bytes
from memory_model.profile import profile_model
from memory_model.schedules import peak_sram
from search_space.config import SubnetConfig
from search_space.static import StaticViT

_SUBNET_FILES = ("best_subnet.yaml", "best.yaml", "best.json")
_TOP1_KEYS = ("test_top1", "top1", "accuracy", "holdout_top1")


def _top1(d: dict[str, Any]) -> float | None:
    for key in _TOP1_KEYS:
        v = d.get(key)
        if isinstance(v, dict) and v:
            v = next(iter(v.values()))
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    return None


def _subnets_in(d: Any) -> list[tuple[SubnetConfig, float | None]]:
    """Subnet configs (with a top-1 if recorded next to them) found in a loaded YAML/JSON value."""
    if not isinstance(d, dict):
        return []
    if "embed_dim" in d and "patch_size" in d:
        return [(SubnetConfig.from_dict(d), None)]
    out = []
    for key in ("subnet", "best", "config", "cfg"):
        if key in d:
            out += [(cfg, top1 if top1 is not None else _top1(d)) for cfg, top1 in _subnets_in(d[key])]
    return out


def _from_search_dir(path: Path) -> dict[str, Any] | None:
    """The entry of an ``evolution_search.py`` output directory (report.json + search_config.yaml):
    the finetuned test top-1 when it was finetuned (else the inherited one), and the schedule,
    weight placement and budget it was searched under."""
    report_path, cfg_path = path / "report.json", path / "search_config.yaml"
    if not (report_path.is_file() and cfg_path.is_file()):
        return None
    report = json.loads(report_path.read_text())
    constraint = (yaml.safe_load(cfg_path.read_text()) or {}).get("constraint", {})
    finetune = report.get("finetune") or {}
    budget = constraint.get("budget")
    return {
        "label": f"searched@{format_bytes(budget)}" if budget else "searched",
        "subnet": report["best"],
        "test_top1": finetune.get("test_top1", report.get("test_top1")),
        "inherited_test_top1": report.get("test_top1"),
        "finetune_epochs": finetune.get("epochs", 0),
        "schedule": constraint.get("schedule", "tflm"),
        "weights_in_sram": constraint.get("weights_in_sram", True),
        "budget_bytes": budget,
    }


def load_searched(path: str | Path) -> list[dict[str, Any]]:
    """Searched subnets from an ``evolution_search.py`` output directory, or from a subnet
    YAML/JSON (``SubnetConfig.to_dict``, bare or under ``subnet``/``best``, with an optional
    top-1 beside it; such a subnet is deployed under the ``tflm`` schedule)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(
            f"--searched {path} does not exist; pass a subnet YAML or a search output directory"
        )
    if path.is_dir() and (entry := _from_search_dir(path)) is not None:
        return [entry]
    files = [path] if path.is_file() else [path / f for f in _SUBNET_FILES if (path / f).is_file()]
    found: list[dict[str, Any]] = []
    for f in files:
        data = read_yaml(f, "subnet")
        for k, (cfg, top1) in enumerate(_subnets_in(data)):
            if all(r["subnet"] != cfg.to_dict() for r in found):
                label = f"searched{'' if k == 0 else k}"
                found.append({"label": label, "subnet": cfg.to_dict(), "test_top1": top1})
        if found:
            break
    if not found:
        raise ConfigError(
            f"no subnet config found in {path}; pass an evolution_search.py output directory or a "
            "YAML with SubnetConfig fields (embed_dim, ...)"
        )
    return found


def profile_searched(entry: dict[str, Any]) -> dict[str, Any]:
    """A searched subnet's row: the profiler on its StaticViT (TFLM planner: the head, equal to
    the config's) with the config's whole TFLM arena (measured rules, `memory_model.tflm`), plus
    its peak under the schedule it was searched for, which decides the fits."""
    cfg = SubnetConfig.from_dict(entry["subnet"])
    torch.manual_seed(0)
    report = profile_model(StaticViT(cfg), cfg.img_size, cfg.in_chans, name=entry["label"])
    tflm = peak_sram(cfg, "tflm")
    schedule = entry.get("schedule", "tflm")
    options = {"weights_in_sram": entry.get("weights_in_sram", True)} if schedule == "mcu" else {}
    return {
        **report.to_dict(),
        "model": f"{entry['label']} ({cfg.short()})",
        "family": "searched",
        "img_size": cfg.img_size,
        "tail_bytes": tflm.options["tail_bytes"],
        "arena_bytes": tflm.peak_bytes,
        "tflm_config_bytes": tflm.peak_bytes,
        "schedule": schedule,
        "runtime_peak_bytes": peak_sram(cfg, schedule, **options).peak_bytes,
        "test_top1": entry.get("test_top1"),
        "inherited_test_top1": entry.get("inherited_test_top1"),
        "finetune_epochs": entry.get("finetune_epochs"),
        "budget_bytes": entry.get("budget_bytes"),
    }


def runtime_peak(row: dict[str, Any]) -> int:
    """The peak that decides whether a row fits: its own schedule's (for the baselines TFLM's
    whole arena, head + tail; the head alone for rows profiled before the tail was modelled)."""
    return int(row.get("runtime_peak_bytes", row.get("arena_bytes") or row["peak_bytes"]))


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}"


def _kb(n: int) -> str:
    return f"{n / 1024:.1f}"


def table_markdown(rows: list[dict[str, Any]], budgets_bytes: list[int]) -> str:
    """Markdown table; one "fits" column per budget, judged on each row's runtime peak (TFLM's
    whole arena for the baselines, the searched schedule for searched subnets); the TFLM head
    (planned activations) and its max-live bound beside it."""
    head = ["model", "px", "params (M)", "MFLOPs", "flash (KB)", "TFLM head (KB)", "max-live (KB)"]
    head += ["TFLM arena (KB)"]
    head += ["runtime", "runtime peak (KB)"]
    head += [f"fits {format_bytes(b)}" for b in budgets_bytes]
    head += ["test top-1 (%)", "from scratch (%)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(rows, key=lambda r: (r["family"] != "searched", r["family"], runtime_peak(r))):
        top1 = r.get("test_top1")
        cells = [
            r["model"], str(r["img_size"]), f"{r['params'] / 1e6:.2f}", f"{r['flops'] / 1e6:.0f}",
            _kb(r["flash_bytes"]), _kb(r["peak_bytes"]), _kb(r["max_live_bytes"]),
            _kb(r["arena_bytes"]) if r.get("arena_bytes") else "–",
            r.get("schedule", "tflm"), _kb(runtime_peak(r)),
            *("yes" if runtime_peak(r) <= b else "no" for b in budgets_bytes),
            "–" if top1 is None else f"{top1:.1f}",
            _pct(r.get("scratch_test_top1", top1 if r["family"] != "searched" else None)),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def best_per_budget(
    rows: list[dict[str, Any]], budgets_bytes: list[int], flash_budget_bytes: int | None = None
) -> str:
    """Markdown: per SRAM budget, the most accurate trained baseline that fits (and, with a flash
    budget, the most accurate that also fits in flash) beside the subnet searched for that budget
    (or, without one, the most accurate fitting searched row)."""
    flash_head = (
        []
        if flash_budget_bytes is None
        else [f"best baseline also ≤ {format_bytes(flash_budget_bytes)} flash"]
    )
    head = ["SRAM budget", "best baseline (px)", "top-1 (%)", "runtime peak (KB)", "flash (KB)", *flash_head,
            "searched subnet", "top-1 (%)", "from scratch (%)", "runtime peak (KB)", "flash (KB)"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for b in budgets_bytes:
        fit = [r for r in rows if runtime_peak(r) <= b and r.get("test_top1") is not None]
        bases = [r for r in fit if r["family"] != "searched"]
        base = max(bases, key=lambda r: r["test_top1"], default=None)
        own = [r for r in fit if r["family"] == "searched"]
        mine = max(own, key=lambda r: (r.get("budget_bytes") == b, r["test_top1"]), default=None)
        cells = [format_bytes(b)]
        cells += (
            ["–"] * 4
            if base is None
            else [f"{base['model']} ({base['img_size']})", _pct(base["test_top1"]), _kb(runtime_peak(base)),
                  _kb(base["flash_bytes"])]
        )  # fmt: skip
        if flash_budget_bytes is not None:
            in_flash = [r for r in bases if r["flash_bytes"] <= flash_budget_bytes]
            both = max(in_flash, key=lambda r: r["test_top1"], default=None)
            cells.append(
                "none fits"
                if both is None
                else f"{both['model']} ({both['img_size']}) {both['test_top1']:.1f}%"
            )
        cells += (
            ["–"] * 5
            if mine is None
            else [
                mine["model"], _pct(mine["test_top1"]), _pct(mine.get("scratch_test_top1")),
                _kb(runtime_peak(mine)), _kb(mine["flash_bytes"]),
            ]
        )  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], budgets_bytes: list[int], path: str | Path) -> Path:
    """Accuracy (or, with no accuracies yet, MFLOPs) vs peak SRAM, one line per budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trained = [r for r in rows if r.get("test_top1") is not None]
    use_acc = bool(trained)
    shown = trained if use_acc else rows
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for family in sorted({r["family"] for r in shown}):
        pts = [r for r in shown if r["family"] == family]
        xs = [runtime_peak(r) / 1024 for r in pts]
        ys = [r["test_top1"] if use_acc else r["flops"] / 1e6 for r in pts]
        marker = "*" if family == "searched" else "o"
        ax.scatter(xs, ys, label=family, marker=marker, s=140 if family == "searched" else 36)
        for r, x, y in zip(pts, xs, ys, strict=True):
            ax.annotate(f"{r['model'].split(' ')[0]}@{r['img_size']}", (x, y), fontsize=6, alpha=0.7)
    for k, b in enumerate(sorted(budgets_bytes)):
        ax.axvline(
            b / 1024, color="red", linestyle="--", alpha=1.0 - 0.25 * k, label=f"budget {format_bytes(b)}"
        )
    ax.set_xscale("log")
    if not use_acc:
        ax.set_yscale("log")
    ax.set_xlabel("peak SRAM, int8 (KB): TFLM arena for baselines, searched schedule for ours")
    ax.set_ylabel("test top-1 (%)" if use_acc else "MFLOPs (not trained yet)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path


def write_results(
    rows: list[dict[str, Any]],
    budgets_bytes: list[int],
    output: str | Path,
    flash_budget_bytes: int | None = None,
) -> dict[str, Path]:
    """results.json, table.md and plot.png in ``output``."""
    from common.files import atomic_write_text

    output = Path(output)
    paths = {"json": output / "results.json", "table": output / "table.md", "plot": output / "plot.png"}
    data = {"budgets_bytes": budgets_bytes, "flash_budget_bytes": flash_budget_bytes, "rows": rows}
    atomic_write_text(paths["json"], json.dumps(data, indent=1))
    table = table_markdown(rows, budgets_bytes)
    if any(r.get("test_top1") is not None for r in rows):
        table += "\n" + best_per_budget(rows, budgets_bytes, flash_budget_bytes)
    atomic_write_text(paths["table"], table)
    plot(rows, budgets_bytes, paths["plot"])
    return paths
