"""Run every benchmark and write BENCHMARKS.md.

    python -m bench.run_all                      # everything (hours on 2 CPU cores; resumable)
    python -m bench.run_all --only flops,memory  # some steps, then re-render the document
    python -m bench.run_all --render             # re-render BENCHMARKS.md from bench/results/

Each step is one command, run as its own process, one after another (timed benchmarks must
not share the machine with each other). A step's figures, its command, wall-clock and the
machine it ran on land in ``bench/results/<step>.json`` (small, committed), and the document and
its detail pages (``docs/benchmarks/*.md``) are rendered from those files only, so every number
in BENCHMARKS.md traces to one script and ``--render`` works on a fresh clone. Long steps (the
pipeline, training, searches, the grid) resume from their output directories: rerunning after an
interruption continues where it stopped, and rerunning a finished step costs seconds. The deployment step needs ``.venv-deploy`` (``DEPLOY=1 bash
scripts/setup.sh``) and is recorded as skipped without it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common.files import atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path("bench/results")  # committed: one JSON per step (figures, record, machine)
RAW = Path("runs/bench/results")  # what the scripts write (--json), before run_all gathers it
FIGURES = Path("docs/benchmarks")  # committed beside BENCHMARKS.md
DEPLOY_PY = Path(".venv-deploy/bin/python")
SEARCH_FLAGS = ["-o", "search.population=20", "-o", "search.generations=10", "-o", "search.parents=4",
                "-o", "search.mutations=10", "-o", "search.crossovers=10", "-o", "progress=false"]  # fmt: skip
# the smallest width of each family (and MobileViT-V2 0.75, which only 512 KB admits): training
# every width variant too takes hours on 2 CPU cores; drop --train-models to train them all
TRAINED_BASELINES = "mobilevit_xxs,mobilevitv2_050,mobilevitv2_075,efficientformerv2_s0,mobileone_s0"
PIPELINE_SUPERNET = "runs/pipeline/evolve_space/chosen/checkpoint.pth"


@dataclass(frozen=True)
class Step:
    """One command; ``copy`` maps labels to files it writes, gathered as ``{label: content}``
    (without ``copy`` the command writes ``runs/bench/results/<step>.json`` itself)."""

    name: str
    argv: tuple[str, ...]
    copy: tuple[tuple[str, str], ...] = ()
    figures: tuple[tuple[str, str], ...] = ()  # (PNG it writes, name under docs/benchmarks/)
    deploy: bool = False  # runs with the deployment venv's python


def steps(py: str) -> list[Step]:
    r = RAW
    search = [
        Step(
            f"search_{b}",
            (
                py,
                "evolution_search.py",
                "--supernet",
                PIPELINE_SUPERNET,
                "--budget",
                b,
                "--output",
                f"runs/pipeline/search_{b}",
                "--seed",
                "0",
                "--finetune",
                "10",
                *SEARCH_FLAGS,
            ),
            copy=(("report", f"runs/pipeline/search_{b}/report.json"),),
        )
        for b in ("256KB", "512KB")
    ]
    searched = "runs/pipeline/search_256KB,runs/pipeline/search,runs/pipeline/search_512KB"
    return [
        Step("supernet", (py, "bench/bench_supernet.py", "--rounds", "5", "--steps", "2", "--json", f"{r}/supernet.json")),
        Step("flops", (py, "bench/bench_flops.py", "--json", f"{r}/flops.json")),
        Step("memory", (py, "bench/bench_memory.py", "--json", f"{r}/memory.json")),
        Step("cluster_estimate", (py, "bench/cluster_estimate.py", "--json", f"{r}/cluster_estimate.json")),
        Step("pipeline", (py, "pipeline.py", "--budget", "320KB"),
             copy=(("report", "runs/pipeline/search/report.json"),
                   ("evolve", "runs/pipeline/evolve_space/result.json"))),
        Step("int8", (py, "bench/bench_int8.py", "--json", f"{r}/int8.json")),
        Step("tflm", ("DEPLOY", "-m", "bench.bench_tflm", "--large", "--json", f"{r}/tflm.json"), deploy=True),
        Step(  # one benchmark, a config matrix of three rows (bench.space_vs_grid.MATRIX)
            "space_vs_grid",
            (py, "-m", "bench.space_vs_grid", "--matrix", "--budget", "320KB", "--output", "runs/bench/space_vs_grid",
             "-o", "evolve.epochs_per_visit=4", "--jobs", "2"),
            copy=(("matrix", "runs/bench/space_vs_grid/matrix.json"),),
            figures=tuple((f"runs/bench/space_vs_grid{s}/reference.png", f"space_vs_grid{s}")
                          for s in ("", "_scratch", "_lecun")),
        ),
        Step("supernet_train", (py, "supernet_train.py", "--cfg", "configs/train/digits-tiny.yaml"),
             copy=(("final", "runs/digits-tiny/final.json"),)),
        Step(
            "evolution_vs_random",
            (py, "bench/evolution_vs_random.py", "--supernet", "runs/digits-tiny/checkpoint.pth",
             "--budget", "320KB", "--seeds", "0", "1", "2", "--threads", "2"),
            copy=(("summary", "runs/bench/evolution_vs_random/summary.json"),),
        ),
        *search,
        Step(
            "baselines",
            (py, "-m", "baselines", "--budget", "256KB,320KB,512KB", "--flash-budget", "1MB", "--train-epochs", "10",
             "--train-models", TRAINED_BASELINES,
             "--searched", searched),
            copy=(("results", "runs/baselines/results.json"),),
            figures=(("runs/baselines/plot.png", "baselines"),),
        ),
    ]  # fmt: skip


def machine() -> dict[str, object]:
    """What the figures were measured on."""
    import torch

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            ln.split(":", 1)[1].strip()
            for ln in cpuinfo.read_text().splitlines()
            if ln.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "date": datetime.date.today().isoformat(),
    }


def run_step(step: Step, log_dir: Path) -> tuple[dict[str, object], object | None]:
    """Run one step; returns its record (exit code, wall seconds, skipped reason) and its figures
    (``None`` when it failed or was skipped)."""
    argv = list(step.argv)
    if step.deploy:
        if not DEPLOY_PY.exists():
            return {
                "step": step.name,
                "skipped": f"{DEPLOY_PY} missing (DEPLOY=1 bash scripts/setup.sh)",
            }, None
        argv[0] = str(DEPLOY_PY)
    log_dir.mkdir(parents=True, exist_ok=True)
    (ROOT / RAW).mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{step.name}.log"
    print(f"[{step.name}] {' '.join(argv)}  (log: {log_path})", flush=True)
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        code = subprocess.call(argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    wall_s = time.perf_counter() - t0
    data = None
    if code == 0:
        if step.copy:
            data = {label: json.loads((ROOT / path).read_text()) for label, path in step.copy}
        else:
            data = json.loads((ROOT / RAW / f"{step.name}.json").read_text())
    for src, name in step.figures if code == 0 else ():
        if not (ROOT / src).exists():  # e.g. a matrix row never run
            continue
        dst = ROOT / FIGURES / f"{name}.png"
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.tmp")
        shutil.copyfile(ROOT / src, tmp)
        os.replace(tmp, dst)
    tail = log_path.read_text().strip().splitlines()[-1:] or [""]
    print(f"[{step.name}] exit {code} in {wall_s:.0f} s: {tail[0][:160]}", flush=True)
    return {"step": step.name, "exit_code": code, "wall_s": wall_s, "command": " ".join(step.argv)}, data


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", help="comma-separated steps to run (default: all)")
    p.add_argument("--skip", default="", help="comma-separated steps not to run")
    p.add_argument("--render", action="store_true", help="only re-render BENCHMARKS.md from saved figures")
    p.add_argument(
        "--results",
        type=Path,
        default=RESULTS,
        help=f"folder of the step results to save and render (default {RESULTS}; the older layout of "
        "runs/bench/results/ with its records.json renders too)",
    )
    p.add_argument(
        "--output", default="BENCHMARKS.md", help="the document; its pages go to docs/benchmarks/ beside it"
    )
    args = p.parse_args(argv)
    all_steps = steps(sys.executable)
    names = [s.name for s in all_steps]
    wanted = [n.strip() for n in (args.only or ",".join(names)).split(",") if n.strip()]
    skip = {n.strip() for n in args.skip.split(",") if n.strip()}
    unknown = sorted((set(wanted) | skip) - set(names))
    if unknown:
        print(f"error: unknown step {unknown[0]!r}; steps: {', '.join(names)}", file=sys.stderr)
        return 2
    os.chdir(ROOT)
    from bench.report import render
    from bench.report_doc import Results, save_step

    failed = []
    if not args.render:
        args.results.mkdir(parents=True, exist_ok=True)
        here = machine()
        for step in all_steps:
            if step.name in wanted and step.name not in skip:
                rec, data = run_step(step, Path("runs/bench/logs"))
                save_step(args.results, step.name, rec, here, data)
                if rec.get("exit_code", 0) != 0:
                    failed.append(step.name)
    out = Path(args.output)
    for rel, text in render(Results(args.results)).items():
        path = out if rel == Path("BENCHMARKS.md") else out.parent / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    print(f"wrote {args.output}" + (f"; failed steps: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
