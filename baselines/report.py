"""The comparison table and plot: baselines and searched subnets, peak SRAM vs accuracy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import yaml

from memory_model.budget import format_bytes
from memory_model.profile import profile_model
from memory_model.schedules import peak_sram
from search_space.config import SubnetConfig
from search_space.errors import ConfigError
from search_space.static import StaticViT

_SEARCH_FILES = ("best.yaml", "best.json", "summary.json", "result.json", "final.json")
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


def load_searched(path: str | Path) -> list[dict[str, Any]]:
    """Searched subnets from a subnet YAML/JSON (``SubnetConfig.to_dict``, bare or under
    ``subnet``/``best``) or a search output directory holding one of :data:`_SEARCH_FILES`."""
    path = Path(path)
    files = [path] if path.is_file() else [path / f for f in _SEARCH_FILES if (path / f).is_file()]
    if not path.exists():
        raise ConfigError(
            f"--searched {path} does not exist; pass a subnet YAML or a search output directory"
        )
    found: list[dict[str, Any]] = []
    for f in files:
        data = yaml.safe_load(f.read_text())
        for k, (cfg, top1) in enumerate(_subnets_in(data)):
            if all(r["subnet"] != cfg.to_dict() for r in found):
                found.append(
                    {"label": f"searched{'' if k == 0 else k}", "subnet": cfg.to_dict(), "test_top1": top1}
                )
        if found:
            break
    if not found:
        raise ConfigError(f"no subnet config found in {path}; expected SubnetConfig fields (embed_dim, ...)")
    return found


def profile_searched(entry: dict[str, Any]) -> dict[str, Any]:
    """A searched subnet's row: the profiler on its StaticViT (equals the config's tflm number)."""
    cfg = SubnetConfig.from_dict(entry["subnet"])
    torch.manual_seed(0)
    report = profile_model(StaticViT(cfg), cfg.img_size, cfg.in_chans, name=entry["label"])
    return {
        **report.to_dict(),
        "model": f"{entry['label']} ({cfg.short()})",
        "family": "searched",
        "img_size": cfg.img_size,
        "tflm_config_bytes": peak_sram(cfg, "tflm").peak_bytes,
        "test_top1": entry.get("test_top1"),
    }


def _kb(n: int) -> str:
    return f"{n / 1024:.1f}"


def table_markdown(rows: list[dict[str, Any]], budgets_bytes: list[int]) -> str:
    """Markdown table; one "fits" column per budget (peak SRAM under the TFLM planner)."""
    head = ["model", "px", "params (M)", "MFLOPs", "flash (KB)", "peak SRAM (KB)", "max-live (KB)"]
    head += [f"fits {format_bytes(b)}" for b in budgets_bytes] + ["test top-1 (%)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(rows, key=lambda r: (r["family"] != "searched", r["family"], r["peak_bytes"])):
        top1 = r.get("test_top1")
        cells = [
            r["model"], str(r["img_size"]), f"{r['params'] / 1e6:.2f}", f"{r['flops'] / 1e6:.0f}",
            _kb(r["flash_bytes"]), _kb(r["peak_bytes"]), _kb(r["max_live_bytes"]),
            *("yes" if r["peak_bytes"] <= b else "no" for b in budgets_bytes),
            "–" if top1 is None else f"{top1:.1f}",
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], budget_bytes: int, path: str | Path) -> Path:
    """Accuracy (or, with no accuracies yet, MFLOPs) vs peak SRAM, with the budget line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trained = [r for r in rows if r.get("test_top1") is not None]
    use_acc = bool(trained)
    shown = trained if use_acc else rows
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for family in sorted({r["family"] for r in shown}):
        pts = [r for r in shown if r["family"] == family]
        xs = [r["peak_bytes"] / 1024 for r in pts]
        ys = [r["test_top1"] if use_acc else r["flops"] / 1e6 for r in pts]
        marker = "*" if family == "searched" else "o"
        ax.scatter(xs, ys, label=family, marker=marker, s=140 if family == "searched" else 36)
        for r, x, y in zip(pts, xs, ys, strict=True):
            ax.annotate(f"{r['model'].split(' ')[0]}@{r['img_size']}", (x, y), fontsize=6, alpha=0.7)
    ax.axvline(budget_bytes / 1024, color="red", linestyle="--", label=f"budget {format_bytes(budget_bytes)}")
    ax.set_xscale("log")
    if not use_acc:
        ax.set_yscale("log")
    ax.set_xlabel("peak SRAM, int8, TFLM planner (KB)")
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
    rows: list[dict[str, Any]], budgets_bytes: list[int], output: str | Path
) -> dict[str, Path]:
    """results.json, table.md and plot.png in ``output``."""
    from training.checkpoint import atomic_write_text

    output = Path(output)
    paths = {"json": output / "results.json", "table": output / "table.md", "plot": output / "plot.png"}
    atomic_write_text(paths["json"], json.dumps({"budgets_bytes": budgets_bytes, "rows": rows}, indent=1))
    atomic_write_text(paths["table"], table_markdown(rows, budgets_bytes))
    plot(rows, budgets_bytes[0], paths["plot"])
    return paths
