"""Space evolution with real supernets: wire a `SpaceEvolutionConfig` to the loop, run each
visit as a job, and write the outputs.

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
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from search.evolve_config import SpaceEvolutionConfig
from search.launch import make_launcher
from search.point_eval import CKPT_FILE, RESULT_FILE, score_without_training, write_job
from search.space_evolution import Grid, Point, SpaceEvolution, VisitRequest, initial_points
from search_space.errors import ConfigError
from search_space.space import SearchSpace
from training.checkpoint import atomic_write_text
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
        self.train_dict = train.to_dict()
        self.train_dict["data"]["cache_dir"] = str(Path(train.data.cache_dir).resolve())
        if train.data.root:
            self.train_dict["data"]["root"] = str(Path(train.data.root).resolve())
        self.score = {
            "budget_bytes": cfg.budget_bytes(),
            "flash_budget_bytes": cfg.flash_budget_bytes(),
            "schedule": cfg.score.schedule,
            "weights_in_sram": cfg.score.weights_in_sram,
            "eta": cfg.score.eta,
            "eval_subnets": cfg.score.eval_subnets,
            "eval_pool": cfg.score.eval_pool,
            "r_samples": cfg.score.r_samples,
        }
        self.settings = cfg.settings()
        initial_points(self.grid, self.settings)  # off-grid points fail here, before anything is written
        self.launcher = make_launcher(cfg.launch.kind, cfg.launch.nproc, cfg.launch.command)
        recipe = copy.deepcopy(self.train_dict)
        recipe.pop("log")
        recipe["data"].pop("cache_dir")
        fingerprint = {
            "grid": [list(self.grid.rank_ratio), list(self.grid.patch_size)],
            "space": self.base.to_dict(),
            "settings": json.loads(json.dumps(self.settings.__dict__)),
            "score": self.score,
            "recipe": recipe,
            "init": "random among points with a subnet within budget",  # the rule behind random starts
        }
        self.evolution = SpaceEvolution(
            self.grid, self.settings, self.visit, self.output / STATE_FILE, fingerprint, self.fits
        )

    # ---- one visit as a job ---------------------------------------------------------------
    def job_dir(self, job_id: str) -> Path:
        return self.output / "points" / job_id

    def known_score(self, pt: Point) -> dict[str, Any] | None:
        """The point's score when none of its subnets fits (memory model only), else ``None``."""
        return score_without_training(self.grid.space(self.base, pt), self.score, self.train_dict["seed"])

    def fits(self, pt: Point) -> bool:
        """Whether some subnet of the point is within budget (no training)."""
        return self.known_score(pt) is None

    def visit(self, req: VisitRequest) -> dict[str, Any]:
        known = self.known_score(req.point)
        if known is not None:  # nothing fits: A = 0 whatever the weights, no job to run
            log.info("%s: no subnet within budget, S=%.4f without training", req.job_id, known["S"])
            return {k: known[k] for k in (*SCORE_KEYS, "trained")}
        job_dir = self.job_dir(req.job_id)
        train = copy.deepcopy(self.train_dict)
        train["space"] = self.grid.space(self.base, req.point).to_dict()
        train["optim"]["epochs"] = req.epochs
        train["optim"]["warmup_epochs"] = min(train["optim"]["warmup_epochs"], req.epochs - 1)
        train["model"]["init_supernet"] = (
            None if req.init_job is None else str(self.job_dir(req.init_job) / CKPT_FILE)
        )
        train["log"].update(output=str(job_dir), progress=False, wandb=False)
        done = job_dir / RESULT_FILE
        if done.exists():  # finished before (a rerun): read it back, nothing to launch
            result = json.loads(done.read_text())
        else:
            write_job(job_dir, train, self.score)
            result = self.launcher(job_dir)
        log.info(
            "%s: E=%d A=%.2f%% (max subnet %.2f%%) R=%.3f S=%.4f",
            req.job_id, req.total_epochs, 100 * result["A"], 100 * result["A_max"], result["R"], result["S"],
        )  # fmt: skip
        return {**{k: result[k] for k in SCORE_KEYS}, "trained": True}

    # ---- the run --------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
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
        _atomic_copy(src, chosen_dir / CKPT_FILE)
        atomic_write_text(chosen_dir / "space.yaml", yaml.safe_dump(space.to_dict(), sort_keys=False))
        out = {
            **result,
            "budget_bytes": self.score["budget_bytes"],
            "flash_budget_bytes": self.score["flash_budget_bytes"],
            "eta": self.score["eta"],
            "space": space.to_dict(),
            "supernet_checkpoint": str(chosen_dir / CKPT_FILE),
            "job_checkpoint": str(src),
        }
        atomic_write_text(self.output / "result.json", json.dumps(out, indent=1))
        atomic_write_text(self.output / "trajectory.csv", trajectory_csv(self.evolution.trajectory))
        from search.evolve_plot import plot_scores

        plot_scores(self.evolution.state(), self.grid, self.output / "score_grid.png")
        return out


def _atomic_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


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
