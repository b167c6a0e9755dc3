"""Expected GPU-cluster wall-clock of the paper pipeline (T space, ImageNet) from counted FLOPs.

FLOPs are counted, not guessed: `search_space.counting.count_flops` (2 x MACs of every linear,
convolution and attention matmul) of subnets drawn from the spaces the configs name, times
what each stage does with them, read from the configs through the project's own loaders
(training, space evolution, search). A training image costs 3x its forward FLOPs (backward
~ 2x forward). MFU (model FLOPs utilisation) is an assumption the user sets, not a measurement:
the MCUFormer paper reports none. The default 0.35 is a planning figure for AMP training on an
A100 (312 TFLOPS dense fp16/bf16); models this small often reach less (timm's own benchmark
trains deit_tiny_patch16_224, 2.51 GFLOPs by this counter, at 2,290 img/s with AMP on an RTX
3090: about 24% of that card's 71 TFLOPS), so plan with ``--mfu 0.2`` as well.

Stages (ImageNet: 1,281,167 training images, ``data.holdout_per_class`` per class held out
of them for the search, the 50,000 val images as the test split):

1. supernet training of the training config's space point for ``optim.epochs`` epochs (one
   subnet per step, or max + min + random with ``optim.sandwich``);
2. space evolution: lower bound = the initial points x ``epochs_per_visit``, upper bound =
   ``max_total_epochs`` at the costliest grid point (largest rank ratio, smallest patch: FLOPs
   grow with both the rank and the token count); every visit also scores its point;
3. evolutionary search: population x generations in-budget subnets on the holdout split;
4. finetuning of the found subnet when the search config asks for it.

Where the code runs work on one process, the estimate does too: holdout evaluation during
training and a visit's scoring run on rank 0 while the other GPUs wait, and
finetuning is a single-process job on one GPU, the search one too unless ``--search-ranks N``
shards its candidates over N torchrun ranks. Space evolution runs each visit on
``launch.nproc`` GPUs (``launch.slurm.nodes x gpus_per_node`` with submitit on Slurm) and the
independent visits of a step (the initial points) up to ``launch.max_parallel`` at a time; the
moves after them run one visit at a time. So wall-clock = (parallel FLOPs / (GPUs x peak x MFU)
+ rank-0 FLOPs / (peak x MFU)) / the speed-up of parallel visits; GPU-hours = wall-clock x the
GPUs the stage holds. At these tiny per-image costs the input pipeline (JPEG decoding and
RandAugment) may be slower than the GPUs: the implied images/s per GPU is printed to compare.

    python bench/cluster_estimate.py [--gpus 8] [--nodes 1] [--gpu-peak-tflops 312] [--mfu 0.35]
        [--evolve-cfg configs/evolve/mcuformer-t-imagenet-slurm.yaml] [--search-ranks 8] [--json PATH]

Run from the repository root (the configs name each other by relative paths).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from common.errors import ConfigError
from common.files import atomic_write_text
from memory_model import format_bytes, parse_budget
from search.space.config import SpaceEvolutionConfig, load_evolve_config
from search.space.loop import Grid, initial_points
from search.subnet.run import SearchRunConfig, load_search_config
from search_space.config import SubnetConfig
from search_space.counting import count_flops
from search_space.space import SearchSpace
from training.config import TrainConfig, load_config
from training.run import resolve_space

IMAGENET_TRAIN_IMAGES = 1_281_167
IMAGENET_VAL_IMAGES = 50_000
TRAIN_CFG = "configs/train/mcuformer-t-imagenet.yaml"
EVOLVE_CFG = "configs/evolve/mcuformer-t-imagenet.yaml"
SEARCH_CFG = "configs/search/default.yaml"
# The configs leave data.root to the command line; nothing here reads the images.
DATA_ROOT = "/datasets/imagenet"
Fits = Callable[[list[SubnetConfig]], np.ndarray]


@dataclass(frozen=True)
class Hardware:
    gpus_per_node: int = 8
    nodes: int = 1
    peak_tflops: float = 312.0  # dense fp16/bf16 tensor-core peak per GPU (A100)
    mfu: float = 0.35  # assumed model FLOPs utilisation; not measured

    def __post_init__(self) -> None:
        if self.gpus_per_node < 1 or self.nodes < 1:
            raise ConfigError(f"--gpus and --nodes must be >= 1, got {self.gpus_per_node} and {self.nodes}")
        if not (self.peak_tflops > 0 and math.isfinite(self.peak_tflops)):
            raise ConfigError(f"--gpu-peak-tflops must be a positive number, got {self.peak_tflops}")
        if not 0 < self.mfu <= 1:
            raise ConfigError(f"--mfu must be in (0, 1] (e.g. 0.35 = 35% of peak), got {self.mfu}")

    @property
    def total_gpus(self) -> int:
        return self.gpus_per_node * self.nodes

    @property
    def flops_per_gpu_second(self) -> float:
        return self.peak_tflops * 1e12 * self.mfu


@dataclass(frozen=True)
class Splits:
    """Images per split of the folder dataset (ImageNet) with the config's holdout."""

    train: int
    holdout: int
    test: int

    @classmethod
    def imagenet(cls, cfg: TrainConfig, num_classes: int) -> Splits:
        holdout = cfg.data.holdout_per_class * num_classes
        return cls(IMAGENET_TRAIN_IMAGES - holdout, holdout, IMAGENET_VAL_IMAGES)


