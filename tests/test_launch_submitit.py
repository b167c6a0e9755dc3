"""Visits as jobs: independent visits requested together and run in parallel (threads or
submitit's local executor) with the sequential run's results; Slurm parameters reaching sbatch;
a preempted submitit job requeued, resumed and never submitted twice."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

import evolve_space
from search.launch import (
    SUBMITIT_FILE,
    JobRunner,
    SlurmCfg,
    SubmititLauncher,
    SubmititSettings,
    make_launcher,
)
from search.space.config import load_evolve_config
from search.space.loop import EvolutionSettings, Grid, SpaceEvolution, VisitRequest
from search.space.run import EvolveRun
from search.space.visit import RESULT_FILE
from tests.test_evolve_space_run import _comparable, tiny_overrides

GRID = Grid(rank_ratio=(0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0), patch_size=(4, 5, 6, 7, 8))


def _score(req: VisitRequest) -> dict:
    i, j = req.point
    s = 0.02 * i - 0.01 * abs(j - 2) + 0.001 * req.total_epochs  # a ridge that grows with training
    return {"A": s, "R": 0.0, "S": s}


# ---- the loop asks for independent visits together ---------------------------------------
def test_independent_visits_are_requested_together_with_sequential_results(tmp_path):
    settings = EvolutionSettings(
        threshold=(0.005, 0.005), max_steps=6, epochs_per_visit=2, restarts=1, max_total_epochs=40,
        init_points=((0.4, 6), (0.5, 6), (0.4, 7)),
    )  # fmt: skip
    seq = SpaceEvolution(GRID, settings, _score, tmp_path / "seq.json")
    seq_result = seq.run()
    batches: list[list[str]] = []

    def many(reqs: list[VisitRequest]) -> list[dict]:
        batches.append([r.job_id for r in reqs])
        return [_score(r) for r in reversed(reqs)][::-1]  # computed in any order, returned in order

    par = SpaceEvolution(GRID, settings, _score, tmp_path / "par.json", train_many=many)
    assert par.run() == seq_result
    assert _comparable(par.state()) == _comparable(seq.state())
    assert batches[0] == ["r0.4_p6/v0", "r0.5_p6/v0", "r0.4_p7/v0"]  # the initial points at once
    caught = [b for b in batches if len(b) > 1 and all(j.split("/")[1] != "v0" for j in b)]
    assert caught, "no step caught two neighbours up together"
    fits = [f for f in seq.fits if len(f["caught_up"]) > 1]
    assert fits and all(
        sorted(f["caught_up"]) == sorted(j.split("/")[0] for j in b)
        for f, b in zip(fits, caught, strict=False)
    )
    # a rerun replays from the state without asking for any visit
    again = SpaceEvolution(
        GRID, settings, _score, tmp_path / "par.json", train_many=lambda r: pytest.fail(str(r))
    )
    assert again.run() == seq_result


def test_job_runner_overlaps_jobs_up_to_max_parallel(tmp_path):
    script = (
        "date +%s.%N > {job_dir}/start && sleep 1 && date +%s.%N > {job_dir}/end && "
        "echo '{{\"A\": 1}}' > {job_dir}/result.json"
    )
    for parallel in (1, 2):
        dirs = [tmp_path / f"p{parallel}" / f"j{i}" for i in range(3)]
        for d in dirs:
            d.mkdir(parents=True)
        out = JobRunner(make_launcher("command", command=script), parallel).run_many(dirs)
        assert out == [{"A": 1}] * 3
        spans = sorted((float((d / "start").read_text()), float((d / "end").read_text())) for d in dirs)
        at_once = max(sum(s <= start < e for s, e in spans) for start, _ in spans)
        assert at_once == parallel  # never more than max_parallel running
        assert JobRunner(make_launcher("command", command="false {job_dir}"), 2).run_many(dirs) == out  # done


# ---- Slurm through submitit ----------------------------------------------------------------
def test_slurm_parameters_reach_the_sbatch_file(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    slurm = SlurmCfg(
        partition="gpu", nodes=4, gpus_per_node=8, cpus_per_task=6, constraint="a100", account="nas",
        additional={"qos": "high"}, setup="module load cuda",
    )  # fmt: skip
    launcher = SubmititLauncher(SubmititSettings("slurm", timeout_min=720, slurm=slurm), tmp_path / "s")
    text = launcher.executor._executor._make_submission_file_text("CMD", "uid")
    for line in (
        "--partition=gpu", "--nodes=4", "--gpus-per-node=8", "--ntasks-per-node=8", "--cpus-per-task=6",
        "--constraint=a100", "--account=nas", "--qos=high", "--time=720", "--signal=USR2@",
    ):  # fmt: skip
        assert f"#SBATCH {line}" in text, line
    assert "module load cuda" in text and "srun" in text


def test_slurm_without_a_cluster_and_bad_launch_settings_are_one_line_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))  # no srun
    out = tmp_path / "out"
    for args, message in (
        (["launch.kind=submitit", "launch.executor=slurm"], "launch.executor=slurm needs a Slurm cluster"),
        (["launch.kind=submitit", "launch.executor=pbs"], "launch.executor must be one of"),
        (["launch.max_parallel=0"], "launch.max_parallel must be >= 1"),
        (["launch.slurm.gpus=8"], "unknown config key 'launch.slurm.gpus'"),
    ):
        argv = ["--budget", "320KB", "--output", str(out)]
        for a in args:
            argv += ["-o", a]
        assert evolve_space.main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not out.exists()


# ---- real visits as submitit local jobs ----------------------------------------------------
@pytest.mark.slow
def test_parallel_local_submitit_visits_equal_the_sequential_run(tmp_path):
    data = tmp_path / "data"
    tiny = lambda out: [*tiny_overrides(data, out), "evolve.restarts=1"]  # noqa: E731 (one restart)
    seq = EvolveRun(load_evolve_config(None, tiny(tmp_path / "seq"))).run()
    par_cfg = [
        *tiny(tmp_path / "par"), "launch.kind=submitit", "launch.executor=local",
        "launch.max_parallel=2", "launch.poll_s=0.2",
    ]  # fmt: skip
    par = EvolveRun(load_evolve_config(None, par_cfg)).run()
    paths = ("supernet_checkpoint", "job_checkpoint")
    assert {k: v for k, v in par.items() if k not in paths} == {
        k: v for k, v in seq.items() if k not in paths
    }
    states = [json.loads((tmp_path / d / "state.json").read_text()) for d in ("seq", "par")]
    assert _comparable(states[1]) == _comparable(states[0])
    jobs = {json.loads(p.read_text())["job_id"] for p in (tmp_path / "par" / "points").rglob(SUBMITIT_FILE)}
    trained = [v for v in states[1]["visits"].values() if v["scores"]["trained"]]
    assert len(jobs) == len(trained) and states[1]["result"]["climbs"] == 2  # one submitit job per visit


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


@pytest.mark.slow
def test_a_preempted_visit_is_requeued_resumes_and_is_never_submitted_twice(tmp_path):
    data = tmp_path / "data"
    runs = {}
    for name in ("ref", "job"):
        run = EvolveRun(load_evolve_config(None, tiny_overrides(data, tmp_path / name)))
        req = VisitRequest("r0.75_p8/v0", (1, 1), (0.75, 8), 3, None, 3)
        assert run._prepare(req) is None  # a job to run (3 epochs)
        runs[name] = run.job_dir(req.job_id)
    ref = make_launcher("inprocess")(runs["ref"])

    job_dir, folder = runs["job"], tmp_path / "submitit"
    settings = SubmititSettings("local", poll_s=0.2)
    first = SubmititLauncher(settings, folder)
    job = first.submit(job_dir)
    deadline = time.time() + 300
    while not (job_dir / "checkpoint.pth").exists():  # the first epoch is saved
        assert time.time() < deadline and not job.done(), "the job ended before its first epoch"
        time.sleep(0.2)
    (task,) = _children(int(job.job_id))
    os.kill(task, signal.SIGUSR2)  # what Slurm sends before preempting or timing out a job
    # the driver is killed and started again: it waits for the same job instead of resubmitting
    second = SubmititLauncher(settings, folder)
    assert second.attach(job_dir) is not None
    (result,) = second.run_many([job_dir], max_parallel=2)
    assert json.loads((job_dir / SUBMITIT_FILE).read_text())["job_id"] == job.job_id
    assert len(list(folder.glob("*_submitted.pkl"))) == 1  # one submission
    logs = "".join(p.read_text() for p in folder.glob(f"{job.job_id}_*_log.*"))
    assert "Requeued" in logs or "requeu" in logs.lower(), logs[-2000:]
    train_log = (job_dir / "train.log").read_text()
    assert "resum" in train_log.lower(), train_log[-2000:]
    assert (job_dir / RESULT_FILE).exists() and result["epochs"] == ref["epochs"] == 3
    for key in ("A", "R", "S", "A_max"):
        assert result[key] == ref[key], key
    assert result["evaluated"]["top1"] == ref["evaluated"]["top1"]
