"""Space evolution with real supernets: wire a `SpaceEvolutionConfig` to the loop, run each
visit as a job, and write the outputs.

With a ``pretrain`` config, one supernet over a dense space is trained first (a training-only
job in that config's ``log.output``, shared by every run naming it) and every new point's
supernet starts from it by truncated SVD (``model.init_from``); moved-to points start from their
nearest trained neighbour as before.

Output directory::

    state.json            the loop's state (points, E, A, R, S, fits, moves, cached visits)
    points/<point>/v<n>/  one job per visit (train.yaml, job.json, checkpoint.pth, result.json)
    trajectory.csv        the path taken, one row per step
    result.json           the chosen point, its S/A/R, its space, its supernet checkpoint
    chosen/checkpoint.pth the chosen point's supernet (what evolution_search.py reads)
    chosen/space.yaml     the chosen point's space
    score_grid.png        S over the grid with the path
"""

from __future__ import annotations

import copy
import csv
import io
import json
import logging
from pathlib import Path
from typing import Any

import yaml

from common.errors import ConfigError
from common.files import atomic_copy, atomic_write_text, prepare_output
from search.launch import JobRunner, make_launcher
from search.space.config import SpaceEvolutionConfig
from search.space.loop import (
    EvolutionSettings,
    Grid,
    Point,
    SpaceEvolution,
    VisitRequest,
    initial_points,
)
from search.space.visit import CKPT_FILE, RESULT_FILE, score_without_training, write_job
from search_space.space import SearchSpace
from search_space.svd_init import check_dense_source, check_init_file
from training.config import TrainConfig
from training.run import resolve_space

log = logging.getLogger("mcunas.evolve")
STATE_FILE = "state.json"
SCORE_KEYS = ("A", "R", "S", "A_max", "R_method", "fit_in_pool")