@dataclass(frozen=True)
class PointFlops:
    """Forward FLOPs per image of one space point's subnets (``samples`` uniform draws)."""

    label: str
    mean: float
    max: int
    min: int
    fit_mean: float  # over the draws within the memory budget
    fit_max: int
    fit_share: float


def point_flops(label: str, space: SearchSpace, fits: Fits, samples: int, seed: int) -> PointFlops:
    rng = np.random.default_rng(seed)
    cfgs = [space.sample(rng) for _ in range(samples)]
    flops = np.array([count_flops(c) for c in cfgs], dtype=float)
    ok = np.asarray(fits(cfgs), dtype=bool)
    fit = flops[ok] if ok.any() else np.zeros(1)
    return PointFlops(
        label, float(flops.mean()), count_flops(space.max_config()), count_flops(space.min_config()),
        float(fit.mean()), int(fit.max()), float(ok.mean()),
    )  # fmt: skip


@dataclass
class Stage:
    name: str
    gpus: int  # GPUs the stage's job holds
    parallel_flops: float  # spread over those GPUs
    serial_flops: float  # one process (rank 0) while the others wait
    note: str = ""
    parts: dict[str, float] = field(default_factory=dict)
    jobs_at_once: int = 1  # equal jobs running side by side, each on ``gpus`` GPUs
    speedup: float = 1.0  # work / wall-clock of those jobs (waves of parallel visits)

    @property
    def flops(self) -> float:
        return self.parallel_flops + self.serial_flops

    def serial_hours(self, hw: Hardware) -> float:
        return self.serial_flops / hw.flops_per_gpu_second / 3600

    def wall_hours(self, hw: Hardware) -> float:
        one = self.parallel_flops / (self.gpus * hw.flops_per_gpu_second) / 3600 + self.serial_hours(hw)
        return one / self.speedup

    def gpu_hours(self, hw: Hardware) -> float:
        return self.wall_hours(hw) * self.speedup * self.gpus  # parallel visits save time, not GPU-hours


def training_job(
    cfg: TrainConfig, pf: PointFlops, epochs: int, splits: Splits, static: bool = False
) -> dict[str, float]:
    """FLOPs of one training job (`training.loop.fit`): the training steps, the holdout
    evaluation every ``eval.every`` epochs and the final holdout + test evaluation. A supernet
    evaluates max, min and ``eval.num_subnets`` random subnets each time and max and min at the
    end; a static model (``static``, ``pf`` its own FLOPs) evaluates itself."""
    per_image = pf.max + pf.min + pf.mean if cfg.optim.sandwich and not static else pf.mean
    evals = epochs // cfg.eval.every + int(epochs % cfg.eval.every > 0)
    per_eval = pf.mean if static else pf.max + pf.min + cfg.eval.num_subnets * pf.mean
    final = pf.mean if static else pf.max + pf.min
    return {
        "train": 3.0 * per_image * splits.train * epochs,
        "eval": evals * per_eval * splits.holdout,
        "final_eval": final * (splits.holdout + splits.test),
    }


def supernet_stage(cfg: TrainConfig, pf: PointFlops, splits: Splits, hw: Hardware) -> Stage:
    job = training_job(cfg, pf, cfg.optim.epochs, splits)
    mix = "max + min + random subnet" if cfg.optim.sandwich else "one random subnet"
    return Stage(
        "1 supernet training", hw.total_gpus, job["train"], job["eval"] + job["final_eval"],
        f"{pf.label}, {cfg.optim.epochs} epochs, {mix} per step", job,
    )  # fmt: skip


