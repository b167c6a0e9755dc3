"""Bad input to ``evolve_space.py``: one line on stderr, exit 2, no traceback, nothing written
(neither the output nor the dense pretraining's directory), and every check made before any
training starts."""

from __future__ import annotations

from pathlib import Path

import pytest

import evolve_space
from tests.badinput import BAD_FILE_MESSAGES, assert_refused, bad_files

CASES = {  # name: (extra argv, expected text); --budget 320KB unless the case names one
    "budget_unit": (["--budget", "320QB"], "unknown unit 'QB'"),
    "budget_negative": (["--budget=-1KB"], "cannot read budget '-1KB'"),
    "budget_word": (["--budget", "abc"], "cannot read budget 'abc'"),
    "budget_zero": (["--budget", "0KB"], "must be positive"),
    "budget_fraction": (["--budget", "0.3MB"], "is 314572.8 bytes, not a whole number"),
    "budget_huge": (["--budget", "2048GB"], "above the 1 TiB limit"),
    "budget_tiny": (["--budget", "1KB"], "no point of the grid"),
    "flash_tiny": (["--budget", "320KB", "--flash-budget", "1KB"], "no point of the grid"),
    "flash_word": (["--budget", "320KB", "--flash-budget", "lots"], "cannot read budget 'lots'"),
    "no_budget": ([], "no SRAM budget: pass --budget"),
    "schedule_unknown": (
        ["--budget", "320KB", "-o", "score.schedule=tflite"],
        "score.schedule must be one of",
    ),
    "eta_negative": (["--budget", "320KB", "-o", "score.eta=-1"], "score.eta must be >= 0"),
    "eta_inf": (["--budget", "320KB", "-o", "score.eta=inf"], "'score.eta' must be a finite number"),
    "pool": (["--budget", "320KB", "-o", "score.eval_pool=2"], "score.eval_subnets >= 1 and eval_pool >= it"),
    "launch_kind": (["--budget", "320KB", "-o", "launch.kind=slurm"], "launch.kind must be one of"),
    "launch_command": (["--budget", "320KB", "-o", "launch.kind=command"], "launch.kind=command needs"),
    "off_grid": (["--budget", "320KB", "-o", "init_points=[[0.45, 6]]"], "is not on the grid"),
    "init_points_shape": (["--budget", "320KB", "-o", "init_points=[0.5, 6]"], "init_points must be"),
    "unknown_key": (
        ["--budget", "320KB", "-o", "evolve.max_stepz=3"],
        "unknown config key 'evolve.max_stepz'",
    ),
    "recipe_key": (
        ["--budget", "320KB", "-o", "recipe.overrides.optim.lrr=1"],
        "unknown config key 'optim.lrr'",
    ),
    "recipe_lr_inf": (
        ["--budget", "320KB", "-o", "recipe.overrides.optim.lr=inf"],
        "must be a finite number",
    ),
    "recipe_missing": (
        ["--budget", "320KB", "-o", "recipe.cfg=nope.yaml"],
        "config file nope.yaml does not exist",
    ),
    "pretrain_missing": (["--budget", "320KB", "-o", "pretrain.cfg=nope.yaml"], "nope.yaml does not exist"),
    "pretrain_low_rank": (["--budget", "320KB", "-o", "pretrain.space=digits-tiny"], "is low-rank"),
    "recipe_space": (["--budget", "320KB", "-o", "recipe.space=nosuch"], "no space preset 'nosuch'"),
    "dense_recipe": (["--budget", "320KB", "-o", "recipe.space=digits-tiny-dense"], "needs a low-rank space"),
    "seed_text": (["--budget", "320KB", "--seed", "x"], "invalid int value: 'x'"),
    "unknown_flag": (["--budget", "320KB", "--budgets", "1"], "unrecognized arguments"),
}


@pytest.fixture
def where(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """An output directory and a dense-pretraining directory, neither of which may appear."""
    out, dense = tmp_path / "out", tmp_path / "dense"
    return out, dense, ["--output", str(out), "-o", f"pretrain.overrides.log.output={dense}"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_refused_before_anything(name: str, where, capsys) -> None:
    out, dense, base = where
    argv, expect = CASES[name]
    assert_refused(evolve_space.main, [*base, *argv], expect, capsys, out, dense)


@pytest.mark.parametrize("name", sorted(BAD_FILE_MESSAGES))
def test_bad_config_file(name: str, where, tmp_path: Path, capsys) -> None:
    out, dense, base = where
    files = bad_files(tmp_path / "files")
    argv = [*base, "--budget", "320KB", "--cfg", str(files[name])]
    assert_refused(evolve_space.main, argv, BAD_FILE_MESSAGES[name], capsys, out, dense)


def test_output_that_is_a_file(where, tmp_path: Path, capsys) -> None:
    out, dense, base = where
    out.write_text("a file\n")
    assert_refused(
        evolve_space.main, [*base, "--budget", "320KB"], "is a file, not a directory", capsys, out, dense
    )


def test_pretraining_can_be_switched_off() -> None:
    """``-o pretrain.cfg=null`` (documented; used by benchmarks) means no dense pretraining,
    whatever overrides the preset gives the pretraining."""
    run = evolve_space.prepare(["--budget", "320KB", "-o", "pretrain.cfg=null"])
    assert run.pretrain_dir is None and run.pretrained() is None
