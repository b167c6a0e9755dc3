"""The memory constraint's ``input`` option (mcu: the image whole in SRAM or streamed): both
searches pass it to the schedule, scalar and batched alike; bad values are one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import evolution_search
import evolve_space
from common.errors import ConfigError
from memory_model import mcu_peak_bytes, peak_sram
from search.constraint import ConstraintCfg, MemoryConstraint
from search.space.visit import ScoreSettings, share
from search_space.space import load_space
from tests.badinput import assert_refused


def _input_bound_budget(space) -> int:
    """A budget between the streamed and the whole-image peak of the space's largest subnet."""
    big = space.max_config()
    whole, stream = mcu_peak_bytes(big, False), mcu_peak_bytes(big, False, "stream")
    assert stream < whole
    return (whole + stream) // 2


def test_stream_constraint_scalar_and_batched_agree() -> None:
    space = load_space("mcuformer-t").replace(patch_size=(20,))
    budget = _input_bound_budget(space)
    rng = np.random.default_rng(0)
    configs = [space.sample(rng) for _ in range(300)] + [space.max_config()]
    whole = MemoryConstraint(budget, "mcu", weights_in_sram=False)
    stream = MemoryConstraint(budget, "mcu", weights_in_sram=False, input="stream")
    fits = stream.fits_batch(configs)
    assert list(fits) == [stream(c) for c in configs]
    want = [peak_sram(c, "mcu", weights_in_sram=False, input="stream").peak_bytes <= budget for c in configs]
    assert list(fits) == want
    assert stream(space.max_config()) and not whole(space.max_config())
    assert fits.sum() > whole.fits_batch(configs).sum()
    assert "input streamed" in stream.describe()
    assert stream.smallest_peak_bytes(space) < whole.smallest_peak_bytes(space)


def test_constraint_cfg_passes_input() -> None:
    c = ConstraintCfg(budget="300KB", weights_in_sram=False, input="stream").constraint()
    assert c.input == "stream" and c.options == {"weights_in_sram": False, "input": "stream"}
    assert ConstraintCfg(budget="300KB").constraint().input == "whole"


@pytest.mark.parametrize(
    ("kwargs", "expect"),
    [
        ({"input": "camera"}, "input must be one of ['whole', 'stream']"),
        ({"input": 1}, "input must be one of"),
        ({"schedule": "paper", "input": "stream"}, "applies to the mcu schedule only"),
        ({"schedule": "tflm", "input": "stream"}, "applies to the mcu schedule only"),
    ],
)
def test_bad_input_option_is_refused(kwargs: dict, expect: str) -> None:
    with pytest.raises(ConfigError, match=expect.replace("[", r"\[").replace("]", r"\]")):
        ConstraintCfg(budget="320KB", **kwargs)
    with pytest.raises(ConfigError, match="input"):
        MemoryConstraint(320 * 1024, **kwargs)


def test_score_settings_carry_input_into_r() -> None:
    space = load_space("mcuformer-t").replace(patch_size=(20,), rank_ratio=(0.4,))
    budget = _input_bound_budget(space)
    base = dict(budget_bytes=budget, weights_in_sram=False, r_samples=2000)
    r_whole, method = share(space, ScoreSettings(**base), seed=0)
    r_stream, _ = share(space, ScoreSettings(**base, input="stream"), seed=0)
    assert method == "sampling" and r_stream > r_whole
    # job.json round trip keeps it; an older record without it reads as whole
    s = ScoreSettings(**base, input="stream")
    assert ScoreSettings.from_dict(s.to_dict()) == s
    old = {k: v for k, v in s.to_dict().items() if k != "input"}
    assert ScoreSettings.from_dict(old).input == "whole"


def test_evolve_space_takes_score_input() -> None:
    run = evolve_space.prepare(["--budget", "320KB", "-o", "score.input=stream", "-o", "pretrain.cfg=null"])
    assert run.cfg.score.settings().input == "stream"
    assert run.cfg.score.settings().constraint.input == "stream"


def test_evolution_search_takes_constraint_input() -> None:
    cfg, _, _ = evolution_search.prepare(["--budget", "320KB", "-o", "constraint.input=stream"])
    assert cfg.constraint.input == "stream" and cfg.constraint.constraint().input == "stream"


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (["-o", "score.input=camera"], "input must be one of ['whole', 'stream']"),
        (["-o", "score.schedule=paper", "-o", "score.input=stream"], "applies to the mcu schedule only"),
    ],
)
def test_evolve_space_bad_input_option(argv: list[str], expect: str, tmp_path: Path, capsys) -> None:
    out, dense = tmp_path / "out", tmp_path / "dense"
    base = ["--output", str(out), "-o", f"pretrain.overrides.log.output={dense}", "--budget", "320KB"]
    assert_refused(evolve_space.main, [*base, *argv], expect, capsys, out, dense)


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (["-o", "constraint.input=camera"], "input must be one of ['whole', 'stream']"),
        (
            ["-o", "constraint.schedule=tflm", "-o", "constraint.input=stream"],
            "applies to the mcu schedule only",
        ),
    ],
)
def test_evolution_search_bad_input_option(argv: list[str], expect: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    full = ["--supernet", str(tmp_path / "none.pth"), "--output", str(out), "--budget", "320KB", *argv]
    assert_refused(evolution_search.main, full, expect, capsys, out)
