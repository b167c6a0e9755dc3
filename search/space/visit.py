"""One space point's visit as a job: train its supernet, then score it (A, R, S).

A job directory holds ``job.json`` (what to do), the training output of `train_supernet`
(``checkpoint.pth``, ``metrics.jsonl``, ``train.yaml``...) and, when done, ``result.json``.
`run_job` is all a launcher calls, in this process, a subprocess, under torchrun or on a
cluster node; rerunning it on a killed job resumes from the job's epoch checkpoint, and a
finished job (``result.json`` present) returns at once.

Scores, all in [0, 1]:

* A: mean holdout top-1 of ``eval_subnets`` subnets of the point that fit the budget, the first
  ones found in a seeded pool of ``eval_pool`` draws; 0 when none fits. The pool depends on the
  seed only, not on the point: every point draws the same embed/depth/heads/MLP choices (with
  its own rank ratio and patch size), so two points whose subnets all fit are scored on the
  same architectures and their A differs by training alone (common random numbers), and every
  visit of a point sees the same subnets. ``A_max``: holdout top-1 of the point's largest subnet, for reference.
* R: share of the point's subnets within the SRAM budget (`memory_model.share_within_budget`,
  exact by enumeration when small) or, with a flash budget, within both (sampled).
* S = A + eta * R.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from common.files import atomic_write_text
from memory_model.schedules import BATCHED as BATCHED_SCHEDULES
from memory_model.schedules import share_within_budget
from search.constraint import MemoryConstraint
from search_space.config import SubnetConfig
from search_space.space import SearchSpace
from training.checkpoint import load_supernet

JOB_FILE, RESULT_FILE, CKPT_FILE = "job.json", "result.json", "checkpoint.pth"


def score_rng(seed: int, salt: int) -> np.random.Generator:
    """The scoring generator: fixed by the seed alone, so all points and visits share its draws."""
    return np.random.default_rng([seed, salt])


@dataclass(frozen=True)
class ScoreSettings:
    """How a visited point is scored, as ``job.json`` records it (bytes, not text)."""

    budget_bytes: int
    flash_budget_bytes: int | None = None
    schedule: str = "mcu"
    weights_in_sram: bool = True
    eta: float = 1.0  # S = A + eta * R
    eval_subnets: int = 8  # in-budget subnets whose mean holdout top-1 is A
    eval_pool: int = 2000  # seeded draws they are found in
    r_samples: int = 10000  # Monte Carlo samples of R when the point is too large to enumerate
    max_params: int | None = None
    min_params: int | None = None
    input: str = "whole"  # mcu: the image whole in SRAM, or "stream" (one row of patches at a time)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScoreSettings:
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @cached_property
    def constraint(self) -> MemoryConstraint:
        return MemoryConstraint(
            self.budget_bytes, self.schedule, self.weights_in_sram, self.flash_budget_bytes,
            self.max_params, self.min_params, self.input,
        )  # fmt: skip


def fitting_subnets(space: SearchSpace, score: ScoreSettings, seed: int) -> tuple[list[SubnetConfig], int]:
    """The first ``eval_subnets`` in-budget subnets of a seeded pool, and how many the pool held."""
    rng = score_rng(seed, 11)
    pool = [space.sample(rng) for _ in range(score.eval_pool)]
    ok = score.constraint.fits_batch(pool)
    fit = [c for c, k in zip(pool, ok, strict=True) if k]
    return fit[: score.eval_subnets], int(ok.sum())


def share(space: SearchSpace, score: ScoreSettings, seed: int) -> tuple[float, str]:
    """R and how it was obtained: exact or sampled for an SRAM budget alone (batched schedules),
    else the share of ``r_samples`` draws that meet every limit."""
    rng = score_rng(seed, 13)
    sram_only = score.flash_budget_bytes is None and score.max_params is None and score.min_params is None
    if sram_only and score.schedule in BATCHED_SCHEDULES:
        est = share_within_budget(
            space,
            score.budget_bytes,
            score.schedule,
            rng,
            score.r_samples,
            **score.constraint.options,
        )
        return est.share, est.method
    draws = [space.sample(rng) for _ in range(score.r_samples)]
    return float(score.constraint.fits_batch(draws).mean()), "sampling (every limit)"


def score_without_training(space: SearchSpace, score: ScoreSettings, seed: int) -> dict[str, Any] | None:
    """The score of a point none of whose pool subnets fits the budget: A = 0 whatever its
    weights, so S = eta * R is known without training. ``None`` when some subnet fits."""
    subnets, fit_in_pool = fitting_subnets(space, score, seed)
    if subnets:
        return None
    r, method = share(space, score, seed)
    return {
        "A": 0.0,
        "R": r,
        "S": score.eta * r,
        "A_max": None,
        "R_method": method,
        "fit_in_pool": f"{fit_in_pool}/{score.eval_pool}",
        "trained": False,
    }


def _eval_device(device: str) -> torch.device:
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if use_cuda else torch.device("cpu")


def score_job(
    job_dir: Path, spec: dict[str, Any], split: str = "holdout", sample_seed: int | None = None
) -> dict[str, Any]:
    """A, R and S of a trained point (rank 0 only): on the holdout split with the subnets drawn
    by the job's training seed (as a visit scores), or on another split / subnet draw."""
    from training.config import load_config
    from training.data import build_loaders
    from training.engine import evaluate

    cfg = load_config(job_dir / "train.yaml")
    space = SearchSpace.from_dict(cfg.space)
    score, seed = ScoreSettings.from_dict(spec["score"]), cfg.seed if sample_seed is None else sample_seed
    device = _eval_device(cfg.device)
    trained = load_supernet(job_dir / CKPT_FILE, space, device=device)
    model = trained.model
    subnets, fit_in_pool = fitting_subnets(space, score, seed)
    loader = getattr(build_loaders(cfg.data, space.img_size, space.num_classes), split)
    named = {"max": space.max_config(), **{f"s{i}": c for i, c in enumerate(subnets)}}
    top1 = evaluate(model, loader, named, device)
    a = float(np.mean([top1[f"s{i}"] for i in range(len(subnets))])) / 100 if subnets else 0.0
    r, method = share(space, score, seed)
    return {
        "A": a,
        "R": r,
        "S": a + score.eta * r,
        "A_max": top1["max"] / 100,
        "eta": score.eta,
        "R_method": method,
        "evaluated": {"split": split, "subnets": [c.to_dict() for c in subnets], "top1": top1},
        "fit_in_pool": f"{fit_in_pool}/{score.eval_pool}",
        "epochs": trained.epoch,
        "checkpoint": CKPT_FILE,
    }


