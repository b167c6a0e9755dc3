"""How a visit's job runs: in this process, as a subprocess, under torchrun, or through any
command (e.g. Slurm). Every launcher ends with ``<job_dir>/result.json`` or raises.

Command templates get ``{python}`` (this interpreter), ``{job_dir}`` (absolute, shell-quoted)
and ``{nproc}``; the command must block until the job is done. Slurm example::

    launch:
      kind: command
      nproc: 8
      command: >-
        sbatch --wait --job-name=evolve --nodes=1 --gres=gpu:8 --cpus-per-task=64
        --output={job_dir}/slurm.out
        --wrap="{python} -m torch.distributed.run --standalone --nproc_per_node={nproc} -m search.launch {job_dir}"

The job itself is ``python -m search.launch JOB_DIR`` (`search.space.visit.run_job`).
"""

from __future__ import annotations

import json
import logging
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.errors import ArgumentParser, ConfigError, exit_on_error
from search.space.visit import RESULT_FILE, run_job

TEMPLATES = {
    "subprocess": "{python} -m search.launch {job_dir}",
    "torchrun": "{python} -m torch.distributed.run --standalone --nproc_per_node={nproc} -m search.launch {job_dir}",
}
LAUNCHERS = ("inprocess", "subprocess", "torchrun", "command")
Launcher = Callable[[Path], dict[str, Any]]


def run_inprocess(job_dir: Path) -> dict[str, Any]:
    """Run the job here; the caller's logging handlers survive the job's own log setup."""
    root = logging.getLogger("mcunas")
    handlers, level = list(root.handlers), root.level
    try:
        result = run_job(job_dir)
    finally:
        for h in root.handlers:
            if h not in handlers:
                h.close()
        root.handlers[:] = handlers
        root.setLevel(level)
    assert result is not None
    return result


def command_launcher(template: str, nproc: int = 1) -> Launcher:
    def launch(job_dir: Path) -> dict[str, Any]:
        cmd = template.format(
            python=shlex.quote(sys.executable), job_dir=shlex.quote(str(job_dir)), nproc=nproc
        )
        with open(job_dir / "launch.log", "ab") as out:
            proc = subprocess.run(cmd, shell=True, stdout=out, stderr=subprocess.STDOUT, check=False)
        done = job_dir / RESULT_FILE
        if proc.returncode != 0 or not done.exists():
            tail = (job_dir / "launch.log").read_text(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(
                f"job {job_dir} failed (exit {proc.returncode}): {cmd}\n" + "\n".join(tail)
                + "\nrerun the same command to retry; the job resumes from its last epoch"
            )  # fmt: skip
        return json.loads(done.read_text())

    return launch


def make_launcher(kind: str, nproc: int = 1, command: str | None = None) -> Launcher:
    if kind == "inprocess":
        return run_inprocess
    if kind == "command":
        assert command is not None
        return command_launcher(command, nproc)
    return command_launcher(TEMPLATES[kind], nproc)


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m search.launch", description="Run one space-evolution visit job.")
    p.add_argument("job_dir", help="the job's directory (holds job.json, written by evolve_space.py)")
    job_dir = Path(p.parse_args(argv).job_dir)
    if not (job_dir / "job.json").is_file():
        return exit_on_error(ConfigError(f"{job_dir} holds no job.json; pass a visit's job directory"))
    try:
        run_job(job_dir)
    except ConfigError as exc:
        return exit_on_error(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
