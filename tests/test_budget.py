"""Budget parsing: KB = KiB = 1024 bytes, one-line ConfigError for anything else."""

from __future__ import annotations

import argparse

import pytest

from common.errors import ConfigError
from memory_model.budget import HELP, argparse_budget, format_bytes, parse_budget


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("320KB", 327_680),
        ("320kB", 327_680),
        ("320KiB", 327_680),
        ("320kib", 327_680),
        ("320 KB", 327_680),
        (" 320KB ", 327_680),
        ("0.3125MB", 327_680),
        ("327680", 327_680),
        ("327680B", 327_680),
        ("1MiB", 1_048_576),
        ("2GB", 2 * 1024**3),
        ("0.5KB", 512),
        ("1.5K", 1536),
    ],
)
def test_parse_budget_accepts(text: str, expected: int) -> None:
    assert parse_budget(text) == expected


@pytest.mark.parametrize(
    "text",
    ["320QB", "-1KB", "0", "0KB", "abc", "1e999GB", "", "nan", "inf", "0.5", "1.0001KB", "320  KB", "KB",
     "3 2 0KB", "+5KB", "2048GB", "1,024"],
)  # fmt: skip
def test_parse_budget_rejects_with_one_line(text: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_budget(text)
    message = str(err.value)
    assert "\n" not in message and message


def test_parse_budget_rejects_non_text() -> None:
    with pytest.raises(ConfigError, match="text"):
        parse_budget(327680)  # type: ignore[arg-type]


def test_unknown_unit_is_named() -> None:
    with pytest.raises(ConfigError, match="QB"):
        parse_budget("320QB")


def test_argparse_type_raises_argument_type_error() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", type=argparse_budget)
    assert parser.parse_args(["--budget", "256KB"]).budget == 262_144
    with pytest.raises(argparse.ArgumentTypeError, match="unit"):
        argparse_budget("5XB")


def test_help_states_the_convention() -> None:
    assert "1024" in HELP and "KiB" in HELP


@pytest.mark.parametrize(
    ("n", "text"),
    [(327_680, "320.0 KB"), (512, "512 B"), (1536, "1.5 KB"), (1_048_576, "1.0 MB"), (3 * 1024**3, "3.0 GB")],
)
def test_format_bytes(n: int, text: str) -> None:
    assert format_bytes(n) == text


def test_format_then_parse_round_trips() -> None:
    assert parse_budget(format_bytes(327_680)) == 327_680