class EvolveRun:
    """Everything `evolve_space.py` does after parsing: validated on construction (nothing
    written), run by `run`."""

    def __init__(self, cfg: SpaceEvolutionConfig) -> None:
        self.cfg = cfg
        self.output = Path(cfg.output).resolve()
        train = cfg.train_config()
        self.base: SearchSpace = resolve_space(train.space)
        self.grid = Grid.from_space(self.base)
        self.train_dict = _absolute_paths(train.to_dict())
        self.score = cfg.score.settings()  # typed; the budget is required here
        self.pretrain_dir, self.pretrain_dict = _pretraining(cfg, train, self.base)
        self.settings = cfg.settings()
        initial_points(self.grid, self.settings)  # off-grid points fail here, before anything is written
        launch = cfg.launch
        folder = self.output / launch.folder  # submitit's logs (absolute folders stay as they are)
        self.launcher = JobRunner(
            make_launcher(launch.kind, launch.nproc, launch.command, launch.settings(), folder),
            launch.max_parallel,
        )
        if not any(self.fits(pt) for pt in self.grid.points()):  # before any training is started
            raise ConfigError(
                f"no point of the grid (rank_ratio {list(self.grid.rank_ratio)}, patch_size "
                f"{list(self.grid.patch_size)}) has a subnet within {self.score.constraint.describe()}; "
                "raise --budget or use a smaller space"
            )
        recipe = _portable(self.train_dict)
        fingerprint = {
            "grid": [list(self.grid.rank_ratio), list(self.grid.patch_size)],
            "space": self.base.to_dict(),
            "settings": _settings_fingerprint(self.settings),
            "score": self.score.to_dict(),
            "recipe": recipe,
            "init": "random among points with a subnet within budget",  # the rule behind random starts
        }
        if self.pretrain_dict is not None:  # (absent from runs without one, whose states stay valid)
            fingerprint["pretrain"] = _portable(self.pretrain_dict)
        self.evolution = SpaceEvolution(
            self.grid, self.settings, self.visit, self.output / STATE_FILE, fingerprint, self.fits,
            train_many=self.visit_many,
        )  # fmt: skip

    # ---- one visit as a job ---------------------------------------------------------------
    def job_dir(self, job_id: str) -> Path:
        return self.output / "points" / job_id

    def pretrained(self) -> Path | None:
        """The dense supernet's checkpoint every new point starts from, trained first if it is not
        yet (one resumable job, run by the same launcher as the visits); ``None`` without one."""
        if self.pretrain_dir is None:
            return None
        if not (self.pretrain_dir / RESULT_FILE).exists():
            log.info(
                "pretraining the dense supernet every new point starts from (%d epochs) in %s",
                self.pretrain_dict["optim"]["epochs"], self.pretrain_dir,
            )  # fmt: skip
            write_job(self.pretrain_dir, self.pretrain_dict, None)
            self.launcher(self.pretrain_dir)
        return self.pretrain_dir / CKPT_FILE

    def known_score(self, pt: Point) -> dict[str, Any] | None:
        """The point's score when none of its subnets fits (memory model only), else ``None``."""
        return score_without_training(self.grid.space(self.base, pt), self.score, self.train_dict["seed"])

    def fits(self, pt: Point) -> bool:
        """Whether some subnet of the point is within budget (no training)."""
        return self.known_score(pt) is None

    def _prepare(self, req: VisitRequest) -> dict[str, Any] | None:
        """Write the visit's job (``None``), or its known score when nothing of the point fits."""
        known = self.known_score(req.point)
        if known is not None:  # nothing fits: A = 0 whatever the weights, no job to run
            log.info("%s: no subnet within budget, S=%.4f without training", req.job_id, known["S"])
            return {k: known[k] for k in (*SCORE_KEYS, "trained")}
        job_dir = self.job_dir(req.job_id)
        train = copy.deepcopy(self.train_dict)
        train["space"] = self.grid.space(self.base, req.point).to_dict()
        train["optim"]["epochs"] = req.epochs
        train["optim"]["warmup_epochs"] = min(train["optim"]["warmup_epochs"], req.epochs - 1)
        if req.init_job is None:  # a new point: from the pretrained dense supernet (SVD), if any
            pretrained = self.pretrained()
            if pretrained is not None:
                train["model"]["init_from"] = str(pretrained)
            train["model"]["init_supernet"] = None
        else:  # from the nearest trained point's supernet
            train["model"]["init_supernet"] = str(self.job_dir(req.init_job) / CKPT_FILE)
        train["log"].update(output=str(job_dir), progress=False, wandb=False)
        if not (job_dir / RESULT_FILE).exists():  # finished before (a rerun): nothing to launch
            write_job(job_dir, train, self.score)
        return None

    def visit_many(self, reqs: list[VisitRequest]) -> list[dict[str, Any]]:
        """Independent visits: their jobs run together (up to ``launch.max_parallel`` at a time);
        scores in the order of ``reqs``."""
        known = [self._prepare(req) for req in reqs]
        jobs = [self.job_dir(r.job_id) for r, k in zip(reqs, known, strict=True) if k is None]
        results = iter(self.launcher.run_many(jobs))
        out = []
        for req, k in zip(reqs, known, strict=True):
            if k is not None:
                out.append(k)
                continue
            result = next(results)
            log.info(
                "%s: E=%d A=%.2f%% (max subnet %.2f%%) R=%.3f S=%.4f",
                req.job_id, req.total_epochs, 100 * result["A"], 100 * result["A_max"], result["R"], result["S"],
            )  # fmt: skip
            out.append({**{k: result[k] for k in SCORE_KEYS}, "trained": True})
        return out

    def visit(self, req: VisitRequest) -> dict[str, Any]:
        return self.visit_many([req])[0]

    # ---- the run --------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        prepare_output(self.output)
        pretrained = self.pretrained()
        result = self.evolution.run(progress=self.cfg.progress)
        if not result["trained"]:
            raise ConfigError(
                f"no visited point holds a subnet within the budget ({result['point']} is the best, S "
                f"{result['S']:.4f}); raise --budget/--flash-budget or start from other init_points"
            )
        chosen_pt = self.grid.index(result["rank_ratio"], result["patch_size"])
        space = self.grid.space(self.base, chosen_pt)
        src = self.job_dir(result["job"]) / CKPT_FILE
        chosen_dir = self.output / "chosen"
        atomic_copy(src, chosen_dir / CKPT_FILE)
        atomic_write_text(chosen_dir / "space.yaml", yaml.safe_dump(space.to_dict(), sort_keys=False))
        out = {
            **result,
            "budget_bytes": self.score.budget_bytes,
            "flash_budget_bytes": self.score.flash_budget_bytes,
            "eta": self.score.eta,
            "space": space.to_dict(),
            "supernet_checkpoint": str(chosen_dir / CKPT_FILE),
            "pretrained_checkpoint": None if pretrained is None else str(pretrained),
            "job_checkpoint": str(src),
        }
        atomic_write_text(self.output / "result.json", json.dumps(out, indent=1))
        atomic_write_text(self.output / "trajectory.csv", trajectory_csv(self.evolution.trajectory))
        from search.space.plot import plot_scores

        plot_scores(self.evolution.state(), self.grid, self.output / "score_grid.png")
        return out


