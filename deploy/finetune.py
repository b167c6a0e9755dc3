"""The searched subnet as a deployable artifact: finetune, ONNX, int8 .tflite + TFLM arena.

``finetune_subnet`` trains the extracted static subnet (inherited weights) for N epochs with
the supernet's own recipe and data (`training.static_train.train_static`: resumable, holdout
and test top-1 at the end). ``export_artifacts`` writes the weights, the ONNX graph (checked
against PyTorch with onnxruntime) and, when the optional deployment stack is importable
(requirements-deploy.txt), the int8 .tflite whose arena tflite-micro measures, printed beside
the memory model's ``tflm`` and ``mcu`` estimates.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from common.errors import ConfigError
from memory_model import format_bytes, peak_sram
from search_space.config import SubnetConfig
from search_space.static import StaticViT
from training.checkpoint import load_checkpoint
from training.config import TrainConfig

if TYPE_CHECKING:
    from search.subnet.evaluator import SupernetEvaluator
    from search.subnet.run import SearchRunConfig

log = logging.getLogger("mcunas.deploy")
DEPLOY_MODULES = ("litert_torch", "ai_edge_quantizer", "tflite_micro")
ONNX_MODULES = ("onnx", "onnxscript", "onnxruntime")


def finetune_config(train_cfg: TrainConfig, epochs: int, output: str | Path) -> TrainConfig:
    """The supernet's recipe for ``epochs`` epochs into ``output`` (warm-up capped below epochs)."""
    if epochs < 1:
        raise ConfigError(f"finetune epochs must be >= 1, got {epochs}")
    optim = dataclasses.replace(
        train_cfg.optim, epochs=epochs, warmup_epochs=min(train_cfg.optim.warmup_epochs, epochs - 1)
    )
    log_cfg = dataclasses.replace(train_cfg.log, output=str(output))
    return dataclasses.replace(train_cfg, optim=optim, log=log_cfg)


def finetune_subnet(
    initial: nn.Module, cfg: SubnetConfig, train_cfg: TrainConfig, epochs: int, output: str | Path
) -> tuple[StaticViT, dict[str, Any]]:
    """Train ``initial`` (the extracted subnet) ``epochs`` epochs; rerunning resumes.
    Returns the trained model and the training summary (holdout/test top-1 of ``model``)."""
    from training.static_train import train_static

    ft_cfg = finetune_config(train_cfg, epochs, output)
    state = {k: v.detach().clone() for k, v in initial.state_dict().items()}

    def build_model() -> StaticViT:
        model = StaticViT(cfg)
        model.load_state_dict(state)
        return model

    summary = train_static(
        build_model,
        ft_cfg,
        img_size=cfg.img_size,
        num_classes=cfg.num_classes,
        describe={"subnet": cfg.to_dict()},
    )
    model = StaticViT(cfg)
    model.load_state_dict(load_checkpoint(Path(output) / "checkpoint.pth")["model"])
    return model.eval(), summary


