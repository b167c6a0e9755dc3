"""`python -m memory_model.table`: peaks and R per space point, per budget and schedule."""

from __future__ import annotations

import numpy as np
import pytest

from memory_model import share_within_budget
from memory_model.table import VARIANTS, main, peak_row, shares, summary_table
from search_space.space import load_space
from tests.badinput import assert_refused


def test_shares_are_the_registry_r_and_stream_never_lowers_them() -> None:
    space = load_space("mcuformer-t").replace(embed_dim=(216,), depth=(12,))
    ranks, budgets = (0.4, 0.95), [180 * 1024, 256 * 1024]
    r = shares(space, ranks, budgets, samples=400, seed=5)
    assert r.shape == (len(space.patch_size) * 2, 2, len(VARIANTS))
    # a cell is share_within_budget of its point with the variant's options, same seed
    k = next(i for i, v in enumerate(VARIANTS) if v.label == "mcu, W flash, stream")
    point = space.replace(patch_size=(20,), rank_ratio=(0.95,))
    want = share_within_budget(point, budgets[0], "mcu", np.random.default_rng(5), 400, input="stream")
    assert r[3, 0, k] == want.share
    label = {v.label: i for i, v in enumerate(VARIANTS)}
    for sram in ("SRAM", "flash"):
        whole, stream = r[..., label[f"mcu, W {sram}, whole"]], r[..., label[f"mcu, W {sram}, stream"]]
        assert (stream >= whole).all()
    assert (r[:, 1] >= r[:, 0]).all()  # a larger budget never lowers R
    # at 180 KB streaming lets the large patch-20 subnets fit with weights in flash
    assert r[2, 0, label["mcu, W flash, stream"]] > r[2, 0, label["mcu, W flash, whole"]]
    text = summary_table(budgets, r)
    assert "| 256.0 KB |" in text and f"/{r.shape[0]}" in text


def test_peak_row_orders_the_schedules() -> None:
    cfg = load_space("mcuformer-t").replace(patch_size=(20,)).max_config()
    p = peak_row(cfg)
    assert p["mcu, W flash, stream"] < p["mcu, W flash, whole"] <= p["mcu, W SRAM, whole"]
    assert p["tflm head"] < p["tflm arena"]


def test_cli_prints_every_part(capsys) -> None:
    argv = ["--space", "digits-tiny", "--budgets", "16KB,64KB", "128KB", "--samples", "300"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "## Peak SRAM" in out and "R within 16.0 KB" in out and "R within 128.0 KB" in out
    assert "## R summary" in out and "mcu, W flash, stream" in out


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (["--budgets", "256KB,,512KB"], "has an empty item"),
        (["--budgets", "256QB"], "unknown unit 'QB'"),
        (["--space", "nosuch"], "no space preset 'nosuch'"),
        (["--samples", "0"], "--samples must be >= 1"),
        (["--only", "all_of_it"], "invalid choice"),
    ],
)
def test_cli_bad_input(argv: list[str], expect: str, capsys) -> None:
    assert_refused(main, argv, expect, capsys)
