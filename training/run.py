"""Supernet training as one resumable job: build everything from a `TrainConfig`, train, log,
checkpoint each epoch, and report the final holdout and test accuracies.

Randomness of epoch ``e`` is a pure function of ``(seed, rank, e)`` (subnet draws use a
generator seeded by ``(seed, e)``, identical on every rank), so a run resumed from an
epoch checkpoint replays exactly what the uninterrupted run did.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.utils import ModelEmaV3

from search_space.config import SubnetConfig
from search_space.errors import ConfigError
from search_space.space import SearchSpace, load_space
from search_space.supernet import Supernet
from training.checkpoint import atomic_write_text, load_checkpoint, save_checkpoint
from training.config import TrainConfig, save_config
from training.data import build_loaders
from training.distributed import DistInfo, barrier, cleanup, init_distributed
from training.engine import NonFiniteLoss, StepOptions, evaluate, train_one_epoch

log = logging.getLogger("mcunas.train")
CKPT_NAME = "checkpoint.pth"


def resolve_space(spec: str | dict) -> SearchSpace:
    return SearchSpace.from_dict(spec) if isinstance(spec, dict) else load_space(spec)


def seed_epoch(seed: int, rank: int, epoch: int) -> None:
    """Seed the global RNGs (augmentation, dropout, loader workers) for one epoch of one rank."""
    s = int(np.random.SeedSequence([seed, rank, epoch]).generate_state(1)[0])
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def eval_subnets(space: SearchSpace, seed: int, n: int) -> dict[str, SubnetConfig]:
    """min, max and ``n`` random subnets, the same set every epoch."""
    rng = np.random.default_rng([seed, 1_000_003])
    out = {"max": space.max_config(), "min": space.min_config()}
    out.update({f"rand{i}": space.sample(rng) for i in range(n)})
    return out


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    if mode == "off" or (mode == "auto" and device.type == "cpu"):
        return None
    if mode == "bf16":
        return torch.bfloat16
    if device.type != "cuda":
        raise ConfigError("optim.amp=fp16 needs a CUDA device; use bf16 or off on CPU")
    return torch.float16


def setup_logging(output: Path, info: DistInfo) -> None:
    root = logging.getLogger("mcunas")
    root.handlers.clear()
    root.setLevel(logging.INFO if info.is_main else logging.WARNING)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(fmt)
    root.addHandler(stream)
    if info.is_main:
        output.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(output / "train.log")
        fh.setFormatter(fmt)
        root.addHandler(fh)


def _wandb(cfg: TrainConfig, output: Path, info: DistInfo):
    if not (cfg.log.wandb and info.is_main):
        return None
    import wandb

    return wandb.init(
        project=cfg.log.wandb_project, mode=cfg.log.wandb_mode, dir=str(output), config=cfg.to_dict()
    )


def train_supernet(
    cfg: TrainConfig, *, resume: str | None = None, restart: bool = False, check_sync: bool = False
) -> dict[str, Any]:
    """Train (or continue training) a supernet; returns the final summary."""
    space = resolve_space(cfg.space)
    output = Path(cfg.log.output)
    info = init_distributed(cfg.device)
    try:
        return _train(cfg, space, output, info, resume, restart, check_sync)
    finally:
        cleanup(info)


def _train(cfg, space, output, info, resume, restart, check_sync) -> dict[str, Any]:
    ckpt_path = output / CKPT_NAME
    dtype = amp_dtype(cfg.optim.amp, info.device)  # validated before anything is written
    if restart and info.is_main and output.exists():
        shutil.rmtree(output)
    barrier(info)
    ckpt = None
    if resume is not None:
        ckpt = load_checkpoint(resume, space)
    elif ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path, space)
    loaders = build_loaders(cfg.data, space.img_size, space.num_classes, distributed=info.distributed)
    setup_logging(output, info)
    if info.is_main:
        save_config(cfg, output / "config.yaml")

    seed_epoch(cfg.seed, info.rank, 1_000_000)  # model initialisation
    model = Supernet(space, drop_path_rate=cfg.model.drop_path).to(info.device)
    if cfg.model.init_from and ckpt is None:
        from search_space.svd_init import init_from_dense, load_dense_state_dict

        skipped = init_from_dense(model, load_dense_state_dict(cfg.model.init_from))
        log.info("initialised from %s by truncated SVD (skipped: %s)", cfg.model.init_from, skipped or "none")
    global_batch = cfg.data.batch_size * info.world_size
    lr = cfg.optim.lr * global_batch / cfg.optim.lr_base_batch
    optimizer = create_optimizer_v2(model, opt=cfg.optim.opt, lr=lr, weight_decay=cfg.optim.weight_decay)
    steps_per_epoch = len(loaders.train)
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
    scaler = torch.amp.GradScaler("cuda") if dtype is torch.float16 else None
    ema = ModelEmaV3(model, decay=cfg.optim.ema_decay) if cfg.optim.ema else None
    start_epoch = 0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        if ema is not None and ckpt.get("ema"):
            ema.load_state_dict(ckpt["ema"])
        start_epoch = ckpt["epoch"]
        log.info("resuming from %s at epoch %d", resume or ckpt_path, start_epoch)
    net = model
    if info.distributed:
        ids = [info.device.index] if info.device.type == "cuda" else None
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)
    loss_fn = SoftTargetCrossEntropy() if loaders.mixup else LabelSmoothingCrossEntropy(cfg.data.smoothing)
    subnets = eval_subnets(space, cfg.seed, cfg.eval.num_subnets)
    if info.is_main:
        atomic_write_text(
            output / "eval_subnets.json", json.dumps({k: v.to_dict() for k, v in subnets.items()})
        )
    run = _wandb(cfg, output, info)
    opts = StepOptions(cfg.optim.clip_grad, dtype, scaler, check_sync, cfg.log.progress)
    log.info(
        "space '%s': %s subnets, supernet %.2fM params; %d train images, %d steps/epoch, global batch %d, lr %.2e",
        space.name, f"{space.num_subnets():,}", sum(p.numel() for p in model.parameters()) / 1e6,
        len(loaders.train.dataset), steps_per_epoch, global_batch, lr,
    )  # fmt: skip
    t0 = time.perf_counter()
    for epoch in range(start_epoch, cfg.optim.epochs):
        seed_epoch(cfg.seed, info.rank, epoch)
        if hasattr(loaders.train.sampler, "set_epoch"):
            loaders.train.sampler.set_epoch(epoch)
        rng = np.random.default_rng([cfg.seed, epoch])
        draws: dict[int, list[SubnetConfig]] = {}

        def subnets_for_step(step: int, rng=rng, draws=draws) -> list[SubnetConfig]:
            if step not in draws:
                rand = space.sample(rng)
                draws[step] = [space.max_config(), space.min_config(), rand] if cfg.optim.sandwich else [rand]
            return draws[step]

        try:
            meters = train_one_epoch(
                net, loaders.train, optimizer, loss_fn, subnets_for_step, epoch=epoch, info=info,
                scheduler=scheduler, mixup=loaders.mixup, ema=ema, opts=opts,
            )  # fmt: skip
        except NonFiniteLoss as exc:
            raise NonFiniteLoss(f"{exc}; stopped. The last good checkpoint ({ckpt_path}) is intact") from None
        record: dict[str, Any] = {"epoch": epoch + 1, **{k: round(v, 6) for k, v in meters.items()}}
        if info.is_main and ((epoch + 1) % cfg.eval.every == 0 or epoch + 1 == cfg.optim.epochs):
            eval_model = ema.module if ema is not None else model
            record["holdout_top1"] = evaluate(eval_model, loaders.holdout, subnets, info.device, dtype)
            log.info(
                "epoch %d/%d loss %.4f lr %.2e %.0f img/s | holdout top-1 max %.2f min %.2f",
                epoch + 1, cfg.optim.epochs, meters["loss"], meters["lr"], meters["img_s"],
                record["holdout_top1"]["max"], record["holdout_top1"]["min"],
            )  # fmt: skip
        if info.is_main:
            save_checkpoint(
                ckpt_path, space=space, config=cfg.to_dict(), epoch=epoch + 1, model=model.state_dict(),
                optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                scaler=scaler.state_dict() if scaler else None, ema=ema.state_dict() if ema else None,
                metrics=record,
            )  # fmt: skip
            with open(output / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(record) + "\n")
            if run is not None:
                run.log(record, step=epoch + 1)
        barrier(info)
    summary: dict[str, Any] = {}
    if info.is_main:
        final_model = ema.module if ema is not None else model
        extremes = {"max": subnets["max"], "min": subnets["min"]}
        summary = {
            "epochs": cfg.optim.epochs,
            "train_seconds_this_run": round(time.perf_counter() - t0, 1),
            "holdout_top1": evaluate(final_model, loaders.holdout, extremes, info.device, dtype),
            "test_top1": evaluate(final_model, loaders.test, extremes, info.device, dtype),
            "checkpoint": str(ckpt_path),
        }
        atomic_write_text(output / "final.json", json.dumps(summary, indent=2))
        log.info(
            "final test top-1: max %.2f, min %.2f", summary["test_top1"]["max"], summary["test_top1"]["min"]
        )
        if run is not None:
            run.summary.update(summary)
            run.finish()
    barrier(info)
    return summary
