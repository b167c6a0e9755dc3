"""Training an ordinary (static) model with the project's recipe: a searched subnet's
finetune, or a baseline. Same data, optimiser, schedule, checkpoints and resume as the
supernet; the checkpoint records what the model is (``describe``)."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from common.errors import ConfigError
from common.files import prepare_output
from training.checkpoint import load_checkpoint
from training.config import TrainConfig, check_resume, save_config
from training.data import build_loaders
from training.distributed import barrier, cleanup, init_distributed
from training.loop import CKPT_NAME, Job, fit, restore, seed_epoch, setup_logging, wrap_distributed
from training.recipe import amp_dtype, build_recipe

log = logging.getLogger("mcunas.train")


def train_static(
    build_model: Callable[[], nn.Module],
    cfg: TrainConfig,
    *,
    img_size: int,
    num_classes: int,
    describe: dict[str, Any],
    restart: bool = False,
) -> dict[str, Any]:
    """Train ``build_model()`` for ``cfg.optim.epochs`` into ``cfg.log.output``; rerunning
    continues from the checkpoint there (which must describe the same model)."""
    info = init_distributed(cfg.device)
    output = Path(cfg.log.output)
    ckpt_path = output / CKPT_NAME
    try:
        amp_dtype(cfg.optim.amp, info.device)  # validated before anything is written
        if restart and info.is_main and output.is_dir():
            shutil.rmtree(output)
        barrier(info)
        ckpt = load_checkpoint(ckpt_path) if ckpt_path.exists() else None
        if ckpt is not None:
            theirs = {k: ckpt.get(k) for k in describe}
            if theirs != describe:
                raise ConfigError(
                    f"{ckpt_path} holds another model ({theirs}); use a new output directory or --restart"
                )
            check_resume(ckpt["config"], cfg, ckpt_path)
        loaders = build_loaders(cfg.data, img_size, num_classes, distributed=info.distributed)
        if info.is_main:
            prepare_output(output)
        setup_logging(output, info)
        if info.is_main:
            save_config(cfg, output / "config.yaml")
        seed_epoch(cfg.seed, info.rank, 1_000_000)
        model: nn.Module = build_model().to(info.device)
        recipe = build_recipe(model, cfg, info, len(loaders.train), mixup=loaders.mixup is not None)
        start_epoch = restore(model, recipe, ckpt, ckpt_path, len(loaders.train))
        net = wrap_distributed(model, info)
        log.info(
            "static model %s: %.3fM params; %d train images, %d steps/epoch",
            describe, sum(p.numel() for p in model.parameters()) / 1e6, len(loaders.train.dataset),
            len(loaders.train),
        )  # fmt: skip
        job = Job(model, net, recipe, loaders, info, output, start_epoch, describe=describe)
        return fit(job, cfg)
    finally:
        cleanup(info)
