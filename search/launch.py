"""How a visit's job runs: in this process, as a subprocess, under torchrun, through submitit
(a Slurm job or a local subprocess, requeued on preemption) or through any command. Every
launcher ends with ``<job_dir>/result.json`` or raises; `JobRunner` runs independent jobs up to
``max_parallel`` at a time.

submitit (``kind: submitit``) is the engine for clusters: each visit is one submitit job whose
function (`VisitJob`) is checkpointable, so a preempted or timed-out job is requeued and resumes
from the visit's last epoch checkpoint. On Slurm a job has ``nodes`` x ``tasks_per_node`` tasks
(one per GPU) that form one torch.distributed group through submitit's environment. The job id
is written atomically to ``<job_dir>/submitit.json`` right after submission: a driver started
again waits for a job that is still queued or running instead of submitting it twice.

Command templates (``kind: command``, the fallback for other schedulers) get ``{python}`` (this
interpreter), ``{job_dir}`` (absolute, shell-quoted) and ``{nproc}``; the command must block
until the job is done, e.g. ``sbatch --wait ... --wrap="{python} -m search.launch {job_dir}"``.

The job itself is ``python -m search.launch JOB_DIR`` (`search.space.visit.run_job`).
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import ArgumentParser, ConfigError, exit_on_error
from common.files import atomic_write_text
from search.space.visit import RESULT_FILE, run_job

TEMPLATES = {
    "subprocess": "{python} -m search.launch {job_dir}",
    "torchrun": "{python} -m torch.distributed.run --standalone --nproc_per_node={nproc} -m search.launch {job_dir}",
}
LAUNCHERS = ("inprocess", "subprocess", "torchrun", "command", "submitit")
EXECUTORS = ("local", "slurm")
SUBMITIT_FILE = "submitit.json"  # the job id of a submitted visit (written atomically)
REPO = Path(__file__).resolve().parents[1]
Launcher = Callable[[Path], dict[str, Any]]
log = logging.getLogger("mcunas.launch")


@dataclass
class SlurmCfg:
    """Slurm parameters of one visit job (``launch.slurm``); ``additional`` passes any other
    sbatch option through (e.g. ``{qos: high, exclusive: true}``)."""

    partition: str | None = None
    nodes: int = 1
    gpus_per_node: int = 8
    tasks_per_node: int | None = None  # null = gpus_per_node (one DDP rank per GPU)
    cpus_per_task: int = 8
    mem_gb: int | None = None
    constraint: str | None = None
    account: str | None = None
    job_name: str = "evolve-visit"
    additional: dict = field(default_factory=dict)  # any other Slurm parameter
    setup: str | None = None  # shell commands run before the job, e.g. "module load cuda/12.4"

    def parameters(self) -> dict[str, Any]:
        """submitit's ``slurm_*`` parameters."""
        extra = {"constraint": self.constraint, "account": self.account}
        out: dict[str, Any] = {
            "slurm_partition": self.partition,
            "nodes": self.nodes,
            "gpus_per_node": self.gpus_per_node,
            "tasks_per_node": self.tasks_per_node or max(1, self.gpus_per_node),
            "cpus_per_task": self.cpus_per_task,
            "mem_gb": self.mem_gb,
            "name": self.job_name,
            "slurm_setup": [self.setup] if self.setup else None,
            "slurm_additional_parameters": {**{k: v for k, v in extra.items() if v}, **self.additional},
        }
        return {k: v for k, v in out.items() if v is not None}


@dataclass
class SubmititSettings:
    """What `SubmititLauncher` needs (``launch`` section of the evolve config)."""

    executor: str = "local"  # local | slurm
    folder: str = "submitit"  # logs and pickles; relative = inside the run's output
    timeout_min: float = 24 * 60  # per job (and per requeued attempt)
    max_num_timeout: int = 3  # requeues after preemption/timeout before the job fails
    poll_s: float = 2.0  # how often the driver looks at running jobs
    slurm: SlurmCfg = field(default_factory=SlurmCfg)