def visit_flops(
    evo: SpaceEvolutionConfig, cfg: TrainConfig, pf: PointFlops, epochs: int, splits: Splits
) -> dict[str, float]:
    """One visit: a training job of ``epochs`` epochs, then scoring (max + the in-budget
    subnets found in the pool, on the holdout split)."""
    job = training_job(cfg, pf, epochs, splits)
    found = min(evo.score.eval_subnets, round(pf.fit_share * evo.score.eval_pool))
    job["score"] = (pf.max + found * pf.fit_mean) * splits.holdout
    return job


def evolution_stages(
    evo: SpaceEvolutionConfig, splits: Splits, budget_bytes: int, samples: int, seed: int, hw: Hardware
) -> tuple[Stage, Stage, dict[str, PointFlops]]:
    cfg = evo.train_config()
    base = resolve_space(cfg.space)
    grid = Grid.from_space(base)
    settings = evo.settings()
    constraint = replace(evo.score, budget=budget_bytes).constraint()

    def pf_at(pt: tuple[int, int]) -> PointFlops:
        return point_flops(grid.key(pt), grid.space(base, pt), constraint.fits_batch, samples, seed)

    t = settings.epochs_per_visit
    init = [pf_at(pt) for pt in initial_points(grid, settings)]
    cheap, dear = pf_at((0, grid.shape[1] - 1)), pf_at((grid.shape[0] - 1, 0))
    launch = evo.launch
    if launch.kind == "submitit" and launch.executor == "slurm":
        gpus = min(launch.slurm.nodes * max(1, launch.slurm.gpus_per_node), hw.total_gpus)
    else:
        gpus = min(launch.nproc, hw.total_gpus) if launch.kind in ("torchrun", "command", "submitit") else 1
    at_once = max(1, min(launch.max_parallel, len(init), hw.total_gpus // gpus))

    def stage(name: str, visits: list[tuple[PointFlops, int]], note: str) -> Stage:
        parts: dict[str, float] = {}
        for pf, epochs in visits:
            for k, v in visit_flops(evo, cfg, pf, epochs, splits).items():
                parts[k] = parts.get(k, 0.0) + v
        serial = sum(v for k, v in parts.items() if k != "train")
        # the initial visits in waves of at_once, every later visit alone (taken as equal visits)
        waves = math.ceil(len(init) / at_once) + len(visits) - len(init)
        note += f"; initial visits {at_once} at a time" if at_once > 1 else ""
        return Stage(name, gpus, parts["train"], serial, note, parts, at_once, len(visits) / waves)

    low = [(pf, t) for pf in init]
    cap = settings.max_total_epochs or (len(init) + settings.max_steps) * t
    capped = (
        "max_total_epochs" if settings.max_total_epochs else "no max_total_epochs: initial + max_steps visits"
    )
    high = [(dear, t)] * math.ceil(cap / t)
    if settings.final_epochs:
        low.append((cheap, settings.final_epochs))
        high.append((dear, settings.final_epochs))
    final = f" + final {settings.final_epochs} epochs" if settings.final_epochs else ""
    lower = stage(
        "2 space evolution (lower)", low,
        f"{len(init)} initial points ({', '.join(p.label for p in init)}) x {t} epochs{final}",
    )  # fmt: skip
    upper = stage(
        "2 space evolution (upper)", high,
        f"{cap} epochs ({capped}) at the costliest point {dear.label}{final}",
    )  # fmt: skip
    return lower, upper, {p.label: p for p in [*init, cheap, dear]}


def search_stages(
    search: SearchRunConfig, cfg: TrainConfig, pf: PointFlops, splits: Splits, budget: str, ranks: int = 1
) -> list[Stage]:
    """Search: every evaluation is one holdout pass of an in-budget subnet, shared over
    ``ranks`` torchrun ranks, then the best on the test split; finetune: the best (taken as
    the largest in-budget draw) trained as a static model with the supernet's recipe, in one
    process on one GPU."""
    if pf.fit_share == 0:
        raise ConfigError(
            f"no sampled subnet of {pf.label} fits the budget {budget}; raise --budget or check the configs"
        )
    n = search.search.num_evaluations
    s = search.search
    what = f"{s.population} x {s.generations} = {n} in-budget subnets on the holdout split"
    what += f", candidates shared over {ranks} ranks" if ranks > 1 else ""
    stages = [
        Stage(
            "3 evolutionary search", ranks, n * pf.fit_mean * splits.holdout, pf.fit_max * splits.test, what
        )
    ]
    if ranks == 1:  # one process: all of it on one GPU
        stages[0] = Stage("3 evolutionary search", 1, stages[0].flops, 0.0, what)
    epochs = search.finetune.epochs
    if epochs:
        best = PointFlops(pf.label, pf.fit_max, pf.fit_max, pf.fit_max, pf.fit_max, pf.fit_max, 1.0)
        job = training_job(cfg, best, epochs, splits, static=True)
        note = f"{epochs} epochs of the largest in-budget subnet"
    else:
        job = {"train": 0.0, "eval": 0.0, "final_eval": 0.0}
        note = "finetune.epochs = 0 in the search config: skipped"
    stages.append(Stage("4 finetune", 1, sum(job.values()), 0.0, note, job))
    return stages


@dataclass
class Estimate:
    hardware: Hardware
    splits: Splits
    budget: str
    stages: list[Stage]
    points: dict[str, PointFlops]
    train_flops_per_image: float  # stage 1: forward + backward of one training image

    def totals(self) -> dict[str, float]:
        """Lower and upper wall-clock hours and FLOPs (the two space-evolution bounds)."""
        out = {}
        for bound, skip in (("lower", "(upper)"), ("upper", "(lower)")):
            chosen = [s for s in self.stages if skip not in s.name]
            out[f"{bound}_flops"] = sum(s.flops for s in chosen)
            out[f"{bound}_wall_hours"] = sum(s.wall_hours(self.hardware) for s in chosen)
            out[f"{bound}_gpu_hours"] = sum(s.gpu_hours(self.hardware) for s in chosen)
        return out

    def train_images_per_gpu_second(self) -> float:
        return self.hardware.flops_per_gpu_second / self.train_flops_per_image

    def to_dict(self) -> dict[str, Any]:
        hw = self.hardware
        return {
            "hardware": asdict(hw),
            "mfu_note": "MFU is an assumption set by the user; FLOPs are counted",
            "splits": asdict(self.splits),
            "budget": self.budget,
            "points": {k: asdict(v) for k, v in self.points.items()},
            "stages": [
                {**asdict(s), "flops": s.flops, "wall_hours": s.wall_hours(hw), "gpu_hours": s.gpu_hours(hw)}
                for s in self.stages
            ],
            "totals": self.totals(),
            "train_images_per_gpu_second": self.train_images_per_gpu_second(),
        }


def load_configs(
    train_cfg: str = TRAIN_CFG,
    evolve_cfg: str = EVOLVE_CFG,
    search_cfg: str = SEARCH_CFG,
    train_overrides: Sequence[str] = (),
) -> tuple[TrainConfig, SpaceEvolutionConfig, SearchRunConfig]:
    train = load_config(train_cfg, [f"data.root={DATA_ROOT}", *train_overrides])
    evo = load_evolve_config(evolve_cfg, [f"recipe.overrides.data.root={DATA_ROOT}"])
    return train, evo, load_search_config(search_cfg)


def estimate(
    train: TrainConfig,
    evo: SpaceEvolutionConfig,
    search: SearchRunConfig,
    hw: Hardware,
    budget: str | None = None,
    samples: int = 2000,
    seed: int = 0,
    search_ranks: int = 1,
) -> Estimate:
    if samples < 1:
        raise ConfigError(f"--samples must be >= 1, got {samples}")
    if not 1 <= search_ranks <= hw.total_gpus:
        raise ConfigError(f"--search-ranks must be in 1..{hw.total_gpus} (the GPUs), got {search_ranks}")
    budget = budget or str(search.constraint.budget)
    budget_bytes = parse_budget(budget)
    constraint = dataclasses.replace(search.constraint, budget=budget_bytes).constraint()
    space = resolve_space(train.space)
    splits = Splits.imagenet(train, space.num_classes)
    point = f"r{space.rank_ratio[0]:g}_p{space.patch_size[0]}" if len(space.patch_size) == 1 else space.name
    pf = point_flops(point, space, lambda cfgs: np.array([constraint(c) for c in cfgs]), samples, seed)
    low, high, points = evolution_stages(evo, splits, budget_bytes, samples, seed, hw)
    label = format_bytes(budget_bytes)
    stages = [
        supernet_stage(train, pf, splits, hw),
        low,
        high,
        *search_stages(search, train, pf, splits, label, search_ranks),
    ]
    per_image = stages[0].parts["train"] / (splits.train * train.optim.epochs)
    return Estimate(hw, splits, label, stages, {pf.label: pf, **points}, per_image)


def pflop(flops: float) -> str:
    return f"{flops / 1e15:,.0f} PFLOP"


def table(est: Estimate) -> str:
    hw = est.hardware
    lines = [
        "| stage | GPUs | FLOPs | GPU-hours | wall-clock hours | what |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for s in est.stages:
        what = s.note + (f"; rank-0 evaluation {s.serial_hours(hw):.2f} h of it" if s.serial_flops else "")
        lines.append(
            f"| {s.name} | {s.gpus} | {pflop(s.flops)} | {s.gpu_hours(hw):,.1f} | {s.wall_hours(hw):,.2f} | {what} |"
        )
    t = est.totals()
    lines.append(
        f"| total | | {pflop(t['lower_flops'])} – {pflop(t['upper_flops'])} | {t['lower_gpu_hours']:,.1f} – "
        f"{t['upper_gpu_hours']:,.1f} | {t['lower_wall_hours']:,.2f} – {t['upper_wall_hours']:,.2f} | |"
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gpus", type=int, default=8, help="GPUs per node (default 8)")
    p.add_argument("--nodes", type=int, default=1, help="nodes (default 1)")
    p.add_argument("--gpu-peak-tflops", type=float, default=312.0,
                   help="dense fp16/bf16 peak per GPU in TFLOPS (default 312, A100)")  # fmt: skip
    p.add_argument("--mfu", type=float, default=0.35,
                   help="assumed model FLOPs utilisation in (0, 1] (default 0.35; not measured)")  # fmt: skip
    p.add_argument("--json", metavar="PATH", help="also write the numbers to this JSON file")
    p.add_argument("--budget", help="SRAM budget (default: the search config's, e.g. 320KB)")
    p.add_argument("--samples", type=int, default=2000, help="subnets drawn per space point (default 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--search-ranks", type=int, default=1,
                   help="torchrun ranks the subnet search's candidates are shared over (default 1)")  # fmt: skip
    p.add_argument("--train-cfg", default=TRAIN_CFG)
    p.add_argument("--evolve-cfg", default=EVOLVE_CFG)
    p.add_argument("--search-cfg", default=SEARCH_CFG)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        hw = Hardware(args.gpus, args.nodes, args.gpu_peak_tflops, args.mfu)
        train, evo, search = load_configs(args.train_cfg, args.evolve_cfg, args.search_cfg)
        est = estimate(train, evo, search, hw, args.budget, args.samples, args.seed, args.search_ranks)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"{hw.nodes} node(s) x {hw.gpus_per_node} GPUs, peak {hw.peak_tflops:g} TFLOPS per GPU, "
        f"MFU {hw.mfu:g} (an assumption you set; the paper reports none); FLOPs counted with "
        f"search_space.counting over {args.samples} subnets per space point; budget {est.budget}; "
        f"ImageNet train {est.splits.train:,} / holdout {est.splits.holdout:,} / test {est.splits.test:,} images"
    )
    print(
        f"space evolution runs each visit on its job's GPUs, the initial visits up to launch.max_parallel "
        f"({evo.launch.max_parallel}) at a time; the search runs on {args.search_ranks} rank(s), finetuning in one "
        "process on one GPU; rank-0 evaluation runs while the other GPUs wait; GPU-hours = wall-clock x GPUs held"
    )
    print(table(est))
    rate = est.train_images_per_gpu_second()
    print(
        f"stage 1 at this MFU trains {rate:,.0f} images/s per GPU; if the input pipeline delivers "
        "fewer, it, not the FLOPs, sets the wall-clock"
    )
    if args.json:
        atomic_write_text(args.json, json.dumps(est.to_dict(), indent=1))
    t = est.totals()
    print(
        f"summary: {pflop(t['lower_flops'])}–{pflop(t['upper_flops'])} counted, "
        f"{t['lower_wall_hours']:,.1f}–{t['upper_wall_hours']:,.1f} h wall-clock "
        f"({t['lower_gpu_hours']:,.1f}–{t['upper_gpu_hours']:,.1f} GPU-hours) on {hw.nodes} node(s) x {hw.gpus_per_node} "
        f"GPUs at {hw.peak_tflops:g} TFLOPS and an assumed MFU of {hw.mfu:g}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