def save_state_dict(model: nn.Module, path: str | Path) -> Path:
    """The bare weights (loadable with ``torch.load(..., weights_only=True)``), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, path)
    return path


def missing_modules(names: tuple[str, ...]) -> list[str]:
    return [n for n in names if importlib.util.find_spec(n) is None]


def memory_estimates(cfg: SubnetConfig) -> dict[str, int]:
    """Peak SRAM of ``cfg`` under every schedule (bytes)."""
    return {
        "paper": peak_sram(cfg, "paper").peak_bytes,
        "mcu_weights_in_sram": peak_sram(cfg, "mcu", weights_in_sram=True).peak_bytes,
        "mcu_weights_in_flash": peak_sram(cfg, "mcu", weights_in_sram=False).peak_bytes,
        "tflm": peak_sram(cfg, "tflm").peak_bytes,
    }


def export_tflite(model: nn.Module, cfg: SubnetConfig, path: Path) -> dict[str, Any]:
    """int8 .tflite + tflite-micro arena, or the reason it was skipped."""
    missing = missing_modules(DEPLOY_MODULES)
    if missing:
        return {
            "skipped": f"the int8 .tflite export and the tflite-micro measurement need the deployment "
            f"requirements (requirements-deploy.txt, in its own venv such as .venv-deploy; missing here: "
            f"{', '.join(missing)})"
        }
    from deploy.export import check_exportable, export_int8
    from deploy.tflm_measure import measure_arena

    try:
        check_exportable(cfg)
    except ConfigError as err:
        return {"skipped": f"no .tflite: {err}"}
    model_bytes = export_int8(model, cfg, path)
    arena = measure_arena(model_bytes)
    return {
        "path": str(path),
        "size_bytes": len(model_bytes),
        "arena_head_bytes": arena.head_bytes,
        "arena_tail_bytes": arena.tail_bytes,
        "arena_total_bytes": arena.total_bytes,
    }


def export_artifacts(
    model: nn.Module, cfg: SubnetConfig, output: str | Path, layout: str = "nchw"
) -> dict[str, Any]:
    """Weights, ONNX (checked with onnxruntime) and, if possible, the int8 .tflite."""
    output = Path(output)
    out: dict[str, Any] = {"weights": str(save_state_dict(model, output / "model.pt"))}
    missing = missing_modules(ONNX_MODULES)
    if missing:
        out["onnx"] = {"skipped": f"ONNX export needs {', '.join(missing)} (requirements.txt)"}
    else:
        from deploy.onnx_export import export_onnx, max_abs_diff

        path = export_onnx(model, cfg, output / "model.onnx", layout)
        out["onnx"] = {
            "path": str(path),
            "layout": layout,
            "max_abs_diff": max_abs_diff(model, cfg, path, layout),
        }
    out["tflite"] = export_tflite(model, cfg, output / "model_int8.tflite")
    out["estimates_bytes"] = memory_estimates(cfg)
    return out


def artifacts_text(art: dict[str, Any], output: str | Path) -> str:
    """Human summary of `export_artifacts`' result, measured arena beside the estimates."""
    est = art["estimates_bytes"]
    lines = [f"weights: {art['weights']}"]
    onnx = art["onnx"]
    if "skipped" in onnx:
        lines.append(f"onnx: skipped: {onnx['skipped']}")
    else:
        lines.append(
            f"onnx: {onnx['path']} (input 'image' {onnx['layout'].upper()} float32, dynamic batch; "
            f"max |onnxruntime - torch| = {onnx['max_abs_diff']:.1e})"
        )
    tfl = art["tflite"]
    if "skipped" in tfl:
        weights = Path(art["weights"])
        lines += [
            f"int8 .tflite: skipped: {tfl['skipped']}",
            "  to make it, run in the deployment venv:",
            f"    .venv-deploy/bin/python -m deploy.export --subnet {Path(output) / 'best_subnet.yaml'} "
            f"--checkpoint {weights} --out {weights.with_name('model_int8.tflite')}",
            f"    .venv-deploy/bin/python -m deploy.tflm_measure {weights.with_name('model_int8.tflite')}",
        ]
    else:
        lines.append(f"int8 .tflite: {tfl['path']} ({tfl['size_bytes']:,} bytes)")
        lines.append(
            f"  tflite-micro arena: head {tfl['arena_head_bytes']:,} B ({format_bytes(tfl['arena_head_bytes'])}), "
            f"tail {tfl['arena_tail_bytes']:,} B, total {tfl['arena_total_bytes']:,} B"
        )
    lines.append(
        f"  estimates: tflm {est['tflm']:,} B ({format_bytes(est['tflm'])}) | mcu "
        f"{est['mcu_weights_in_sram']:,} B weights in SRAM, {est['mcu_weights_in_flash']:,} B weights in flash"
        f" | paper {est['paper']:,} B"
    )
    return "\n".join(lines)


def finetune_best(
    summary: dict[str, Any], best: SubnetConfig, evaluator: SupernetEvaluator, cfg: SearchRunConfig
) -> dict[str, Any]:
    """After a subnet search: finetune the best subnet ``cfg.finetune.epochs`` epochs with the
    supernet's recipe and export it (ONNX, int8 .tflite when available); the summary gains
    ``finetune`` and ``artifacts``. Nothing happens for 0 epochs."""
    if cfg.finetune.epochs <= 0:
        return summary
    output = Path(cfg.output)
    model, ft = finetune_subnet(
        evaluator.extract(best), best, evaluator.train_cfg, cfg.finetune.epochs, output / "finetune"
    )
    art = export_artifacts(model, best, output, cfg.finetune.layout)
    summary["finetune"] = {
        "epochs": cfg.finetune.epochs,
        "holdout_top1": ft["holdout_top1"]["model"],
        "test_top1": ft["test_top1"]["model"],
        "checkpoint": ft["checkpoint"],
    }
    summary["artifacts"] = art
    summary["text"] += (
        f"\nfinetuned {cfg.finetune.epochs} epoch(s) with the supernet's recipe: holdout top-1 "
        f"{summary['finetune']['holdout_top1']:.2f}%, test top-1 {summary['finetune']['test_top1']:.2f}%\n"
        + artifacts_text(art, output)
    )
    return summary