class VisitJob:
    """A visit as a submitit job: train and score the job directory; on preemption or timeout
    submitit calls `checkpoint` and requeues the same call, which resumes from the last epoch."""

    def __call__(self, job_dir: str) -> dict[str, Any] | None:
        import submitit

        env = submitit.JobEnvironment()
        if env.num_tasks > 1:  # one rank per task: torchrun's variables from Slurm's
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        return run_job(job_dir)

    def checkpoint(self, job_dir: str) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(VisitJob(), job_dir)


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


def _failed(job_dir: Path, what: str, log_file: Path | None) -> RuntimeError:
    tail = (
        log_file.read_text(errors="replace").strip().splitlines()[-5:]
        if log_file and log_file.exists()
        else []
    )
    return RuntimeError(
        f"job {job_dir} failed ({what})\n" + "\n".join(tail)
        + "\nrerun the same command to retry; the job resumes from its last epoch"
    )  # fmt: skip


def command_launcher(template: str, nproc: int = 1) -> Launcher:
    def launch(job_dir: Path) -> dict[str, Any]:
        cmd = template.format(
            python=shlex.quote(sys.executable), job_dir=shlex.quote(str(job_dir)), nproc=nproc
        )
        with open(job_dir / "launch.log", "ab") as out:
            proc = subprocess.run(cmd, shell=True, stdout=out, stderr=subprocess.STDOUT, check=False)
        done = job_dir / RESULT_FILE
        if proc.returncode != 0 or not done.exists():
            raise _failed(job_dir, f"exit {proc.returncode}: {cmd}", job_dir / "launch.log")
        return json.loads(done.read_text())

    return launch


class SubmititLauncher:
    """Visits as submitit jobs (Slurm or local processes), many at once."""

    def __init__(self, settings: SubmititSettings, folder: Path, nproc: int = 1) -> None:
        import submitit

        self.s, self.folder = settings, folder
        if settings.executor == "slurm":
            try:
                self.executor: Any = submitit.AutoExecutor(
                    folder, cluster="slurm", slurm_max_num_timeout=settings.max_num_timeout
                )
            except RuntimeError as exc:  # no srun here
                raise ConfigError(
                    f"launch.executor=slurm needs a Slurm cluster ({exc}); run evolve_space.py on a "
                    "login node or use -o launch.executor=local"
                ) from None
            self.executor.update_parameters(timeout_min=max(1, round(settings.timeout_min)))
            self.executor.update_parameters(**settings.slurm.parameters())
        else:
            self.executor = submitit.LocalExecutor(folder, max_num_timeout=settings.max_num_timeout)
            self.executor.update_parameters(
                timeout_min=settings.timeout_min, tasks_per_node=nproc, gpus_per_node=0
            )
        self._pythonpath()

    @staticmethod
    def _pythonpath() -> None:
        """Jobs unpickle `VisitJob` from this package: make it importable wherever they start."""
        parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        if str(REPO) not in parts:
            os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), *parts])

    # ---- one job ------------------------------------------------------------------------
    def submit(self, job_dir: Path) -> Any:
        """Submit the visit unless a recorded job of it is still queued or running."""
        known = self.attach(job_dir)
        if known is not None:
            log.info("%s: waiting for job %s submitted before", job_dir.name, known.job_id)
            return known
        job = self.executor.submit(VisitJob(), str(job_dir))
        record = {"job_id": str(job.job_id), "executor": self.s.executor, "folder": str(self.folder)}
        atomic_write_text(job_dir / SUBMITIT_FILE, json.dumps(record))
        log.info("%s: submitted as %s job %s", job_dir, self.s.executor, job.job_id)
        return job

    def attach(self, job_dir: Path) -> Any:
        """The recorded job of this visit when it is still queued or running, else ``None``."""
        import submitit

        path = job_dir / SUBMITIT_FILE
        if not path.is_file():
            return None
        rec = json.loads(path.read_text())
        if rec.get("executor") != self.s.executor:
            return None
        if self.s.executor == "slurm":
            job = submitit.SlurmJob(rec["folder"], rec["job_id"])
            return None if job.done(force_check=True) else job
        return _LiveLocalJob(rec["job_id"]) if _alive(int(rec["job_id"])) else None

    def wait(self, job_dir: Path, job: Any) -> dict[str, Any] | None:
        """The result once the job is over, ``None`` while it runs; raises if it failed."""
        if not job.done():
            return None
        done = job_dir / RESULT_FILE
        if done.exists():
            return json.loads(done.read_text())
        try:
            err = job.exception() if hasattr(job, "exception") else None
        except Exception as exc:  # whatever submitit reports, the job has failed
            err = exc
        first = str(err).strip().splitlines()[-1] if err else "no result written"
        paths = getattr(job, "paths", None)
        raise _failed(job_dir, f"submitit job {job.job_id}: {first}", paths.stderr if paths else None)

    def __call__(self, job_dir: Path) -> dict[str, Any]:
        return self.run_many([job_dir], 1)[0]

    # ---- many jobs ----------------------------------------------------------------------
    def run_many(self, job_dirs: list[Path], max_parallel: int) -> list[dict[str, Any]]:
        """Run the jobs, at most ``max_parallel`` submitted at a time; results in order."""
        results: dict[int, dict[str, Any]] = {}
        running: dict[int, Any] = {}
        queue = list(range(len(job_dirs)))
        while queue or running:
            while queue and len(running) < max_parallel:
                i = queue.pop(0)
                done = job_dirs[i] / RESULT_FILE
                if done.exists():
                    results[i] = json.loads(done.read_text())
                else:
                    running[i] = self.submit(job_dirs[i])
            for i, job in list(running.items()):
                res = self.wait(job_dirs[i], job)
                if res is not None:
                    results[i] = res
                    del running[i]
            if running:
                time.sleep(self.s.poll_s)
        return [results[i] for i in range(len(job_dirs))]


