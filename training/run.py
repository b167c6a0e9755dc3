"""Supernet training as one resumable job: build the supernet, data and recipe from a
`TrainConfig` and run the shared epoch loop (`training.loop.fit`)."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import ConfigError
from common.files import atomic_write_text, prepare_output
from search_space.config import SubnetConfig
from search_space.space import SearchSpace, load_space
from search_space.static import init_qkv_
from search_space.supernet import Supernet
from training.checkpoint import load_checkpoint
from training.config import TrainConfig, check_resume, save_config
from training.data import build_loaders
from training.distributed import barrier, cleanup, init_distributed
from training.loop import CKPT_NAME, Job, fit, restore, seed_epoch, setup_logging, wrap_distributed
from training.multiscale import MultiScaleBatchSampler, multiscale_loader
from training.recipe import amp_dtype, build_recipe

log = logging.getLogger("mcunas.train")


def resolve_space(spec: str | dict) -> SearchSpace:
    return SearchSpace.from_dict(spec) if isinstance(spec, dict) else load_space(spec)


def dense_init_state(path: str | Path, target: SearchSpace) -> dict[str, Any]:
    """The dense weights ``model.init_from`` names: a timm ViT/DeiT weights file, or this
    project's checkpoint of a supernet over a dense space (refused when low-rank or when its
    fixed settings differ from ``target``'s)."""
    import pickle

    from search_space.svd_init import check_dense_source, dense_state_from_supernet, load_dense_state_dict
    from training.checkpoint import space_from_checkpoint

    try:
        return load_dense_state_dict(path)
    except pickle.UnpicklingError:  # not plain weights: one of this project's checkpoints, or junk
        ckpt = load_checkpoint(path)
    if ckpt.get("space") is None:
        raise ConfigError(
            f"{path} holds a static model; model.init_from takes a dense supernet or ViT weights"
        )
    space = space_from_checkpoint(ckpt)
    check_dense_source(space, target)
    return dense_state_from_supernet(ckpt["model"], space)


def eval_subnets(space: SearchSpace, seed: int, n: int) -> dict[str, SubnetConfig]:
    """min, max and ``n`` random subnets, the same set every epoch."""
    rng = np.random.default_rng([seed, 1_000_003])
    out = {"max": space.max_config(), "min": space.min_config()}
    out.update({f"rand{i}": space.sample(rng) for i in range(n)})
    return out


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
    amp_dtype(cfg.optim.amp, info.device)  # validated before anything is written
    if cfg.model.init_from and resume is None and (restart or not ckpt_path.exists()):
        from search_space.svd_init import check_init_file

        check_init_file(cfg.model.init_from)  # a missing starting point fails before anything is written
    if restart and info.is_main and output.is_dir():
        shutil.rmtree(output)
    barrier(info)
    ckpt = None
    if resume is not None:
        ckpt = load_checkpoint(resume, space)
    elif ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path, space)
    if ckpt is not None:
        check_resume(ckpt["config"], cfg, resume or ckpt_path)
    loaders = build_loaders(cfg.data, space.img_size, space.num_classes, distributed=info.distributed)
    multiscale = None
    if cfg.data.multiscale:  # MobileViT-style: batch size follows the step's token count
        multiscale = MultiScaleBatchSampler(
            len(loaders.train.dataset), cfg.data.batch_size, space.patch_size, space.img_size,
            cls_token=space.pool != "avg", seed=cfg.seed, rank=info.rank, world_size=info.world_size,
        )  # fmt: skip
        loaders = dataclasses.replace(loaders, train=multiscale_loader(loaders.train, multiscale))
    if info.is_main:
        prepare_output(output)
    setup_logging(output, info)
    if info.is_main:
        save_config(cfg, output / "config.yaml")

    seed_epoch(cfg.seed, info.rank, 1_000_000)  # model initialisation
    model = Supernet(space, drop_path_rate=cfg.model.drop_path).to(info.device)
    init_qkv_(model, cfg.model.qkv_init)
    if cfg.model.init_from and ckpt is None:
        from search_space.svd_init import init_from_dense

        skipped = init_from_dense(model, dense_init_state(cfg.model.init_from, space))
        log.info("initialised from %s by truncated SVD (skipped: %s)", cfg.model.init_from, skipped or "none")
    if cfg.model.init_supernet and ckpt is None:  # warm start from a supernet of another space point
        from search_space.transfer import warm_start
        from training.checkpoint import space_from_checkpoint

        src = load_checkpoint(cfg.model.init_supernet)
        report = warm_start(model, src["model"], space_from_checkpoint(src))
        log.info("warm-started from %s (%s)", cfg.model.init_supernet, report.summary())
    recipe = build_recipe(model, cfg, info, len(loaders.train), mixup=loaders.mixup is not None)
    start_epoch = restore(model, recipe, ckpt, resume or ckpt_path, len(loaders.train))
    net = wrap_distributed(model, info, find_unused_parameters=True)
    subnets = eval_subnets(space, cfg.seed, cfg.eval.num_subnets)
    if info.is_main:
        atomic_write_text(
            output / "eval_subnets.json", json.dumps({k: v.to_dict() for k, v in subnets.items()})
        )
    log.info(
        "space '%s': %s subnets, supernet %.2fM params; %d train images, %d steps/epoch, global batch %d, lr %.2e",
        space.name, f"{space.num_subnets():,}", sum(p.numel() for p in model.parameters()) / 1e6,
        len(loaders.train.dataset), len(loaders.train), cfg.data.batch_size * info.world_size, recipe.lr,
    )  # fmt: skip

    def sampler(rng: np.random.Generator) -> list[SubnetConfig]:
        rand = space.sample(rng)
        cfgs = [space.max_config(), space.min_config(), rand] if cfg.optim.sandwich else [rand]
        return multiscale.constrain(cfgs) if multiscale is not None else cfgs

    job = Job(
        model, net, recipe, loaders, info, output, start_epoch, space=space, sampler=sampler,
        eval_subnets=subnets, final_subnets=("max", "min"), check_sync=check_sync,
    )  # fmt: skip
    return fit(job, cfg)
