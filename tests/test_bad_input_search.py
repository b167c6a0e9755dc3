"""Bad input to ``evolution_search.py`` and ``pipeline.py``: one line on stderr, exit 2, no
traceback, nothing written; the pipeline validates every stage before the first one starts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import evolution_search
import pipeline
from tests.badinput import BAD_FILE_MESSAGES, assert_refused, bad_files
from tests.test_evolution import supernet_ckpt  # noqa: F401 (fixture)
from training.checkpoint import save_checkpoint

CASES = {  # name: (argv after --supernet CKPT --output OUT, expected text)
    "budget_unit": (["--budget", "320QB"], "unknown unit 'QB'"),
    "budget_negative": (["--budget=-1KB"], "cannot read budget '-1KB'"),
    "budget_word": (["--budget", "abc"], "cannot read budget 'abc'"),
    "budget_fraction": (["--budget", "0.3MB"], "is 314572.8 bytes"),
    "budget_infeasible": (["--budget", "1KB"], "infeasible for space"),
    "flash_infeasible": (
        ["--budget", "320KB", "--flash-budget", "1KB"],
        "the flash budget 1.0 KB is infeasible",
    ),
    "generations_zero": (["-o", "search.generations=0"], "'generations' must be >= 1"),
    "population_zero": (["-o", "search.population=0"], "'population' must be >= 1"),
    "mutations_over": (["-o", "search.mutations=40"], "exceed the population"),
    "mutation_prob": (["-o", "search.mutation_prob=1.5"], "'mutation_prob' must be in [0, 1]"),
    "mutation_prob_inf": (["-o", "search.mutation_prob=inf"], "must be a finite number"),
    "algorithm": (["--algorithm", "genetic"], "algorithm must be one of"),
    "finetune_negative": (["--finetune", "-1"], "finetune.epochs must be >= 0"),
    "layout": (["-o", "finetune.layout=nhw"], "finetune.layout must be nchw or nhwc"),
    "schedule": (["-o", "constraint.schedule=tflite"], "unknown memory schedule 'tflite'"),
    "max_params": (["-o", "constraint.max_params=-5"], "max_params must be positive"),
    "unknown_key": (["-o", "search.populaton=3"], "unknown config key 'search.populaton'"),
    "unknown_section": (["-o", "searching.population=3"], "unknown config key 'searching'"),
    "seed_text": (["--seed", "one"], "invalid int value: 'one'"),
    "board": (["--board", "stm32f999"], "unknown board 'stm32f999'"),
}


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out"


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_option(name: str, supernet_ckpt: Path, out: Path, capsys) -> None:  # noqa: F811
    argv, expect = CASES[name]
    full = ["--supernet", str(supernet_ckpt), "--output", str(out), *argv]
    if "--budget" not in argv:
        full += ["--budget", "320KB"]
    assert_refused(evolution_search.main, full, expect, capsys, out)


@pytest.mark.parametrize("name", sorted(BAD_FILE_MESSAGES))
def test_bad_config_file(name: str, supernet_ckpt: Path, out: Path, tmp_path: Path, capsys) -> None:  # noqa: F811
    files = bad_files(tmp_path / "files")
    argv = ["--cfg", str(files[name]), "--supernet", str(supernet_ckpt), "--output", str(out)]
    expect = BAD_FILE_MESSAGES[name].replace("config file", "search config file")
    assert_refused(evolution_search.main, argv, expect, capsys, out)


def _static_checkpoint(path: Path) -> Path:
    save_checkpoint(path, space=None, config={}, epoch=1, model={"w": torch.zeros(1)}, subnet={"x": 1})
    return path


SUPERNET_CASES = {  # name: (path builder, expected text)
    "missing": (lambda d: d / "missing.pth", "does not exist"),
    "directory": (lambda d: d, "is a directory"),
    "not_a_checkpoint": (
        lambda d: (d / "junk.pth", (d / "junk.pth").write_text("junk"))[0],
        "cannot be read",
    ),
    "static_model": (lambda d: _static_checkpoint(d / "static.pth"), "holds a static model"),
}


@pytest.mark.parametrize("name", sorted(SUPERNET_CASES))
def test_bad_supernet(name: str, out: Path, tmp_path: Path, capsys) -> None:
    build, expect = SUPERNET_CASES[name]
    (tmp_path / "ckpts").mkdir()
    path = build(tmp_path / "ckpts")
    argv = ["--supernet", str(path), "--output", str(out), "--budget", "320KB"]
    assert_refused(evolution_search.main, argv, expect, capsys, out)


def test_output_that_is_a_file(supernet_ckpt: Path, tmp_path: Path, capsys) -> None:  # noqa: F811
    out = tmp_path / "taken"
    out.write_text("a file\n")
    argv = ["--supernet", str(supernet_ckpt), "--output", str(out), "--budget", "320KB"]
    assert_refused(evolution_search.main, argv, "is a file, not a directory", capsys, out)


PIPELINE_CASES = {  # every stage is checked before the first (dense pretraining) starts
    "generations_zero": (["--generations", "0"], "'generations' must be >= 1"),
    "finetune_negative": (["--finetune", "-1"], "finetune.epochs must be >= 0"),
    "population_zero": (["--population", "0"], "'population' must be >= 1"),
    "budget_tiny": (["--budget", "1KB"], "no point of the grid"),
    "budget_word": (["--budget", "abc"], "cannot read budget 'abc'"),
    "budget_list": (["--budget", "320KB,512KB"], "cannot read budget '320KB,512KB'"),
    "flash_tiny": (["--flash-budget", "1KB"], "no point of the grid"),
    "final_epochs_text": (["--final-epochs", "many"], "invalid int value: 'many'"),
    "board": (["--board", "nucleo"], "unknown board 'nucleo'"),
}


@pytest.mark.parametrize("name", sorted(PIPELINE_CASES))
def test_pipeline_refuses_before_any_stage(name: str, out: Path, capsys) -> None:
    argv, expect = PIPELINE_CASES[name]
    assert_refused(pipeline.main, ["--output", str(out), *argv], expect, capsys, out)
