"""Bad input to the smaller entry points (``python -m baselines``, ``python -m search_space``,
``python -m search.launch``): one line on stderr, exit 2, no traceback, nothing written; and
``--help`` of every entry point answers without importing torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from baselines.__main__ import main as baselines_main
from search.launch import main as launch_main
from search_space.__main__ import main as space_main
from tests.badinput import BAD_FILE_MESSAGES, assert_refused, bad_files

REPO = Path(__file__).resolve().parent.parent

BASELINE_CASES = {
    "empty_item": (["--budget", "320KB,,512KB"], "has an empty item"),
    "trailing_comma": (["--budget", "320KB,"], "has an empty item"),
    "bad_unit": (["--budget", "320QB"], "unknown unit 'QB'"),
    "negative": (["--budget=-1KB"], "cannot read budget '-1KB'"),
    "negative_spaced": (["--budget", "-1KB"], "write a value that starts with '-' as --option=VALUE"),
    "flash": (["--budget", "320KB", "--flash-budget", "1 MiBB"], "unknown unit 'MiBB'"),
    "epochs": (["--budget", "320KB", "--train-epochs", "0"], "--train-epochs must be >= 1"),
    "model": (["--budget", "320KB", "--models", "resnet50"], "unknown model 'resnet50'"),
    "no_budget": ([], "the following arguments are required: --budget"),
}


@pytest.mark.parametrize("name", sorted(BASELINE_CASES))
def test_baselines(name: str, tmp_path: Path, capsys) -> None:
    argv, expect = BASELINE_CASES[name]
    out = tmp_path / "out"
    assert_refused(baselines_main, [*argv, "--output", str(out)], expect, capsys, out)


def test_baselines_searched_path(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    argv = ["--budget", "320KB", "--output", str(out), "--searched", str(tmp_path / "nope")]
    assert_refused(baselines_main, argv, "does not exist", capsys, out)


def _space_files(root: Path) -> dict[str, Path]:
    files = bad_files(root)
    good = yaml.safe_load((REPO / "configs/spaces/digits-tiny.yaml").read_text())
    cases = {
        "img_abc": {**good, "img_size": "abc"},
        "heads_text": {**good, "num_heads": ["two"]},
        "ratio_big": {**good, "rank_ratio": [1.5]},
        "duplicate_choice": {**good, "depth": [2, 2]},
        "unknown_field": {**good, "widths": [1]},
        "act": {**good, "act": "swish"},
        "classes_zero": {**good, "num_classes": 0},
        "qkv_bias_text": {**good, "qkv_bias": "yes"},
    }
    for name, data in cases.items():
        files[name] = root / f"{name}.yaml"
        files[name].write_text(yaml.safe_dump(data))
    return files


SPACE_CASES = {
    **BAD_FILE_MESSAGES,
    "list": "a search space must be a mapping",
    "img_abc": "space field 'img_size' must be a positive integer, got 'abc'",
    "heads_text": "space field 'num_heads' has a non-numeric choice 'two'",
    "ratio_big": "ratios must be in (0, 1]",
    "duplicate_choice": "lists a choice twice",
    "unknown_field": "unknown space field 'widths'",
    "act": "space field 'act' must be one of",
    "classes_zero": "space field 'num_classes' must be a positive integer",
    "qkv_bias_text": "space field 'qkv_bias' must be true or false",
}


@pytest.mark.parametrize("name", sorted(SPACE_CASES))
def test_space_inspection(name: str, tmp_path: Path, capsys) -> None:
    files = _space_files(tmp_path / "files")
    path = files[name]
    if name == "missing":
        path = path.with_suffix(".yaml")
    assert_refused(space_main, ["--space", str(path), "--samples", "0"], SPACE_CASES[name], capsys, tmp_path)


def test_space_preset_name(capsys, tmp_path: Path) -> None:
    assert_refused(space_main, ["--space", "mcuformer-x"], "no space preset 'mcuformer-x'", capsys, tmp_path)


def test_launch_needs_a_job_directory(tmp_path: Path, capsys) -> None:
    assert_refused(launch_main, [str(tmp_path / "nowhere")], "holds no job.json", capsys, tmp_path)
    assert_refused(launch_main, [], "the following arguments are required: job_dir", capsys, tmp_path)


ENTRY_POINTS = [
    ["supernet_train.py"],
    ["evolve_space.py"],
    ["evolution_search.py"],
    ["pipeline.py"],
    ["-m", "baselines"],
    ["-m", "search_space"],
]


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=lambda e: e[-1])
def test_help_does_not_import_torch(entry: list[str]) -> None:
    """``--help`` answers at once: nothing heavy is imported before the arguments are parsed."""
    probe = (
        "import runpy, sys; sys.argv = [sys.argv[1], '--help'];\n"
        "try:\n"
        "    runpy.run_module(sys.argv[0][3:], run_name='__main__') if sys.argv[0].startswith('-m:')"
        " else runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "print('torch' in sys.modules, 'timm' in sys.modules)\n"
    )
    target = f"-m:{entry[1]}" if entry[0] == "-m" else entry[0]
    proc = subprocess.run(
        [sys.executable, "-c", probe, target], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "False False"
