"""The epoch loop every training job shares (supernets, finetuned subnets, baselines).

A job trains ``cfg.optim.epochs`` epochs into ``cfg.log.output``: one checkpoint per epoch
(atomic, self-describing), one JSON line per epoch in ``metrics.jsonl``, holdout evaluation of
a fixed set of (sub)networks, and ``final.json`` with holdout and test top-1 at the end.
Randomness of epoch ``e`` is a pure function of ``(seed, rank, e)`` (subnet draws use a
generator seeded by ``(seed, e)``, identical on every rank), so a run resumed from an epoch
checkpoint replays exactly what the uninterrupted run did.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from common.files import atomic_write_text
from common.logs import setup_logging as common_setup_logging
from search_space.config import SubnetConfig
from search_space.space import SearchSpace
from training.checkpoint import save_checkpoint
from training.config import TrainConfig
from training.data import Loaders
from training.distributed import DistInfo, barrier
from training.engine import NonFiniteLoss, StepOptions, evaluate, train_one_epoch
from training.recipe import Recipe

log = logging.getLogger("mcunas.train")
CKPT_NAME = "checkpoint.pth"
SubnetSampler = Callable[[np.random.Generator], list[SubnetConfig]]


def seed_epoch(seed: int, rank: int, epoch: int) -> None:
    """Seed the global RNGs (augmentation, dropout, loader workers) for one epoch of one rank."""
    s = int(np.random.SeedSequence([seed, rank, epoch]).generate_state(1)[0])
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def setup_logging(output: Path, info: DistInfo) -> None:
    """Log to stderr and, on rank 0, to ``<output>/train.log``; other ranks only warn."""
    if info.is_main:
        common_setup_logging(output / "train.log")
    else:
        common_setup_logging(level=logging.WARNING)


def _wandb(cfg: TrainConfig, output: Path, info: DistInfo):
    if not (cfg.log.wandb and info.is_main):
        return None
    import wandb

    return wandb.init(
        project=cfg.log.wandb_project, mode=cfg.log.wandb_mode, dir=str(output), config=cfg.to_dict()
    )


@dataclass
class Job:
    """What one training job needs besides the config."""

    model: nn.Module  # the bare model (checkpointed and evaluated)
    net: nn.Module  # what is trained: the model or its DDP wrapper
    recipe: Recipe
    loaders: Loaders
    info: DistInfo
    output: Path
    start_epoch: int = 0
    space: SearchSpace | None = None  # supernets: stored in the checkpoint
    describe: dict[str, Any] = field(default_factory=dict)  # static models: what they are
    sampler: SubnetSampler | None = None  # supernets: the subnets of one step
    eval_subnets: dict[str, SubnetConfig | None] = field(default_factory=lambda: {"model": None})
    final_subnets: tuple[str, ...] = ("model",)
    check_sync: bool = False


def fit(job: Job, cfg: TrainConfig) -> dict[str, Any]:
    """Train from ``job.start_epoch`` to ``cfg.optim.epochs``; returns the final summary."""
    info, recipe, loaders, output = job.info, job.recipe, job.loaders, job.output
    ckpt_path = output / CKPT_NAME
    run = _wandb(cfg, output, info)
    opts = StepOptions(cfg.optim.clip_grad, recipe.amp_dtype, recipe.scaler, job.check_sync, cfg.log.progress)
    eval_model = recipe.ema.module if recipe.ema is not None else job.model
    t0 = time.perf_counter()
    for epoch in range(job.start_epoch, cfg.optim.epochs):
        seed_epoch(cfg.seed, info.rank, epoch)
        for sampler in (loaders.train.sampler, loaders.train.batch_sampler):
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)
        try:
            meters = train_one_epoch(
                job.net, loaders.train, recipe.optimizer, recipe.loss_fn, _step_sampler(job, cfg.seed, epoch),
                epoch=epoch, info=info, scheduler=recipe.scheduler, mixup=loaders.mixup, ema=recipe.ema,
                opts=opts,
            )  # fmt: skip
        except NonFiniteLoss as exc:
            kept = (
                f"the last good checkpoint ({ckpt_path}) is intact"
                if ckpt_path.exists()
                else "no checkpoint was written (it diverged in the first epoch): lower optim.lr or set optim.clip_grad"
            )
            raise NonFiniteLoss(f"{exc}; stopped, {kept}") from None
        record: dict[str, Any] = {"epoch": epoch + 1, **{k: round(v, 6) for k, v in meters.items()}}
        if info.is_main and ((epoch + 1) % cfg.eval.every == 0 or epoch + 1 == cfg.optim.epochs):
            top1 = evaluate(eval_model, loaders.holdout, job.eval_subnets, info.device, recipe.amp_dtype)
            record["holdout_top1"] = top1
            log.info(
                "epoch %d/%d loss %.4f lr %.2e %.0f img/s | holdout top-1 %s",
                epoch + 1, cfg.optim.epochs, meters["loss"], meters["lr"], meters["img_s"],
                " ".join(f"{k} {v:.2f}" for k, v in top1.items() if k in job.final_subnets),
            )  # fmt: skip
        if info.is_main:
            save_checkpoint(
                ckpt_path, space=job.space, config=cfg.to_dict(), epoch=epoch + 1, model=job.model.state_dict(),
                metrics=record, **job.describe, **recipe.state_dict(),
            )  # fmt: skip
            with open(output / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(record) + "\n")
            if run is not None:
                run.log(record, step=epoch + 1)
        barrier(info)
    summary: dict[str, Any] = {}
    if info.is_main:
        final = {k: job.eval_subnets[k] for k in job.final_subnets}
        summary = {
            "epochs": cfg.optim.epochs,
            "train_seconds_this_run": round(time.perf_counter() - t0, 1),
            "holdout_top1": evaluate(eval_model, loaders.holdout, final, info.device, recipe.amp_dtype),
            "test_top1": evaluate(eval_model, loaders.test, final, info.device, recipe.amp_dtype),
            "checkpoint": str(ckpt_path),
        }
        atomic_write_text(output / "final.json", json.dumps(summary, indent=2))
        log.info("final test top-1: %s", ", ".join(f"{k} {v:.2f}" for k, v in summary["test_top1"].items()))
        if run is not None:
            run.summary.update(summary)
            run.finish()
    barrier(info)
    return summary


def restore(
    model: nn.Module, recipe: Recipe, ckpt: dict[str, Any] | None, source: object, steps_per_epoch: int
) -> int:
    """Load a checkpoint's model and recipe states; returns the epoch to continue from."""
    if ckpt is None:
        return 0
    model.load_state_dict(ckpt["model"])
    recipe.load_state_dict(ckpt, steps_per_epoch)
    log.info("resuming from %s at epoch %d", source, ckpt["epoch"])
    return ckpt["epoch"]


def wrap_distributed(model: nn.Module, info: DistInfo, find_unused_parameters: bool = False) -> nn.Module:
    """The model wrapped in DDP under torchrun (a supernet leaves inactive weights unused)."""
    if not info.distributed:
        return model
    ids = [info.device.index] if info.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(
        model, device_ids=ids, find_unused_parameters=find_unused_parameters
    )


def _step_sampler(job: Job, seed: int, epoch: int) -> Callable[[int], list[SubnetConfig]] | None:
    """The subnets of each step of one epoch, drawn from a generator seeded by (seed, epoch)."""
    if job.sampler is None:
        return None
    rng = np.random.default_rng([seed, epoch])
    draws: dict[int, list[SubnetConfig]] = {}

    def subnets_for_step(step: int) -> list[SubnetConfig]:
        if step not in draws:
            draws[step] = job.sampler(rng)
        return draws[step]

    return subnets_for_step