def write_job(job_dir: Path, train_cfg: dict[str, Any], score: ScoreSettings | None) -> None:
    """Describe a job: the full training config (``train.yaml``) and the scoring (``job.json``;
    ``score: null`` for a job that only trains, like the dense supernet points start from)."""
    job_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(job_dir / "train.yaml", yaml.safe_dump(train_cfg, sort_keys=False))
    record = None if score is None else score.to_dict()
    atomic_write_text(job_dir / JOB_FILE, json.dumps({"score": record}, indent=1))


def run_job(job_dir: str | Path) -> dict[str, Any] | None:
    """Train and score one visit (train only when the job has no scoring); returns the result
    (None on ranks other than 0)."""
    from training.config import load_config
    from training.run import train_supernet

    job_dir = Path(job_dir)
    done = job_dir / RESULT_FILE
    if done.exists():
        return json.loads(done.read_text())
    spec = json.loads((job_dir / JOB_FILE).read_text())
    summary = train_supernet(load_config(job_dir / "train.yaml"))
    if int(os.environ.get("RANK", "0")) != 0:
        return None
    trained_only = spec["score"] is None  # e.g. the dense supernet new points start from
    result = {**summary, "checkpoint": CKPT_FILE} if trained_only else score_job(job_dir, spec)
    atomic_write_text(done, json.dumps(result, indent=1))
    return result