class _LiveLocalJob:
    """A local job started by an earlier driver: over when its controller process is gone."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id

    def done(self) -> bool:
        return not _alive(int(self.job_id))


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a running submitit controller (a reused pid is not)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return b"submitit" in cmdline and stat.rsplit(")", 1)[-1].split()[0] != "Z"


def make_launcher(
    kind: str,
    nproc: int = 1,
    command: str | None = None,
    submitit: SubmititSettings | None = None,
    folder: Path | None = None,
) -> Launcher:
    """One job at a time of the given kind (``folder``: submitit's logs)."""
    if kind == "inprocess":
        return run_inprocess
    if kind == "command":
        assert command is not None
        return command_launcher(command, nproc)
    if kind == "submitit":
        assert folder is not None
        return SubmititLauncher(submitit or SubmititSettings(), folder, nproc)
    return command_launcher(TEMPLATES[kind], nproc)


class JobRunner:
    """Independent jobs up to ``max_parallel`` at a time (in-process jobs one at a time: they
    share this process); results in the order of the job directories."""

    def __init__(self, launcher: Launcher, max_parallel: int = 1) -> None:
        self.launcher, self.max_parallel = launcher, max_parallel

    def __call__(self, job_dir: Path) -> dict[str, Any]:
        return self.launcher(job_dir)

    def run_many(self, job_dirs: list[Path]) -> list[dict[str, Any]]:
        done = {d: json.loads((d / RESULT_FILE).read_text()) for d in job_dirs if (d / RESULT_FILE).exists()}
        todo = [d for d in job_dirs if d not in done]
        if isinstance(self.launcher, SubmititLauncher):
            ran = self.launcher.run_many(todo, self.max_parallel)
        elif self.max_parallel == 1 or self.launcher is run_inprocess or len(todo) < 2:
            ran = [self.launcher(d) for d in todo]
        else:
            with ThreadPoolExecutor(min(self.max_parallel, len(todo))) as pool:
                ran = list(pool.map(self.launcher, todo))
        done.update(zip(todo, ran, strict=True))
        return [done[d] for d in job_dirs]


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
