"""Training and evaluation loops for the supernet: pure loops that return averaged meters."""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from search_space.config import SubnetConfig
from training.distributed import DistInfo, all_equal, mean_across


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite; the run stops before anything is saved from it."""


@dataclass
class StepOptions:
    clip_grad: float | None = None
    amp_dtype: torch.dtype | None = None  # autocast dtype, None = fp32
    scaler: torch.amp.GradScaler | None = None  # fp16 on CUDA only
    check_sync: bool = False  # verify every rank trains the same subnet (one all-reduce per step)
    progress: bool = True


def unwrap(model: nn.Module) -> nn.Module:
    """The supernet inside a DDP (or EMA) wrapper."""
    return model.module if hasattr(model, "module") else model


def _stable_id(cfgs: list[SubnetConfig | None]) -> int:
    """An integer naming the step's subnets identically in every process."""
    text = "|".join("static" if c is None else c.digest() for c in cfgs)
    return int(hashlib.sha1(text.encode()).hexdigest()[:15], 16)


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def train_one_epoch(
    model: nn.Module,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    subnets_for_step: Callable[[int], list[SubnetConfig]] | None,
    *,
    epoch: int,
    info: DistInfo,
    scheduler=None,
    mixup: Callable | None = None,
    ema=None,
    opts: StepOptions | None = None,
) -> dict[str, float]:
    """One epoch; each step trains the subnets ``subnets_for_step(global_step)`` returns (one
    random subnet, or max + min + random for the sandwich rule) with one optimiser step. With
    ``subnets_for_step=None`` the model is an ordinary (static) network trained as it is."""
    opts = opts or StepOptions()
    model.train()
    steps_per_epoch = len(loader)
    total_loss, images, start = 0.0, 0, time.perf_counter()
    bar = tqdm(
        loader, desc=f"epoch {epoch}", disable=None if (opts.progress and info.is_main) else True, leave=False
    )
    for i, (x, y) in enumerate(bar):
        step = epoch * steps_per_epoch + i
        x, y = x.to(info.device, non_blocking=True), y.to(info.device, non_blocking=True)
        if mixup is not None:
            x, y = mixup(x, y)
        cfgs = subnets_for_step(step) if subnets_for_step is not None else [None]
        if opts.check_sync and not all_equal(info, _stable_id(cfgs)):
            raise RuntimeError(f"ranks sampled different subnets at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss = 0.0
        with _autocast(info.device, opts.amp_dtype):
            for cfg in cfgs:
                if cfg is not None:
                    unwrap(model).set_active(cfg)
                loss = loss + loss_fn(model(x), y)
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise NonFiniteLoss(
                f"loss is {loss_value} at epoch {epoch} step {i} (subnets {[c.short() for c in cfgs]})"
            )
        if opts.scaler is not None:
            opts.scaler.scale(loss).backward()
            opts.scaler.unscale_(optimizer)
        else:
            loss.backward()
        if opts.clip_grad is not None:
            nn.utils.clip_grad_norm_(model.parameters(), opts.clip_grad)
        if opts.scaler is not None:
            opts.scaler.step(optimizer)
            opts.scaler.update()
        else:
            optimizer.step()
        if ema is not None:
            ema.update(unwrap(model), step=step)
        if scheduler is not None:
            scheduler.step_update(num_updates=step + 1)
        total_loss += loss_value * x.shape[0]
        images += x.shape[0]
        lr = optimizer.param_groups[0]["lr"]
        bar.set_postfix(
            loss=f"{loss_value:.3f}", lr=f"{lr:.2e}", img_s=f"{images / (time.perf_counter() - start):.0f}"
        )
    seconds = time.perf_counter() - start
    loss_avg, img_s = mean_across(info, [total_loss / max(images, 1), images / seconds])
    return {
        "loss": loss_avg,
        "lr": optimizer.param_groups[0]["lr"],
        "img_s": img_s * info.world_size,
        "seconds": seconds,
    }


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    subnets: dict[str, SubnetConfig | None],
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Top-1 accuracy (%) of each named subnet on ``loader`` (``None``: the model as it is). One
    pass over the loader: every subnet sees each batch in turn, so images are decoded once."""
    net = unwrap(model)
    was_training = net.training
    net.eval()
    correct = dict.fromkeys(subnets, 0)
    total = 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        for label, cfg in subnets.items():
            if cfg is not None:
                net.set_active(cfg)
            with _autocast(device, amp_dtype):
                pred = net(x).argmax(dim=-1)
            correct[label] += int((pred == y).sum())
        total += y.numel()
    net.train(was_training)
    return {label: 100.0 * c / max(total, 1) for label, c in correct.items()}
