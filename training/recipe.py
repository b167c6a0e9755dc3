"""The training recipe shared by supernets, finetuned subnets and baselines: timm's optimiser and
scheduler factories, AMP, EMA and the loss, built from one `TrainConfig`, saved and restored
together."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.utils import ModelEmaV3
from torch import nn

from common.errors import ConfigError
from training.config import TrainConfig
from training.distributed import DistInfo


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """auto: fp16 on CUDA, fp32 on CPU; bf16 anywhere; fp16 only on CUDA."""
    if mode == "off" or (mode == "auto" and device.type == "cpu"):
        return None
    if mode == "bf16":
        return torch.bfloat16
    if device.type != "cuda":
        raise ConfigError("optim.amp=fp16 needs a CUDA device; use bf16 or off on CPU")
    return torch.float16


@dataclass
class Recipe:
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler | None
    ema: ModelEmaV3 | None
    loss_fn: nn.Module
    amp_dtype: torch.dtype | None
    lr: float  # after linear scaling with the global batch

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "ema": self.ema.state_dict() if self.ema else None,
        }

    def load_state_dict(self, ckpt: dict[str, Any], steps_per_epoch: int) -> None:
        """Continue after ``ckpt["epoch"]`` epochs. timm's schedulers are pure functions of their
        settings and the step, so the schedule is the one this config builds (a changed
        ``optim.epochs`` is applied, not the saved one) and the lr is set for the next step."""
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.step_update(num_updates=ckpt["epoch"] * steps_per_epoch)
        if self.scaler is not None and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None and ckpt.get("ema"):
            self.ema.load_state_dict(ckpt["ema"])


def build_recipe(
    model: nn.Module, cfg: TrainConfig, info: DistInfo, steps_per_epoch: int, mixup: bool
) -> Recipe:
    """AdamW (or ``optim.opt``) with the lr scaled to the global batch, a per-step cosine
    schedule with warm-up, the AMP scaler, optional EMA and the matching loss."""
    global_batch = cfg.data.batch_size * info.world_size
    lr = cfg.optim.lr * global_batch / cfg.optim.lr_base_batch
    optimizer = create_optimizer_v2(model, opt=cfg.optim.opt, lr=lr, weight_decay=cfg.optim.weight_decay)
    scheduler, _ = create_scheduler_v2(
        optimizer,
        sched=cfg.optim.sched,
        num_epochs=cfg.optim.epochs,
        warmup_epochs=cfg.optim.warmup_epochs,
        warmup_lr=cfg.optim.warmup_lr,
        min_lr=cfg.optim.min_lr,
        step_on_epochs=False,
        updates_per_epoch=steps_per_epoch,
    )
    dtype = amp_dtype(cfg.optim.amp, info.device)
    scaler = torch.amp.GradScaler("cuda") if dtype is torch.float16 else None
    ema = ModelEmaV3(model, decay=cfg.optim.ema_decay) if cfg.optim.ema else None
    loss_fn = SoftTargetCrossEntropy() if mixup else LabelSmoothingCrossEntropy(cfg.data.smoothing)
    return Recipe(optimizer, scheduler, scaler, ema, loss_fn, dtype, lr)