def _settings_fingerprint(settings: EvolutionSettings) -> dict[str, Any]:
    """The loop's settings as the state file records them (``restarts`` left out when 0, so that
    states written before restarts existed stay valid)."""
    out = json.loads(json.dumps(settings.__dict__))
    if out.get("restarts") == 0:
        del out["restarts"]
    return out


def _portable(train: dict[str, Any]) -> dict[str, Any]:
    """A training config without what depends on where it runs (outputs, data cache)."""
    out = copy.deepcopy(train)
    out.pop("log")
    out["data"].pop("cache_dir")
    return out


def _absolute_paths(train: dict[str, Any]) -> dict[str, Any]:
    train["data"]["cache_dir"] = str(Path(train["data"]["cache_dir"]).resolve())
    if train["data"]["root"]:
        train["data"]["root"] = str(Path(train["data"]["root"]).resolve())
    return train


def _pretraining(
    cfg: SpaceEvolutionConfig, recipe: TrainConfig, base: SearchSpace
) -> tuple[Path | None, dict[str, Any] | None]:
    """Where the dense supernet is trained and its training config; both ``None`` without one."""
    pre = cfg.pretrain_config()
    if pre is None:
        if recipe.model.init_from:  # every new point starts from it: a missing file fails before any visit
            check_init_file(recipe.model.init_from, "recipe.overrides.model.init_from")
        return None, None
    if recipe.model.init_from:
        raise ConfigError(
            "both pretrain.cfg and the recipe's model.init_from name a starting point; keep one "
            "(-o pretrain.cfg=null to start from the init_from weights)"
        )
    check_dense_source(resolve_space(pre.space), base)
    train, where = _absolute_paths(pre.to_dict()), Path(pre.log.output).resolve()
    train["log"].update(output=str(where), progress=False, wandb=False)  # the job may run elsewhere
    return where, train


def trajectory_csv(trajectory: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    cols = ["step", "rank_ratio", "patch_size", "E", "A", "R", "S", "total_epochs"]
    writer = csv.DictWriter(buf, cols, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(trajectory)
    return buf.getvalue()


def summary_table(state: dict[str, Any]) -> str:
    """One row per trained point (latest visit); ``*`` marks the path, ``>`` the chosen point."""
    path = {tuple(t["point"]) for t in state["trajectory"]}
    chosen = (state.get("result") or {}).get("point")
    lines = [f"{'':2}{'point':<12}{'E':>4}{'A %':>8}{'R':>7}{'S':>8}{'visits':>7}"]
    for key, p in state["points"].items():
        mark = (">" if key == chosen else " ") + ("*" if tuple(p["point"]) in path else " ")
        lines.append(
            f"{mark}{key:<12}{p['E']:>4}{100 * p['A']:>8.2f}{p['R']:>7.3f}{p['S']:>8.4f}{len(p['jobs']):>7}"
        )
    return "\n".join(lines)
